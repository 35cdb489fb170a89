"""Tool-permission questions on a real hub: held requests, people and policies deciding,
deadlines, joining retries, content binding, durability, the socket, and the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support import eventually, recv, recv_until, send, wait_until
from transports.client import HubRefused

BASH_LS = {"tool_name": "Bash", "tool_input": {"command": "make clean", "description": "Clean the build"},
           "session_id": "sess-1", "cwd": "/work/shop"}


@pytest.fixture
def hub(watched_hub):
    """A person watches (`repowire questions --follow`): questions wait for their answer."""
    return watched_hub


def ask_body(tool_use_id: str, **extra) -> dict:
    return {**BASH_LS, "tool_use_id": tool_use_id, **extra}


def http(hub, token="hub", timeout=30) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {hub.token if token == 'hub' else token}"} if token else {}
    return httpx.AsyncClient(base_url=hub.url, headers=headers, timeout=timeout)


async def pending_question(hub, tool_use_id: str | None = None) -> dict:
    def find():
        for q in hub.get("/questions").json()["questions"]:
            if tool_use_id is None or q["tool_use_id"] == tool_use_id:
                return q
        return None
    return await eventually(lambda: asyncio.to_thread(find), 10, "the question to be listed")


async def test_a_person_allows_and_the_held_request_returns_the_decision(hub):
    async with http(hub) as client:
        held = asyncio.ensure_future(client.post("/questions/ask-blocking", json=ask_body("toolu_1", hook_timeout_s=60)))
        question = await pending_question(hub, "toolu_1")
        assert not held.done()
        assert question["state"] == "pending" and question["tool_input"] == BASH_LS["tool_input"]
        assert question["options"] == [{"id": "allow", "title": "Allow", "decision": "allow"},
                                       {"id": "deny", "title": "Deny", "decision": "deny"}]
        assert question["deadline"] - question["created_at"] == 55_000  # hook timeout 60 less the 5 s margin
        answered = await client.post(f"/questions/{question['correlation_id']}/answer",
                                     json={"decision": "allow", "content_hash": question["content_hash"],
                                           "reason": "fine"})
        assert answered.status_code == 200
        response = await held
    qid = question["correlation_id"]
    assert response.status_code == 200
    assert response.json() == {"correlation_id": qid, "decision": "allow", "answered_by": "human", "reason": "fine"}
    assert hub.get("/questions").json()["questions"] == []
    view = hub.get(f"/questions/{qid}").json()
    assert view["state"] == "decided" and view["decision"] == "allow" and view["by"]["name"] == "operator"
    trace = await eventually(lambda: asyncio.to_thread(
        lambda: (t := hub.get(f"/traces/{qid}").json()) and t.get("final") and t), 10, "the final stage")
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "answered"]
    assert trace["kind"] == "question" and trace["final"] == "answered"
    assert trace["stages"][1]["to"] == "people" and trace["stages"][2]["answered_by"] == "human"
    later = hub.post(f"/questions/{qid}/answer", {"decision": "deny"})
    assert later.status_code == 409 and later.json()["error"]["code"] == "already_answered"
    assert hub.get(f"/questions/{qid}").json()["decision"] == "allow"


async def test_deny_by_option_with_a_reason(hub):
    async with http(hub) as client:
        held = asyncio.ensure_future(client.post("/questions/ask-blocking", json=ask_body("toolu_2")))
        question = await pending_question(hub, "toolu_2")
        await client.post(f"/questions/{question['correlation_id']}/answer",
                          json={"option_id": "deny", "reason": "not on main"})
        assert (await held).json() == {"correlation_id": question["correlation_id"], "decision": "deny",
                                       "answered_by": "human", "reason": "not on main", "option_id": "deny"}


async def test_the_deadline_denies_and_a_later_answer_changes_nothing(start_hub):
    hub = start_hub("--question-timeout-max", "1", watched=True)
    async with http(hub) as client:
        response = await client.post("/questions/ask-blocking", json=ask_body("toolu_3", hook_timeout_s=600))
    decision = response.json()
    assert decision["decision"] == "deny" and decision["answered_by"] == "timeout" and decision["reason"] == "timeout"
    qid = decision["correlation_id"]
    late = hub.post(f"/questions/{qid}/answer", {"decision": "allow"})
    assert late.status_code == 410 and late.json()["error"]["code"] == "expired"
    view = hub.get(f"/questions/{qid}").json()
    assert view["decision"] == "deny" and view["answered_by"] == "timeout"
    trace = hub.get(f"/traces/{qid}").json()
    assert trace["final"] == "expired" and trace["stages"][-1]["reason"] == "timeout"


async def test_a_hook_timeout_shorter_than_the_margin_denies_at_once_unless_a_policy_decides(hub):
    response = hub.post("/questions/ask-blocking", ask_body("toolu_4", hook_timeout_s=4))
    assert response.json()["decision"] == "deny" and response.json()["answered_by"] == "timeout"
    hub.post("/policies", {"action": "allow", "tool": "Bash", "input": {"command": "make *"}})
    allowed = hub.post("/questions/ask-blocking", ask_body("toolu_5", hook_timeout_s=4)).json()
    assert allowed["decision"] == "allow" and allowed["answered_by"] == "policy"


async def test_only_a_person_may_answer(hub):
    async with hub.client("coder") as coder, http(hub) as client:
        held = asyncio.ensure_future(client.post("/questions/ask-blocking", json=ask_body("toolu_6")))
        question = await pending_question(hub, "toolu_6")
        qid = question["correlation_id"]
        refused = hub.post(f"/questions/{qid}/answer", {"decision": "allow"}, token=coder.token)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert hub.get(f"/questions/{qid}").json()["state"] == "pending"
        async with hub.client("ana", role="person") as ana:
            ok = hub.post(f"/questions/{qid}/answer", {"decision": "deny"}, token=ana.token)
            assert ok.status_code == 200
        assert (await held).json()["answered_by"] == "human"
        assert hub.get(f"/questions/{qid}").json()["by"]["name"] == "ana"


async def test_the_person_role_needs_the_hub_token(hub):
    async with hub.client("coder") as coder:
        token = coder.token
    with pytest.raises(HubRefused) as refused:
        async with hub.client("coder", role="person", hub_token=None, token=token):
            pass
    assert refused.value.code == "forbidden"


async def test_an_answer_is_bound_to_what_was_shown(hub):
    async with http(hub) as client:
        held = asyncio.ensure_future(client.post("/questions/ask-blocking", json=ask_body("toolu_7")))
        question = await pending_question(hub, "toolu_7")
        qid = question["correlation_id"]
        wrong = hub.post(f"/questions/{qid}/answer", {"decision": "allow", "content_hash": "0" * 64})
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "content_mismatch"
        assert hub.get(f"/questions/{qid}").json()["state"] == "pending"
        # the same tool_use_id with different content does not join (nor inherit) the question
        other = await client.post("/questions/ask-blocking",
                                  json={**ask_body("toolu_7"), "tool_input": {"command": "rm -rf /"}})
        assert other.status_code == 409 and other.json()["error"]["code"] == "content_mismatch"
        hub.post(f"/questions/{qid}/answer", {"decision": "deny", "content_hash": question["content_hash"]})
        assert (await held).json()["decision"] == "deny"


async def test_a_retried_hook_joins_the_open_question(hub):
    async with http(hub) as first, http(hub) as second:
        a = asyncio.ensure_future(first.post("/questions/ask-blocking", json=ask_body("toolu_8")))
        question = await pending_question(hub, "toolu_8")
        b = asyncio.ensure_future(second.post("/questions/ask-blocking", json=ask_body("toolu_8")))
        qid = question["correlation_id"]
        await eventually(lambda: asyncio.to_thread(
            lambda: any(s["stage"] == "joined" for s in hub.get(f"/traces/{qid}").json()["stages"])), 10, "joined")
        assert len(hub.get("/questions").json()["questions"]) == 1
        hub.post(f"/questions/{qid}/answer", {"decision": "allow"})
        assert (await a).json() == (await b).json()
        assert (await a).json()["decision"] == "allow"
        # asked again after the decision: the same decision at once
        again = await first.post("/questions/ask-blocking", json=ask_body("toolu_8"))
        assert again.json()["correlation_id"] == qid and again.json()["decision"] == "allow"
    decisions = hub.get("/decisions").json()["decisions"]
    assert [d["correlation_id"] for d in decisions].count(qid) == 1


async def test_policies_decide_without_asking_and_are_audited(hub):
    allow = hub.post("/policies", {"action": "allow", "tool": "Bash", "input": {"command": "git status*"},
                                   "priority": 10, "reason": "read-only git"})
    assert allow.status_code == 201
    rule = allow.json()
    assert set(rule) == {"id", "action", "tool", "input", "priority", "reason", "created_at", "updated_at"}
    deny = hub.post("/policies", {"action": "deny", "tool": "Bash", "input": {"command": "*rm -rf*"}, "priority": 20})
    ok = hub.post("/questions/ask-blocking", ask_body("toolu_9", tool_input={"command": "git status -s"})).json()
    assert ok == {"correlation_id": ok["correlation_id"], "decision": "allow", "answered_by": "policy",
                  "reason": "read-only git", "rule_id": rule["id"]}
    no = hub.post("/questions/ask-blocking", ask_body("toolu_10", tool_input={"command": "git status; rm -rf ~"})).json()
    assert no["decision"] == "deny" and no["rule_id"] == deny.json()["id"]
    trace = hub.get(f"/traces/{ok['correlation_id']}").json()
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "answered"]
    assert trace["stages"][1]["to"] == f"rule {rule['id']}" and trace["stages"][2]["answered_by"] == "policy"
    log = hub.get("/decisions").json()["decisions"]
    assert [(d["decision"], d["answered_by"], d.get("rule_id")) for d in log] == [
        ("deny", "policy", deny.json()["id"]), ("allow", "policy", rule["id"])]
    assert log[1]["trace_id"] == ok["correlation_id"] and log[1]["tool_name"] == "Bash" and log[1]["at"] > 0
    assert [d["decision"] for d in hub.get("/decisions", params={"decision": "allow"}).json()["decisions"]] == ["allow"]
    assert hub.get("/decisions", params={"limit": 1}).json()["decisions"] == log[:1]
    assert hub.get("/decisions", params={"peer": "operator"}).json()["decisions"] == log
    assert hub.get("/decisions", params={"peer": "nobody"}).json()["decisions"] == []
    assert hub.get("/questions").json()["questions"] == []


async def test_policy_crud_evaluate_and_who_may_change_rules(hub):
    created = hub.post("/policies", {"action": "ask", "tool": "Write", "cwd": "/etc/*"}).json()
    evaluation = hub.post("/policies/evaluate", {"tool_name": "Write", "tool_input": {"file_path": "/etc/x"},
                                                 "cwd": "/etc/app"}).json()
    assert evaluation["action"] == "ask" and evaluation["rule"]["id"] == created["id"]
    assert hub.post("/policies/evaluate", {"tool_name": "Read"}).json() == {
        "action": "ask", "reason": "no rule matched: a person is asked"}
    with hub.http() as client:
        replaced = client.put(f"/policies/{created['id']}", json={"action": "deny", "tool": "Write"})
        assert replaced.status_code == 200 and replaced.json()["created_at"] == created["created_at"]
        assert hub.post("/policies/evaluate", {"tool_name": "Write"}).json()["action"] == "deny"
        async with hub.client("coder") as coder:
            agent = {"Authorization": f"Bearer {coder.token}"}
            assert client.post("/policies", json={"action": "allow"}, headers=agent).status_code == 403
            assert client.put(f"/policies/{created['id']}", json={"action": "allow"}, headers=agent).status_code == 403
            assert client.delete(f"/policies/{created['id']}", headers=agent).status_code == 403
            assert client.get("/policies", headers=agent).status_code == 403, "policies are for people (F6)"
            assert client.get("/policies").json()["policies"][0]["action"] == "deny"
        assert client.delete(f"/policies/{created['id']}").json() == {"deleted": created["id"]}
        gone = client.delete(f"/policies/{created['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "policy_not_found"
        missing = client.put("/policies/" + "f" * 32, json={"action": "deny"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "policy_not_found"
    assert hub.get("/policies").json()["policies"] == []


@pytest.mark.parametrize("body, code", [
    ({"action": "maybe"}, "invalid_request"),
    ({"action": "allow", "tool": ""}, "invalid_request"),
    ({"action": "allow", "input": {"command": 5}}, "invalid_request"),
    ({"action": "allow", "input": {f"f{i}": "*" for i in range(17)}}, "invalid_request"),
    ({"action": "allow", "priority": 1_000_001}, "invalid_request"),
])
def test_a_bad_policy_is_refused_and_nothing_is_stored(hub, body, code):
    response = hub.post("/policies", body)
    assert response.status_code == 422 and response.json()["error"]["code"] == code
    assert hub.get("/policies").json()["policies"] == []


def test_limits_of_a_policy_and_of_options_at_limit_and_beyond(hub):
    assert hub.post("/policies", {"action": "deny", "input": {f"f{i}": "*" for i in range(16)}}).status_code == 201
    options = [{"id": f"o{i}", "title": f"Option {i}", "decision": "deny"} for i in range(9)]
    too_many = hub.post("/questions/ask-blocking", ask_body("toolu_11", options=options))
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "invalid_request"
    assert hub.get("/questions").json()["questions"] == []
    sixteen_fields = {f"f{i}": "x" for i in range(16)}
    at_limit = hub.post("/questions/ask-blocking", ask_body("toolu_12", options=options[:8], tool_input=sixteen_fields))
    assert at_limit.status_code == 200 and at_limit.json()["answered_by"] == "policy"


@pytest.mark.parametrize("body, code", [
    ({"tool_input": {}, "tool_use_id": "x"}, "invalid_request"),                   # no tool_name
    ({"tool_name": "Bash", "tool_input": {}}, "invalid_request"),                  # no tool_use_id
    ({"tool_name": "Bash", "tool_input": [], "tool_use_id": "x"}, "invalid_request"),
    ({"tool_name": "Bash", "tool_use_id": "x", "hook_timeout_s": 0}, "invalid_request"),
    ({"tool_name": "Bash", "tool_use_id": "x", "peer": "nobody"}, "forbidden"),   # who asks is the credential
    ({"tool_name": "Bash", "tool_use_id": "x", "options": [{"id": "a", "title": "A", "decision": "allow"},
                                                          {"id": "a", "title": "B", "decision": "deny"}]},
     "invalid_request"),
])
def test_a_malformed_question_is_refused_and_nothing_is_stored(hub, body, code):
    response = hub.post("/questions/ask-blocking", body)
    assert response.json()["error"]["code"] == code
    assert hub.get("/questions").json()["questions"] == [] and hub.get("/decisions").json()["decisions"] == []


def test_unknown_questions(hub):
    for qid in ("f" * 32, "not-an-id"):
        missing = hub.get(f"/questions/{qid}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "question_not_found"
    answer = hub.post("/questions/" + "f" * 32 + "/answer", {"decision": "allow"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "question_not_found"


async def test_over_the_socket_accepted_then_decision_and_people_see_it_live(hub):
    async with hub.client("coder") as coder, hub.client("ana", role="person") as ana:
        asking = asyncio.ensure_future(coder.ask_blocking("Bash", {"command": "make deploy"}, "toolu_13",
                                                          hook_timeout_s=60, timeout=30))
        opened = await ana.next_event(10)
        assert opened["type"] == "question" and opened["tool_input"] == {"command": "make deploy"}
        assert opened["asker"]["name"] == "coder" and opened["state"] == "pending"
        qid = opened["correlation_id"]
        with pytest.raises(HubRefused) as agent:
            await coder.decide(qid, "allow")
        assert agent.value.code == "forbidden"
        with pytest.raises(HubRefused) as stale:
            await ana.decide(qid, "allow", content_hash="0" * 64)
        assert stale.value.code == "content_mismatch"
        decided = await ana.decide(qid, "allow", content_hash=opened["content_hash"])
        assert decided["type"] == "decision" and decided["decision"] == "allow" and decided["correlation_id"] == qid
        accepted, decision = await asking
        assert accepted["type"] == "accepted" and accepted["correlation_id"] == qid and accepted["state"] == "queued"
        assert decision == {"type": "decision", "ref": accepted["ref"], "correlation_id": qid, "decision": "allow",
                            "answered_by": "human", "reason": "allow by ana"}
        closed = await ana.next_event(10)
        assert closed == {"type": "question_decided", "correlation_id": qid, "decision": "allow",
                          "answered_by": "human", "reason": "allow by ana"}


async def test_a_socket_that_closes_while_waiting_abandons_the_question(hub):
    """Nobody waits for the answer any more, so nothing would run on an approval: the question
    closes as `abandoned`, denied, and approving it says why."""
    ws, _ = await hub.raw_peer("coder")
    await send(ws, {"type": "ask_blocking", "id": "q1", **ask_body("toolu_14")})
    accepted = await recv_until(ws, "accepted")
    qid = accepted["correlation_id"]
    await ws.close()
    await eventually(lambda: asyncio.to_thread(lambda: hub.get(f"/questions/{qid}").json()["state"] == "abandoned"),
                     10, "the question abandoned")
    record = hub.get(f"/questions/{qid}").json()
    assert (record["decision"], record["answered_by"]) == ("deny", "abandoned")
    stages = hub.get(f"/traces/{qid}").json()["stages"]
    assert [(s["stage"], s.get("reason")) for s in stages[-2:]] == [
        ("waiter_lost", "client_disconnected"), ("failed", "abandoned: client_disconnected")]
    refused = hub.post(f"/questions/{qid}/answer", {"decision": "allow"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (410, "question_abandoned")
    assert hub.get("/questions").json()["questions"] == []


async def test_a_bad_socket_question_gets_an_error_frame(hub):
    ws, _ = await hub.raw_peer("coder")
    await send(ws, {"type": "ask_blocking", "id": "q2", "tool_name": "Bash", "tool_use_id": "t", "peer": "coder"})
    error = await recv(ws)
    assert error["type"] == "error" and error["ref"] == "q2" and error["error"]["code"] == "forbidden"
    await ws.close()


def test_a_question_whose_hub_was_killed_is_abandoned_at_restart(hub):
    """The hook that waited was denied when the hub died: after the restart the question is
    closed as abandoned (not listed, not approvable), with the reason in its trace."""
    with waiting_question(hub, "toolu_15") as qid:
        hub.kill()
    hub.restart()
    assert hub.get("/questions").json()["questions"] == []
    record = hub.get(f"/questions/{qid}").json()
    assert (record["state"], record["decision"], record["answered_by"]) == ("abandoned", "deny", "abandoned")
    assert hub.get(f"/traces/{qid}").json()["stages"][-1]["reason"] == "abandoned: hub_restarted"
    refused = hub.post(f"/questions/{qid}/answer", {"decision": "allow"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (410, "question_abandoned")
    assert "nobody waits for this answer" in refused.json()["error"]["message"]


@contextlib.contextmanager
def waiting_question(hub, tool_use_id: str) -> Iterator[str]:
    """A question whose asker keeps waiting (in a thread) while the block runs; yields its id."""
    outcome: list = []

    def ask() -> None:
        try:
            with hub.http() as client:
                outcome.append(client.post("/questions/ask-blocking", json=ask_body(tool_use_id), timeout=30))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    wait_until(lambda: hub.get("/questions").json()["questions"], 10, "the question")
    yield hub.get("/questions").json()["questions"][0]["correlation_id"]
    asker.join(30)


def test_decisions_survive_a_kill(hub):
    """Accepted means durable: a decision that was answered is still the decision after SIGKILL."""
    hub.post("/policies", {"action": "allow", "tool": "Read"})
    by_policy = hub.post("/questions/ask-blocking", {"tool_name": "Read", "tool_input": {"file_path": "/a"},
                                                     "tool_use_id": "toolu_16"}).json()
    with waiting_question(hub, "toolu_17") as qid:
        by_person = hub.post(f"/questions/{qid}/answer", {"decision": "deny", "reason": "no"}).json()
    before = [hub.get(f"/questions/{q}").json() for q in (by_policy["correlation_id"], qid)]
    audit = hub.get("/decisions").json()["decisions"]
    hub.kill()
    hub.restart()
    assert [hub.get(f"/questions/{q}").json() for q in (by_policy["correlation_id"], qid)] == before
    assert before[1]["decision"] == by_person["decision"] == "deny"
    assert hub.get("/decisions").json()["decisions"] == audit and len(audit) == 2
    assert hub.get(f"/traces/{qid}").json()["final"] == "answered"
    assert hub.get("/questions").json()["questions"] == []


@pytest.mark.parametrize("field, at_limit", [("tool_name", 200), ("tool_use_id", 200), ("prompt", 4000)])
def test_question_field_limits_at_limit_and_beyond(start_hub, field, at_limit):
    hub = start_hub("--question-timeout-max", "1", watched=True)
    ok = hub.post("/questions/ask-blocking", {**ask_body("toolu_18"), field: "x" * at_limit})
    assert ok.status_code == 200 and ok.json()["answered_by"] == "timeout"
    over = hub.post("/questions/ask-blocking", {**ask_body("toolu_19"), field: "x" * (at_limit + 1)})
    assert over.status_code == 422 and over.json()["error"]["code"] == "invalid_request"
    assert len(hub.get("/decisions").json()["decisions"]) == 1


def test_the_policy_count_limit_at_limit_and_beyond(start_hub):
    hub = start_hub("--max-policies", "3", watched=True)
    for n in range(3):
        assert hub.post("/policies", {"action": "deny", "tool": f"T{n}"}).status_code == 201
    over = hub.post("/policies", {"action": "allow", "tool": "*"})
    assert over.status_code == 507 and over.json()["error"]["code"] == "too_many_policies"
    assert [p["tool"] for p in hub.get("/policies").json()["policies"]] == ["T0", "T1", "T2"]
