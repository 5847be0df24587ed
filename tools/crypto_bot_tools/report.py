"""Human output of the CLI: rich tables per cycle, the mode comparison, the equity chart."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.money import to_json_number
from crypto_bot_tools.charts import MarkerKind, Series
from crypto_bot_tools.cycle import PositionView, equity_and_positions
from crypto_bot_tools.replay import ReplayResult, Summary


@dataclass(frozen=True)
class Closing:
    """The account after the last cycle valued at the trade lists' last closes (their ``Open`` rows)."""

    prices: dict[str, Decimal]  # the last close per symbol that has one
    cash: Decimal
    equity: Decimal
    positions: dict[str, PositionView]

    def to_json(self) -> dict[str, Any]:
        """Shape the valuation as ``--json`` prints it: a cycle's portfolio fields under ``closing``."""
        return {
            "closing": {
                "prices": {symbol: to_json_number(price) for symbol, price in sorted(self.prices.items())},
                "cash": to_json_number(self.cash),
                "equity": to_json_number(self.equity),
                "positions": {key: p.to_json() for key, p in self.positions.items()},
            }
        }


def value_at_last_close(
    result: ReplayResult, config: StrategyConfig, closes: Mapping[str, tuple[Decimal, datetime | None]]
) -> Closing | None:
    """Value the account after the last cycle at ``closes`` (symbol → price and its time, if known).

    A trade still open at the end of a TradingView backtest is otherwise valued at the last alert price of its
    symbol, its entry: the export's ``Open`` row says what the position was worth when the backtest ended. A
    close dated before the last cycle is older than that cycle's price and is not used. Return None when no
    close applies.
    """
    if not result.cycles:
        return None
    last = result.cycles[-1].report.at
    applied = {symbol: price for symbol, (price, at) in closes.items() if at is None or at >= last}
    if not applied:
        return None
    prices = {**result.exchange.prices, **applied}
    cash, equity, positions = equity_and_positions(config, result.ledger, result.exchange.fetch_balances(), prices)
    return Closing(applied, cash, equity, positions)


def with_closing(summary: Summary, result: ReplayResult, closing: Closing | None) -> Summary:
    """Return ``summary`` with its final equity, return and drawdown taken at the closing valuation."""
    if closing is None:
        return summary
    peak = max([result.starting_cash, *(c.equity for c in result.cycles)])
    drawdown = (peak - closing.equity) / peak if peak else Decimal(0)
    start = result.starting_cash
    return replace(
        summary,
        final_equity=closing.equity,
        total_return=(closing.equity / start - 1) if start else Decimal(0),
        max_drawdown=max(summary.max_drawdown, drawdown),
    )


def comparison_json(summaries: Sequence[Summary]) -> dict[str, Any]:
    """Shape the mode comparison as ``--json --compare`` prints it, after the cycles: one object, by mode."""
    return {
        "comparison": {
            s.name: {
                "final_equity": to_json_number(s.final_equity),
                "return": to_json_number(s.total_return),
                "max_drawdown": to_json_number(s.max_drawdown),
                "orders": s.orders,
                "turnover": to_json_number(s.turnover),
                "fees": to_json_number(s.fees),
            }
            for s in summaries
        }
    }


def print_closing(closing: Closing, quote: str, console: Console | None = None) -> None:
    """Print the account valued at the trade lists' last closes."""
    console = console or console_for_output()
    shown = ", ".join(f"{symbol} {_fmt(price)}" for symbol, price in sorted(closing.prices.items()))
    table = Table(title=f"open trades at the trade list's last close ({shown})", title_justify="left")
    for column in ("holding", "amount", "cost basis", "value", "weight"):
        table.add_column(column, justify="left" if column == "holding" else "right")
    for key, p in closing.positions.items():
        table.add_row(
            f"{key} ({p.symbol})", _amount(p.amount), _fmt(p.cost_basis), _fmt(p.value), f"{p.weight * 100:.2f}%"
        )
    cash_weight = closing.cash / closing.equity * 100 if closing.equity else Decimal(0)
    table.add_row(f"cash ({quote})", "", "", _fmt(closing.cash), f"{cash_weight:.2f}%")
    table.add_row("[bold]equity", "", "", f"[bold]{_fmt(closing.equity)}", "100.00%")
    console.print(table)


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
        table.add_column(s.name, justify="right")
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


# Marker styles by kind: matplotlib marker, colour, size, and points below (-) or above (+) the curve, so that
# an entry and an exit of the same cycle do not cover each other.
_MARKERS: dict[MarkerKind, tuple[str, str, float, float]] = {
    MarkerKind.ENTRY: ("^", "#2ca02c", 60, -7),
    MarkerKind.SELL_DOWN: ("v", "#98df8a", 40, 7),
    MarkerKind.EXIT: ("v", "#d62728", 60, 7),
    MarkerKind.STOP_LOSS: ("X", "#8b0000", 80, 8),
    MarkerKind.PROTECTIVE_STOP: ("s", "#9467bd", 50, 8),
}


def plot_equity(curves: Sequence[Series], out: Path, quote: str, *, backtest: Series | None = None) -> None:
    """Draw the equity chart to a PNG: the curves (the first with its trades marked), drawdown, % return.

    Curves named alike ("boost", "boost without protections") share a colour, the later ones dotted.

    ``backtest`` is TradingView's own curve from a ``--trades`` export, dashed on the same axes. The series are
    computed by :mod:`crypto_bot_tools.charts`; this only draws them (needs the optional ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.ticker import FuncFormatter, PercentFormatter
        from matplotlib.transforms import offset_copy
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib: install the extra with `uv sync --extra plot`") from e
    drawn = [s for s in curves if s.points]
    if not drawn:
        raise ConfigError(f"--plot {out}: nothing to draw: no alert reached a cycle")
    start = float(drawn[0].starting_cash)
    fig, (ax, dd) = plt.subplots(
        2, 1, figsize=(10, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    # Blue and orange first, clear of the markers' green and red; a mode's variant (without protections) takes
    # its mode's colour, dotted.
    palette = ["#1f77b4", "#ff7f0e", "#17becf", "#bcbd22", "#7f7f7f", "#e377c2"]
    families: dict[str, str] = {}
    lines = []
    for i, s in enumerate(drawn):
        family = s.name.split()[0] if s.name else str(i)
        variant = family in families
        colour = families.setdefault(family, palette[len(families) % len(palette)])
        lines.append((s, colour, i == 0, ":" if variant else "-"))
    if backtest is not None and backtest.points:
        lines.append((backtest, "black", False, "--"))
    for series, colour, primary, style in lines:
        times = [p.at for p in series.points]
        label = f"{series.name} (backtest)" if series is backtest else series.name
        width = 2.0 if primary else 1.2
        ax.step(
            times,
            [float(p.value) for p in series.points],
            where="post",
            color=colour,
            lw=width,
            ls=style,
            label=label,
            alpha=1.0 if primary or series is backtest else 0.85,
            zorder=3 if primary else 2,
        )
        falls = [float(p.value) for p in series.drawdown]
        dd.step(times, falls, where="post", color=colour, lw=width * 0.8, ls=style)
        if primary:
            dd.fill_between(times, falls, 0, step="post", color=colour, alpha=0.2, lw=0)
    for kind, (shape, colour, size, shift) in _MARKERS.items():
        marks = [m for m in drawn[0].markers if m.kind is kind]
        if marks:
            ax.scatter(
                [m.at for m in marks],
                [float(m.equity) for m in marks],
                marker=shape,
                s=size,
                color=colour,
                edgecolors="black",
                linewidths=0.5,
                zorder=4,
                transform=offset_copy(ax.transData, fig=fig, y=shift, units="points"),
                label=f"{kind.value} ({drawn[0].name})",
            )
    ax.axhline(start, color="grey", lw=0.8, ls=":", zorder=1)
    ax.set_title(f"replay equity, marked to market · start {_fmt(drawn[0].starting_cash)} {quote}", loc="left")
    ax.set_ylabel(f"equity ({quote})")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    if start > 0:
        percent = ax.secondary_yaxis(
            "right", functions=(lambda v: (v / start - 1) * 100, lambda r: start * (1 + r / 100))
        )
        percent.set_ylabel("return")
        percent.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.grid(alpha=0.3)
    # Below the chart: over the curves it hides the trades it names.
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False)
    dd.set_ylabel("drawdown")
    dd.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    dd.set_ylim(top=0.5)
    dd.grid(alpha=0.3)
    locator = AutoDateLocator()
    dd.xaxis.set_major_locator(locator)
    dd.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    dd.set_xlabel("UTC")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
