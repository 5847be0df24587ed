"""Timeframes and the cycle schedule: when bars close and when a cycle runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_UNITS = {"m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Timeframe:
    """A bar length such as ``15m``, ``8h`` or ``1d``; bars are aligned to UTC midnight."""

    seconds: int
    label: str

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Parse ``<n>m``, ``<n>h`` or ``<n>d``; raise ValueError naming the text otherwise."""
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"timeframe {text!r} is not of the form <n>m, <n>h or <n>d (e.g. 15m, 8h, 1d)")
        count, unit = int(match.group(1)), match.group(2)
        seconds = count * _UNITS[unit]
        if seconds <= 0:
            raise ValueError(f"timeframe {text!r} must be longer than zero")
        if 86400 % seconds and seconds % 86400:
            raise ValueError(f"timeframe {text!r} does not divide a day evenly, so bars would drift")
        return cls(seconds=seconds, label=f"{count}{unit}")

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Schedule:
    """Cycle ticks: every bar close of ``timeframe`` plus ``offset`` (default one minute)."""

    timeframe: Timeframe
    offset: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.offset < self.timeframe.delta:
            raise ValueError(f"schedule offset {self.offset} must be in [0, {self.timeframe.label})")

    def tick_at_or_before(self, moment: datetime) -> datetime:
        """Return the last cycle tick at or before ``moment`` (an aware datetime)."""
        tick = self.tick_at_or_after(moment)
        return tick if tick == moment else tick - self.timeframe.delta

    def tick_at_or_after(self, moment: datetime) -> datetime:
        """Return the first cycle tick at or after ``moment`` (an aware datetime)."""
        if moment.tzinfo is None:
            raise ValueError(f"time {moment.isoformat()} has no timezone")
        shifted = moment.astimezone(UTC) - self.offset - EPOCH
        bars = shifted // self.timeframe.delta
        tick = EPOCH + bars * self.timeframe.delta + self.offset
        if tick < moment:
            tick += self.timeframe.delta
        return tick


# TradingView's {{interval}} placeholder: minutes as a bare number ("1", "60", "480"), or a count with a
# letter for seconds, days, weeks and months ("30S", "1D", "D", "1W", "1M"), as its alert help documents.
_TRADINGVIEW_INTERVAL = re.compile(r"^(\d*)([SDWM]?)$")
_TRADINGVIEW_UNITS = {"": 60, "S": 1, "D": 86400, "W": 7 * 86400}


def tradingview_interval_seconds(text: str) -> int | None:
    """Return the length in seconds of a TradingView ``{{interval}}`` value, or None if it is not one.

    Months ("1M") have no fixed length and are returned as None too, as is anything else.
    """
    match = _TRADINGVIEW_INTERVAL.fullmatch(text.strip().upper())
    if match is None or match.group(2) == "M" or (not match.group(1) and not match.group(2)):
        return None
    count = int(match.group(1) or "1")
    return count * _TRADINGVIEW_UNITS[match.group(2)] if count > 0 else None
