"""Fixtures: a real hub process (`hub`), and a factory for more (`start_hub`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import libtmux
import pytest

from hub.store.embedded import find_server_binary
from tests.support import HubProcess, wait_until

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



@pytest.fixture
def pane_hub(start_hub, tmux):
    """A hub whose own bridge serves the test's private tmux server."""
    hub = start_hub("--tmux-socket", tmux.socket_name)
    wait_until(lambda: hub.get("/panes/orphans").status_code == 200, 20, "the pane bridge to connect")
    return hub


@pytest.fixture
def shared_store(tmp_path):
    """A real valkey-server with append-only persistence that outlives the hubs using it: the
    store of a mesh of hub nodes (`--redis-url`)."""
    sock = tmp_path / "shared.sock"
    proc = subprocess.Popen([find_server_binary(), "--port", "0", "--unixsocket", str(sock), "--appendonly", "yes",
                             "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(sock.exists, 10, "the shared store's socket")
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(10)
