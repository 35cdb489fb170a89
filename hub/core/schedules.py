"""Scheduled messages as pure rules: what a schedule is, when it fires next, and what to do
with occurrences that fell due while no hub was running.

A schedule is one-shot (`at`) or recurring (`cron`, in `timezone`). Each due time (an
occurrence) is claimed in the store before it is sent, so it fires once. Occurrences found
overdue are sent late with `catch_up` (at most `CATCH_UP_MAX` of them, the most recent), and
otherwise recorded as missed when later than the grace. Times are UTC milliseconds here; the
edge shows them as ISO 8601.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.core import cron
from hub.core.errors import HubError
from schemas.errors import ErrorCode

NOTIFY, ASK = "notify", "ask"
ACTIVE, PAUSED, DONE = "active", "paused", "done"
SENT, MISSED, FAILED = "sent", "missed", "failed"
CATCH_UP_MAX = 10          # overdue occurrences sent late at most; older ones are recorded missed
OVERDUE_SCAN_MAX = 1_000   # occurrences looked at in one pass over an overdue schedule (bounds the
                           # time one pass holds the event loop; the next pass goes on)
MAX_TIMEZONE_CHARS = 64


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    max_per_peer: int = 100       # schedules one peer (or the operator) may hold
    grace_s: float = 60.0         # without catch_up, an occurrence later than this is recorded missed
    claim_lease_s: float = 30.0   # a claimed occurrence not recorded by then is taken over by another node


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What was asked for; never changes after creation. `to` is a peer id or a broadcast
    address, resolved when the schedule was made."""
    kind: str
    to: str
    text: str
    timezone: str = "UTC"
    at: int | None = None       # ms, one-shot
    cron: str | None = None     # recurring
    timeout_s: float | None = None
    queue_if_offline: bool = False
    catch_up: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def zone(name: str) -> ZoneInfo:
    if len(name) > MAX_TIMEZONE_CHARS or not name or name.startswith(("/", ".")) or ".." in name:
        raise _bad_zone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _bad_zone(name) from exc


def _bad_zone(name: str) -> HubError:
    return HubError(ErrorCode.INVALID_TIMEZONE, f"unknown time zone {name[:80]!r}; use an IANA name such as "
                    "UTC or Europe/Berlin", {"timezone": name[:80]})


def parse_cron(expression: str) -> cron.Cron:
    try:
        return cron.parse(expression)
    except cron.CronError as exc:
        raise HubError(ErrorCode.INVALID_CRON, f"invalid cron expression {expression[:120]!r}: {exc}",
                       {"cron": expression[:120]}) from exc


def parse_at(text: str, tz: ZoneInfo) -> int:
    """An ISO 8601 time; one without an offset is read in the schedule's time zone, by the
    same rules as cron for clock changes (a skipped time is the end of the gap, a repeated
    time its first occurrence)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HubError(ErrorCode.INVALID_REQUEST, f"`at` is not an ISO 8601 time: {text[:80]!r}",
                       {"at": text[:80], "example": "2026-11-23T09:00:00+01:00"}) from exc
    if moment.tzinfo is None:
        (moment,) = cron.instants(moment, tz)
    return int(moment.timestamp() * 1000)


def to_iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def iso(ms: int) -> str:
    """An instant (ms since the epoch) as ISO 8601 in UTC, to the millisecond: 2026-11-23T09:00:00.000Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_timing(at: str | None, expression: str | None) -> None:
    if (at is None) == (expression is None):
        raise HubError(ErrorCode.INVALID_REQUEST, "give either `at` (one time) or `cron` (recurring), not "
                       + ("both" if at is not None else "neither"), {"fields": ["at", "cron"]})


def stepper(spec: ScheduleSpec) -> Callable[[int], int | None]:
    """`after_ms` -> the first occurrence strictly after it, or None (a one-shot that has
    fired, or a cron expression with no further date). The expression is read once."""
    if spec.cron is None:
        return lambda after_ms: spec.at if spec.at is not None and spec.at > after_ms else None
    rule, tz = cron.parse(spec.cron), zone(spec.timezone)

    def step(after_ms: int) -> int | None:
        found = cron.next_after(rule, datetime.fromtimestamp(after_ms / 1000, UTC), tz)
        return int(found.timestamp() * 1000) if found is not None else None
    return step


def next_fire(spec: ScheduleSpec, after_ms: int) -> int | None:
    return stepper(spec)(after_ms)


def first_fire(spec: ScheduleSpec, now_ms: int) -> int:
    """When a new schedule fires first; refuses a time in the past and a cron that never fires."""
    if spec.cron is None:
        if spec.at is None or spec.at <= now_ms:
            raise HubError(ErrorCode.SCHEDULE_IN_PAST, f"`at` is {to_iso(spec.at)}, which is not in the future "
                           f"(now is {to_iso(now_ms)})", {"at": to_iso(spec.at), "now": to_iso(now_ms)})
        return spec.at
    first = next_fire(spec, now_ms)
    if first is None:
        raise HubError(ErrorCode.INVALID_CRON, f"the cron expression {spec.cron!r} never fires (no such date)",
                       {"cron": spec.cron})
    return first


def resume_fire(spec: ScheduleSpec, now_ms: int) -> int | None:
    """Where a resumed schedule continues: occurrences while paused are skipped; a one-shot
    whose time passed while paused is due at once (and then follows the overdue rules)."""
    if spec.cron is None:
        return spec.at
    return next_fire(spec, now_ms - 1)


@dataclass(frozen=True, slots=True)
class OverduePlan:
    """`missed`: occurrences to record as missed (oldest first); `next_due`: what the
    schedule's next occurrence becomes after them, or with nothing missed after the one sent
    (None: nothing left)."""
    missed: list[int]
    next_due: int | None


def plan_overdue(spec: ScheduleSpec, due: int, now_ms: int, grace_ms: int) -> OverduePlan:
    """Of the occurrences from `due` up to now, which are recorded missed rather than sent:
    without catch_up every one later than the grace; with it all but the `CATCH_UP_MAX` most
    recent. An empty `missed` means `due` is to be sent."""
    step = stepper(spec)
    occurrences = [due]
    nxt = step(due)
    while nxt is not None and nxt <= now_ms and len(occurrences) < OVERDUE_SCAN_MAX:
        occurrences.append(nxt)
        nxt = step(nxt)
    if spec.catch_up:
        keep = occurrences[-CATCH_UP_MAX:] if len(occurrences) < OVERDUE_SCAN_MAX else []
    else:
        keep = [o for o in occurrences if now_ms - o <= grace_ms]
    missed = occurrences[:len(occurrences) - len(keep)]
    if not missed:
        return OverduePlan([], occurrences[1] if len(occurrences) > 1 else nxt)
    return OverduePlan(missed, keep[0] if keep else nxt)


def missed_entry(plan: OverduePlan, now_ms: int, node: str, catch_up: bool) -> dict[str, Any]:
    """The history entry that records missed occurrences (one entry for a run of them)."""
    entry = {"due_at": plan.missed[0], "state": MISSED, "recorded_at": now_ms, "node": node,
             "reason": "catch_up_limit" if catch_up else "catch_up_off", "count": len(plan.missed)}
    if len(plan.missed) > 1:
        entry["last_due_at"] = plan.missed[-1]
    return entry
