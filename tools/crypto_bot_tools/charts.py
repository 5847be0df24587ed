"""The replay chart's series, computed apart from drawing, in exact decimals (``report.plot_equity`` draws them).

* **Equity** starts at the starting cash at the first moment (the first replayed alert or ``--prices`` row),
  is each cycle's equity at its time, and between cycles marks the holdings to market: at every ``--prices``
  row, and at every alert whose symbol the file does not price (all of them without ``--prices``). A symbol's
  price is the file's row at or before the moment, else its last alert price, as replay prices a cycle. A
  protective stop that filled between cycles changes the holdings at the row that crossed it. After the last
  cycle the holdings are marked to the last price, unless a protective stop still rests (no cycle would book it).
* **Drawdown**: each point's fall below the running peak, in percent (0 at a new high, -5 for 5% below it).
* **Markers**: the orders that filled, at their cycle (entry, sell-down, exit, and an exit in a stop-loss
  alert's cycle as a stop loss), and each protective stop that filled on the venue, at the fill.
* **TradingView**: the starting cash plus the backtest's own cumulative P&L ("Cum. Profit" / "Cumulative
  P&L" of the List of trades export) at each trade's exit, the exports of several strategies summed.

No matplotlib here: the dashboard reuses these series.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from crypto_bot.domain.errors import MISSING, FieldProblem, InputError
from crypto_bot.domain.ledger import LedgerEntry
from crypto_bot.domain.money import ZERO, parse_decimal
from crypto_bot.domain.orders import Purpose
from crypto_bot.engine.stops import STOP_FILLED
from crypto_bot_tools import tradingview

if TYPE_CHECKING:
    from crypto_bot.adapters.paper.exchange import CsvPrices
    from crypto_bot_tools.replay import ReplayResult

HUNDRED = Decimal(100)

CUMULATIVE_COLUMN = ("Cum. Profit <currency>", "Cumulative P&L <currency>", "Cumulative PnL <currency>")
"""Accepted names of the export's cumulative P&L column, as listed in errors (the currency is optional)."""

_CUMULATIVE_HEADER = re.compile(r"(?:cum\.? profit|cumulative (?:p&l|pnl|profit))(?: [^\s%()]+)?")


class MarkerKind(StrEnum):
    ENTRY = "entry"
    SELL_DOWN = "sell-down"  # boost: an active strategy gave capital back
    EXIT = "exit"
    STOP_LOSS = "stop loss"  # an exit in a stop-loss alert's own cycle
    PROTECTIVE_STOP = "protective stop"  # the stop resting on the venue filled


@dataclass(frozen=True)
class Point:
    at: datetime
    value: Decimal


@dataclass(frozen=True)
class Marker:
    at: datetime
    equity: Decimal  # the curve's value there, where the marker sits
    kind: MarkerKind
    strategy: str


@dataclass(frozen=True)
class Series:
    """One curve of the chart: equity points in time order, from the starting cash, and its trade markers."""

    name: str
    starting_cash: Decimal
    points: tuple[Point, ...]
    markers: tuple[Marker, ...] = ()

    @property
    def drawdown(self) -> tuple[Point, ...]:
        """Return each point's distance below the running peak, in percent (zero or negative)."""
        return drawdown(self.points)

    def value_at(self, at: datetime) -> Decimal:
        """Return the equity at ``at``: the last point at or before it (the starting cash before the first)."""
        index = bisect_right([p.at for p in self.points], at)
        return self.points[index - 1].value if index else self.starting_cash


def drawdown(points: Sequence[Point]) -> tuple[Point, ...]:
    """Return each point's fall below the highest value so far, in percent: ``(value / peak - 1) * 100``."""
    out: list[Point] = []
    peak: Decimal | None = None
    for point in points:
        peak = point.value if peak is None else max(peak, point.value)
        out.append(Point(point.at, (point.value / peak - 1) * HUNDRED if peak > 0 else ZERO))
    return tuple(out)


def equity_series(result: ReplayResult, prices: CsvPrices | None = None, *, name: str | None = None) -> Series:
    """Compute a replay's equity curve marked to market, with its trade markers (module docstring)."""
    alert_times: dict[str, list[datetime]] = {}
    alert_values: dict[str, list[Decimal]] = {}
    for at, symbol, price in result.alert_prices:  # in time order
        alert_times.setdefault(symbol, []).append(at)
        alert_values.setdefault(symbol, []).append(price)

    def price_of(symbol: str, at: datetime) -> Decimal | None:
        known = prices.at(symbol, at) if prices is not None else None
        if known is not None:
            return known
        index = bisect_right(alert_times.get(symbol, []), at)
        return alert_values[symbol][index - 1] if index else None

    moments = {at for at, symbol, _ in result.alert_prices if prices is None or prices.at(symbol, at) is None}
    if prices is not None:
        moments |= {at for at, _, _ in prices.between(sorted(alert_times), None, datetime.max.replace(tzinfo=UTC))}
    start = min(moments | {c.report.at for c in result.cycles}, default=None)
    if start is None:
        return Series(name or result.mode.value, result.starting_cash, ())
    cycles = {c.report.at: c for c in result.cycles}
    # Holdings change after each cycle and at each resting fill; a fill at a cycle's time is before that cycle.
    changes = sorted(
        [(f.at, 0, f.balances) for f in result.resting_fills] + [(c.report.at, 1, c.balances) for c in result.cycles],
        key=lambda change: (change[0], change[1]),
    )
    change_times = [t for t, _, _ in changes]
    cash_only = {result.quote: result.starting_cash}
    points = [Point(start, result.starting_cash)]
    end = result.cycles[-1].report.at if result.cycles else start
    if not result.exchange.open_orders():
        # Nothing rests on the venue after the last cycle, so the holdings stand as they are to the last price.
        # A resting stop would fill somewhere along the rest of the prices, and no cycle books it: stop there.
        end = max(moments | {end})
    for at in sorted(moments | set(cycles)):
        if at in cycles:
            points.append(Point(at, cycles[at].equity))
        elif start < at <= end:
            index = bisect_right(change_times, at)
            held = changes[index - 1][2] if index else cash_only
            points.append(Point(at, _value(held, result.quote, at, price_of)))
    series = Series(name or result.mode.value, result.starting_cash, tuple(points))
    return Series(series.name, series.starting_cash, series.points, tuple(_markers(result, series)))


def _value(
    held: Mapping[str, Decimal], quote: str, at: datetime, price_of: Callable[[str, datetime], Decimal | None]
) -> Decimal:
    total = held.get(quote, ZERO)
    for asset, amount in held.items():
        if asset != quote:
            total += amount * (price_of(f"{asset}/{quote}", at) or ZERO)  # unpriced: worth nothing, as in a cycle
    return total


def _markers(result: ReplayResult, series: Series) -> list[Marker]:
    markers: list[Marker] = []
    for cycle in result.cycles:
        report = cycle.report
        stopped = {o.strategy for o in report.outcomes if o.is_stop_loss} if report.urgent else set()
        for r in report.results:
            if r.filled <= 0:
                continue
            if r.purpose is Purpose.ENTRY:
                kind = MarkerKind.ENTRY
            elif r.purpose is Purpose.SELL_DOWN:
                kind = MarkerKind.SELL_DOWN
            else:
                kind = MarkerKind.STOP_LOSS if r.strategy in stopped else MarkerKind.EXIT
            markers.append(Marker(report.at, cycle.equity, kind, r.strategy))
    filled_at: dict[str, datetime] = {}
    for fill in result.resting_fills:
        filled_at.setdefault(fill.order.id, fill.at)
    seen: set[str] = set()
    for entry in result.store.audit:  # every booking, in order: the ledger's own entries are moved here on save
        if isinstance(entry, LedgerEntry) and entry.note.startswith(STOP_FILLED) and entry.order_id not in seen:
            seen.add(entry.order_id)
            at = filled_at.get(entry.order_id, entry.at)  # filled at a cycle's own price: booked at that cycle
            markers.append(Marker(at, series.value_at(at), MarkerKind.PROTECTIVE_STOP, entry.strategy))
    return sorted(markers, key=lambda m: m.at)


def tradingview_profits(text: str, *, source: str = "trades.csv", tz: tzinfo = UTC) -> tuple[Point, ...]:
    """Read a List of trades export's cumulative P&L: zero at the first entry, then its value at each exit.

    The export is checked as ``replay --trades`` reads it (:func:`tradingview.read_trade_list`). A trade still
    open at the end has its exit row (``Open``) at the last close: it is the last point when that row is dated.
    Raise :class:`InputError` naming the column and the row when the column is missing or a value is not a number.
    """
    tradingview.read_trade_list(text, strategy="chart", source=source, tz=tz)
    text = text.removeprefix("\ufeff")
    delimiter = tradingview._detect_delimiter(text)
    lines = tradingview._read_csv(text, delimiter, source)
    (_, header), rows = lines[0], lines[1:]
    columns = tradingview._find_columns(header, source)
    cumulative = next(
        (i for i, h in enumerate(header) if _CUMULATIVE_HEADER.fullmatch(tradingview._normalize(h))), None
    )
    if cumulative is None:
        shown = ", ".join(repr(h) for h in header if h)
        raise InputError(
            f"{source}: no cumulative P&L to chart",
            [
                FieldProblem(
                    "column Cum. Profit", MISSING, "is missing; accepted names: " + ", ".join(CUMULATIVE_COLUMN)
                ),
                FieldProblem("header", MISSING, f"has these columns: {shown}"),
            ],
        )
    entries: list[datetime] = []
    exits: list[tuple[datetime, int, Decimal]] = []
    problems: list[FieldProblem] = []
    for line, cells in rows:
        at = tradingview._parse_time(tradingview._cell(cells, columns["Date/Time"]), tz)
        if at is None:
            continue  # an open trade's exit dated "Open": no time to put it at
        if tradingview._normalize(tradingview._cell(cells, columns["Type"])).startswith("entry"):
            entries.append(at)
            continue
        cell = tradingview._cell(cells, cumulative)
        try:
            value = _signed_decimal(cell, decimal_comma=delimiter != ",")
        except ValueError as e:
            problems.append(
                FieldProblem(f"row {line}, {header[cumulative]}", cell, f"must be a number such as -4.84: {e}")
            )
            continue
        exits.append((at, int(tradingview._cell(cells, columns["Trade #"])), value))
    if problems:
        raise InputError(f"{source}: invalid cumulative P&L", problems)
    if not entries:
        return ()
    return (Point(min(entries), ZERO), *(Point(at, value) for at, _, value in sorted(exits)))


def _signed_decimal(text: str, *, decimal_comma: bool) -> Decimal:
    text = text.replace("\u2212", "-")  # the Strategy Tester shows U+2212; a table copied from the browser keeps it
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if not text:
        raise ValueError("it is empty")
    return parse_decimal(text)


def tradingview_series(
    profits: Iterable[Sequence[Point]], starting_cash: Decimal, *, name: str = "TradingView"
) -> Series:
    """Sum the exports' cumulative P&L (each a step: its last value at or before a time) onto ``starting_cash``."""
    exports = [tuple(p) for p in profits if p]
    moments = sorted({point.at for export in exports for point in export})
    points = []
    for at in moments:
        total = ZERO
        for export in exports:
            index = bisect_right([p.at for p in export], at)
            total += export[index - 1].value if index else ZERO
        points.append(Point(at, starting_cash + total))
    return Series(name, starting_cash, tuple(points))
