"""Human output of the CLI: rich tables per cycle, the mode comparison, the equity plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.replay import ReplayResult, Summary


def _fmt(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _amount(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text if text != "-0" else "0"


def console_for_output() -> Console:
    """A console wide enough for the tables when output goes to a pipe or a file."""
    return Console() if sys.stdout.isatty() else Console(width=120)


def print_replay(result: ReplayResult, config: StrategyConfig, console: Console | None = None) -> None:
    """Print each cycle's orders and the portfolio after it."""
    console = console or console_for_output()
    console.rule(f"[bold]replay · {result.mode.value} mode · start {_fmt(result.starting_cash)} {config.quote}")
    for cycle in result.cycles:
        report = cycle.report
        kind = "stop-loss cycle" if report.urgent else "cycle"
        orders = Table(title=f"{kind} {report.at:%Y-%m-%d %H:%M} UTC", title_justify="left")
        for column in ("strategy", "order", "filled", "limit", "cost", "fee", "status"):
            orders.add_column(column, justify="left" if column in ("strategy", "order", "status") else "right")
        for r in report.results:
            asked = r.intent.amount
            filled = _amount(r.filled) if r.filled == asked else f"{_amount(r.filled)} of {_amount(asked)}"
            status = r.status.value + (f": {r.reason}" if r.reason else "")
            orders.add_row(
                r.strategy,
                f"{r.side.value} {r.purpose.value.replace('_', '-')}",
                filled,
                _fmt(r.intent.limit_price),
                _fmt(r.cost),
                _fmt(sum((f.cost for f in r.fees), Decimal(0)), 4),
                status,
            )
        for outcome in report.outcomes:
            if outcome.status.value == "ignored" and not any(r.strategy == outcome.strategy for r in report.results):
                orders.add_row(outcome.strategy, "-", "", "", "", "", f"ignored: {outcome.reason}")
        console.print(orders)
        portfolio = Table(show_header=True)
        for column in ("holding", "amount", "cost basis", "value", "weight"):
            portfolio.add_column(column, justify="left" if column == "holding" else "right")
        for key, p in cycle.positions.items():
            portfolio.add_row(
                f"{key} ({p.symbol})",
                _amount(p.amount),
                _fmt(p.cost_basis),
                _fmt(p.value),
                f"{p.weight * 100:.2f}%",
            )
        cash_weight = cycle.cash / cycle.equity * 100 if cycle.equity else Decimal(0)
        portfolio.add_row(f"cash ({config.quote})", "", "", _fmt(cycle.cash), f"{cash_weight:.2f}%")
        portfolio.add_row("[bold]equity", "", "", f"[bold]{_fmt(cycle.equity)}", "100.00%")
        console.print(portfolio)
    for rejection in result.rejected:
        console.print(f"[red]rejected[/red] {rejection.source}: {rejection.reason()}")


def print_rejections_json(result: ReplayResult) -> None:
    """Report rejected alerts on stderr, so stdout stays one JSON object per cycle."""
    for rejection in result.rejected:
        print(json.dumps({"rejected": rejection.source, "reason": rejection.reason()}), file=sys.stderr)


def print_comparison(summaries: Sequence[Summary], quote: str, console: Console | None = None) -> None:
    """Print the headline figures of each mode side by side."""
    console = console or console_for_output()
    table = Table(title="mode comparison", title_justify="left")
    table.add_column("")
    for s in summaries:
        table.add_column(s.mode.value, justify="right")
    rows = [
        (f"final equity ({quote})", [_fmt(s.final_equity) for s in summaries]),
        ("return", [f"{s.total_return * 100:.2f}%" for s in summaries]),
        ("max drawdown", [f"{s.max_drawdown * 100:.2f}%" for s in summaries]),
        ("orders filled", [str(s.orders) for s in summaries]),
        (f"turnover ({quote})", [_fmt(s.turnover) for s in summaries]),
        (f"fees ({quote})", [_fmt(s.fees, 4) for s in summaries]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    console.print(table)


def plot_equity(results: Sequence[ReplayResult], out: Path) -> None:
    """Write each mode's equity curve to a PNG (needs the optional ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.dates import date2num
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib: install the extra with `uv sync --extra plot`") from e
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for result in results:
        times = date2num([c.report.at for c in result.cycles])
        equity = [float(c.equity) for c in result.cycles]
        ax.step(times, equity, where="post", label=result.mode.value)
    ax.set_ylabel(f"equity ({results[0].quote})")
    ax.set_title("equity after each cycle")
    ax.xaxis_date()
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
