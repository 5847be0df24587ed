"""A fake clock for the workflow: its ``clock`` and ``sleep`` in one, where sleeping moves time forward at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)  # one minute past a bar of the 8h timeframe


@dataclass
class Clock:
    """The workflow's clock and sleep: sleeping moves time forward at once."""

    now: datetime = T0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
