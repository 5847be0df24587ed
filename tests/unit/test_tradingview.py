"""TradingView "List of trades" CSV exports become webhook alert payloads."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import MISSING, FieldProblem, InputError
from crypto_bot.domain.signals import parse_signal
from crypto_bot_tools.tradingview import MAX_PROBLEMS, alerts_from_trade_list

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tradingview"
NEW_EXPORT = FIXTURES / "BTCUSD_list_of_trades.csv"
OLD_EXPORT = FIXTURES / "ETHUSDT_list_of_trades_old.csv"

HEADER = "Trade #,Type,Signal,Date/Time,Price USD,Contracts,Profit USD"
NEW_HEADER = "Trade #,Type,Date and time,Signal,Price USDT"


def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _alert(
    time: str, action: str, price: str, comment: str, order_id: str, position: str, strategy: str = "BTCUSD"
) -> dict[str, Any]:
    return {
        "time": time,
        "ticker": strategy,
        "strategy": strategy,
        "order_action": action,
        "order_price": price,
        "order_comment": comment,
        "order_id": order_id,
        "market_position": position,
    }


def _problems(text: str, **kwargs: Any) -> tuple[str, tuple[FieldProblem, ...]]:
    with pytest.raises(InputError) as caught:
        alerts_from_trade_list(text, strategy=kwargs.pop("strategy", "BTCUSD"), **kwargs)
    return caught.value.what, caught.value.problems


# --- the realistic exports -----------------------------------------------------------


def test_sample_export_newest_first_with_bom_becomes_alerts_oldest_first() -> None:
    text = NEW_EXPORT.read_text(encoding="utf-8")
    assert text.startswith("\ufeff")  # the fixture keeps the BOM TradingView writes

    alerts = alerts_from_trade_list(text, strategy="BTCUSD")

    assert alerts == [
        _alert("2024-08-10T02:30:00+00:00", "buy", "60712.5", "Long", "Long", "long"),
        _alert("2024-08-10T14:00:00+00:00", "sell", "61894.0", "TP", "TP", "flat"),
        _alert("2024-08-11T06:15:00+00:00", "buy", "61050.0", "Long", "Long", "long"),
        _alert("2024-08-11T09:45:00+00:00", "sell", "60100.5", "Stop Loss", "Stop Loss", "flat"),
        _alert("2024-08-11T20:00:00+00:00", "buy", "59800.0", "Long", "Long", "long"),
        _alert(
            "2024-08-12T08:00:00+00:00",
            "sell",
            "60450.25",
            "Close entry(s) order Long",
            "Close entry(s) order Long",
            "flat",
        ),
        # Trade 4 is still open: its entry is a buy, its "Open" exit row is no alert.
        _alert("2024-08-12T08:00:00+00:00", "buy", "60450.25", "Long", "Long", "long"),
    ]


def test_older_export_with_signal_before_date_and_capitalised_types_is_read() -> None:
    text = OLD_EXPORT.read_text(encoding="utf-8")

    alerts = alerts_from_trade_list(text, strategy="ETH", ticker="ETHUSDT")

    assert alerts == [
        {**_alert("2023-03-04T10:00:00+00:00", "buy", "1565.42", "RsiLE", "RsiLE", "long", "ETH"), "ticker": "ETHUSDT"},
        {
            **_alert("2023-03-05T14:00:00+00:00", "sell", "1572.10", "RsiLX", "RsiLX", "flat", "ETH"),
            "ticker": "ETHUSDT",
        },
        {**_alert("2023-03-09T18:00:00+00:00", "buy", "1533.87", "RsiLE", "RsiLE", "long", "ETH"), "ticker": "ETHUSDT"},
    ]


@pytest.mark.parametrize("fixture", [NEW_EXPORT, OLD_EXPORT], ids=lambda p: p.name)
def test_every_alert_passes_the_webhook_validator(fixture: Path) -> None:
    config = StrategyConfig.from_mapping(
        {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
    )
    alerts = alerts_from_trade_list(fixture.read_text(encoding="utf-8"), strategy="BTCUSD")

    signals = [parse_signal(alert, config) for alert in alerts]

    assert len(signals) == len(alerts) > 0
    assert [s.action.value for s in signals] == [a["order_action"] for a in alerts]
    assert [s.time.isoformat() for s in signals] == [a["time"] for a in alerts]
    assert len({s.dedupe_key for s in signals}) == len(signals)


def test_stop_loss_exit_is_recognised_by_the_validator_as_a_stop_loss() -> None:
    config = StrategyConfig.from_mapping(
        {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
    )
    alerts = alerts_from_trade_list(NEW_EXPORT.read_text(encoding="utf-8"), strategy="BTCUSD")

    stops = [alert["order_comment"] for alert in alerts if parse_signal(alert, config).is_stop_loss]

    assert stops == ["Stop Loss"]


# --- row conversion ------------------------------------------------------------------


def test_entry_long_becomes_buy_alert_with_long_position() -> None:
    alerts = alerts_from_trade_list(_csv("1,Entry long,Long,2024-08-10 02:30,60712.5,0.01,"), strategy="BTCUSD")

    assert alerts == [_alert("2024-08-10T02:30:00+00:00", "buy", "60712.5", "Long", "Long", "long")]


def test_exit_long_becomes_sell_alert_with_flat_position() -> None:
    alerts = alerts_from_trade_list(_csv("1,Exit long,TP,2024-08-10 14:00,61894.0,0.01,11.82"), strategy="BTCUSD")

    assert alerts == [_alert("2024-08-10T14:00:00+00:00", "sell", "61894.0", "TP", "TP", "flat")]


def test_type_is_matched_ignoring_case_and_extra_spaces() -> None:
    alerts = alerts_from_trade_list(
        _csv("1,ENTRY  LONG,L,2024-08-10 02:30,100,1,", "1, exit Long ,X,2024-08-10 03:30,101,1,1"), strategy="S"
    )

    assert [(a["order_action"], a["market_position"]) for a in alerts] == [("buy", "long"), ("sell", "flat")]


@pytest.mark.parametrize(
    "text",
    [
        _csv("3,Entry long,,2024-08-10 02:30,100,1,", "3,Exit long,  ,2024-08-10 03:30,101,1,1"),
        _csv(
            "3,Entry long,2024-08-10 02:30,100",
            "3,Exit long,2024-08-10 03:30,101",
            header="Trade #,Type,Date/Time,Price USD",
        ),
    ],
    ids=["blank signal", "no signal column"],
)
def test_missing_signal_falls_back_to_type_and_trade_number(text: str) -> None:
    alerts = alerts_from_trade_list(text, strategy="BTCUSD")

    assert [(a["order_comment"], a["order_id"]) for a in alerts] == [
        ("Entry long", "trade 3 entry"),
        ("Exit long", "trade 3 exit"),
    ]


def test_ticker_defaults_to_the_strategy_key_and_can_be_given() -> None:
    text = _csv("1,Entry long,L,2024-08-10 02:30,100,1,")

    default = alerts_from_trade_list(text, strategy="my-strategy")
    given = alerts_from_trade_list(text, strategy="my-strategy", ticker="BTCUSD")

    assert (default[0]["ticker"], default[0]["strategy"]) == ("my-strategy", "my-strategy")
    assert (given[0]["ticker"], given[0]["strategy"]) == ("BTCUSD", "my-strategy")


def test_price_is_sent_as_written_in_the_file() -> None:
    alerts = alerts_from_trade_list(_csv("1,Entry long,L,2024-08-10 02:30,0.00001230,1,"), strategy="S")

    assert alerts[0]["order_price"] == "0.00001230"


@pytest.mark.parametrize(
    "header",
    [
        "Trade #,Type,Signal,Date/Time,Price,Contracts",
        "Trade #,Type,Signal,Date/Time,Price USDT,Contracts",
        "Trade #,Type,Date and time,Signal,Price EUR,Position size (qty),Position size (value),Net P&L EUR",
        "Trade number,Type,Date and time,Signal,Price USD,Size (qty),Size (value),Net PnL USD",
        " trade #  ,TYPE, date and  time ,signal,price usd",
    ],
)
def test_every_known_header_generation_is_accepted(header: str) -> None:
    cells = {"Trade #": "1", "Type": "Entry long", "Signal": "L", "Date/Time": "2024-08-10 02:30", "Price": "100"}
    order = []
    for name in header.split(","):
        key = " ".join(name.split()).casefold()
        if key.startswith("trade"):
            order.append(cells["Trade #"])
        elif key.startswith("date"):
            order.append(cells["Date/Time"])
        elif key.startswith("price"):
            order.append(cells["Price"])
        elif key in ("type", "signal"):
            order.append(cells[key.capitalize()])
        else:
            order.append("0")

    alerts = alerts_from_trade_list(_csv(",".join(order), header=header), strategy="S")

    assert alerts == [_alert("2024-08-10T02:30:00+00:00", "buy", "100", "L", "L", "long", "S")]


# --- open trades ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "exit_row",
    [
        "2,Exit long,Open,2024-08-13 23:00,59010.0,0.01,-14.4",  # Signal "Open", priced at the last close
        "2,Exit long,open,2024-08-13 23:00,59010.0,0.01,-14.4",
        "2,Exit long,Open,,,,",  # nothing but the mark
        "2,Exit long,,Open,—,0.01,0",  # the mark in Date/Time, no price
    ],
)
def test_open_trade_exit_row_is_not_a_sell_alert(exit_row: str) -> None:
    text = _csv(exit_row, "2,Entry long,Long,2024-08-12 08:00,60450.25,0.01,-14.4")

    alerts = alerts_from_trade_list(text, strategy="BTCUSD")

    assert alerts == [_alert("2024-08-12T08:00:00+00:00", "buy", "60450.25", "Long", "Long", "long")]


def test_entry_signal_named_open_is_still_a_buy() -> None:
    alerts = alerts_from_trade_list(_csv("1,Entry long,Open,2024-08-12 08:00,100,1,"), strategy="S")

    assert [(a["order_action"], a["order_comment"]) for a in alerts] == [("buy", "Open")]


# --- ordering and repeats ------------------------------------------------------------


def test_same_bar_exit_and_reentry_replay_as_sell_then_buy_whatever_the_file_order() -> None:
    newest_first = _csv(
        "2,Entry long,Re,2024-08-12 08:00,100,1,",
        "1,Exit long,Close,2024-08-12 08:00,100,1,5",
        "1,Entry long,In,2024-08-12 08:00,95,1,",
    )

    alerts = alerts_from_trade_list(newest_first, strategy="S")

    assert [(a["order_id"], a["order_action"]) for a in alerts] == [("In", "buy"), ("Close", "sell"), ("Re", "buy")]


def test_alerts_are_sorted_by_time_not_by_file_order() -> None:
    text = _csv(
        "2,Exit long,B,2024-08-12 09:00,100,1,",
        "1,Exit long,A,2024-08-11 09:00,100,1,",
        "2,Entry long,B,2024-08-11 10:00,100,1,",
        "1,Entry long,A,2024-08-10 09:00,100,1,",
    )

    alerts = alerts_from_trade_list(text, strategy="S")

    assert [a["time"] for a in alerts] == [
        "2024-08-10T09:00:00+00:00",
        "2024-08-11T09:00:00+00:00",
        "2024-08-11T10:00:00+00:00",
        "2024-08-12T09:00:00+00:00",
    ]


def test_one_entry_split_into_two_trades_by_partial_exits_is_one_buy_alert() -> None:
    text = _csv(
        "2,Exit long,TP2,2024-08-12 12:40,103,1,3",
        "2,Entry long,Long,2024-08-12 12:00,100,1,",
        "1,Exit long,TP1,2024-08-12 12:20,102,1,2",
        "1,Entry long,Long,2024-08-12 12:00,100,1,",
    )

    alerts = alerts_from_trade_list(text, strategy="S")

    assert [(a["order_action"], a["order_id"], a["time"][11:16]) for a in alerts] == [
        ("buy", "Long", "12:00"),
        ("sell", "TP1", "12:20"),
        ("sell", "TP2", "12:40"),
    ]


def test_entries_with_blank_signal_are_not_merged_because_their_ids_differ() -> None:
    text = _csv("1,Entry long,,2024-08-12 12:00,100,1,", "2,Entry long,,2024-08-12 12:00,100,1,")

    alerts = alerts_from_trade_list(text, strategy="S")

    assert [a["order_id"] for a in alerts] == ["trade 1 entry", "trade 2 entry"]


# --- time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2024-08-10 02:30", "2024-08-10T02:30:00+00:00"),
        ("2024-08-10 02:30:15", "2024-08-10T02:30:15+00:00"),
        ("2024-08-10", "2024-08-10T00:00:00+00:00"),
        ("2024-08-10 2:30", "2024-08-10T02:30:00+00:00"),
    ],
)
def test_accepted_time_forms(cell: str, expected: str) -> None:
    alerts = alerts_from_trade_list(_csv(f"1,Entry long,L,{cell},100,1,"), strategy="S")

    assert alerts[0]["time"] == expected


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (UTC, "2024-08-10T02:30:00+00:00"),
        (timezone(timedelta(hours=8)), "2024-08-10T02:30:00+08:00"),
        (ZoneInfo("Europe/Amsterdam"), "2024-08-10T02:30:00+02:00"),  # summer time
        (ZoneInfo("America/New_York"), "2024-08-10T02:30:00-04:00"),
    ],
    ids=["UTC", "UTC+8", "Amsterdam", "New York"],
)
def test_times_are_read_as_wall_clock_in_the_chart_timezone(tz: Any, expected: str) -> None:
    alerts = alerts_from_trade_list(_csv("1,Entry long,L,2024-08-10 02:30,100,1,"), strategy="S", tz=tz)

    assert alerts[0]["time"] == expected


def test_zone_offsets_follow_daylight_saving_per_row() -> None:
    text = _csv("1,Entry long,L,2024-01-10 09:00,100,1,", "1,Exit long,X,2024-07-10 09:00,101,1,1")

    alerts = alerts_from_trade_list(text, strategy="S", tz=ZoneInfo("Europe/Amsterdam"))

    assert [a["time"] for a in alerts] == ["2024-01-10T09:00:00+01:00", "2024-07-10T09:00:00+02:00"]


# --- file format ---------------------------------------------------------------------


def test_semicolon_delimited_export_reads_a_decimal_comma() -> None:
    text = _csv(
        "1;Exit long;2024-03-05 14:00;Close;2113,50;2",
        "1;Entry long;2024-03-04 10:00;Long;2100;2",
        header="Trade #;Type;Date/Time;Signal;Price EUR;Position size (qty)",
    )

    alerts = alerts_from_trade_list(text, strategy="S")

    assert [(a["order_action"], a["order_price"]) for a in alerts] == [("buy", "2100"), ("sell", "2113.50")]


def test_tab_delimited_copy_of_the_table_is_read() -> None:
    text = _csv("1\tEntry long\tLong\t2024-08-10 02:30\t60712.5", header="Trade #\tType\tSignal\tDate/Time\tPrice USD")

    alerts = alerts_from_trade_list(text, strategy="BTCUSD")

    assert alerts == [_alert("2024-08-10T02:30:00+00:00", "buy", "60712.5", "Long", "Long", "long")]


def test_crlf_line_endings_blank_lines_and_empty_rows_are_skipped() -> None:
    text = "\r\n" + _csv("", "1,Entry long,L,2024-08-10 02:30,100,1,", ",,,,,,", "").replace("\n", "\r\n")

    alerts = alerts_from_trade_list(text, strategy="S")

    assert [a["order_id"] for a in alerts] == ["L"]


def test_quoted_cells_with_commas_in_the_signal_are_read() -> None:
    text = _csv('1,"Entry long","Long, breakout",2024-08-10 02:30,"100",1,')

    alerts = alerts_from_trade_list(text, strategy="S")

    assert (alerts[0]["order_comment"], alerts[0]["order_price"]) == ("Long, breakout", "100")


# --- errors: not an export -----------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "\ufeff", " \n\r\n\t\n", ",,,\n,,\n"], ids=["empty", "BOM only", "whitespace", "empty cells"]
)
def test_empty_file_is_rejected(text: str) -> None:
    what, problems = _problems(text, source="t.csv")

    assert what == "t.csv: not a TradingView list-of-trades export"
    assert problems == (FieldProblem("file", MISSING, "is empty; export the Strategy Tester's List of trades as CSV"),)


def test_header_only_file_is_rejected() -> None:
    what, problems = _problems("\ufeff" + HEADER + "\n\n,,,\n", source="t.csv")

    assert what == "t.csv: the TradingView list of trades has no trades"
    assert problems == (FieldProblem("rows", MISSING, "there are none below the header (row 1)"),)


def test_missing_columns_are_named_with_the_accepted_names_and_the_columns_found() -> None:
    what, problems = _problems("Trade #,Kind,When,Price USD\n1,Entry long,2024-08-10 02:30,100\n", source="x.csv")

    assert what == "x.csv: not a TradingView list-of-trades export"
    assert problems == (
        FieldProblem("column Type", MISSING, "is missing; accepted names: Type"),
        FieldProblem("column Date/Time", MISSING, "is missing; accepted names: Date/Time, Date and time"),
        FieldProblem("header", MISSING, "has these columns: 'Trade #', 'Kind', 'When', 'Price USD'"),
    )


def test_file_that_is_not_a_trade_list_lists_every_required_column() -> None:
    what, problems = _problems("time,open,high,low,close\n1723256400,1,2,0.5,1.5\n")

    assert what == "trades.csv: not a TradingView list-of-trades export"
    assert [p.field for p in problems] == [
        "column Trade #",
        "column Type",
        "column Date/Time",
        "column Price",
        "header",
    ]
    assert problems[0].message == "is missing; accepted names: Trade #, Trade number"
    assert problems[3].message == "is missing; accepted names: Price, Price <currency>"
    assert "'time', 'open', 'high', 'low', 'close'" in problems[4].message


def test_a_percentage_column_is_not_taken_for_the_price() -> None:
    _, problems = _problems("Trade #,Type,Date/Time,Price %\n1,Entry long,2024-08-10 02:30,100\n")

    assert [p.field for p in problems] == ["column Price", "header"]


# --- errors: rows --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Entry short", "Exit short", "entry SHORT"])
def test_short_trade_row_is_rejected_naming_the_row(kind: str) -> None:
    text = _csv("1,Entry long,L,2024-08-10 02:30,100,1,", f"2,{kind},S,2024-08-10 03:30,101,1,")

    what, problems = _problems(text, source="t.csv")

    assert what == "t.csv: invalid TradingView list of trades"
    assert problems == (
        FieldProblem("row 3, Type", kind, "is a short trade; spot trading cannot short, make the strategy long-only"),
    )
    assert "row 3, Type: is a short trade" in str(InputError(what, problems))


@pytest.mark.parametrize(("cell", "message"), [("Buy", "must be Entry long or Exit long"), ("", "is empty")])
def test_unknown_type_is_rejected(cell: str, message: str) -> None:
    _, problems = _problems(_csv(f"1,{cell},L,2024-08-10 02:30,100,1,"))

    assert problems == (FieldProblem("row 2, Type", cell, message),)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "is empty"),
        ("x", "must be a trade number such as 7"),
        ("0", "must be a trade number such as 7"),
        ("-1", "must be a trade number such as 7"),
        ("1.5", "must be a trade number such as 7"),
        ("²", "must be a trade number such as 7"),
    ],
)
def test_bad_trade_number_is_rejected(cell: str, message: str) -> None:
    _, problems = _problems(_csv(f"{cell},Entry long,L,2024-08-10 02:30,100,1,"))

    assert problems == (FieldProblem("row 2, Trade #", cell, message),)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "is empty"),
        ("10/08/2024 02:30", "must be a date and time such as 2024-08-10 02:30"),
        ("2024-13-01 00:00", "must be a date and time such as 2024-08-10 02:30"),
        ("2024-08-10T02:30:00Z", "must be a date and time such as 2024-08-10 02:30"),
        ("yesterday", "must be a date and time such as 2024-08-10 02:30"),
    ],
)
def test_bad_date_is_rejected_naming_the_files_column(cell: str, message: str) -> None:
    text = _csv("1,Entry long,2024-08-10 02:30,L,100", f"1,Exit long,{cell},X,101", header=NEW_HEADER)

    _, problems = _problems(text)

    assert problems == (FieldProblem("row 3, Date and time", cell, message),)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "is empty"),
        ("abc", "is not a number"),
        ("—", "is not a number"),
        ("0", "must be greater than zero"),
        ("-5.5", "must be greater than zero"),
        ("NaN", "is not a finite number"),
        ("Infinity", "is not a finite number"),
        ('"61,234.5"', "must be a plain decimal such as 61234.5, without thousands separators"),
        ('"61234,5"', "must be a plain decimal such as 61234.5, without thousands separators"),
    ],
)
def test_bad_price_is_rejected(cell: str, message: str) -> None:
    _, problems = _problems(_csv(f"1,Entry long,L,2024-08-10 02:30,{cell},1,"))

    assert problems == (FieldProblem("row 2, Price USD", cell.strip('"'), message),)


@pytest.mark.parametrize("cell", ["1,234,5", "1.234,5"])
def test_semicolon_export_refuses_an_ambiguous_comma_price(cell: str) -> None:
    text = _csv(f"1;Entry long;2024-03-04 10:00;Long;{cell}", header="Trade #;Type;Date/Time;Signal;Price EUR")

    _, problems = _problems(text)

    assert problems == (
        FieldProblem("row 2, Price EUR", cell, "must be a plain decimal such as 61234.5, without thousands separators"),
    )


def test_every_row_problem_is_reported_not_just_the_first() -> None:
    text = _csv(
        "1,Entry long,L,2024-08-10 02:30,100,1,",
        "x,Entry long,L,2024-08-10 02:30,100,1,",
        "2,Entry short,L,soon,0,1,",
        "3,Exit long,X,2024-08-11 02:30,abc,1,",
    )

    _, problems = _problems(text)

    assert [(p.field, p.value) for p in problems] == [
        ("row 3, Trade #", "x"),
        ("row 4, Type", "Entry short"),
        ("row 4, Date/Time", "soon"),
        ("row 4, Price USD", "0"),
        ("row 5, Price USD", "abc"),
    ]


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    rows = [f"{n},Entry long,L,2024-08-10 02:30,-1,1," for n in range(1, 31)]

    _, problems = _problems(_csv(*rows))

    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == FieldProblem("row 2, Price USD", "-1", "must be greater than zero")
    assert problems[MAX_PROBLEMS - 1].field == f"row {MAX_PROBLEMS + 1}, Price USD"
    assert problems[-1] == FieldProblem("rows", MISSING, f"... and {30 - MAX_PROBLEMS} more problems")


def test_exactly_the_cap_is_not_truncated() -> None:
    rows = [f"{n},Entry long,L,2024-08-10 02:30,-1,1," for n in range(1, MAX_PROBLEMS + 1)]

    _, problems = _problems(_csv(*rows))

    assert len(problems) == MAX_PROBLEMS
    assert all(p.message == "must be greater than zero" for p in problems)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            ("1,Entry long,L,2024-08-10 02:30,100,1,", "1,Entry long,L,2024-08-10 04:30,100,1,"),
            FieldProblem("row 3, Trade #", "1", "repeats the Entry long row of trade 1 (row 2)"),
        ),
        (
            ("1,Exit long,X,2024-08-10 05:30,100,1,", "1,Exit long,X,2024-08-10 06:30,100,1,"),
            FieldProblem("row 3, Trade #", "1", "repeats the Exit long row of trade 1 (row 2)"),
        ),
    ],
    ids=["entry", "exit"],
)
def test_trade_with_two_entry_or_two_exit_rows_is_rejected(rows: tuple[str, str], expected: FieldProblem) -> None:
    _, problems = _problems(_csv(*rows))

    assert problems == (expected,)


def test_exit_before_its_entry_is_rejected() -> None:
    text = _csv("7,Exit long,X,2024-08-10 01:00,100,1,", "7,Entry long,L,2024-08-10 02:30,100,1,")

    _, problems = _problems(text)

    assert problems == (
        FieldProblem(
            "row 2, Date/Time", "2024-08-10 01:00", "is before the entry of trade 7 at 2024-08-10 02:30 (row 3)"
        ),
    )


def test_row_numbers_count_lines_of_multi_line_quoted_cells() -> None:
    text = _csv('1,Entry long,"two\nlines",2024-08-10 02:30,100,1,', "2,Entry long,L,2024-08-10 02:30,bad,1,")

    _, problems = _problems(text)

    assert [p.field for p in problems] == ["row 4, Price USD"]


def test_blank_strategy_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="strategy must not be blank"):
        alerts_from_trade_list(_csv("1,Entry long,L,2024-08-10 02:30,100,1,"), strategy=" ")
