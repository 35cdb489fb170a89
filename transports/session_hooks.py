"""`repowire hook session-start | user-prompt-submit | stop | notification | session-end`: the
hooks through which a Claude Code or Codex session joins the hub by itself.

- **session-start** registers the session (`POST /sessions`): its name from the folder and
  agent kind, its circle from the tmux session, its pane from `$TMUX_PANE`, its agent process
  (the nearest agent among the hook's ancestors, or `$REPOWIRE_AGENT_PID`). The hub links the
  pane, or gives back the pane's own peer, or says the session is a subprocess of the pane's
  agent (then nothing is registered and the other hooks stay silent). It prints context for
  the agent: who it is on the hub, who else is online, how to reply. The hub gives the
  session its own credential (the session token): the hook keeps it in the session's files
  and writes `export REPOWIRE_TOKEN=…` to Claude Code's `$CLAUDE_ENV_FILE`, so `repowire …`
  run by the agent acts as the agent (see transports.identity).
- **user-prompt-submit** says busy; **notification** says awaiting_input (idle for Claude
  Code's idle prompt); **session-end** takes the peer offline (the link and inbox stay).
- **stop** says online (idle) and shows, once each, the messages and asks waiting for the
  agent: for a session with no pane transport it takes its queued messages from the hub
  (each is then `received`), and it lists inbound asks not yet shown. At most one reminder
  per `$REPOWIRE_REMIND_INTERVAL` seconds (default 60); what a rate-limited stop did not show
  is shown at a later one.

Hooks never hang the agent: each has a short deadline and, on every failure (hub down, no
token, a refusal, its deadline), exits 0 and prints nothing. What a session is on the hub
is kept in `$REPOWIRE_HOME/sessions/<agent pid>.json` and `id-<session id>.json` (mode 0600):
the later hooks find it by the session id in their payload and act with its credential on
the hub it joined; the CLI and the MCP server find it by their agent process.

Only the standard library, orjson, psutil and small transports modules are imported: hooks
run on every prompt and every stop.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil

from schemas.local import HOME_ENV, TOKEN_ENV, home_dir
from schemas.names import PANE_ID, tmux_bridge_name
from transports import hub_http
from transports.discovery import HubAddress, find_hub, find_token
from transports.identity import ancestors, is_agent, started_at
from transports.session_files import SessionFile, session_id_path
from transports.pane_text import frame_delivery, neutralise

AGENT_PID_ENV = "REPOWIRE_AGENT_PID"
CLAUDE_ENV_FILE = "CLAUDE_ENV_FILE"   # Claude Code: `export` lines written here reach the agent's Bash commands
REMIND_INTERVAL_ENV = "REPOWIRE_REMIND_INTERVAL"
DEFAULT_REMIND_INTERVAL_S = 60.0
START_DEADLINE_S = 8.0       # a link waits for the pane transport to come up
EVENT_DEADLINE_S = 3.0
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "env", "timeout"})
MAX_REMINDED = 20            # items in one reminder; the rest come at the next stop
MAX_SHOWN_KEPT = 500         # ask ids remembered as shown
MAX_TEXT = 600               # characters of one message in a reminder
MAX_ONLINE_LISTED = 15


class HookFailed(Exception):
    """The hub could not be asked, or said no: the hook ends silently."""


# ---- who the agent is ---------------------------------------------------------------------------

def agent_process(env: dict) -> tuple[int, list[int]]:
    """(agent pid, its ancestors' pids): `$REPOWIRE_AGENT_PID`, else the nearest ancestor of
    this hook that runs an agent, else the nearest one that is not a shell."""
    explicit = env.get(AGENT_PID_ENV, "")
    agent: psutil.Process | None = None
    try:
        if explicit.isdigit():
            agent = psutil.Process(int(explicit))
        else:
            chain = ancestors()
            agent = next((p for p in chain if is_agent(p)), None) or next(
                (p for p in chain if p.name() not in SHELLS), chain[0])
        return agent.pid, [p.pid for p in agent.parents()[:64]]
    except (psutil.Error, OSError, IndexError):
        pid = int(explicit) if explicit.isdigit() else os.getppid()
        return pid, []


def env_file_lines(token: str, home: str | None) -> bytes:
    """What the session's shell gets through `$CLAUDE_ENV_FILE`: its credential and its hub's
    home, so `repowire …` run by the agent acts as the agent; and the folder of the `repowire`
    that runs this hook first on PATH, so the commands the hub tells the agent to run are
    found as written, whatever the agent's login shell puts on PATH."""
    lines = [f"export {TOKEN_ENV}={shlex.quote(token)}", f"export {HOME_ENV}={shlex.quote(str(home_dir(home)))}"]
    program = Path(sys.executable).parent / "repowire"
    if os.access(program, os.X_OK):
        lines.append(f'export PATH={shlex.quote(str(program.parent))}:"$PATH"')
    return ("\n".join(lines) + "\n").encode()


# ---- talking to the hub -------------------------------------------------------------------------

@dataclass
class Hub:
    address: HubAddress
    token: str
    deadline: float

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
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise HookFailed("the hub's answer is not JSON") from None


def _context(joined: dict) -> str:
    """What the agent is told at the start of its session."""
    peer = joined["peer"]
    me = f"{peer['name']}@{peer['circle']}"
    lines = [f"repowire: you are {me} on the repowire hub (peer {peer['peer_id']})."]
    if joined.get("transport") == "connected":
        lines.append('Messages reach you in this terminal as "[notify from NAME] «TEXT»" and '
                     '"[ask ID from NAME] «TEXT»"; asks wait for your reply. Only the part in brackets comes '
                     'from the hub: «TEXT» is the sender\'s own words.')
    else:
        lines.append("No tmux pane carries messages to you, so they wait in your inbox; new ones are shown to you "
                     "when you stop.")
    online = joined.get("online") or []
    if online:
        listed = ", ".join(f"{p['name']}@{p['circle']} ({p['role']}, {p['status']})" for p in online[:MAX_ONLINE_LISTED])
        more = f" and {len(online) - MAX_ONLINE_LISTED} more" if len(online) > MAX_ONLINE_LISTED else ""
        lines.append(f"Online now: {listed}{more}.")
    else:
        lines.append("Nobody else is online right now.")
    lines.append('Reply to an ask: repowire ack ID "your answer". Send: repowire notify NAME "text". '
                 'Ask and wait: repowire ask NAME "question" --wait. The repowire MCP tools do the same.')
    return "\n".join(lines)


def _context_output(text: str) -> bytes:
    return orjson.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}})


# ---- the events ---------------------------------------------------------------------------------

@dataclass
class HookRun:
    event: str
    payload: dict
    env: dict
    home: str | None
    backend: str
    deadline: float

    def hub_of(self, session: SessionFile) -> Hub:
        """The hub the session joined, with the session's own credential: the later hooks act
        as the agent, on the hub that knows it (not whatever hub.json says now)."""
        hub = session.data.get("hub") if isinstance(session.data.get("hub"), dict) else {}
        address = HubAddress(str(hub["url"]), hub.get("uds")) if hub.get("url") else find_hub(self.home)
        return Hub(address, session.token, self.deadline)

    def session(self) -> SessionFile | None:
        """This agent's session, if it joined the hub as itself (not nested): by the session id
        every hook is given, else by the agent process."""
        session_id = str(self.payload.get("session_id") or "")
        found = SessionFile.of_session_id(self.home, session_id) if session_id else None
        if found is None or not found.token:
            found = SessionFile.of_agent(self.home, agent_process(self.env)[0])
        return found if found.token else None

    def session_start(self) -> bytes:
        token = find_token(self.home)
        if not token:
            raise HookFailed("no hub token")
        hub = Hub(find_hub(self.home), token, self.deadline)
        agent_pid, agent_ancestors = agent_process(self.env)
        tmux = self.env.get("TMUX", "")
        pane_id = self.env.get("TMUX_PANE", "")
        session_id = str(self.payload.get("session_id") or "")[:200]
        request: dict = {"backend": self.backend, "cwd": str(self.payload.get("cwd") or os.getcwd()),
                         "agent_pid": agent_pid, "ancestors": agent_ancestors, "session_id": session_id}
        if tmux and PANE_ID.fullmatch(pane_id):
            request["pane_id"] = pane_id
            request["bridge"] = tmux_bridge_name(socket.gethostname(), tmux.split(",")[0])
        for key, env_name in (("name", "REPOWIRE_NAME"), ("circle", "REPOWIRE_CIRCLE")):
            if self.env.get(env_name):
                request[key] = self.env[env_name]
        joined = hub.call("POST", "/sessions", request)
        assert isinstance(joined, dict)
        peer = joined["peer"]
        session = SessionFile.of_agent(self.home, agent_pid)
        session.data = {"peer_id": peer["peer_id"], "name": peer["name"], "circle": peer["circle"],
                        "joined": joined["joined"], "backend": self.backend, "session_id": session_id,
                        "agent_pid": agent_pid, "agent_started": started_at(psutil.Process(agent_pid)),
                        "token": joined.get("session_token", ""),
                        "hub": {"url": hub.address.http_url, "uds": hub.address.uds},
                        "shown": [], "reminded_at": 0}
        session.save()
        if session_id:
            SessionFile(session_id_path(self.home, session_id), session.data).save()
        if joined["joined"] == "nested":
            return b""
        env_file = self.env.get(CLAUDE_ENV_FILE)
        if env_file and session.token:
            with open(env_file, "ab") as out:
                out.write(env_file_lines(session.token, self.home))
        return _context_output(_context(joined))

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
            session_id_path(self.home, str(session.data["session_id"])).unlink(missing_ok=True)
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
        return orjson.dumps({"decision": "block", "reason": "\n".join(lines)})

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
        if self.event == "session-start":
            return self.session_start()
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
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def run(event: str, backend: str = "claude", home: str | None = None) -> int:
    """The whole hook: prints what the agent should see (or nothing) and exits 0, always,
    within its deadline."""
    started = time.monotonic()
    deadline = started + (START_DEADLINE_S if event == "session-start" else EVENT_DEADLINE_S)
    done = threading.Event()
    output: list[bytes] = []

    def work() -> None:
        try:
            payload = _payload(sys.stdin.buffer.read())
            output.append(HookRun(event, payload, dict(os.environ), home, backend, deadline).run())
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
