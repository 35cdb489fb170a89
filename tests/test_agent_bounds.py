"""An agent is itself and nothing more, and what it can create is bounded (promises 9 and 10):
it cannot pose as another peer in a question (F4), and its open questions (F5) and inbox (F7)
have limits, each tested at the limit and one past it; a flood from one agent never makes
another agent's question or message fail."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.support import wait_until

QUESTION_LIMIT = 3


@pytest.fixture
def hub(watched_hub):
    """A person watches (`repowire questions --follow`): questions wait for their answer."""
    return watched_hub


def held_question(hub, token: str, tool_use_id: str, results: dict, **extra) -> threading.Thread:
    """POST /questions/ask-blocking in a thread (it is held until decided); its answer lands in `results`."""
    def run():
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            response = client.post("/questions/ask-blocking", json={
                "tool_name": "Bash", "tool_input": {"command": f"make {tool_use_id}"}, "tool_use_id": tool_use_id,
                "hook_timeout_s": 50, **extra})
            results[tool_use_id] = (response.status_code, response.json())
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def pending(hub) -> dict[str, dict]:
    return {q["tool_use_id"]: q for q in hub.get("/questions").json()["questions"]}


@pytest.fixture
def bounded_hub(start_hub):
    return start_hub("--limit", f"open_questions_per_peer={QUESTION_LIMIT}", "--limit", "inbox_per_peer=5", watched=True)


def test_an_agent_cannot_pose_as_another_peer_in_a_question(hub):
    """F4: the `peer` field let an agent pose as another peer to policies, the audit log and people."""
    mallory = hub.post("/peers", {"name": "mallory"}).json()["token"]
    hub.post("/peers", {"name": "trusted-bot"})
    hub.post("/policies", {"action": "allow", "tool": "Bash", "peer": "trusted-bot"})
    results: dict = {}
    held_question(hub, mallory, "pose", results, peer="trusted-bot").join(20)
    status, body = results["pose"]
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert hub.get("/decisions").json()["decisions"] == [], "nothing was decided or audited"
    # who asks is the credential, never a field: naming itself is refused too
    held_question(hub, mallory, "self-named", results, peer="mallory").join(20)
    assert results["self-named"][0] == 403
    # asked as itself, the policy for another peer does not match it
    held_question(hub, mallory, "self", results)
    wait_until(lambda: "self" in pending(hub), 15, "mallory's own question")
    assert pending(hub)["self"]["peer"]["name"] == "mallory"
    hub.post(f"/questions/{pending(hub)['self']['correlation_id']}/answer", {"decision": "deny"})


def test_open_questions_per_agent_at_limit_and_limit_plus_one(bounded_hub):
    """F5: one agent opened 1,398 questions in a burst; a legitimate hook's question then failed."""
    hub = bounded_hub
    flood = hub.post("/peers", {"name": "flood"}).json()["token"]
    other = hub.post("/peers", {"name": "other"}).json()["token"]
    results: dict = {}
    threads = [held_question(hub, flood, f"f{i}", results) for i in range(QUESTION_LIMIT)]
    wait_until(lambda: len(pending(hub)) == QUESTION_LIMIT, 15, "the flood's questions at the limit")
    held_question(hub, flood, "one-more", results).join(20)
    status, body = results["one-more"]
    assert status == 429 and body["error"]["code"] == "too_many_questions"
    assert body["error"]["details"] == {"limit": QUESTION_LIMIT}
    assert "one-more" not in pending(hub), "nothing was written"
    threads.append(held_question(hub, other, "legit", results))
    wait_until(lambda: "legit" in pending(hub), 15, "the other agent's question, unaffected")
    first = pending(hub)["f0"]["correlation_id"]
    hub.post(f"/questions/{first}/answer", {"decision": "deny"})
    threads.append(held_question(hub, flood, "after-one-decided", results))
    wait_until(lambda: "after-one-decided" in pending(hub), 15, "room again once one is decided")
    for question in pending(hub).values():
        hub.post(f"/questions/{question['correlation_id']}/answer", {"decision": "deny"})
    for thread in threads:
        thread.join(20)
    assert results["legit"][1]["decision"] == "deny" and results["legit"][1]["answered_by"] == "human"


def test_inbox_per_peer_at_limit_and_limit_plus_one(bounded_hub):
    """F7: one agent added 64 MB to the store in 1.6 s; each inbox now holds at most
    `inbox_per_peer` messages (5 here), and each copy of a broadcast counts for its recipient."""
    hub = bounded_hub
    flood = hub.post("/peers", {"name": "flood"}).json()["token"]
    hub.post("/peers", {"name": "victim"})
    hub.post("/peers", {"name": "roomy"})
    for i in range(5):
        sent = hub.post("/messages", {"to": "victim", "text": f"m{i}"}, token=flood)
        assert sent.status_code == 202 and sent.json()["state"] == "queued"
    refused = hub.post("/messages", {"to": "victim", "text": "one more"}, token=flood)
    assert refused.status_code == 507
    assert refused.json()["error"]["code"] == "inbox_full"
    assert refused.json()["error"]["details"]["limit"] == 5
    assert hub.peers()["victim"]["pending"] == 5, "nothing more was queued"
    # a broadcast: the full inbox's copy fails, the others are queued
    spread = hub.post("/messages", {"to": "*", "text": "to everyone"}, token=flood)
    assert spread.status_code == 202
    states = {r["name"]: (r["state"], r.get("reason")) for r in spread.json()["recipients"]}
    assert states == {"victim": ("failed", "inbox_full"), "roomy": ("queued", None)}
    trace = wait_until(lambda: (t := hub.get(f"/traces/{spread.json()['message_id']}").json())
                       and any(s["stage"] == "failed" for s in t["stages"]) and t, 10, "the failed stage")
    failed = [s for s in trace["stages"] if s["stage"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "inbox_full"
    assert failed[0]["peer_id"] == hub.peers()["victim"]["peer_id"]
    assert hub.peers()["roomy"]["pending"] == 1
