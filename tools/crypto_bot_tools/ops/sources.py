"""Where the ops commands read from: one protocol, an AWS stack or ``crypto-bot local`` behind it.

Each command asks its :class:`Source` and renders the answer, with no branch on where the
stack runs: :class:`~crypto_bot_tools.ops.aws_source.AwsSource` reads a deployed stack through
boto3, :class:`~crypto_bot_tools.ops.local_source.LocalSource` reads ``crypto-bot local`` over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot_tools.ops.controls import ControlsChange
    from crypto_bot_tools.ops.rows import CycleOutcome, CycleRow, ExecutionPath, ExecutionRow, Holdings, SignalRow

__all__ = ["Source"]


class Source(Protocol):
    """A running stack, as the ops commands read and drive it."""

    def signals(self, limit: int) -> list[SignalRow]:
        """Return the ``limit`` most recent signals, oldest first."""
        ...

    def holdings(self, config_path: Path | None, *, with_prices: bool, with_balances: bool) -> Holdings:
        """Return the strategies' positions, valued unless ``with_prices`` is off, against the balances."""
        ...

    def executions(self, limit: int) -> list[ExecutionRow]:
        """Return the ``limit`` most recent executions of the trade-cycle state machine, newest first."""
        ...

    def execution_path(self, name: str) -> ExecutionPath:
        """Return the states execution ``name`` entered, in order, and the id of the cycle it opened."""
        ...

    def cycles(self, limit: int) -> list[CycleRow]:
        """Return the ``limit`` most recent cycle records, oldest first, each with its intents."""
        ...

    def cycle(self, console: Console, *, follow: bool, poll: float, timeout: float | None) -> CycleOutcome:
        """Start a manual cycle now and, when ``follow``, print each state it enters on ``console`` until it ends."""
        ...

    def apply_control(
        self, command: str, *, strategy: str | None, reason: str, config_path: Path | None
    ) -> ControlsChange:
        """Apply the operator's ``command`` (pause, resume, flatten) to the controls record and tell the trader.

        ``strategy`` (None: the whole account) must be a key of the stack's strategy config.
        """
        ...
