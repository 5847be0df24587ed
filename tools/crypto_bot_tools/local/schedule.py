"""EventBridge Scheduler expressions, evaluated locally: ``cron(...)``, ``rate(...)`` and ``at(...)``.

The local stack starts scheduled cycles from the template's ``ScheduleExpression`` (e.g.
``cron(1 0/8 * * ? *)``: one minute past 00:00, 08:00 and 16:00 UTC). AWS cron has six
fields: minutes, hours, day-of-month, month, day-of-week (1-7 = SUN-SAT) and year, with
``*``, ``,``, ``-`` and ``/``; one of day-of-month and day-of-week must be ``?``.
Day-of-month ``L`` (the last day) is supported; ``W`` and ``#`` are refused, not guessed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Protocol

__all__ = ["CronSchedule", "OneTimeSchedule", "RateSchedule", "Schedule", "parse_schedule"]

# Spelled out: calendar.month_abbr follows the locale, AWS names do not.
_MONTHS: Final = {
    name: i
    for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_DAYS: Final = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
_LAST_YEAR: Final = 2199


class Schedule(Protocol):
    """When a schedule fires next."""

    def next_after(self, moment: datetime) -> datetime | None:
        """Return the first firing time strictly after ``moment``, or None if it never fires again."""
        ...


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int]:
    """Expand one cron field (``*``, ``a``, ``a-b``, ``a/s``, ``a-b/s``, ``*/s``, comma lists) to its values."""

    def number(token: str) -> int:
        value = names.get(token.upper()) if not token.isdigit() else int(token)
        if value is None or not low <= value <= high:
            raise ValueError(f"{what}: {token!r} is not in {low}-{high}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{what}: step {step_text!r} must be a positive whole number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise ValueError(f"{what}: range {base!r} runs backwards")
        else:
            start = number(base)
            end = high if step_text else start  # `a/s` runs from a to the field's end
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """An AWS cron expression, evaluated in ``zone`` (UTC unless the schedule names a timezone)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: `?`
    last_day_of_month: bool
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # None: `?`; 1 = Sunday, as AWS counts
    years: frozenset[int]
    zone: tzinfo = UTC

    @classmethod
    def parse(cls, fields: str, zone: tzinfo = UTC) -> CronSchedule:
        """Parse the six fields inside ``cron(...)``; raise ValueError naming the bad field."""
        parts = fields.split()
        if len(parts) != 6:
            raise ValueError(f"cron({fields}): expected 6 fields (minutes hours day-of-month month day-of-week year)")
        minute, hour, dom, month, dow, year = parts
        for text, what in ((dom, "day-of-month"), (dow, "day-of-week")):
            if "W" in text.upper() or "#" in text or (what == "day-of-week" and "L" in text.upper()):
                raise ValueError(f"cron({fields}): {what} {text!r} uses W, # or L, which the local scheduler lacks")
        if (dom == "?") == (dow == "?"):
            raise ValueError(f"cron({fields}): exactly one of day-of-month and day-of-week must be ?")
        last = dom.upper() == "L"
        return cls(
            minutes=_field(minute, 0, 59, {}, "minutes"),
            hours=_field(hour, 0, 23, {}, "hours"),
            days_of_month=None if dom == "?" else frozenset() if last else _field(dom, 1, 31, {}, "day-of-month"),
            last_day_of_month=last,
            months=_field(month, 1, 12, _MONTHS, "month"),
            days_of_week=None if dow == "?" else _field(dow, 1, 7, _DAYS, "day-of-week"),
            years=_field(year, 1970, _LAST_YEAR, {}, "year"),
            zone=zone,
        )

    def _day_matches(self, day: date) -> bool:
        if self.days_of_week is not None:
            return (day.weekday() + 1) % 7 + 1 in self.days_of_week  # Python: Monday 0; AWS: Sunday 1
        if self.last_day_of_month:
            return day.day == calendar.monthrange(day.year, day.month)[1]
        return self.days_of_month is not None and day.day in self.days_of_month

    def next_after(self, moment: datetime) -> datetime | None:
        """Return the first firing time strictly after ``moment`` (whole minutes), or None after the last year."""
        local = moment.astimezone(self.zone)
        start = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        times = sorted((h, m) for h in self.hours for m in self.minutes)
        for year in sorted(y for y in self.years if y >= start.year):
            for month in sorted(m for m in self.months if (year, m) >= (start.year, start.month)):
                first_day = start.day if (year, month) == (start.year, start.month) else 1
                for day_number in range(first_day, calendar.monthrange(year, month)[1] + 1):
                    day = date(year, month, day_number)
                    if not self._day_matches(day):
                        continue
                    for hour, minute in times:
                        candidate = datetime(year, month, day_number, hour, minute, tzinfo=self.zone)
                        if candidate >= start:
                            return candidate
        return None


@dataclass(frozen=True)
class RateSchedule:
    """``rate(value unit)``: every ``period``, counted from ``anchor`` (when the schedule was created)."""

    period: timedelta
    anchor: datetime

    def next_after(self, moment: datetime) -> datetime:
        """Return the first tick strictly after ``moment``."""
        if moment < self.anchor:
            return self.anchor + self.period
        elapsed = (moment - self.anchor) // self.period
        return self.anchor + (elapsed + 1) * self.period


@dataclass(frozen=True)
class OneTimeSchedule:
    """``at(yyyy-mm-ddThh:mm:ss)``: once."""

    when: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        """Return the one firing time if it is still ahead."""
        return self.when if self.when > moment else None


_EXPRESSION: Final = re.compile(r"^\s*(cron|rate|at)\((.*)\)\s*$", re.S)
_RATE_UNITS: Final[dict[str, Callable[[int], timedelta]]] = {
    "minute": lambda n: timedelta(minutes=n),
    "hour": lambda n: timedelta(hours=n),
    "day": lambda n: timedelta(days=n),
}


def parse_schedule(expression: str, *, anchor: datetime, zone: tzinfo = UTC) -> Schedule:
    """Parse an EventBridge Scheduler expression; raise ValueError saying what is wrong with it."""
    found = _EXPRESSION.match(expression)
    if not found:
        raise ValueError(f"{expression!r}: expected cron(...), rate(...) or at(...)")
    kind, body = found.group(1), found.group(2).strip()
    if kind == "cron":
        return CronSchedule.parse(body, zone)
    if kind == "rate":
        value, _, unit = body.partition(" ")
        unit = unit.strip().lower()
        if not value.isdigit() or int(value) < 1 or unit.removesuffix("s") not in _RATE_UNITS:
            raise ValueError(f"rate({body}): expected a positive whole number and minute(s), hour(s) or day(s)")
        return RateSchedule(_RATE_UNITS[unit.removesuffix("s")](int(value)), anchor)
    try:
        when = datetime.fromisoformat(body)
    except ValueError:
        raise ValueError(f"at({body}): expected yyyy-mm-ddThh:mm:ss") from None
    return OneTimeSchedule(when.replace(tzinfo=zone) if when.tzinfo is None else when)
