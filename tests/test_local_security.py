"""Local means local: Host and Origin allow-lists, tokens and file modes, the Unix socket."""

from __future__ import annotations

import asyncio
import base64
import os
import stat

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import recv, send
from transports.client import HubClient
from transports.discovery import HubAddress, find_hub

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8377", "127.0.0.1.nip.io", ""])
def test_foreign_host_is_refused_on_routes_and_on_the_upgrade(hub, host):
    with httpx.Client(base_url=hub.url) as http:
        response = http.get("/peers", headers={"Host": host, "Authorization": f"Bearer {hub.token}"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "host_not_allowed"
        upgrade = http.get("/ws", headers={"Host": host, **UPGRADE})
        assert upgrade.status_code == 403 and upgrade.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://localhost"])
async def test_foreign_origin_is_refused_before_the_upgrade(hub, origin):
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.ws_url, origin=origin, additional_headers={"Authorization": f"Bearer {hub.token}"})
    assert refused.value.response.status_code == 403
    assert b"origin_not_allowed" in refused.value.response.body
    assert hub.peers() == {}


async def test_the_hubs_own_origin_is_allowed(hub):
    ws = await connect(hub.ws_url, origin=hub.url, additional_headers={"Authorization": f"Bearer {hub.token}"})
    await send(ws, {"type": "hello", "name": "page"})
    assert (await recv(ws))["type"] == "welcome"
    await ws.close()


def test_foreign_origin_is_refused_on_rest(hub):
    response = hub.post("/messages", {"to": "x", "text": "y"}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"


def test_home_and_token_file_modes(hub):
    assert stat.S_IMODE(os.stat(hub.home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(hub.home / "hub.token").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(hub.home / "store").st_mode) == 0o700
    assert len(hub.token) >= 43  # 256 bits, url-safe base64


def test_the_store_has_no_tcp_port(hub):
    store = psutil.Process(hub.store_pid())
    assert [c for c in store.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN] == []


def test_unix_socket_serves_the_same_api_trusted_by_file_mode(start_hub, tmp_path):
    uds = tmp_path / "sock" / "hub.sock"
    hub = start_hub("--uds", str(uds))
    assert hub.uds == str(uds)
    assert stat.S_IMODE(os.stat(uds).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(uds.parent).st_mode) == 0o700
    assert find_hub(hub.home) == HubAddress(hub.url, str(uds))  # local clients prefer the socket
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), base_url="http://localhost") as http:
        assert http.get("/peers").status_code == 200  # no token on the Unix socket

    async def over_uds():
        address = HubAddress(hub.url, str(uds))
        async with HubClient("local", address=address) as local, HubClient("other", address=address) as other:
            accepted = await local.notify("other", "via unix socket")
            assert (await other.receive(10))["message_id"] == accepted["message_id"]
    asyncio.run(over_uds())


def test_uds_leaves_a_folder_it_did_not_create_as_it_was(start_hub, tmp_path):
    """F11: --uds in an existing folder (here 0755) sets only the socket's own mode."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    hub = start_hub("--uds", str(shared / "hub.sock"))
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(shared / "hub.sock").st_mode) == 0o600
    hub.stop()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755


def test_uds_never_removes_a_file_that_is_not_a_socket(start_hub, tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    hub = start_hub("--uds", str(precious), expect_ready=False)
    assert hub.process.wait(timeout=30) == 2
    assert precious.read_text() == "keep me"
    assert "cannot listen on --uds" in hub.log()


def test_the_advertised_name_of_a_mesh_node_is_allowed_and_nothing_else_is(start_hub, shared_store):
    hub = start_hub("--redis-url", shared_store, "--node", "n1", "--advertise-url", "http://10.0.0.5:8377")
    assert hub.get("/health", headers={"Host": "10.0.0.5:8377"}).status_code == 200
    for host in ("10.0.0.5:8378", "10.0.0.6:8377", "evil.example:8377"):
        refused = hub.get("/health", headers={"Host": host})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "host_not_allowed"
