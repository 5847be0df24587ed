"""What the pages show, read from a :class:`~crypto_bot_tools.ops.sources.Source` and kept for a few seconds.

Every open page polls: the answers are kept for ``ttl`` seconds, so two tabs cost a deployed stack no more
reads than one. The cycles may be kept longer (``cycles_ttl``): on a deployed stack they are a scan of the
table. An execution's path is kept for good once the execution has ended (its history is final). A failed
read is an answer too (:class:`Reading` with its ``error``): the page says it, and the next poll tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.errors import CryptoBotError
from crypto_bot_tools.ops.rows import CycleRow, ExecutionPath, ExecutionRow, Holdings, SignalRow
from crypto_bot_tools.ops.sources import Source

__all__ = ["CYCLES_SHOWN", "EXECUTIONS_SHOWN", "SIGNALS_READ", "ExecutionView", "Reading", "StackReader"]

SIGNALS_READ: Final = 500  # the newest signals, as `crypto-bot signals --limit` reads by default
CYCLES_SHOWN: Final = 100
EXECUTIONS_SHOWN: Final = 20


@dataclass(frozen=True)
class Reading[T]:
    """One answer of the source: its value, or why there is none."""

    value: T | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExecutionView:
    """An execution with the states it entered (None when they could not be read: ``path_error`` says why)."""

    row: ExecutionRow
    path: ExecutionPath | None
    path_error: str | None = None


class StackReader:
    """Read the stack through ``source``, each answer kept ``ttl`` seconds; ``errors`` wraps every call.

    ``errors`` turns the vendor's exceptions into :class:`CryptoBotError` (``aws_errors`` for a deployed stack).
    """

    def __init__(
        self,
        source: Source,
        *,
        ttl: float,
        cycles_ttl: float | None = None,
        config_path: Path | None = None,
        errors: Callable[[], AbstractContextManager[None]] = nullcontext,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.cycles_ttl = ttl if cycles_ttl is None else cycles_ttl
        self.config_path = config_path
        self.errors = errors
        self.clock = clock
        self._kept: dict[str, tuple[float, Reading[Any]]] = {}
        self._paths: dict[str, ExecutionPath] = {}
        # One call at a time: boto3 builds its clients lazily, and not thread-safely.
        self._lock = threading.RLock()

    def holdings(self) -> Reading[Holdings]:
        """The positions valued, the balances, cash, equity and the controls."""
        return self._kept_for(
            "holdings",
            lambda: self.source.holdings(self.config_path, with_prices=True, with_balances=True),
        )

    def signals(self) -> Reading[list[SignalRow]]:
        """The newest signals, oldest first."""
        return self._kept_for("signals", lambda: self.source.signals(SIGNALS_READ))

    def cycles(self) -> Reading[list[CycleRow]]:
        """The newest cycle records with their intents, oldest first."""
        return self._kept_for("cycles", lambda: self.source.cycles(CYCLES_SHOWN), self.cycles_ttl)

    def executions(self) -> Reading[list[ExecutionView]]:
        """The newest executions, newest first, each with its state path."""
        return self._kept_for("executions", self._executions)

    def forget(self) -> None:
        """Drop every kept answer (after a control changed the stack)."""
        with self._lock:
            self._kept.clear()

    def call[T](self, read: Callable[[], T]) -> T:
        """Run one call of the source under the lock and ``errors`` (for the controls, which are not kept)."""
        with self._lock, self.errors():
            return read()

    def _executions(self) -> list[ExecutionView]:
        views = []
        for row in self.source.executions(EXECUTIONS_SHOWN):
            path = self._paths.get(row.name)
            if path is None:
                try:
                    path = self.source.execution_path(row.name)
                except CryptoBotError as e:
                    views.append(ExecutionView(row, None, f"{type(e).__name__}: {e}"))
                    continue
                if row.status != "RUNNING":
                    self._paths[row.name] = path
            views.append(ExecutionView(row, path))
        return views

    def _kept_for[T](self, key: str, read: Callable[[], T], ttl: float | None = None) -> Reading[T]:
        with self._lock:
            now = self.clock()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < (self.ttl if ttl is None else ttl):
                return kept[1]
            try:
                with self.errors():
                    reading: Reading[T] = Reading(read())
            except CryptoBotError as e:
                reading = Reading(error=f"{type(e).__name__}: {e}")
            self._kept[key] = (now, reading)
            return reading
