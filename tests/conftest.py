"""Fixtures: a real hub process (`hub`), and a factory for more (`start_hub`)."""

from __future__ import annotations

import sys
from pathlib import Path

import libtmux
import pytest

from tests.support import HubProcess

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def start_hub(tmp_path_factory):
    started: list[HubProcess] = []

    def start(*args: str, home: Path | None = None, env: dict | None = None, expect_ready: bool = True) -> HubProcess:
        hub = HubProcess(home=home or tmp_path_factory.mktemp("hub") / "home", args=list(args), env=env or {})
        started.append(hub)
        return hub.start(expect_ready=expect_ready)

    yield start
    for hub in started:
        hub.stop()


@pytest.fixture
def hub(start_hub) -> HubProcess:
    return start_hub()


@pytest.fixture
def tmux(request):
    """A private tmux server for one test (`tmux -L rw-<test> -f /dev/null`), killed after it."""
    server = libtmux.Server(socket_name=f"rw-{request.node.name[:40]}", config_file="/dev/null")
    yield server
    if server.is_alive():
        server.kill()

