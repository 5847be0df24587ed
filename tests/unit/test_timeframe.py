from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crypto_bot.domain.timeframe import Schedule, Timeframe


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "tick"),
    [
        ("2024-08-10T02:30:02", "2024-08-10T08:01:00"),
        ("2024-08-10T08:00:02", "2024-08-10T08:01:00"),  # alert on bar close: the tick one minute later
        ("2024-08-10T08:01:00", "2024-08-10T08:01:00"),  # exactly on a tick belongs to that tick
        ("2024-08-10T08:01:01", "2024-08-10T16:01:00"),
        ("2024-08-10T23:59:59", "2024-08-11T00:01:00"),
        ("2024-08-10T00:00:30", "2024-08-10T00:01:00"),
    ],
)
def test_an_alert_belongs_to_the_first_8h_tick_at_or_after_it(moment: str, tick: str) -> None:
    schedule = Schedule(Timeframe.parse("8h"))
    assert schedule.tick_at_or_after(at(moment)) == at(tick)


def test_daily_ticks_run_one_minute_after_midnight() -> None:
    schedule = Schedule(Timeframe.parse("1d"))
    assert schedule.tick_at_or_after(at("2024-08-10T12:00:00")) == at("2024-08-11T00:01:00")


def test_offset_is_configurable() -> None:
    schedule = Schedule(Timeframe.parse("15m"), timedelta(seconds=30))
    assert schedule.tick_at_or_after(at("2024-08-10T12:07:00")) == at("2024-08-10T12:15:30")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        Schedule(Timeframe.parse("8h")).tick_at_or_after(datetime(2024, 8, 10))  # noqa: DTZ001


@pytest.mark.parametrize("text", ["0h", "7h", "100m", "1w", "", "h"])
def test_unsupported_timeframes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        Timeframe.parse(text)


def test_offset_must_be_shorter_than_the_timeframe() -> None:
    with pytest.raises(ValueError, match="must be in"):
        Schedule(Timeframe.parse("1h"), timedelta(hours=1))
