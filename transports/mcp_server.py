"""`repowire mcp`: the MCP server (stdio, transports.mcp_stdio) that gives an agent tools to talk
to its peers on the hub: whoami, list_peers, notify, ask, wait_for_reply, ack, answer, inbox,
wait_for_message, pending_asks, and to hand off work and follow it: job_add, job_status,
job_list, job_cancel. With inbox and wait_for_message an agent outside tmux reads
its messages while it works, not only when it stops.

The agent (Claude Code, Codex) starts it for its session. It acts as the agent's own peer,
with the credential the session's SessionStart hook was given (`$REPOWIRE_HOME/sessions/<agent
pid>.json`, looked up again on every call, since the server and the hook start together and
a resumed session gets a new one), or `$REPOWIRE_TOKEN` when set: whatever it sends is from
that peer, and it can do nothing the peer could not. `wait_for_reply` and `wait_for_message`
are one bounded long-poll on the hub each (at most 60 s a call), never a polling loop.
Results are short JSON. Each tool is one REST call (transports.hub_http, no HTTP library), so
the server starts in a few tens of milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote, urlencode

from hub import __version__
from schemas.local import TOKEN_ENV
from transports import hub_http, lean_json
from transports.discovery import HubAddress, find_hub
from transports.identity import session_of_process
from transports.mcp_stdio import StdioServer, Tool, ToolFailed
from transports.session_files import AGENT_PID_ENV, SessionFile

MAX_WAIT_S = 60.0
STATUSES = ["online", "busy", "awaiting_input", "offline"]
INSTRUCTIONS = ("Tools to talk to other coding agents and people on the repowire hub. Use list_peers to see who is "
                "online, notify for a one-way message, ask to ask a peer (then wait_for_reply with its "
                "correlation_id), inbox to read your new messages, wait_for_message to wait for the next one, "
                "pending_asks to see asks waiting for your reply, and ack to reply to one. To hand off work, job_add gives "
                "it to a peer or to a fresh agent in a folder; job_status follows it to its result.")


class HubTools:
    """The tools' work: one REST call each, with the agent session's own credential."""

    def __init__(self, home: str | None = None, env: dict | None = None):
        self.home = home
        self.env = dict(os.environ if env is None else env)
        self.address: HubAddress = find_hub(home)

    def credential(self) -> tuple[str, str | None]:
        """(token, peer id when known): `$REPOWIRE_TOKEN`, else the session of the agent that
        started this server (`$REPOWIRE_AGENT_PID`, else the process tree), read again on every
        call: a resumed or cleared session gets a new credential."""
        explicit = (self.env.get(TOKEN_ENV) or "").strip()
        if explicit:
            return explicit, None
        pid = self.env.get(AGENT_PID_ENV, "")
        session = SessionFile.of_agent(self.home, int(pid)) if pid.isdigit() else session_of_process(self.home)[0]
        if session is None or not session.token:
            raise ToolFailed("this session is not on the hub: its SessionStart hook has not registered it "
                             "(run `repowire hooks install` and start a new session, or set REPOWIRE_TOKEN)")
        return session.token, str(session.data["peer_id"])

    def peer(self) -> str:
        """This agent's peer id."""
        _, peer_id = self.credential()
        if peer_id is None:
            me = self.call("GET", "/whoami")
            if not me.get("peer"):
                raise ToolFailed("REPOWIRE_TOKEN is the hub token: the MCP tools act as an agent, so give them an "
                                 "agent's token")
            peer_id = str(me["peer"]["peer_id"])
        return peer_id

    def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None,
             timeout: float = 15.0) -> dict:
        token, _ = self.credential()
        query = f"?{urlencode(params)}" if params else ""
        try:
            status, raw = hub_http.request(self.address, token, method, path + query, body, timeout=timeout)
        except OSError as exc:
            raise ToolFailed(f"the hub at {self.address.http_url} did not answer ({exc.__class__.__name__})") from None
        try:
            data = lean_json.loads(raw) if raw else {}
        except lean_json.JSONDecodeError:
            raise ToolFailed(f"the hub answered {status} without JSON") from None
        if status >= 300:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ToolFailed(f"{error.get('code', status)}: {error.get('message', '')}".rstrip(": "))
        if not isinstance(data, dict):
            raise ToolFailed(f"the hub answered {status} with JSON that is not an object")
        return data


def _brief(peer: dict) -> dict:
    return {"name": peer["name"], "circle": peer["circle"], "status": peer["status"], "role": peer["role"],
            "peer_id": peer["peer_id"]}


def _ask_brief(ask: dict) -> dict:
    brief = {"correlation_id": ask["correlation_id"], "state": ask["state"], "text": ask.get("text", ""),
             "from": f"{ask['from']['name']}@{ask['from']['circle']}", "to": f"{ask['to']['name']}@{ask['to']['circle']}",
             "deadline": ask.get("deadline")}
    if ask.get("question"):
        brief["question"] = ask["question"]
    if ask.get("result"):
        brief["result"] = ask["result"]
    return brief


def _job_brief(job: dict, *, progress: bool = False) -> dict:
    """A job as the agent follows it: its state, target, result and, in full, its latest progress."""
    brief = {k: job[k] for k in ("id", "kind", "state", "reason", "next_fire_at", "last_work_id",
                                 "runtime_session_id") if job.get(k)}
    target = job.get("target") or {}
    brief["target"] = (f"{target['peer']['name']}@{target['peer']['circle']}" if target.get("peer")
                       else f"{target.get('backend')} in {target.get('path')}")
    if job.get("result"):
        brief["result"] = job["result"]
    if progress and job.get("progress"):
        brief["progress"] = [p["text"] for p in job["progress"][-10:]]
    return brief


def _message(delivery: dict) -> dict:
    """A delivery as the agent reads it: who, what, and for an ask how to reply."""
    sender = delivery.get("from") or {}
    message = {"kind": delivery.get("kind", "notify"), "from": f"{sender.get('name', '?')}@{sender.get('circle', '?')}",
               "text": delivery.get("text", "")}
    for key in ("correlation_id", "question", "option_id", "outcome", "reason", "attachments"):
        if delivery.get(key):
            message[key] = delivery[key]
    if message["kind"] == "ask":
        message["reply_with"] = "the ack tool, with this correlation_id and your answer as text"
    return message


def _take(tools: HubTools, how: str, body: dict, timeout: float = 15.0) -> dict:
    try:
        taken = tools.call("POST", f"/peers/{tools.peer()}/inbox/{how}", body, timeout=timeout)
    except ToolFailed as exc:
        if str(exc).startswith("conflict"):   # a pane transport types them into the agent's terminal
            return {"messages": [], "remaining": 0, "note": "your messages are typed into your terminal as they come"}
        raise
    return {"messages": [_message(d) for d in taken["deliveries"]], "remaining": taken["remaining"]}


def _bounded(value: object, default: float) -> float:
    try:
        return min(max(float(value if value is not None else default), 0.0), MAX_WAIT_S)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ToolFailed("timeout_s must be a number of seconds") from None


def _text(arguments: dict, name: str, required: bool = True) -> str | None:
    value = arguments.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ToolFailed(f"{name} must be a non-empty string")
    return value


def _schema(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


STRING = {"type": "string"}


def build_tools(tools: HubTools) -> list[Tool]:
    def whoami(_: dict) -> dict:
        peer = tools.call("GET", f"/peers/{tools.peer()}")
        return {**_brief(peer), "pending": peer.get("pending", 0), "hub": tools.address.http_url}

    def list_peers(arguments: dict) -> dict:
        params = {k: arguments[k] for k in ("circle", "status") if arguments.get(k)}
        return {"peers": [_brief(p) for p in tools.call("GET", "/peers", params=params)["peers"]]}

    def notify(arguments: dict) -> dict:
        sent = tools.call("POST", "/messages", {"to": _text(arguments, "to"), "text": _text(arguments, "text")})
        return {"message_id": sent["message_id"], "state": sent["state"]}

    def ask(arguments: dict) -> dict:
        body: dict = {"to": _text(arguments, "to"), "text": _text(arguments, "text"),
                      "queue_if_offline": bool(arguments.get("queue_if_offline", False))}
        if arguments.get("timeout_s") is not None:
            body["timeout_s"] = arguments["timeout_s"]
        sent = tools.call("POST", "/ask", body)
        return {"correlation_id": sent["correlation_id"], "state": sent["state"], "deadline": sent["deadline"]}

    def wait_for_reply(arguments: dict) -> dict:
        bounded = _bounded(arguments.get("timeout_s"), 30.0)
        cid = quote(_text(arguments, "correlation_id") or "", safe="")
        return _ask_brief(tools.call("POST", f"/asks/{cid}/wait", {"timeout_s": bounded}, timeout=bounded + 10))

    def ack(arguments: dict) -> dict:
        text = _text(arguments, "text", required=False)
        body: dict = {"correlation_id": _text(arguments, "correlation_id"), **({"text": text} if text else {})}
        closed = tools.call("POST", "/ack", body)
        return {"correlation_id": closed["correlation_id"], "ask_state": closed["ask_state"]}

    def answer(arguments: dict) -> dict:
        body: dict = {"correlation_id": _text(arguments, "correlation_id")}
        body.update({field: arguments[key] for key, field in (("option", "option_id"), ("text", "text"),
                                                              ("outcome", "outcome")) if arguments.get(key)})
        closed = tools.call("POST", "/answer", body)
        return {"correlation_id": closed["correlation_id"], "ask_state": closed["ask_state"]}

    def inbox(arguments: dict) -> dict:
        limit = arguments.get("limit", 20)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise ToolFailed("limit must be a whole number")
        return _take(tools, "take", {"limit": min(max(limit, 1), 100)})

    def wait_for_message(arguments: dict) -> dict:
        bounded = _bounded(arguments.get("timeout_s"), 30.0)
        return _take(tools, "wait", {"timeout_s": bounded}, timeout=bounded + 10)

    def pending_asks(arguments: dict) -> dict:
        direction = arguments.get("direction") or "inbound"
        if direction not in ("inbound", "outbound", "both"):
            raise ToolFailed("direction is inbound, outbound or both")
        listed = tools.call("GET", "/asks/pending", params={"peer": tools.peer(), "direction": direction})
        return {"asks": [_ask_brief(a) for a in listed["asks"]], "total": listed["total"]}

    def job_add(arguments: dict) -> dict:
        body: dict = {"prompt": _text(arguments, "prompt")}
        for key in ("peer", "path", "backend", "process_scope", "continuity", "at", "cron", "timezone"):
            if arguments.get(key) is not None:
                body[key] = _text(arguments, key)
        if arguments.get("timeout_s") is not None:
            body["timeout_s"] = arguments["timeout_s"]
        return _job_brief(tools.call("POST", "/jobs", body))

    def job_status(arguments: dict) -> dict:
        job_id = quote(_text(arguments, "id") or "", safe="")
        return _job_brief(tools.call("GET", f"/jobs/{job_id}/status"), progress=True)

    def job_list(_: dict) -> dict:
        listed = tools.call("GET", "/jobs", params={"view": "summary", "limit": 50})
        return {"work": [_job_brief(j) for j in listed["work"]],
                "recurring": [_job_brief(j) for j in listed["recurring"]]}

    def job_cancel(arguments: dict) -> dict:
        job_id = quote(_text(arguments, "id") or "", safe="")
        return _job_brief(tools.call("POST", f"/jobs/{job_id}/cancel"))

    seconds = {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}
    defined: list[tuple[str, str, dict, Callable[[dict], dict]]] = [
        ("whoami", "Who this agent is on the repowire hub: name, circle, peer id and presence.", _schema({}), whoami),
        ("list_peers", "The peers on the hub (agents and people), optionally of one circle or status.",
         _schema({"circle": STRING, "status": {"type": "string", "enum": STATUSES}}), list_peers),
        ("notify", "Send a one-way message to a peer (name, name@circle or peer id) or a circle (*@circle).",
         _schema({"to": STRING, "text": STRING}, ["to", "text"]), notify),
        ("ask", "Ask a peer; returns the correlation_id to pass to wait_for_reply. The ask expires after timeout_s "
                "(hub default 300). queue_if_offline waits for an offline peer instead of failing.",
         _schema({"to": STRING, "text": STRING, "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                  "queue_if_offline": {"type": "boolean", "default": False}}, ["to", "text"]), ask),
        ("wait_for_reply", "Wait (at most timeout_s, up to 60) for the reply to an ask you sent. state `pending` "
                           "means no reply yet: call again, or carry on and check later.",
         _schema({"correlation_id": STRING, "timeout_s": {**seconds, "default": 30}}, ["correlation_id"]),
         wait_for_reply),
        ("ack", "Reply to an ask you were asked (with text), or just close it (without).",
         _schema({"correlation_id": STRING, "text": STRING}, ["correlation_id"]), ack),
        ("answer", "Answer an ask's structured question: the chosen option id, or text, or an outcome.",
         _schema({"correlation_id": STRING, "option": STRING, "text": STRING,
                  "outcome": {"type": "string", "enum": ["accepted", "declined", "dismissed"]}}, ["correlation_id"]),
         answer),
        ("inbox", "Your unread messages (notifies, asks, replies), oldest first; each is marked read and shown "
                  "once. Reply to an ask with ack. `remaining`: how many more are waiting.",
         _schema({"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}), inbox),
        ("wait_for_message", "Wait (at most timeout_s, up to 60) for your next message and return it, marked read; "
                             "an empty list when none came. Returns at once if messages are already waiting.",
         _schema({"timeout_s": {**seconds, "default": 30}}), wait_for_message),
        ("pending_asks", "Open asks: inbound ones wait for your reply (ack), outbound ones for someone else's.",
         _schema({"direction": {"type": "string", "enum": ["inbound", "outbound", "both"], "default": "inbound"}}),
         pending_asks),
        ("job_add", "Hand off work: to a peer (`peer`; it gets an ask and its reply is the result) or to a fresh agent "
                    "process in a folder (`path` + `backend`: claude or codex). Now, at `at` (ISO 8601), or on `cron` "
                    "(recurring). Returns the job id to follow with job_status.",
         _schema({"prompt": STRING, "peer": STRING, "path": STRING, "backend": {"type": "string",
                                                                                 "enum": ["claude", "codex"]},
                  "process_scope": {"type": "string", "enum": ["per_fire", "session"]},
                  "continuity": {"type": "string", "enum": ["fresh", "resume"]}, "at": STRING, "cron": STRING,
                  "timezone": STRING, "timeout_s": {"type": "number", "exclusiveMinimum": 0}}, ["prompt"]), job_add),
        ("job_status", "A job you made: its state (queued, running, succeeded, failed, cancelled, timed_out, lost), "
                       "result and latest progress. Call again to follow it.",
         _schema({"id": STRING}, ["id"]), job_status),
        ("job_list", "The jobs you made, newest first (a summary of each).", _schema({}), job_list),
        ("job_cancel", "Cancel a job you made (and end its run).", _schema({"id": STRING}, ["id"]), job_cancel),
    ]
    return [Tool(name, description, schema, handler) for name, description, schema, handler in defined]


def run(home: str | None = None) -> int:
    StdioServer("repowire", __version__, INSTRUCTIONS, build_tools(HubTools(home))).serve()
    return 0
