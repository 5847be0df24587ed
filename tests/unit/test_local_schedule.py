"""EventBridge Scheduler expressions as the local stack evaluates them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crypto_bot_tools.local.schedule import CronSchedule, parse_schedule
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

ANCHOR = datetime(2024, 8, 10, 2, 30, 2, tzinfo=UTC)


def firings(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = parse_schedule(expression, anchor=start)
    moments: list[datetime] = []
    moment = start
    for _ in range(count):
        following = schedule.next_after(moment)
        assert following is not None
        moments.append(following)
        moment = following
    return moments


def test_template_schedule_fires_one_minute_after_each_8h_bar() -> None:
    expression = load_template(ROOT / "template.yaml")["Parameters"]["CycleSchedule"]["Default"]

    assert firings(expression, ANCHOR, 4) == [
        datetime(2024, 8, 10, 8, 1, tzinfo=UTC),
        datetime(2024, 8, 10, 16, 1, tzinfo=UTC),
        datetime(2024, 8, 11, 0, 1, tzinfo=UTC),
        datetime(2024, 8, 11, 8, 1, tzinfo=UTC),
    ]


def test_a_firing_time_itself_is_not_after_itself() -> None:
    tick = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)

    assert parse_schedule("cron(1 0/8 * * ? *)", anchor=tick).next_after(tick) == tick + timedelta(hours=8)


def test_weekday_names_count_sunday_as_1() -> None:
    # 2024-08-10 is a Saturday.
    assert firings("cron(0 12 ? * MON-FRI *)", ANCHOR, 2) == [
        datetime(2024, 8, 12, 12, 0, tzinfo=UTC),
        datetime(2024, 8, 13, 12, 0, tzinfo=UTC),
    ]
    assert firings("cron(0 9 ? * 1 *)", ANCHOR, 1) == [datetime(2024, 8, 11, 9, 0, tzinfo=UTC)]


def test_lists_ranges_steps_months_and_years() -> None:
    assert firings("cron(0,30 6-7 1 JAN,JUL ? 2025)", ANCHOR, 5) == [
        datetime(2025, 1, 1, 6, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 6, 30, tzinfo=UTC),
        datetime(2025, 1, 1, 7, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 7, 30, tzinfo=UTC),
        datetime(2025, 7, 1, 6, 0, tzinfo=UTC),
    ]
    assert firings("cron(*/20 * * * ? *)", ANCHOR, 2) == [
        datetime(2024, 8, 10, 2, 40, tzinfo=UTC),
        datetime(2024, 8, 10, 3, 0, tzinfo=UTC),
    ]


def test_last_day_of_month_handles_leap_years() -> None:
    start = datetime(2024, 2, 10, tzinfo=UTC)

    assert firings("cron(0 0 L * ? *)", start, 2) == [
        datetime(2024, 2, 29, tzinfo=UTC),
        datetime(2024, 3, 31, tzinfo=UTC),
    ]


def test_schedule_past_its_last_year_never_fires_again() -> None:
    assert parse_schedule("cron(0 0 1 1 ? 2020)", anchor=ANCHOR).next_after(ANCHOR) is None


def test_timezone_is_applied_to_the_wall_clock() -> None:
    zone = ZoneInfo("Europe/Berlin")
    schedule = CronSchedule.parse("0 9 * * ? *", zone)

    assert schedule.next_after(ANCHOR) == datetime(2024, 8, 10, 7, 0, tzinfo=UTC)


def test_rate_counts_from_the_anchor() -> None:
    schedule = parse_schedule("rate(5 minutes)", anchor=ANCHOR)

    assert schedule.next_after(ANCHOR) == ANCHOR + timedelta(minutes=5)
    assert schedule.next_after(ANCHOR + timedelta(minutes=7)) == ANCHOR + timedelta(minutes=10)
    assert parse_schedule("rate(1 day)", anchor=ANCHOR).next_after(ANCHOR) == ANCHOR + timedelta(days=1)


def test_at_fires_once() -> None:
    schedule = parse_schedule("at(2024-08-10T09:00:00)", anchor=ANCHOR)

    assert schedule.next_after(ANCHOR) == datetime(2024, 8, 10, 9, 0, tzinfo=UTC)
    assert schedule.next_after(datetime(2024, 8, 10, 9, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(1 0/8 * * *)", "expected 6 fields"),
        ("cron(1 0/8 * * * *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(1 0/8 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(60 * * * ? *)", "minutes: '60' is not in 0-59"),
        ("cron(0 0 15W * ? *)", "W, # or L"),
        ("cron(0 0 ? * 6#3 *)", "W, # or L"),
        ("cron(0 0/0 * * ? *)", "step '0'"),
        ("cron(0 5-2 * * ? *)", "runs backwards"),
        ("cron(0 0 * FOO ? *)", "month: 'FOO'"),
        ("rate(0 minutes)", "positive whole number"),
        ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
        ("every 5 minutes", "expected cron(...), rate(...) or at(...)"),
        ("at(tomorrow)", "yyyy-mm-ddThh:mm:ss"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_schedule(expression, anchor=ANCHOR)
