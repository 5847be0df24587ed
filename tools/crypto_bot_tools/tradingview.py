"""Turn a TradingView Strategy Tester "List of trades" CSV export into webhook alerts.

``crypto-bot replay --trades KEY=TRADES.csv`` replays a backtest through the bot. TradingView
exports the backtest from the Strategy Tester's "List of trades" tab ("Export data", or the
download icon) as CSV. Each trade is two rows sharing a trade number: an entry row and an
exit row. Exports are usually sorted newest first and, within a trade, exit before entry.
:func:`alerts_from_trade_list` converts each row into the JSON alert TradingView would have
POSTed to the webhook when that order filled.

Accepted columns
----------------
Header names are matched ignoring case and surrounding or repeated spaces; column order and
extra columns do not matter. TradingView renamed its columns over the years, so each column
has several accepted names:

=============  ===============================================  ==========================
Column         Accepted header names                            Required
=============  ===============================================  ==========================
Trade #        ``Trade #``, ``Trade number``                    yes
Type           ``Type``                                         yes
Date/Time      ``Date/Time`` (older), ``Date and time`` (newer) yes
Price          ``Price`` or ``Price <currency>``, e.g.          yes
               ``Price USD``, ``Price USDT``
Signal         ``Signal``                                       no
=============  ===============================================  ==========================

Everything else is ignored: quantities (``Contracts``, ``Quantity``, ``Position size (qty)``,
``Size (qty)``), profits (``Profit USD``, ``Net P&L USD``, ``Net PnL USD``), cumulative
profit, run-up / drawdown or favorable / adverse excursion. The alert does not carry a
quantity: the bot sizes every order from the strategy's configured percentage.

Conversion
----------
* ``Entry long`` becomes ``order_action`` "buy" with ``market_position`` "long"; ``Exit long``
  becomes "sell" with "flat". ``Entry short`` / ``Exit short`` are refused: spot trading
  cannot short, so the strategy must be long-only. Case does not matter.
* ``order_comment`` and ``order_id`` are the Signal cell (the Pine entry/exit id or comment,
  e.g. ``Long``, ``Stop Loss``, ``Close entry(s) order Long``). Without a Signal column, or
  with a blank cell, the comment is the Type (``Entry long`` / ``Exit long``) and the id is
  ``trade <n> entry`` / ``trade <n> exit``.
* ``order_price`` is the price cell as written in the file (see below for decimal commas).
* ``time``: the export writes wall-clock times without a timezone, in the *chart's* timezone
  (the one set at the chart's bottom right, "Exchange" meaning the exchange's own zone).
  They are read in ``tz`` (UTC by default, so set the chart to UTC before exporting or pass
  the chart's zone: :func:`parse_chart_zone` reads an IANA name or TradingView's ``UTC+2``)
  and written as ISO-8601 with the offset, e.g.
  ``2024-08-10T02:30:00+00:00``. Accepted forms: ``YYYY-MM-DD HH:MM`` (what TradingView
  writes), ``YYYY-MM-DD HH:MM:SS`` and ``YYYY-MM-DD`` (midnight). An ambiguous wall-clock
  time at the end of daylight saving time is read as its first occurrence.
* A trade still open when the backtest ended has an exit row whose Signal (or, in some
  versions, Date/Time) is ``Open``, priced at the last close. TradingView never sent an alert
  for it, so it becomes no alert (the entry still becomes a buy); its price is kept as the
  trade list's last close (:attr:`TradeList.last_close`), at which replay values the open
  position after its last cycle instead of at its entry.
* Alerts are sorted by time. Rows at the same time are ordered by trade number, entry before
  exit, so a same-bar exit and re-entry replays as sell then buy whatever the file's order.
* TradingView lists one row per (entry, exit) pair, so an order that filled several trades
  (an entry later closed by two partial exits, one close of pyramided entries) repeats the
  same row with the same time, price and signal. TradingView sent one alert for that order,
  and the bot would drop the repeats as re-deliveries, so identical alerts are kept once.

File format
-----------
The text may start with a UTF-8 byte-order mark. The delimiter is detected from the header
line: comma (what TradingView writes), semicolon (the file re-saved by a spreadsheet in a
locale whose decimal separator is a comma) or tab (the table copied from the browser).
Prices are plain decimals with a dot; thousands separators are refused because TradingView
does not write them and ``1,234`` is ambiguous. Only in semicolon- or tab-delimited files is
a single comma read as the decimal separator (``2113,50`` becomes ``2113.50``). Rows are
numbered like spreadsheet lines, the header being row 1. Exports from TradingView in another
language have translated headers and are not recognised: switch the language to English.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crypto_bot.domain.errors import MISSING, FieldProblem, InputError
from crypto_bot.domain.money import parse_decimal

MAX_PROBLEMS = 20
"""Report at most this many problems, then one "... and N more"."""

TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
"""Accepted Date/Time forms, tried in order."""

ACCEPTED_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "Trade #": ("Trade #", "Trade number"),
    "Type": ("Type",),
    "Date/Time": ("Date/Time", "Date and time"),
    "Price": ("Price", "Price <currency>"),
    "Signal": ("Signal",),
}
"""Column → its accepted header names, as listed in error messages."""

_REQUIRED = ("Trade #", "Type", "Date/Time", "Price")
_PRICE_HEADER = re.compile(r"price(?: [^\s%()]+)?")
_DELIMITERS = (",", ";", "\t")
_OPEN_MARK = "open"
_NOT_AN_EXPORT = "not a TradingView list-of-trades export"
# TradingView names fixed-offset chart zones "UTC+2", "UTC-3", "UTC+5:30", "UTC+5:45".
_UTC_OFFSET = re.compile(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


def parse_chart_zone(text: str) -> tzinfo:
    """Read a chart's timezone: ``UTC``, an IANA name (``Europe/Berlin``) or an offset as TradingView writes it.

    An offset (``UTC+2``, ``UTC-3:30``) is fixed; a city's zone follows its daylight saving time, so a chart
    set to "(UTC+1) Berlin" is ``Europe/Berlin``, not ``UTC+1``. Raise ValueError naming the accepted forms.
    """
    name = text.strip()
    if name.upper() in ("UTC", "GMT", "Z"):
        return UTC
    offset = _UTC_OFFSET.fullmatch(name)
    if offset is not None:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):
            raise ValueError(f"{text!r}: an offset from UTC is at most 14 hours")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if sign == "-" else delta, name.upper().replace("GMT", "UTC").replace(" ", ""))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r}: not a known timezone (e.g. UTC, UTC+2, UTC-3:30, Europe/Berlin)") from None


@dataclass(frozen=True)
class LastClose:
    """The price of an open trade's ``Open`` row: the last close of the backtest, when it was exported."""

    price: str
    time: datetime | None  # None when the row's Date/Time is the "Open" mark itself


@dataclass(frozen=True)
class TradeList:
    """A trade list read: the alerts TradingView would have sent, and the last close if a trade is still open."""

    alerts: list[dict[str, Any]]
    last_close: LastClose | None


@dataclass(frozen=True)
class _Row:
    line: int
    trade: int
    is_entry: bool
    time: datetime
    time_text: str
    price: str
    signal: str


def alerts_from_trade_list(
    text: str,
    *,
    strategy: str,
    ticker: str | None = None,
    source: str = "trades.csv",
    tz: tzinfo = UTC,
) -> list[dict[str, Any]]:
    """Convert a TradingView "List of trades" CSV export into webhook alert payloads.

    Return one alert per order, sorted by time, each shaped like the webhook body:
    ``time``, ``ticker`` (``ticker`` or else ``strategy``), ``strategy``, ``order_action``,
    ``order_price``, ``order_comment``, ``order_id`` and ``market_position``. Read the
    export's times in ``tz``, the chart's timezone. Name the file ``source`` in errors.

    Raise :class:`~crypto_bot.domain.errors.InputError` when the text is not such an export
    (empty, no trade rows, required columns missing) or when rows are invalid, listing
    every problem (up to :data:`MAX_PROBLEMS`) with its row, column and value. See the
    module docstring for the accepted columns and the conversion rules.
    """
    return read_trade_list(text, strategy=strategy, ticker=ticker, source=source, tz=tz).alerts


def read_trade_list(
    text: str,
    *,
    strategy: str,
    ticker: str | None = None,
    source: str = "trades.csv",
    tz: tzinfo = UTC,
) -> TradeList:
    """Read a TradingView "List of trades" export as :func:`alerts_from_trade_list` does, keeping the last close.

    The last close is the price of the ``Open`` row of a trade still open at the end of the backtest: None
    when every trade closed, or when that row has no price (some exports leave it blank or write "—").
    """
    if not strategy.strip():
        raise ValueError("strategy must not be blank")
    text = text.removeprefix("\ufeff")
    delimiter = _detect_delimiter(text)
    lines = _read_csv(text, delimiter, source)
    if not lines:
        raise InputError(
            f"{source}: {_NOT_AN_EXPORT}",
            [FieldProblem("file", MISSING, "is empty; export the Strategy Tester's List of trades as CSV")],
        )
    header_line, header = lines[0]
    columns = _find_columns(header, source)
    rows, problems, last_close = _parse_rows(lines[1:], header, columns, tz=tz, decimal_comma=delimiter != ",")
    if not rows and not problems and not any(_is_open_exit(cells, columns) for _, cells in lines[1:]):
        raise InputError(
            f"{source}: the TradingView list of trades has no trades",
            [FieldProblem("rows", MISSING, f"there are none below the header (row {header_line})")],
        )
    problems.extend(_check_trades(rows, header, columns))
    if problems:
        raise InputError(f"{source}: invalid TradingView list of trades", _capped(problems))
    return TradeList(_to_alerts(rows, strategy=strategy, ticker=ticker or strategy), last_close)


def _detect_delimiter(text: str) -> str:
    # Header names contain no delimiters, so the one the header line uses most is the one.
    header = next((line for line in text.splitlines() if line.strip()), "")
    return max(_DELIMITERS, key=header.count)


def _read_csv(text: str, delimiter: str, source: str) -> list[tuple[int, list[str]]]:
    """Return the non-blank records with the spreadsheet line each one starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((start, [cell.strip() for cell in cells]))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"{source}: not a readable CSV file", [FieldProblem(f"row {start}", MISSING, str(e))]) from e
    return records


def _normalize(name: str) -> str:
    return " ".join(name.split()).casefold()


def _find_columns(header: list[str], source: str) -> dict[str, int]:
    """Map each known column to its index in ``header``; raise if a required one is missing."""
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _normalize(name)
        for column, names in ACCEPTED_COLUMNS.items():
            matches = _PRICE_HEADER.fullmatch(key) if column == "Price" else key in map(_normalize, names)
            if matches:
                found.setdefault(column, index)  # the first of duplicate headers wins
    missing = [column for column in _REQUIRED if column not in found]
    if missing:
        problems = [
            FieldProblem(
                f"column {column}", MISSING, "is missing; accepted names: " + ", ".join(ACCEPTED_COLUMNS[column])
            )
            for column in missing
        ]
        shown = ", ".join(repr(name) for name in header if name) or "none"
        problems.append(FieldProblem("header", MISSING, f"has these columns: {shown}"))
        raise InputError(f"{source}: {_NOT_AN_EXPORT}", problems)
    return found


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index]


def _is_open_exit(cells: list[str], columns: Mapping[str, int]) -> bool:
    # TradingView marks the exit of a still-open trade with "Open" in Signal or Date/Time.
    kind = _normalize(_cell(cells, columns["Type"]))
    marks = (_cell(cells, columns.get("Signal")), _cell(cells, columns["Date/Time"]))
    return kind.startswith("exit") and any(_normalize(mark) == _OPEN_MARK for mark in marks)


def _parse_rows(
    records: Iterable[tuple[int, list[str]]],
    header: list[str],
    columns: Mapping[str, int],
    *,
    tz: tzinfo,
    decimal_comma: bool,
) -> tuple[list[_Row], list[FieldProblem], LastClose | None]:
    rows: list[_Row] = []
    problems: list[FieldProblem] = []
    last_close: LastClose | None = None
    for line, cells in records:
        before = len(problems)

        def where(column: str, *, line: int = line) -> str:
            return f"row {line}, {header[columns[column]]}"

        trade_text = _cell(cells, columns["Trade #"])
        trade = int(trade_text) if trade_text.isascii() and trade_text.isdigit() else 0
        if trade < 1:
            message = "is empty" if not trade_text else "must be a trade number such as 7"
            problems.append(FieldProblem(where("Trade #"), trade_text, message))

        kind_text = _cell(cells, columns["Type"])
        kind = _normalize(kind_text)
        if kind in ("entry short", "exit short"):
            problems.append(
                FieldProblem(
                    where("Type"), kind_text, "is a short trade; spot trading cannot short, make the strategy long-only"
                )
            )
        elif kind not in ("entry long", "exit long"):
            message = "is empty" if not kind_text else "must be Entry long or Exit long"
            problems.append(FieldProblem(where("Type"), kind_text, message))
        elif _is_open_exit(cells, columns):
            # An open trade's exit is a mark at the last close, not an order: kept as a price, not an alert.
            price, price_problem = _parse_price(_cell(cells, columns["Price"]), decimal_comma=decimal_comma)
            if price_problem is not None:
                continue  # some versions leave it blank or write "—": then the open trade keeps its entry price
            moment = _parse_time(_cell(cells, columns["Date/Time"]), tz)
            if last_close is None or (moment is not None and (last_close.time is None or moment > last_close.time)):
                last_close = LastClose(price, moment)
            continue

        time_text = _cell(cells, columns["Date/Time"])
        moment = _parse_time(time_text, tz)
        if moment is None:
            message = "is empty" if not time_text else "must be a date and time such as 2024-08-10 02:30"
            problems.append(FieldProblem(where("Date/Time"), time_text, message))

        price_text = _cell(cells, columns["Price"])
        price, price_problem = _parse_price(price_text, decimal_comma=decimal_comma)
        if price_problem is not None:
            problems.append(FieldProblem(where("Price"), price_text, price_problem))

        if len(problems) == before and moment is not None:
            rows.append(
                _Row(
                    line=line,
                    trade=trade,
                    is_entry=kind == "entry long",
                    time=moment,
                    time_text=time_text,
                    price=price,
                    signal=_cell(cells, columns.get("Signal")),
                )
            )
    return rows, problems, last_close


def _parse_time(text: str, tz: tzinfo) -> datetime | None:
    """Parse an export time as wall-clock time in ``tz``; ``None`` when it matches no accepted form."""
    for form in TIME_FORMATS:
        try:
            # The export has no offset: the time is the chart's wall clock, so attach tz as-is.
            return datetime.strptime(text, form).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _parse_price(text: str, *, decimal_comma: bool) -> tuple[str, str | None]:
    """Return the price text to send (dot decimal) and a problem message, or ``None``."""
    if not text:
        return text, "is empty"
    if "," in text:
        if not decimal_comma or text.count(",") > 1 or "." in text:
            return text, "must be a plain decimal such as 61234.5, without thousands separators"
        text = text.replace(",", ".")
    try:
        value = parse_decimal(text)
    except ValueError as e:
        return text, f"is {e}"
    if value <= 0:
        return text, "must be greater than zero"
    return text, None


def _check_trades(rows: list[_Row], header: list[str], columns: Mapping[str, int]) -> list[FieldProblem]:
    """Find trades with two entries or two exits, and exits before their entry."""
    found: list[tuple[int, FieldProblem]] = []
    trade_column = header[columns["Trade #"]]
    time_column = header[columns["Date/Time"]]
    legs: dict[tuple[int, bool], _Row] = {}
    for row in rows:
        first = legs.setdefault((row.trade, row.is_entry), row)
        if first is not row:
            # Two exports pasted together, or two strategies mixed: replaying would double the orders.
            leg = "Entry long" if row.is_entry else "Exit long"
            message = f"repeats the {leg} row of trade {row.trade} (row {first.line})"
            found.append((row.line, FieldProblem(f"row {row.line}, {trade_column}", str(row.trade), message)))
    for (trade, is_entry), exit_row in legs.items():
        entry = legs.get((trade, True))
        if not is_entry and entry is not None and exit_row.time < entry.time:
            message = f"is before the entry of trade {trade} at {entry.time_text} (row {entry.line})"
            problem = FieldProblem(f"row {exit_row.line}, {time_column}", exit_row.time_text, message)
            found.append((exit_row.line, problem))
    return [problem for _, problem in sorted(found, key=lambda item: item[0])]


def _capped(problems: list[FieldProblem]) -> list[FieldProblem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], FieldProblem("rows", MISSING, f"... and {rest} more problems")]


def _to_alerts(rows: list[_Row], *, strategy: str, ticker: str) -> list[dict[str, Any]]:
    ordered = sorted(rows, key=lambda row: (row.time, row.trade, not row.is_entry))
    alerts: list[dict[str, Any]] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for row in ordered:
        leg = "entry" if row.is_entry else "exit"
        alert = {
            "time": row.time.isoformat(),
            "ticker": ticker,
            "strategy": strategy,
            "order_action": "buy" if row.is_entry else "sell",
            "order_price": row.price,
            "order_comment": row.signal or ("Entry long" if row.is_entry else "Exit long"),
            "order_id": row.signal or f"trade {row.trade} {leg}",
            "market_position": "long" if row.is_entry else "flat",
        }
        identity = tuple(alert.items())
        if identity not in seen:  # one order that filled several trades: TradingView sent one alert
            seen.add(identity)
            alerts.append(alert)
    return alerts
