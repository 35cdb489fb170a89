"""A person registers a peer by name and hands its token to whoever acts as it: POST /peers,
GET /whoami, and the commands built on them (`peers add`, `whoami`, `inbox`, `status`)."""

from __future__ import annotations

import orjson

from tests.support import recv, repowire, send


def test_a_person_registers_a_peer_and_gets_its_token(hub):
    made = hub.post("/peers", {"name": "bob"})
    assert made.status_code == 201
    body = made.json()
    assert body["created"] is True and len(body["token"]) >= 32
    assert {k: body["peer"][k] for k in ("name", "circle", "role", "status", "status_reason", "pending")} == {
        "name": "bob", "circle": "default", "role": "agent", "status": "offline", "status_reason": "registered",
        "pending": 0}
    me = hub.get("/whoami", token=body["token"])
    assert me.status_code == 200 and me.json()["operator"] is False
    assert me.json()["peer"]["peer_id"] == body["peer"]["peer_id"]
    assert hub.get("/whoami").json() == {"operator": True, "peer": None}


def test_taking_back_an_offline_name_keeps_the_id_and_retires_the_old_token(hub):
    first = hub.post("/peers", {"name": "bob", "circle": "ops"}).json()
    again = hub.post("/peers", {"name": "bob", "circle": "ops"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["peer"]["peer_id"] == first["peer"]["peer_id"]
    assert hub.get("/whoami", token=first["token"]).json()["error"]["code"] == "unauthorized"
    assert hub.get("/whoami", token=again.json()["token"]).status_code == 200


async def test_a_connected_name_is_taken_and_nothing_changes(hub):
    ws, welcome = await hub.raw_peer("carol")
    try:
        refused = hub.post("/peers", {"name": "carol"})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "name_taken"
        await send(ws, {"type": "ping", "id": "p1"})
        assert (await recv(ws))["type"] == "pong", "carol's connection and token still work"
        assert hub.get("/whoami", token=welcome["token"]).json()["peer"]["name"] == "carol"
    finally:
        await ws.close()


def test_an_agent_cannot_register_peers_and_bad_names_are_refused(hub):
    agent = hub.post("/peers", {"name": "bob"}).json()["token"]
    forbidden = hub.post("/peers", {"name": "mallory"}, token=agent)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    for bad in ({"name": "has space"}, {"name": ""}, {"name": "x" * 65}, {}, {"name": "ok", "circle": "a b"}):
        refused = hub.post("/peers", bad)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request", bad
    assert hub.post("/peers", {"name": "x" * 64}).status_code == 201, "a name at the limit is fine"
    assert set(hub.peers()) == {"bob", "x" * 64}


def test_the_cli_gives_a_token_that_acts_as_the_peer(hub):
    added = repowire(hub, "peers", "add", "bob")
    assert added.returncode == 0
    token = added.stdout.strip()
    assert "\n" not in token and "registered bob@default" in added.stderr
    who = repowire(hub, "whoami", env={"REPOWIRE_TOKEN": token})
    assert who.returncode == 0 and who.stdout.startswith("bob@default  ")
    assert repowire(hub, "whoami").stdout.startswith("operator")
    sent = repowire(hub, "notify", "bob", "hello", "-q")
    assert sent.returncode == 0 and len(sent.stdout.strip()) == 32
    inbox = repowire(hub, "inbox", env={"REPOWIRE_TOKEN": token})
    assert inbox.stdout == "[notify from operator] «hello»\n"
    assert repowire(hub, "inbox", env={"REPOWIRE_TOKEN": token}).stdout == "no new messages\n"
    trace = hub.get(f"/traces/{sent.stdout.strip()}").json()
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "queued", "sent", "received"]
    operator = repowire(hub, "inbox")
    assert operator.returncode == 1 and "the operator has no inbox" in operator.stderr


def test_status_reports_the_hub(hub):
    hub.post("/peers", {"name": "bob"})
    shown = repowire(hub, "status")
    assert shown.returncode == 0
    assert f"hub        {hub.url}" in shown.stdout
    assert "peers      0 online of 1" in shown.stdout and "questions  0 waiting" in shown.stdout
    data = repowire(hub, "status", "--json")
    body = orjson.loads(data.stdout)
    assert body["hub"] == hub.url and body["peers"] == 1 and body["online"] == 0
    assert body["acting_as"] == "operator" and body["open_questions"] == 0 and body["store"]["aof_enabled"] is True
