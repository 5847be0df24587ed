"""The ops commands' tables, printed with rich (imported only when something is printed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.money import ZERO, plain

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot_tools.ops.rows import ExecutionRow, Holdings, SignalRow

__all__ = [
    "console",
    "escape",
    "nothing_done",
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
_EXECUTION_STYLE: Final = {"SUCCEEDED": "green", "FAILED": "bold red", "TIMED_OUT": "red", "ABORTED": "yellow"}


def console() -> Console:
    """Return the console the commands print on."""
    from rich.console import Console

    # Wide enough for the tables when output goes to a pipe or a file.
    return Console() if sys.stdout.isatty() else Console(width=120)


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
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


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
