"""`repowire schedule notify|ask|show|pause|resume|rm` and `repowire schedules`: scheduled
messages over the hub's REST routes, sent as whoever the token names (the hub token: the
operator)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_UNREACHABLE, CommandFailed

RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def when(text: str, now: datetime | None = None) -> str:
    """`--at`: an ISO 8601 time as given, or `+90s`, `+15m`, `+2h`, `+1d` from now (as UTC)."""
    relative = RELATIVE.match(text.strip())
    if relative is None:
        return text
    amount, unit = int(relative.group(1)), relative.group(2)
    moment = (now or datetime.now(UTC)) + timedelta(**{UNITS[unit]: amount})
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create(args) -> int:
    if (args.at is None) == (args.cron is None):
        raise CommandFailed(EXIT_UNREACHABLE, "give --at WHEN (once) or --cron 'EXPR' (recurring)")
    body: dict = {"to": args.peer, "kind": args.action, "text": args.text, "timezone": args.timezone,
                  "catch_up": not args.no_catch_up}
    if args.at is not None:
        body["at"] = when(args.at)
    else:
        body["cron"] = args.cron
    if args.action == "ask":
        if args.timeout is not None:
            body["timeout_s"] = args.timeout
        body["queue_if_offline"] = args.queue
    created = call("POST", "/schedules", home=args.home, json=body)
    emit(created, args.json, f"scheduled {created['schedule_id']}  next fire {created['next_fire_at']}")
    return EXIT_OK


def _timing(s: dict) -> str:
    return f"cron '{s['cron']}' {s['timezone']}" if s.get("cron") else f"at {s.get('at')}"


def listing(args) -> int:
    body = call("GET", "/schedules", home=args.home, params={"peer": args.peer} if args.peer else None)
    rows = [f"{'ID':<32}  {'STATE':<6} {'KIND':<6} {'TO':<20} {'NEXT FIRE':<24} {'FIRED':>5}  WHEN"]
    rows += [f"{s['schedule_id']}  {s['state']:<6} {s['kind']:<6} {s.get('to_name') or s['to']:<20} "
             f"{s.get('next_fire_at') or '-':<24} {s['fired']:>5}  {_timing(s)}" for s in body["schedules"]]
    emit(body, args.json, "\n".join(rows) if body["schedules"] else "no schedules")
    return EXIT_OK


def show(args) -> int:
    s = call("GET", f"/schedules/{args.id}", home=args.home)
    lines = [f"{s['kind']} to {s.get('to_name') or s['to']}: {s['text']!r}",
             f"{s['state']}, {_timing(s)}, next fire {s.get('next_fire_at') or '-'}; "
             f"fired {s['fired']}, missed {s['missed']}, failed {s['failed']}"]
    for fire in s.get("fires", []):
        detail = fire.get("trace_id") or f"{fire.get('reason', '')} {fire.get('message', '')}".strip()
        count = f" x{fire['count']}" if fire.get("count", 1) > 1 else ""
        lines.append(f"  {fire['due_at']}  {fire['state']:<6}{count} {fire['node']:<10} {detail}")
    emit(s, args.json, "\n".join(lines))
    return EXIT_OK


def change(args) -> int:
    """`schedule pause|resume|rm ID`."""
    if args.action == "rm":
        body = call("DELETE", f"/schedules/{args.id}", home=args.home)
        emit(body, args.json, f"deleted {body['deleted']}")
        return EXIT_OK
    s = call("POST", f"/schedules/{args.id}/{args.action}", home=args.home)
    human = (f"paused {s['schedule_id']}" if args.action == "pause"
             else f"resumed {s['schedule_id']}  next fire {s.get('next_fire_at') or '-'}")
    emit(s, args.json, human)
    return EXIT_OK
