"""Fixtures: a real hub process (`hub`), and a factory for more (`start_hub`)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import libtmux
import pytest

from tests.support import HubProcess, StoreProcess, person_watching, wait_until

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


FAULT_COUNTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[FAULT_COUNTS] = []


@pytest.fixture
def fault_report(request):
    """Record what a fault test counted; printed in the run's summary ("fault tests")."""
    def report(counts: dict) -> None:
        request.config.stash[FAULT_COUNTS].append((request.node.name, counts))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = config.stash.get(FAULT_COUNTS, [])
    if rows:
        terminalreporter.section("fault tests")
        for name, counts in rows:
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@pytest.fixture
def start_hub(tmp_path_factory):
    """Starts hubs; `watched=True`: with a person watching for questions (see `watched_hub`)."""
    started: list[HubProcess] = []
    with contextlib.ExitStack() as watchers:
        def start(*args: str, home: Path | None = None, env: dict | None = None, expect_ready: bool = True,
                  watched: bool = False) -> HubProcess:
            hub = HubProcess(home=home or tmp_path_factory.mktemp("hub") / "home", args=list(args), env=env or {})
            started.append(hub)
            hub.start(expect_ready=expect_ready)
            if watched:
                watchers.enter_context(person_watching(hub))
            return hub

        yield start
    for hub in started:
        hub.stop()


@pytest.fixture
def hub(start_hub) -> HubProcess:
    return start_hub()


@pytest.fixture
def watched_hub(start_hub) -> HubProcess:
    """A hub with a person watching for questions (`repowire questions --follow`), so that a
    question waits for an answer rather than taking the fallback."""
    return start_hub(watched=True)


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
def store_process(tmp_path):
    """A real valkey-server with append-only persistence that outlives the hubs using it, and
    that the test may kill and start again (`StoreProcess`)."""
    store = StoreProcess(tmp_path).start()
    yield store
    store.stop()


@pytest.fixture
def shared_store(store_process) -> str:
    """The URL of the store of a mesh of hub nodes (`--redis-url`)."""
    return store_process.url
