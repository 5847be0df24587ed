"""The ops commands' tables, printed with rich (imported only when something is printed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.controls import ACCOUNT
from crypto_bot.domain.money import ZERO, plain

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot.domain.controls import Controls
    from crypto_bot_tools.ops.controls import ControlsChange
    from crypto_bot_tools.ops.rows import ExecutionRow, Holdings, SignalRow

__all__ = [
    "console",
    "escape",
    "nothing_done",
    "print_control",
    "print_controls",
    "print_executions",
    "print_holdings",
    "print_signals",
    "print_summary",
]

_STATUS_STYLE: Final = {
    "filled": "green",
    "rejected": "red",
    "failed": "bold red",
    "expired": "yellow",
    "ignored": "dim",
}
CONTROL_EVENTS: Final = 5  # the last changes of the controls positions shows
_EXECUTION_STYLE: Final = {"SUCCEEDED": "green", "FAILED": "bold red", "TIMED_OUT": "red", "ABORTED": "yellow"}


def console(*, stderr: bool = False) -> Console:
    """Return the console the commands print on: stdout, or stderr when stdout is kept for JSON."""
    from rich.console import Console

    # Wide enough for the tables when output goes to a pipe or a file.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=120)


def escape(text: str) -> str:
    """Escape rich markup in text that comes from data (reasons, names); rich loads only when printing."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_signals(rows: Sequence[SignalRow], console: Console) -> None:
    """Print signals as a table, oldest first."""
    from rich.table import Table

    table = Table(title=f"{len(rows)} signal{'s' if len(rows) != 1 else ''}", title_justify="left")
    # When the webhook queued it. A record without that time (stored before it was kept) shows when a cycle's
    # Collect stored it instead, marked, and the caption says so. The alert's own time is beside it.
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("alert time (UTC)", no_wrap=True)
    table.add_column("ticker", no_wrap=True)
    table.add_column("strategy", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("price", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("reason", overflow="fold")
    # Ids are UUIDs: eight characters tell them apart and leave the reason room; --json has them whole.
    table.add_column("id", no_wrap=True)
    if any(row.queued_at is None for row in rows):
        table.caption = "* when a cycle collected it: the time the webhook queued it was not recorded"
        table.caption_justify = "left"
    for row in rows:
        style = _STATUS_STYLE.get(row.status, "")
        status = f"[{style}]{escape(row.status)}[/]" if style else escape(row.status)
        received = _clock(row.queued_at) if row.queued_at else f"{_clock(row.received_at)}*"
        table.add_row(
            received,
            _clock(row.time),
            escape(row.ticker),
            escape(row.strategy),
            escape(row.action),
            escape(row.price),
            status,
            escape(row.reason),
            escape(row.id[:8]),
        )
    console.print(table)


def print_holdings(result: Holdings, console: Console) -> None:
    """Print the positions table, the ledger-against-balances table and any notes."""
    from rich.table import Table

    quote = f" ({result.quote})" if result.quote else ""
    table = Table(title="positions (ledger)", title_justify="left")
    for column in ("strategy", "symbol", "amount", f"cost basis{quote}", f"value{quote}", "weight"):
        table.add_column(column, justify="left" if column in ("strategy", "symbol") else "right", no_wrap=True)
    for p in result.positions:
        table.add_row(
            escape(p.strategy),
            escape(p.symbol),
            plain(p.amount),
            _money(p.cost_basis),
            "-" if p.value is None else _money(p.value),
            "-" if p.weight is None else f"{p.weight * 100:.2f}%",
        )
    if result.cash is not None:
        weight = f"{result.cash / result.equity * 100:.2f}%" if result.equity else "-"
        table.add_row(f"cash{quote}", "", "", "", _money(result.cash), weight)
    if result.equity is not None:
        table.add_row("[bold]equity", "", "", "", f"[bold]{_money(result.equity)}", "100.00%")
    console.print(table)
    if result.drift is not None:
        drift = Table(title="ledger against exchange balances", title_justify="left")
        for column in ("asset", "ledger", "balance", "drift"):
            drift.add_column(column, justify="left" if column == "asset" else "right", no_wrap=True)
        balances = result.balances or {}
        for asset, difference in result.drift.items():
            shown = "[green]0[/]" if difference == 0 else f"[bold red]{plain(difference)}[/]"
            drift.add_row(
                escape(asset),
                plain(result.ledger.get(asset, ZERO)),
                plain(balances.get(asset, ZERO)),
                shown,
            )
        console.print(drift)
    if result.controls is not None:
        print_controls(result.controls, console)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def print_control(change: ControlsChange, console: Console) -> None:
    """Print the sentence of what a pause, resume or flatten changed, and who it is recorded as."""
    style = "bold yellow" if change.changed else "dim"
    # One line however long, so that a script can read it: the terminal wraps it.
    console.print(f"[{style}]{escape(change.message)}[/]", highlight=False, soft_wrap=True)
    if change.changed:
        console.print(f"  recorded as {escape(change.by)}", highlight=False, soft_wrap=True)


def print_controls(controls: Controls, console: Console, *, events: int = CONTROL_EVENTS) -> None:
    """Print what holds entries back and the last ``events`` changes, only when something does.

    Nothing is printed while nothing is paused, tripped, cooling down or waiting to be flattened.
    """
    from rich.table import Table

    from crypto_bot_tools.ops.controls import is_active

    if not is_active(controls):
        return
    table = Table(title="controls: entries held back", title_justify="left")
    for column in ("scope", "state", "since (UTC)", "by", "why"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("why", "by"))
    if controls.paused:
        table.add_row("account", "[bold yellow]paused", _clock(controls.paused.at), escape(controls.paused.by),
                      escape(controls.paused.reason))  # fmt: skip
    for key, hold in sorted(controls.paused_strategies.items()):
        table.add_row(escape(key), "[bold yellow]paused", _clock(hold.at), escape(hold.by), escape(hold.reason))
    if controls.account_trip:
        trip = controls.account_trip
        table.add_row("account", "[bold red]guard tripped", _clock(trip.at), "", escape(trip.reason))
    for key, hold in sorted(controls.strategy_trips.items()):
        table.add_row(escape(key), "[bold red]guard tripped", _clock(hold.at), "", escape(hold.reason))
    for key, hold in sorted(controls.cooldowns.items()):
        table.add_row(escape(key), f"cooldown until {_clock(hold.at)}", "", "", escape(hold.reason))
    if controls.flatten:
        scope = ", ".join(controls.flatten.strategies) if controls.flatten.strategies is not None else "account"
        table.add_row(escape(scope), "[bold]flatten requested", _clock(controls.flatten.at),
                      escape(controls.flatten.by), "the next cycle sells these positions")  # fmt: skip
    console.print(table)
    if controls.events and events > 0:
        shown = controls.events[-events:]
        log = Table(title=f"last {len(shown)} control event{'s' if len(shown) != 1 else ''}", title_justify="left")
        for column in ("at (UTC)", "scope", "what", "detail"):
            log.add_column(column, overflow="fold", no_wrap=column != "detail")
        for event in shown:
            scope = "account" if event.scope == ACCOUNT else event.scope
            log.add_row(_clock(event.at), escape(scope), escape(event.what), escape(event.detail))
        console.print(log)


def print_executions(rows: Sequence[ExecutionRow], console: Console) -> None:
    """Print executions as a table, newest first, then each one's console link (long: kept out of the table)."""
    from rich.table import Table

    local = all(not r.url for r in rows) and bool(rows)
    table = Table(title=f"{len(rows)} execution{'s' if len(rows) != 1 else ''}", title_justify="left")
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("stopped (UTC)", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    if local:
        table.add_column("transitions", justify="right")
    for row in rows:
        took = f"{(row.stopped - row.started).total_seconds():.1f}s" if row.started and row.stopped else ""
        cells = [escape(row.name), _execution_status(row.status), _clock(row.started), _clock(row.stopped), took]
        if local:
            cells.append("" if row.transitions is None else str(row.transitions))
        table.add_row(*cells)
    console.print(table)
    for row in rows:
        if row.url:
            # soft_wrap: a URL broken over lines cannot be clicked or copied.
            console.print(f"{escape(row.name)}: {row.url}\n  {row.arn}", soft_wrap=True, highlight=False)


def print_summary(status: str, summary: Mapping[str, Any], console: Console, *, took: float | None = None) -> None:
    """Print an execution's final status and its cycle summary, one line per key."""
    from rich.table import Table

    console.print(
        f"execution {_execution_status(status)}" + (f" in {took:.1f}s" if took is not None else ""), highlight=False
    )
    if not summary:
        return
    empty = nothing_done(summary)
    if empty is not None:
        console.print(empty, highlight=False)
        return
    table = Table(show_header=False, title="summary", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if isinstance(value, Mapping):
            text = ", ".join(f"{k} {_scalar(v)}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            text = ", ".join(_scalar(v) for v in value) or "-"
        else:
            text = _scalar(value)
        table.add_row(escape(str(key)), escape(text))
    console.print(table)


def nothing_done(summary: Mapping[str, Any]) -> str | None:
    """Say in a sentence that a cycle had nothing to do, or return None for a summary of a cycle that ran.

    A cycle with no pending signal ends at NothingToDo, whose output is Collect's state (``cycle``: its id,
    ``pending`` 0, the lock lease it did not need): the operator's answer is that nothing was pending.
    """
    cycle = summary.get("cycle")
    if not isinstance(cycle, Mapping) or cycle.get("pending") != 0:
        return None
    return f"nothing to do: no signal was pending, so cycle {cycle.get('cycle_id', '?')} traded nothing"


def _execution_status(status: str) -> str:
    style = _EXECUTION_STYLE.get(status.upper(), "")
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    return str(value)


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else ""


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"
