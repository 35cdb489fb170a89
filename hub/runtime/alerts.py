"""Alerts for questions that wait for a person, and whether a person can be reached at all.

When a question starts to wait, each configured channel is told at once, off the request's
path (a slow or dead receiver delays nothing and is logged):

- **webhook**: a JSON POST, signed: `X-Repowire-Signature: sha256=<hex>` is the HMAC-SHA256,
  with the hub's alert secret, of `<X-Repowire-Timestamp>.<body>`; a receiver recomputes it
  and refuses a stale timestamp.
- **ntfy**: a POST to an ntfy-compatible topic URL: the summary as the body, `Title`, `Click`
  (the link) and `Tags` headers, and `Authorization: Bearer` when a token is set.
- **desktop**: `notify-send`, where one is on PATH.

Each alert says which agent asks, for what, in one line, and carries a link that opens the
question in the dashboard with a sign-in that works once. People can be reached when a
dashboard or `repowire questions --follow` watches (on this node, or on another live node of
the mesh), or an alert channel is configured; when none is, the question's fallback decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import shutil
import time
from collections.abc import Awaitable, Callable

import anyio
import httpx
import orjson

from hub.core.settings import AlertSettings
from hub.runtime.hub import Hub
from hub.store.questions import QuestionStore
from hub.store.writer import Command, Writer
from schemas.codec import encode
from schemas.rest import QuestionView, QuestionWaiting, WaitingQuestion
from schemas.visible import neutralise

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 32          # alerts being sent at once; past this, new ones are dropped (and logged)
SUMMARY_CHARS = 160
SIGNATURE_HEADER = "x-repowire-signature"
TIMESTAMP_HEADER = "x-repowire-timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def one_line(question: QuestionView) -> str:
    """What the agent wants, on one line a person can read at a glance (agent text neutralised)."""
    text: object
    if question.kind == "choice":
        text = question.title or ""
    else:
        tool_input = question.tool_input
        value = next((tool_input[k] for k in ("command", "file_path", "url", "pattern", "path") if
                      isinstance(tool_input.get(k), str)), None)
        text = value if value is not None else orjson.dumps(tool_input).decode()
    text = neutralise(" ".join(str(text).split()))
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + "…"


def headline(question: QuestionView) -> str:
    who = question.peer or question.asker
    agent = neutralise(f"{who.name}@{who.circle}")
    if question.kind == "choice":
        return f"repowire: {agent} asks you a question"
    return f"repowire: {agent} asks to run {neutralise(question.tool_name or '?')}"


class Alerts:
    """Sends one alert per question that waits for a person, on every configured channel."""

    def __init__(self, settings: AlertSettings, http: httpx.AsyncClient, sign_in_link: Callable[[str], Awaitable[str]]):
        self.settings = settings
        self.http = http
        self.sign_in_link = sign_in_link
        self.notifier = shutil.which("notify-send") if settings.desktop else None
        self._sending: set[asyncio.Task] = set()
        if settings.desktop and self.notifier is None:
            log.warning("desktop alerts are on, but there is no notify-send on PATH: none will show")

    @property
    def configured(self) -> bool:
        return self.settings.configured

    def question_waits(self, question: QuestionView) -> None:
        if not self.configured:
            return
        if len(self._sending) >= MAX_IN_FLIGHT:
            log.warning("alert for question %s dropped: %d alerts are still being sent", question.correlation_id,
                        len(self._sending))
            return
        task = asyncio.get_running_loop().create_task(self._send(question), name="alert")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def stop(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send(self, question: QuestionView) -> None:
        title, summary = headline(question), one_line(question)
        sends = []
        if self.settings.webhook_url:
            sends.append(self._webhook(self.settings.webhook_url, question, title, summary))
        if self.settings.ntfy_url:
            sends.append(self._ntfy(self.settings.ntfy_url, question, title, summary))
        if self.notifier:
            sends.append(self._desktop(self.notifier, question, title, summary))
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("alert for question %s not sent: %s", question.correlation_id, outcome)

    async def _link(self, question: QuestionView) -> str | None:
        """Each channel's own link (a code works once: opening one alert never spends another's)."""
        try:
            return await self.sign_in_link(question.correlation_id)
        except Exception as exc:  # the alert still goes, without a sign-in
            log.warning("no sign-in link for the alert of %s: %s", question.correlation_id, exc)
            return None

    async def _webhook(self, url: str, question: QuestionView, title: str, summary: str) -> None:
        link = await self._link(question)
        who = question.peer or question.asker
        body = encode(QuestionWaiting(title=title, summary=summary, url=link, question=WaitingQuestion(
            correlation_id=question.correlation_id, kind=question.kind, tool_name=question.tool_name,
            title=question.title, cwd=question.cwd, deadline=question.deadline, agent=who)))
        timestamp = str(int(time.time()))
        headers = {"content-type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self.settings.webhook_secret, timestamp, body)}
        response = await self.http.post(url, content=body, headers=headers,
                                         timeout=SEND_TIMEOUT_S)
        response.raise_for_status()

    async def _ntfy(self, url: str, question: QuestionView, title: str, summary: str) -> None:
        link = await self._link(question)
        headers = {"Title": title.encode("utf-8").decode("latin-1"), "Tags": "lock", "Priority": "high"}
        if link:
            headers["Click"] = link
        if self.settings.ntfy_token:
            headers["Authorization"] = f"Bearer {self.settings.ntfy_token}"
        response = await self.http.post(url, content=summary.encode(), headers=headers,
                                         timeout=SEND_TIMEOUT_S)
        response.raise_for_status()

    async def _desktop(self, notifier: str, question: QuestionView, title: str, summary: str) -> None:
        link = await self._link(question)
        argv = [notifier, "--app-name=repowire", "--urgency=critical", title,
                summary + (f"\n{link}" if link else "")]
        process = await anyio.run_process(argv, check=False)
        if process.returncode != 0:
            raise RuntimeError(f"notify-send exited {process.returncode}: {process.stderr.decode(errors='replace')}")


class People:
    """Who could answer a question now."""

    def __init__(self, hub: Hub, writer: Writer, store: QuestionStore, watching_here: Callable[[], int],
                 alerts: Alerts, live_nodes: Callable[[list[str]], Awaitable[set[str]]] | None):
        self.hub = hub
        self.writer = writer
        self.store = store
        self.watching_here = watching_here
        self.alerts = alerts
        self.live_nodes = live_nodes   # None: one hub, no other nodes to look at

    def here(self) -> int:
        """Dashboards and `questions --follow` watching on this node, and person peers' sockets."""
        return self.watching_here() + len(self.hub.person_connections())

    async def reachable(self) -> bool:
        if self.alerts.configured or self.here():
            return True
        if self.live_nodes is None:
            return False
        watched = [node for node, count in (await self.store.people()).items() if count and node != self.hub.node]
        return bool(watched) and bool(await self.live_nodes(watched))

    def publish_cmd(self) -> Command:
        """This node's count, for the other nodes of a mesh (renewed with the node's lease)."""
        return self.store.people_cmd(self.hub.node, self.here())

    def changed(self) -> None:
        """A dashboard or watcher came or went: on a mesh, the other nodes hear of it now."""
        if self.live_nodes is not None:
            self.writer.submit([self.publish_cmd()], wait=False)
