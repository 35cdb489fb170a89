"""The dashboard at run time: sign-in (one-time links, browser sessions) and the live feed.

**Sign-in.** `repowire serve` and `repowire dashboard` print a link with a one-time code. Opening
it trades the code for a session secret, set as an HttpOnly, SameSite=Strict cookie; the code
is gone from the store at that moment, so a link that stays in a browser's history or a
terminal's scrollback opens nothing later. Sessions live in the store (any node honours them)
and are remembered here until they expire, so a request costs no store round trip.

**The feed.** Every node appends what happens (presence, trace stages with message previews,
questions opened and decided) to one store stream, whose entry ids are the cursor. A
subscriber names the last cursor it saw; the feed sends what came after it from the store,
then switches it to live delivery from this node's single tail of the stream, with no gap
and nothing twice (live events at or before what it was sent are skipped). When the stream no
longer holds the entry after the cursor, the subscriber is told `history_lost` and gets the
newest events instead. The tail runs only while someone is subscribed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from hub.core.errors import HubError
from hub.core.ids import token_digest
from hub.runtime.connection import Connection
from hub.store.dashboard import DashboardStore, StreamEntry
from schemas import codec
from schemas.dashboard import Subscribed
from schemas.errors import ErrorCode

log = logging.getLogger(__name__)

LINK_TTL_S = 600              # a sign-in link works once, within ten minutes
SESSION_TTL_S = 12 * 3600     # a browser stays signed in for twelve hours
CATCH_UP_PAGE = 500           # events read from the store per step of a catch-up
TAIL_BLOCK_MS = 5000
TAIL_BATCH = 1000
RETRY_S = 1.0                 # the tail's pause after the store failed


def parse_cursor(cursor: str) -> tuple[int, int]:
    """A stream id `<ms>-<seq>` as a comparable pair; HubError for anything else."""
    ms, sep, seq = cursor.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit() and len(ms) <= 20 and len(seq) <= 20):
        raise HubError(ErrorCode.INVALID_FRAME, "cursor is an event id such as `1763900000000-0`, as the hub sent it",
                       {"cursor": cursor[:64]})
    return int(ms), int(seq)


def event_frame(entry: StreamEntry) -> bytes:
    """One `event` frame, encoded once and sent as the same bytes to every subscriber."""
    entry_id, kind, data = entry
    return codec.event_frame(entry_id, kind, data)


class DashboardAccess:
    """One-time sign-in links and the browser sessions they open."""

    def __init__(self, store: DashboardStore, clock_ms):
        self.store = store
        self._clock_ms = clock_ms
        # digest of a session secret -> (digest of its page key, when it expires in ms), as the store said
        self._sessions: dict[str, tuple[str, int]] = {}

    async def new_link_code(self) -> str:
        code = secrets.token_urlsafe(32)
        await self.store.save_link(code, LINK_TTL_S)
        return code

    async def sign_in(self, code: str) -> tuple[str, str]:
        """Trade a link's code for a new session: (the cookie's secret, the page's key). The
        code never works again. A cookie goes to every server on this host a browser visits;
        the key goes only to the page (in the URL fragment, which no server receives), and the
        session counts only when a request carries both."""
        if not code or len(code) > 128 or not await self.store.take_link(code):
            raise HubError(ErrorCode.LOGIN_LINK_INVALID, "this sign-in link is unknown, was already used, or expired; "
                           "run `repowire dashboard` for a new one")
        secret, page_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        await self.store.save_session(secret, page_key, SESSION_TTL_S)
        self._sessions[token_digest(secret)] = (token_digest(page_key), self._clock_ms() + SESSION_TTL_S * 1000)
        return secret, page_key

    async def is_signed_in(self, secret: str | None, page_key: str | None) -> bool:
        """Both the cookie's secret and the page's key of one live session."""
        if not secret or not page_key or len(secret) > 128 or len(page_key) > 128:
            return False
        now = self._clock_ms()
        digest = token_digest(secret)
        known = self._sessions.get(digest)
        if known is None:  # signed in on another node, or before a restart
            key_digest, left = await self.store.session_record(secret)
            if not left:
                return False
            known = self._sessions[digest] = (key_digest, now + left)
        key_digest, expires = known
        if expires <= now:
            self._sessions.pop(digest, None)
            return False
        return hmac.compare_digest(key_digest, token_digest(page_key))

    async def sign_out(self, secret: str) -> None:
        self._sessions.pop(token_digest(secret), None)
        await self.store.drop_session(secret)

    def signed_out_elsewhere(self, digest: str) -> None:
        """Another node ended this session (the node bus said so)."""
        self._sessions.pop(digest, None)


@dataclass(eq=False)
class Subscriber:
    conn: Connection
    last: tuple[int, int] = (0, 0)   # the newest event it was sent
    live: bool = False


class DashboardFeed:
    """The event stream, to the dashboards connected to this node."""

    def __init__(self, store: DashboardStore):
        self.store = store
        self.subscribers: set[Subscriber] = set()
        self.on_watchers_changed: Callable[[], None] = lambda: None   # who watches for questions changed
        self._position: tuple[int, int] | None = None   # the newest event the tail has fanned out
        self._position_known = asyncio.Event()
        self._tail: asyncio.Task | None = None

    async def subscribe(self, conn: Connection, cursor: str | None, backlog: int) -> Subscriber:
        """Send `subscribed`, then what the subscriber missed (or the newest `backlog` events),
        then live events. Returns once it is live."""
        after = parse_cursor(cursor) if cursor is not None else None
        sub = Subscriber(conn)
        self.subscribers.add(sub)
        self.on_watchers_changed()
        self._ensure_tail()
        try:
            await self._catch_up(sub, cursor, after, backlog)
        except BaseException:
            self.leave(sub)
            raise
        return sub

    def leave(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self.on_watchers_changed()
        if not self.subscribers and self._tail is not None:
            self._tail.cancel()
            self._tail = None
            self._position = None
            self._position_known.clear()

    async def stop(self) -> None:
        for sub in list(self.subscribers):
            sub.conn.abort(ErrorCode.SHUTTING_DOWN, "hub stopping")
            self.leave(sub)

    # ---- catching up -------------------------------------------------------------------------

    async def _catch_up(self, sub: Subscriber, cursor: str | None, after: tuple[int, int] | None,
                        backlog: int) -> None:
        lost, last_added = False, None
        if after is not None:
            first, last_added = await self.store.bounds()
            newest = parse_cursor(last_added)
            # the store was replaced (it never reached the cursor), or it no longer keeps the
            # entry after the cursor (trimmed: the oldest it keeps is later, or it keeps none)
            lost = after > newest or (after < parse_cursor(first) if first is not None else after < newest)
        if after is not None and not lost:
            entries, sub.last = [], after
        else:
            entries = await self.store.last_events(backlog) if backlog else []
            if entries:
                sub.last = _before(parse_cursor(entries[0][0]))
            else:  # live from the stream's end as it is now
                sub.last = parse_cursor(last_added or (await self.store.bounds())[1])
        sub.conn.push(codec.encode(Subscribed(cursor=_text(sub.last), history_lost=lost,
                                              missed_after=cursor if lost else None)))
        self._push(sub, entries)
        # From the store until this subscriber has everything the tail has fanned out; then
        # live. Nothing awaits between that check and going live, so no event falls between.
        while not sub.conn.closed:
            page = await self.store.events_after(_text(sub.last), CATCH_UP_PAGE)
            self._push(sub, page)
            if page:
                await sub.conn.wait_below(sub.conn.outbox_limit // 2)
                if len(page) == CATCH_UP_PAGE:
                    continue
            await self._position_known.wait()
            if self._position is None or sub.last >= self._position or not page:
                sub.live = True
                return

    def _push(self, sub: Subscriber, entries: list[StreamEntry]) -> None:
        for entry in entries:
            position = parse_cursor(entry[0])
            if position > sub.last and sub.conn.push(event_frame(entry)):
                sub.last = position

    # ---- the tail ----------------------------------------------------------------------------

    def _ensure_tail(self) -> None:
        if self._tail is None:
            self._tail = asyncio.create_task(self._follow(), name="dashboard-feed")

    async def _follow(self) -> None:
        """Read the stream as it grows and hand each event to the live subscribers."""
        while True:
            try:
                if self._position is None:
                    _, last_added = await self.store.bounds()
                    self._position = parse_cursor(last_added)
                    self._position_known.set()
                entries = await self.store.wait_for_events(_text(self._position), TAIL_BATCH, TAIL_BLOCK_MS)
            except HubError as exc:
                log.warning("dashboard feed: %s; trying again", exc.message)
                await asyncio.sleep(RETRY_S)
                continue
            for entry in entries:
                position = parse_cursor(entry[0])
                frame = event_frame(entry)
                for sub in list(self.subscribers):
                    if sub.live and position > sub.last and sub.conn.push(frame):
                        sub.last = position
                self._position = position


def _text(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


def _before(position: tuple[int, int]) -> tuple[int, int]:
    """The id just before `position`: a subscriber there is sent `position` next."""
    ms, seq = position
    return (ms, seq - 1) if seq else (ms - 1, 2**64 - 1) if ms else (0, 0)
