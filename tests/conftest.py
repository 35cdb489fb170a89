"""Fixtures: a real hub process (`hub`), and a factory for more (`start_hub`)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import libtmux
import pytest

from tests.store_cluster import LocalCluster
from tests.support import Gate, HubProcess, StoreProcess, person_watching, wait_until

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


FAULT_COUNTS = pytest.StashKey[list]()

# Every test module belongs to one tier (`python -m pytest -m core` runs the fast one):
#   core    in process, no event loop or server: rules, state machines, schemas, layering
#   store   the embedded store and its writer, without a hub
#   server  one real hub process (uvicorn on 127.0.0.1, its embedded store), driven over HTTP/WebSocket
#   e2e     a hub with real outside parts: tmux, Chromium, the agent CLIs, several nodes, the README tour
#   faults  a hub or its store killed, frozen or cut off under traffic
#   cluster hub nodes on a real Valkey cluster (3 primaries, 3 replicas): routing, sharded
#           pub/sub, slots that move, a primary that fails
TIERS = {
    "core": ("test_core", "test_job_rules", "test_state_machines", "test_registry", "test_keepalive", "test_approval_rules", "test_presets", "test_schedule_rules",
             "test_pane_rules", "test_pane_text", "test_properties", "test_schemas", "test_layers", "test_docs",
             "test_key_layout"),
    "store": ("test_store_writer", "test_store_lifecycle", "test_inbox_sweep"),
    "server": ("test_hub_http", "test_http_edge", "test_route_access", "test_bad_input", "test_identity_and_notify",
               "test_asks", "test_questions", "test_approvals", "test_sessions", "test_schedules", "test_jobs", "test_metrics", "test_attachments",
               "test_peer_registration", "test_presence_and_flow", "test_dashboard_feed", "test_fuzz", "test_cli",
               "test_cli_display", "test_local_security", "test_mcp", "test_hook", "test_claude_settings",
               "test_client_sdk"),
    "e2e": ("test_claude_code", "test_codex", "test_agent_shell", "test_agent_bounds", "test_dashboard",
            "test_links", "test_tmux_pane", "test_panes", "test_readme_tour", "test_mesh", "test_jobs_agents"),
    "faults": ("test_faults", "test_delivery_guarantees", "test_store_rollback"),
    "cluster": ("test_cluster",),
}
TIER_OF = {module: tier for tier, modules in TIERS.items() for module in modules}


def pytest_configure(config):
    config.stash[FAULT_COUNTS] = []
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: a test of the {tier} tier (see tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its module's tier; a module with no tier is an error, not a silent skip."""
    for item in items:
        module = item.path.stem
        if module not in TIER_OF:
            raise pytest.UsageError(f"{item.path.name} has no tier: add it to TIERS in tests/conftest.py")
        item.add_marker(TIER_OF[module])


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
def gate(tmp_path):
    """A gate executor scripts wait at (tests.support.Gate), open when the test ends."""
    made = Gate(tmp_path)
    yield made
    made.close()


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


@pytest.fixture(scope="session")
def store_cluster(tmp_path_factory):
    """A real Valkey cluster, 3 primaries with a replica each, for the whole run (`cluster_store`
    empties it for each test)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_store(store_cluster) -> LocalCluster:
    """The session's cluster, healthy and empty (a test that kills a server gets a whole one
    back: the killed server is started again and the cluster mended)."""
    store_cluster.mend()
    store_cluster.flush()
    return store_cluster
