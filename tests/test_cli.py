"""The `repowire` commands as a person runs them, against a real hub."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import orjson

from hub.cli.serve import bind_tcp


def repowire(hub, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "REPOWIRE_HOME": str(hub.home), **(env or {})}
    full_env.pop("REPOWIRE_URL", None)
    return subprocess.run([sys.executable, "-m", "hub.cli.main", *args], env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_notify_peers_and_trace(hub):
    async def register():
        async with hub.client("bob", circle="ops"):
            pass
    asyncio.run(register())
    sent = repowire(hub, "notify", "bob", "hello from the terminal", "--json")
    assert sent.returncode == 0, sent.stderr
    body = orjson.loads(sent.stdout)
    assert body["state"] == "queued"
    listing = repowire(hub, "peers")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CIRCLE", "STATUS", "PENDING", "PEER", "ID"]
    assert lines[1].split()[:4] == ["bob", "ops", "offline", "1"]
    as_json = orjson.loads(repowire(hub, "peers", "--json", "--circle", "ops").stdout)
    assert [p["name"] for p in as_json["peers"]] == ["bob"]
    trace = repowire(hub, "trace", body["message_id"])
    assert trace.returncode == 0
    assert [line.split()[2] for line in trace.stdout.splitlines()[1:]] == ["accepted", "routed", "queued"]


def test_refusals_exit_1_with_the_code(hub):
    done = repowire(hub, "notify", "nobody", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("repowire: peer_not_found:")
    missing = repowire(hub, "trace", "f" * 32)
    assert missing.returncode == 1 and "trace_not_found" in missing.stderr


def test_unreachable_hub_exits_2_and_says_how_to_start_it(tmp_path):
    env = {**os.environ, "REPOWIRE_HOME": str(tmp_path), "REPOWIRE_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "peers"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "cannot reach the hub at http://127.0.0.1:9" in done.stderr and "repowire serve" in done.stderr


def test_help_texts_name_every_command():
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("serve", "peers", "notify", "trace"):
        assert command in done.stdout


def test_a_busy_port_is_a_clear_error(hub, tmp_path):
    port = hub.url.rsplit(":", 1)[1]
    env = {**os.environ, "REPOWIRE_HOME": str(tmp_path / "other")}
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "serve", "--port", port], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_the_listener_disables_nagle_for_every_accepted_connection():
    """asyncio leaves TCP_NODELAY off on sockets accepted from a listener it was handed; the
    hub sets it on the listener (inherited on Linux), or every small frame can wait 40 ms."""
    listener = bind_tcp("127.0.0.1", 0)
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (client, accepted, listener):
            s.close()
