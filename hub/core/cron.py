"""Five-field cron expressions and their next occurrence in a time zone, as pure functions.

`minute hour day-of-month month day-of-week`, each a `*`, a number, a range `a-b`, a list
`a,b,c` or a step `*/n`, `a-b/n`, `a/n`; months and weekdays also by English name (`jan`,
`mon`); weekday 0 and 7 are Sunday. `@hourly`, `@daily` (`@midnight`), `@weekly`,
`@monthly` and `@yearly` (`@annually`) stand for their usual expansions. As in Vixie cron,
when both day fields are restricted a day matching either fires.

Occurrences are wall-clock times in the schedule's time zone, turned into instants:
- a wall time that does not exist that day (clocks go forward) fires once at the first
  instant after the gap, so a daily 02:30 still fires on the day of the change;
- a wall time that happens twice (clocks go back) fires once, at its first occurrence,
  except when the hour field is `*`: then the repeated hour fires again, so an expression
  such as `*/15 * * * *` keeps its rhythm through the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_EXPRESSION_CHARS = 100
SEARCH_DAYS = 366 * 9        # Feb 29 can be eight years away (2096 -> 2104)
DST_MARGIN = timedelta(hours=3)

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = {name: n for n, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
WEEKDAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


class CronError(ValueError):
    """The expression cannot be read; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


FIELDS = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day of month", 1, 31),
          _Field("month", 1, 12, MONTHS), _Field("day of week", 0, 7, WEEKDAYS))


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]   # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool

    @property
    def every_hour(self) -> bool:
        return len(self.hours) == 24

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week


def _number(text: str, field: _Field) -> int:
    lowered = text.lower()
    if field.names and lowered in field.names:
        return field.names[lowered]
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number" + (
            f" or a name ({', '.join(field.names)})" if field.names else ""))
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name}: an empty item in {text!r}")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field.name}: the step in {item!r} must be a whole number above 0")
            step = int(step_text)
        if span == "*":
            low, high = field.low, field.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _number(first, field), _number(last, field)
            if low > high:
                raise CronError(f"{field.name}: the range {span!r} runs backwards")
        else:
            low = _number(span, field)
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    return values


def parse(expression: str) -> Cron:
    """Read an expression; raises CronError saying what is wrong."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CronError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"unknown shortcut {text!r}; known: {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                        f"not {len(parts)}")
    minutes, hours, days, months, weekdays = (_parse_field(p, f) for p, f in zip(parts, FIELDS))
    weekdays = {0 if d == 7 else d for d in weekdays}
    return Cron(tuple(sorted(minutes)), tuple(sorted(hours)), frozenset(days), frozenset(months),
                frozenset(weekdays), not parts[2].startswith("*"), not parts[4].startswith("*"))


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _steady(instant: datetime, zone: ZoneInfo) -> bool:
    """No change of the zone's offset within the margin around `instant`."""
    return (instant - DST_MARGIN).astimezone(zone).utcoffset() == (instant + DST_MARGIN).astimezone(zone).utcoffset()


def instants(wall: datetime, zone: ZoneInfo, *, both_folds: bool = False) -> list[datetime]:
    """The UTC instants at which `wall` (naive, in `zone`) happens, by the rules above."""
    if not _exists(wall, zone):
        after = wall
        for _ in range(24 * 60):   # gaps last minutes to hours; find the first wall minute that exists
            after += timedelta(minutes=1)
            if _exists(after, zone):
                return [after.replace(tzinfo=zone).astimezone(UTC)]
        return []
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return [first, second] if both_folds and second != first else [first]


def next_after(cron: Cron, after: datetime, zone: ZoneInfo) -> datetime | None:
    """The first occurrence strictly after the aware instant `after` (as an aware UTC
    datetime), or None when the expression never fires (such as `0 0 31 2 *`)."""
    local = after.astimezone(zone).replace(tzinfo=None)
    earliest_wall = local.replace(second=0, microsecond=0) if _steady(after, zone) else local - DST_MARGIN
    day = earliest_wall.date()
    for _ in range(SEARCH_DAYS):
        if cron.matches_day(day):
            found: list[datetime] = []
            latest_wall = datetime.max
            first_day = day == earliest_wall.date()
            for hour in cron.hours:
                if first_day and hour < earliest_wall.hour:
                    continue
                for minute in cron.minutes:
                    if first_day and hour == earliest_wall.hour and minute < earliest_wall.minute:
                        continue
                    wall = datetime.combine(day, time(hour, minute))
                    if wall < earliest_wall or wall > latest_wall:
                        continue
                    hits = [t for t in instants(wall, zone, both_folds=cron.every_hour) if t > after]
                    if hits and not found:   # a later wall time can be an earlier instant only near a change
                        if _steady(hits[0], zone):
                            return hits[0]
                        latest_wall = wall + DST_MARGIN
                    found += hits
            if found:
                return min(found)
        day += timedelta(days=1)
    return None
