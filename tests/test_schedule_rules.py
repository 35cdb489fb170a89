"""Schedule rules without a hub: cron reading, next occurrences across time zones and clock
changes, and what happens to occurrences that fell due while no hub ran. The clock is the
`now_ms` / `after` argument, so every case is exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core import cron
from hub.core.errors import HubError
from hub.core.schedules import (
    CATCH_UP_MAX,
    ScheduleSpec,
    check_timing,
    first_fire,
    missed_entry,
    next_fire,
    parse_at,
    parse_cron,
    plan_overdue,
    resume_fire,
    to_iso,
    zone,
)

UTC = UTC
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def occurrences(expression: str, start: datetime, zone_: ZoneInfo, count: int) -> list[datetime]:
    found, at = [], start
    rule = cron.parse(expression)
    for _ in range(count):
        at = cron.next_after(rule, at, zone_)
        found.append(at)
    return found


# ---- reading expressions -------------------------------------------------------------------------

def test_fields_lists_ranges_steps_and_names():
    rule = cron.parse("*/20 9-17/4 1,15 jan-MAR mon-fri")
    assert rule.minutes == (0, 20, 40) and rule.hours == (9, 13, 17)
    assert rule.days == {1, 15} and rule.months == {1, 2, 3} and rule.weekdays == {1, 2, 3, 4, 5}
    assert cron.parse("0 0 * * 7").weekdays == {0} == cron.parse("0 0 * * sun").weekdays
    assert cron.parse("5/15 * * * *").minutes == (5, 20, 35, 50)
    daily = cron.parse("@daily")
    assert (daily.minutes, daily.hours, daily.day_restricted, daily.weekday_restricted) == ((0,), (0,), False, False)
    assert cron.parse("@hourly").minutes == (0,) and len(cron.parse("@hourly").hours) == 24
    assert cron.parse("@weekly").weekdays == {0}


@pytest.mark.parametrize("expression, message", [
    ("* * * *", "5 fields"),
    ("* * * * * *", "5 fields"),
    ("60 * * * *", "minute: 60 is outside 0-59"),
    ("* 24 * * *", "hour: 24 is outside 0-23"),
    ("* * 0 * *", "day of month: 0 is outside 1-31"),
    ("* * * 13 *", "month: 13 is outside 1-12"),
    ("* * * * 8", "day of week: 8 is outside 0-7"),
    ("* * * foo *", "month: 'foo' is not a number or a name"),
    ("5-1 * * * *", "runs backwards"),
    ("*/0 * * * *", "step"),
    ("1,,2 * * * *", "empty item"),
    ("@reboot", "unknown shortcut"),
    ("-1 * * * *", "minute"),
])
def test_a_bad_expression_says_which_field_is_wrong(expression, message):
    with pytest.raises(cron.CronError) as caught:
        cron.parse(expression)
    assert message in str(caught.value)
    with pytest.raises(HubError) as refused:
        parse_cron(expression)
    assert refused.value.code.value == "invalid_cron"


def test_expression_length_at_its_limit_and_one_over():
    at_limit = "0" + " " * (cron.MAX_EXPRESSION_CHARS - 8) + "0 * * *"
    assert len(at_limit) == cron.MAX_EXPRESSION_CHARS
    cron.parse(at_limit)
    with pytest.raises(cron.CronError, match="longer than 100"):
        cron.parse(at_limit + " ")


# ---- next occurrences ------------------------------------------------------------------------------

def test_weekday_mornings_in_berlin():
    friday_noon = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)  # 12:00 in Berlin (UTC+1)
    found = occurrences("0 9 * * mon-fri", friday_noon, BERLIN, 2)
    assert found == [datetime(2026, 11, 30, 8, 0, tzinfo=UTC), datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    found = occurrences("0 0 13 * fri", datetime(2026, 2, 1, tzinfo=UTC), ZoneInfo("UTC"), 4)
    assert [d.date().isoformat() for d in found] == ["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27"]
    only_fridays_the_13th = [d for d in found if d.day == 13]
    assert only_fridays_the_13th and only_fridays_the_13th[0].weekday() == 4


def test_a_time_skipped_by_spring_forward_fires_once_right_after_the_gap():
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 does not exist.
    found = occurrences("30 2 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=UTC), NEW_YORK, 3)
    assert found == [datetime(2026, 3, 8, 7, 0, tzinfo=UTC),    # 03:00 EDT, the end of the gap
                     datetime(2026, 3, 9, 6, 30, tzinfo=UTC),   # 02:30 EDT
                     datetime(2026, 3, 10, 6, 30, tzinfo=UTC)]
    every_quarter = occurrences("*/15 * * * *", datetime(2026, 3, 8, 6, 40, tzinfo=UTC), NEW_YORK, 3)
    assert every_quarter == [datetime(2026, 3, 8, 6, 45, tzinfo=UTC), datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
                             datetime(2026, 3, 8, 7, 15, tzinfo=UTC)]  # the gap's quarters fire once, at 03:00


def test_a_time_repeated_by_fall_back_fires_once_unless_the_hour_is_every_hour():
    # New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    daily = occurrences("30 1 * * *", datetime(2026, 10, 31, 12, 0, tzinfo=UTC), NEW_YORK, 2)
    assert daily == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]
    half_hourly = occurrences("*/30 * * * *", datetime(2026, 11, 1, 4, 50, tzinfo=UTC), NEW_YORK, 5)
    assert [d.strftime("%H:%M") for d in half_hourly] == ["05:00", "05:30", "06:00", "06:30", "07:00"]
    assert [d.astimezone(NEW_YORK).strftime("%H:%M%z") for d in half_hourly] == [
        "01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500", "02:00-0500"]


def test_an_impossible_date_never_fires_and_a_leap_day_waits_for_its_year():
    start = datetime(2026, 5, 1, tzinfo=UTC)
    assert cron.next_after(cron.parse("0 0 31 2 *"), start, ZoneInfo("UTC")) is None
    assert cron.next_after(cron.parse("0 0 29 2 *"), start, ZoneInfo("UTC")) == datetime(2028, 2, 29, tzinfo=UTC)
    with pytest.raises(HubError) as never:
        first_fire(ScheduleSpec(kind="notify", to="x", text="t", cron="0 0 31 2 *"), ms("2026-05-01T00:00:00+00:00"))
    assert never.value.code.value == "invalid_cron" and "never fires" in never.value.message


MINUTE_FIELDS = st.sampled_from(["*", "*/7", "0", "15,45", "10-20/5", "59"])
HOUR_FIELDS = st.sampled_from(["*", "*/5", "0", "9-17", "23", "1,2,3"])
DAY_FIELDS = st.sampled_from(["*", "1", "15", "28-31", "*/10"])
WEEKDAY_FIELDS = st.sampled_from(["*", "1-5", "0", "sat,sun"])


@settings(max_examples=150, deadline=None)
@given(minute=MINUTE_FIELDS, hour=HOUR_FIELDS, day=DAY_FIELDS, weekday=WEEKDAY_FIELDS,
       start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_next_occurrence_is_the_first_matching_minute_after_the_instant(minute, hour, day, weekday, start):
    """In UTC (no clock changes) the answer equals a minute-by-minute scan."""
    rule = cron.parse(f"{minute} {hour} {day} * {weekday}")
    after = start.replace(tzinfo=UTC)
    found = cron.next_after(rule, after, ZoneInfo("UTC"))
    assert found is not None and found > after
    assert found.second == 0 and found.minute in rule.minutes and found.hour in rule.hours
    assert rule.matches_day(found.date())
    probe = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    scanned = 0
    while probe < found and scanned < 3000:  # nothing matches in between (checked for the first 3000 minutes)
        assert not (probe.minute in rule.minutes and probe.hour in rule.hours and rule.matches_day(probe.date()))
        probe += timedelta(minutes=1)
        scanned += 1


# ---- schedule rules --------------------------------------------------------------------------------

NOW = ms("2026-11-23T09:00:00+00:00")


def spec(**fields) -> ScheduleSpec:
    return ScheduleSpec(kind="notify", to="peer", text="hello", **fields)


def test_at_or_cron_exactly_one():
    for at, expression, word in ((None, None, "neither"), ("2026-11-23T10:00:00Z", "* * * * *", "both")):
        with pytest.raises(HubError) as refused:
            check_timing(at, expression)
        assert refused.value.code.value == "invalid_request" and word in refused.value.message
    check_timing("2026-11-23T10:00:00Z", None)
    check_timing(None, "* * * * *")


def test_a_one_shot_must_be_in_the_future_by_at_least_a_millisecond():
    with pytest.raises(HubError) as past:
        first_fire(spec(at=NOW), NOW)
    assert past.value.code.value == "schedule_in_past"
    assert past.value.details == {"at": "2026-11-23T09:00:00.000Z", "now": "2026-11-23T09:00:00.000Z"}
    assert first_fire(spec(at=NOW + 1), NOW) == NOW + 1
    assert next_fire(spec(at=NOW + 1), NOW + 1) is None  # fired: nothing after


def test_times_without_an_offset_are_read_in_the_schedule_zone():
    assert parse_at("2026-11-23T10:00:00", BERLIN) == ms("2026-11-23T09:00:00+00:00")
    assert parse_at("2026-11-23T10:00:00Z", BERLIN) == ms("2026-11-23T10:00:00+00:00")
    assert parse_at("2026-11-23T10:00:00-05:00", BERLIN) == ms("2026-11-23T15:00:00+00:00")
    assert parse_at("2030-03-10T02:30:00", NEW_YORK) == ms("2030-03-10T07:00:00+00:00")  # skipped: end of the gap
    assert parse_at("2030-11-03T01:30:00", NEW_YORK) == ms("2030-11-03T05:30:00+00:00")  # repeated: the first
    with pytest.raises(HubError) as bad:
        parse_at("tomorrow at nine", BERLIN)
    assert bad.value.code.value == "invalid_request"
    assert to_iso(ms("2026-11-23T09:00:00.250+00:00")) == "2026-11-23T09:00:00.250Z"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "", "x" * 65,
                                  "Europe/Berlin\n"])
def test_unknown_time_zones_are_refused(name):
    with pytest.raises(HubError) as refused:
        zone(name)
    assert refused.value.code.value == "invalid_timezone"


def test_cron_in_a_zone_fires_at_local_wall_time():
    nine_in_berlin = spec(cron="0 9 * * *", timezone="Europe/Berlin")
    assert first_fire(nine_in_berlin, NOW) == ms("2026-11-24T08:00:00+00:00")
    assert next_fire(nine_in_berlin, ms("2026-11-24T08:00:00+00:00")) == ms("2026-11-25T08:00:00+00:00")


def test_overdue_with_catch_up_sends_the_most_recent_and_records_the_rest_missed():
    minutely = spec(cron="* * * * *")
    first_due = NOW - 25 * 60_000            # 26 occurrences fell due: NOW-25min .. NOW
    plan = plan_overdue(minutely, first_due, NOW, grace_ms=60_000)
    assert len(plan.missed) == 26 - CATCH_UP_MAX
    assert plan.missed[0] == first_due and plan.next_due == NOW - (CATCH_UP_MAX - 1) * 60_000
    entry = missed_entry(plan, NOW, "n1", catch_up=True)
    assert entry == {"due_at": first_due, "last_due_at": plan.missed[-1], "state": "missed", "recorded_at": NOW,
                     "node": "n1", "reason": "catch_up_limit", "count": 26 - CATCH_UP_MAX}
    # the kept occurrences are then sent one by one
    assert plan_overdue(minutely, plan.next_due, NOW, 60_000).missed == []


def test_overdue_without_catch_up_records_everything_older_than_the_grace():
    minutely = spec(cron="* * * * *", catch_up=False)
    plan = plan_overdue(minutely, NOW - 5 * 60_000, NOW, grace_ms=90_000)
    assert plan.missed == [NOW - 5 * 60_000, NOW - 4 * 60_000, NOW - 3 * 60_000, NOW - 2 * 60_000]
    assert plan.next_due == NOW - 60_000     # within the grace: still sent
    assert missed_entry(plan, NOW, "n1", catch_up=False)["reason"] == "catch_up_off"
    late_one_shot = spec(at=NOW - 120_000, catch_up=False)
    assert plan_overdue(late_one_shot, NOW - 120_000, NOW, 60_000).missed == [NOW - 120_000]
    assert plan_overdue(late_one_shot, NOW - 120_000, NOW, 60_000).next_due is None
    assert plan_overdue(spec(at=NOW - 120_000), NOW - 120_000, NOW, 60_000).missed == []  # catch_up: sent late
    assert plan_overdue(spec(at=NOW - 59_000, catch_up=False), NOW - 59_000, NOW, 60_000).missed == []


def test_resume_skips_what_fell_due_while_paused():
    hourly = spec(cron="0 * * * *")
    assert resume_fire(hourly, ms("2026-11-23T09:30:00+00:00")) == ms("2026-11-23T10:00:00+00:00")
    assert resume_fire(hourly, ms("2026-11-23T10:00:00+00:00")) == ms("2026-11-23T10:00:00+00:00")
    assert resume_fire(spec(at=NOW - 1000), NOW) == NOW - 1000   # a passed one-shot is due at once
