"""F6: every route of the OpenAPI document, walked with an agent's token, answers as the
routes × roles table (`hub.server.access`, `x-access`, docs/rest.md) says: `person` and
`hub token` routes refuse an agent before anything is read; `own` routes refuse another agent's
things (its pane, questions, asks, schedules, attachments, traces); `any token` routes answer;
`public` ones need no token."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import orjson
import pytest

from hub.server.access import ROUTE_ACCESS, Access
from tests.support import HubProcess, person_watching, wait_until

DOCUMENT = orjson.loads((Path(__file__).resolve().parents[1] / "schemas" / "generated" / "openapi.json").read_bytes())
OPERATIONS = [(method.upper(), path, operation["x-access"])
              for path, operations in DOCUMENT["paths"].items() for method, operation in operations.items()]
BOUNDARY = "rw-access"



def test_every_route_says_who_may_call_it():
    documented = {(method, path) for method, path, _ in OPERATIONS}
    assert documented <= set(ROUTE_ACCESS)
    undocumented = set(ROUTE_ACCESS) - documented
    assert undocumented == {("GET", "/dashboard/{name}"), ("GET", "/internal/attachments/{attachment_id}")}
    for method, path, access in OPERATIONS:
        assert access == ROUTE_ACCESS[(method, path)].value


class World:
    """Two agents on one hub: bob owns things, mallory (whose token walks the routes) owns none of them.
    Mallory's credential is a peer token, or the session token an agent session's hooks, shell and
    MCP server act with (POST /sessions): both are the agent and nothing more."""

    def __init__(self, hub: HubProcess, credential: str):
        self.hub = hub
        self.bob = hub.post("/peers", {"name": "bob"}).json()["token"]
        self.mallory = (hub.post("/peers", {"name": "mallory"}).json()["token"] if credential == "peer token" else
                        hub.post("/sessions", {"backend": "claude", "cwd": "/work/mallory", "agent_pid": 1,
                                               "name": "mallory"}).json()["session_token"])
        hub.post("/peers", {"name": "carol"})
        self.notify = self.as_bob("POST", "/messages", json={"to": "carol", "text": "for carol"}).json()["message_id"]
        self.ask = self.as_bob("POST", "/ask", json={"to": "carol", "text": "q?", "queue_if_offline": True}).json()[
            "correlation_id"]
        self.schedule = self.as_bob("POST", "/schedules", json={"to": "carol", "kind": "notify", "text": "later",
                                                                "at": "2099-01-01T00:00:00Z"}).json()["schedule_id"]
        self.job = self.as_bob("POST", "/jobs", json={"prompt": "later", "peer": "carol",
                                                      "at": "2099-01-01T00:00:00Z"}).json()["id"]
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"
                f"secret\r\n--{BOUNDARY}--\r\n").encode()
        self.attachment = self.as_bob("POST", "/attachments", content=body, headers={
            "content-type": f"multipart/form-data; boundary={BOUNDARY}"}).json()["id"]
        self.policy = hub.post("/policies", {"action": "deny", "tool": "Nothing"}).json()["id"]
        self._question_thread = threading.Thread(target=self._bob_asks_a_question, daemon=True)
        self._question_thread.start()
        self.question = wait_until(lambda: next(iter(hub.get("/questions").json()["questions"]), None), 15,
                                   "bob's question")["correlation_id"]

    def _bob_asks_a_question(self) -> None:
        self.as_bob("POST", "/questions/ask-blocking", json={
            "tool_name": "Bash", "tool_input": {"command": "cat ~/.ssh/id_ed25519"}, "tool_use_id": "b1",
            "hook_timeout_s": 50})

    def as_bob(self, method: str, path: str, **kw) -> httpx.Response:
        return self.call(self.bob, method, path, **kw)

    def call(self, token: str | None, method: str, path: str, **kw) -> httpx.Response:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kw.pop("headers", {})}
        with httpx.Client(base_url=self.hub.url, timeout=60) as client:
            return client.request(method, path, headers=headers, **kw)

    def path(self, template: str) -> str:
        return template.format(ref="bob", correlation_id=self.ask, question_id=self.question, policy_id=self.policy,
                               schedule_id=self.schedule, attachment_id=self.attachment, trace_id=self.notify,
                               job_id=self.job,
                               pane_id="%251")

    def close(self) -> None:
        self.hub.post(f"/questions/{self.question}/answer", {"decision": "deny"})
        self._question_thread.join(20)


@pytest.fixture(scope="module", params=["peer token", "session token"])
def world(request, tmp_path_factory):
    hub = HubProcess(home=tmp_path_factory.mktemp("access") / "home").start()
    with person_watching(hub):
        made = World(hub, request.param)
        yield made
        made.close()
    hub.stop()


# `own` routes without a resource in their path: what mallory tries, and what must happen.
OWN_BY_BODY = {
    ("POST", "/messages"): "acts as mallory",
    ("POST", "/ask"): "acts as mallory",
    ("POST", "/ack"): "refused: mallory was not asked",
    ("POST", "/answer"): "refused: mallory was not asked",
    ("GET", "/asks/pending"): "refused for bob's",
    ("POST", "/questions/ask-blocking"): "acts as mallory (test_agent_bounds)",
    ("GET", "/questions"): "lists none of bob's",
    ("POST", "/schedules"): "acts as mallory",
    ("GET", "/schedules"): "refused for bob's",
    ("POST", "/attachments"): "acts as mallory",
    ("POST", "/jobs"): "acts as mallory",
    ("GET", "/jobs"): "refused for bob's",
}


@pytest.mark.parametrize("method, path, access", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_an_agent_token_gets_what_the_table_says(world, method, path, access):
    mallory = world.mallory
    url = world.path(path)
    if access in (Access.PERSON, Access.HUB_TOKEN):
        # no body at all: the refusal comes before anything is read
        refused = world.call(mallory, method, url, json={} if method in ("POST", "PUT") else None)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden"), refused.text
    elif access == Access.PUBLIC:
        answered = world.call(None, method, url, follow_redirects=False)
        # no token is asked for; the sign-in and the session check answer about their own matter
        expected = {"/dashboard/login": "login_link_invalid", "/dashboard/session": "unauthorized"}.get(path)
        if expected:
            assert (answered.status_code, answered.json()["error"]["code"]) == (401, expected)
        else:
            assert answered.status_code not in (401, 403), answered.text
    elif access == Access.ANY:
        assert world.call(mallory, method, url).status_code == 200
    elif (method, path) in OWN_BY_BODY:
        _own_by_body(world, method, path)
    else:
        refused = world.call(mallory, method, url, json={} if method in ("POST", "PUT") else None)
        assert refused.status_code == 403 or (path.startswith("/attachments") and refused.status_code == 404), \
            refused.text


def _own_by_body(world: World, method: str, path: str) -> None:
    mallory, hub = world.mallory, world.hub
    if (method, path) in (("POST", "/ack"), ("POST", "/answer")):
        refused = world.call(mallory, method, path, json={"correlation_id": world.ask, "text": "x"})
        assert refused.status_code == 403, refused.text
    elif path == "/asks/pending":
        assert world.call(mallory, method, path, params={"peer": "bob"}).status_code == 403
    elif path == "/schedules" and method == "GET":
        assert world.call(mallory, method, path, params={"peer": "bob"}).status_code == 403
        assert world.call(mallory, method, path).json()["schedules"] == []
    elif path == "/jobs" and method == "GET":
        assert world.call(mallory, method, path, params={"peer": "bob"}).status_code == 403
        assert world.call(mallory, method, path).json() == {"work": [], "recurring": []}
    elif path == "/jobs":
        made = world.call(mallory, method, path, json={"prompt": "for carol", "peer": "carol",
                                                       "at": "2099-01-01T00:00:00Z"}).json()
        assert made["owner"]["peer_id"] == hub.peers()["mallory"]["peer_id"]
        command = world.call(mallory, method, path, json={"prompt": "x", "path": "/tmp", "backend": "command",
                                                          "command": ["id"]})
        assert (command.status_code, command.json()["error"]["code"]) == (403, "forbidden")
    elif path == "/questions":
        listed = world.call(mallory, method, path)
        assert listed.status_code == 200 and listed.json()["questions"] == []
        assert len(hub.get("/questions").json()["questions"]) == 1, "a person sees bob's"
    elif path == "/messages":
        sent = world.call(mallory, method, path, json={"to": "carol", "text": "hi"}).json()
        trace = hub.get(f"/traces/{sent['message_id']}").json()
        assert trace["from"] == hub.peers()["mallory"]["peer_id"]
    else:
        assert OWN_BY_BODY[(method, path)].startswith("acts as mallory")
