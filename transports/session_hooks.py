"""`repowire hook user-prompt-submit | stop | notification | session-end`: the hooks through
which a Claude Code or Codex session that joined the hub (transports.session_start) keeps its
presence and hears its messages.

- **user-prompt-submit** says busy; **notification** says awaiting_input (idle for Claude
  Code's idle prompt); **session-end** takes the peer offline (the link and inbox stay) and
  the hub revokes the session's credential.
- **stop** says online (idle) and shows, once each, the messages and asks waiting for the
  agent: for a session with no pane transport it takes its queued messages from the hub
  (each is then `received`), and it lists inbound asks not yet shown. At most one reminder
  per `$REPOWIRE_REMIND_INTERVAL` seconds (default 60); what a rate-limited stop did not show
  is shown at a later one.

Hooks never hang the agent: each has a short deadline and, on every failure (hub down, no
token, a refusal, its deadline), exits 0 and prints nothing. Each finds its session by the
session id in its payload (`$REPOWIRE_HOME/sessions/id-<session id>.json`, written at
session start) and acts with the session's own credential on the hub that session joined.

Only the standard library and small transports modules are imported (no orjson, no process-tree
work): these hooks run on every prompt and every stop.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable  # (typing costs a hook more to import)

from transports import hub_http, lean_json
from transports.discovery import HubAddress, find_hub
from transports.pane_text import frame_delivery, neutralise
from transports.session_files import AGENT_PID_ENV, SessionFile, remove_file, session_id_path

REMIND_INTERVAL_ENV = "REPOWIRE_REMIND_INTERVAL"
DEFAULT_REMIND_INTERVAL_S = 60.0
EVENT_DEADLINE_S = 3.0
MAX_REMINDED = 20            # items in one reminder; the rest come at the next stop
MAX_SHOWN_KEPT = 500         # ask ids remembered as shown
MAX_TEXT = 600               # characters of one message in a reminder


class HookFailed(Exception):
    """The hub could not be asked, or said no: the hook ends silently."""


# ---- talking to the hub -------------------------------------------------------------------------

class Hub:
    """The hub, a credential, and the hook's deadline for every call."""

    def __init__(self, address: HubAddress, token: str, deadline: float):
        self.address, self.token, self.deadline = address, token, deadline

    def call(self, method: str, path: str, body: object = None) -> object:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.05:
            raise HookFailed("out of time")
        try:
            status, raw = hub_http.request(self.address, self.token, method, path, body, timeout=remaining)
        except OSError as exc:
            raise HookFailed(f"the hub did not answer ({exc.__class__.__name__})") from None
        if status >= 300:
            raise HookFailed(f"the hub answered {status}: {raw[:200]!r}")
        try:
            return lean_json.loads(raw)
        except lean_json.JSONDecodeError:
            raise HookFailed("the hub's answer is not JSON") from None


# ---- the events ---------------------------------------------------------------------------------

class HookRun:
    """One run of an event hook for one agent session."""

    def __init__(self, event: str, payload: dict, env: dict, home: str | None, backend: str, deadline: float):
        self.event, self.payload, self.env, self.home, self.backend = event, payload, env, home, backend
        self.deadline = deadline

    def hub_of(self, session: SessionFile) -> Hub:
        """The hub the session joined, with the session's own credential: the later hooks act
        as the agent, on the hub that knows it (not whatever hub.json says now)."""
        return Hub(session.hub_address() or find_hub(self.home), session.token, self.deadline)

    def session(self) -> SessionFile | None:
        """This agent's session, if it joined the hub as itself (not nested): by the session id
        every hook is given (else by `$REPOWIRE_AGENT_PID`)."""
        session_id = str(self.payload.get("session_id") or "")
        found = SessionFile.of_session_id(self.home, session_id) if session_id else None
        explicit = self.env.get(AGENT_PID_ENV, "")
        if (found is None or not found.token) and explicit.isdigit():
            found = SessionFile.of_agent(self.home, int(explicit))
        return found if found is not None and found.token else None

    def presence(self, status: str, reason: str | None = None) -> bytes:
        session = self.session()
        if session is None:
            return b""
        body = {"status": status, **({"reason": reason} if reason else {})}
        try:
            self.hub_of(session).call("POST", f"/peers/{session.data['peer_id']}/presence", body)
        finally:
            if status == "offline":
                self._forget(session)
        return b""

    def _forget(self, session: SessionFile) -> None:
        """The session ended: its files go (its credential was revoked by the hub)."""
        session.remove()
        if session.data.get("session_id"):
            remove_file(session_id_path(self.home, str(session.data["session_id"])))
        if str(session.data.get("agent_pid") or "").isdigit():
            SessionFile.of_agent(self.home, int(session.data["agent_pid"])).remove()

    def notification(self) -> bytes:
        idle = self.payload.get("notification_type") == "idle_prompt"
        return self.presence("online" if idle else "awaiting_input")

    def stop(self) -> bytes:
        session = self.session()
        if session is None:
            return b""
        hub = self.hub_of(session)
        peer_id = session.data["peer_id"]
        try:
            interval = float(self.env.get(REMIND_INTERVAL_ENV) or DEFAULT_REMIND_INTERVAL_S)
        except ValueError:
            interval = DEFAULT_REMIND_INTERVAL_S
        now_ms = int(time.time() * 1000)
        view = self._presence_quietly(hub, peer_id, "online")
        if now_ms - int(session.data.get("reminded_at") or 0) < interval * 1000:
            return b""
        items = self._unread(hub, session, peer_id, connected=view is not None and bool(view.get("pane")))
        if not items:
            return b""
        session.data["reminded_at"] = now_ms
        session.save()
        self._presence_quietly(hub, peer_id, "busy")
        me = f"{session.data['name']}@{session.data['circle']}"
        lines = [f"repowire: {len(items)} new for you ({me}); each is shown once:"]
        lines += [f"- {_clip(frame_delivery(item, hub.address.http_url))}" for item in items]
        lines.append("Reply to the asks that need it (repowire ack ID \"answer\"), then carry on.")
        return lean_json.dumps({"decision": "block", "reason": "\n".join(lines)})

    def _unread(self, hub: Hub, session: SessionFile, peer_id: str, connected: bool) -> list[dict]:
        """Queued messages (taken from the hub when no transport delivers them) and inbound
        asks not shown before; the asks are remembered as shown."""
        items: list[dict] = []
        if not connected:
            taken = hub.call("POST", f"/peers/{peer_id}/inbox/take", {"limit": MAX_REMINDED})
            items += taken.get("deliveries", []) if isinstance(taken, dict) else []
        shown = [str(x) for x in session.data.get("shown") or []]
        seen = set(shown) | {str(i.get("correlation_id")) for i in items if i.get("correlation_id")}
        asks = hub.call("GET", f"/asks/pending?peer={peer_id}&direction=inbound&limit={MAX_REMINDED}")
        for ask in (asks.get("asks", []) if isinstance(asks, dict) else []):
            if ask.get("correlation_id") not in seen and len(items) < MAX_REMINDED:
                items.append({"kind": "ask", "correlation_id": ask["correlation_id"], "from": ask.get("from") or {},
                              "text": ask.get("text", ""), "question": ask.get("question")})
        shown += [str(i["correlation_id"]) for i in items if i.get("correlation_id")]
        session.data["shown"] = shown[-MAX_SHOWN_KEPT:]
        return items

    @staticmethod
    def _presence_quietly(hub: Hub, peer_id: str, status: str) -> dict | None:
        """The peer as it is now (a `pane` in it: a transport types its messages), or None when
        the hub refused (its pane transport is down) or did not answer (the next call says so)."""
        try:
            view = hub.call("POST", f"/peers/{peer_id}/presence", {"status": status})
        except HookFailed:
            return None
        return view if isinstance(view, dict) else None

    def run(self) -> bytes:
        if self.event == "user-prompt-submit":
            return self.presence("busy")
        if self.event == "notification":
            return self.notification()
        if self.event == "session-end":
            return self.presence("offline", "session_ended")
        return self.stop()


def _clip(text: str) -> str:
    text = neutralise(text)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def _payload(raw: bytes) -> dict:
    try:
        data = lean_json.loads(raw) if raw.strip() else {}
    except lean_json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def run(event: str, backend: str = "claude", home: str | None = None) -> int:
    """user-prompt-submit, notification, stop, session-end (session-start: transports.session_start)."""
    return run_hook(event, lambda payload, deadline: HookRun(event, payload, dict(os.environ), home, backend,
                                                             deadline).run(), EVENT_DEADLINE_S)


def run_hook(event: str, work_on: Callable[[dict, float], bytes], deadline_s: float) -> int:
    """The whole hook: prints what the agent should see (or nothing) and exits 0, always,
    within its deadline."""
    started = time.monotonic()
    deadline = started + deadline_s
    done = threading.Event()
    output: list[bytes] = []

    def work() -> None:
        try:
            output.append(work_on(_payload(sys.stdin.buffer.read()), deadline))
        except HookFailed:
            pass
        except Exception as exc:  # a hook must never break the agent: say it on stderr, exit 0
            sys.stderr.write(f"repowire hook {event}: {exc.__class__.__name__}: {exc}\n")
        finally:
            done.set()

    threading.Thread(target=work, name=f"hook-{event}", daemon=True).start()
    done.wait(max(deadline - time.monotonic(), 0))
    if done.is_set() and output and output[0]:
        sys.stdout.buffer.write(output[0] + b"\n")
    sys.stdout.flush()
    os._exit(0)
