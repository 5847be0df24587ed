"""The ``replay --plot`` chart's series (issue 15 §2): checked as numbers, not pixels.

Equity is marked to market between cycles from ``--prices`` (or the alert prices), starts at the starting cash,
carries its trades as markers and a drawdown; TradingView's own cumulative P&L comes from the export.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.adapters.paper.exchange import CsvPrices
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import InputError
from crypto_bot_tools import report
from crypto_bot_tools.charts import (
    Marker,
    MarkerKind,
    Point,
    Series,
    equity_series,
    tradingview_profits,
    tradingview_series,
)
from crypto_bot_tools.cli import main
from crypto_bot_tools.replay import ReplayOptions, replay
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "tradingview"
# 12,000 USDT: boost buys 95% = 11,400 of BTC at 60,000, exactly 0.19 BTC, and keeps 600 in cash.
CASH = D(12000)
HELD = D("0.19")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def alert(ticker: str, action: str, time: str, price: str, comment: str = "x") -> dict[str, Any]:
    return {"time": time, "ticker": ticker, "order_action": action, "order_price": price, "order_comment": comment}


def price_file(tmp_path: Path, rows: list[tuple[str, str, str]]) -> CsvPrices:
    path = tmp_path / "prices.csv"
    path.write_text("time,symbol,price\n" + "".join(f"{t},{s},{p}\n" for t, s, p in rows))
    return CsvPrices(path)


def points(series: Series) -> list[tuple[datetime, D]]:
    return [(p.at, p.value) for p in series.points]


def protected_config(tmp_path: Path) -> Path:
    data = json.loads((ROOT / "strategy_config.json").read_text())
    data["BTCUSDT"]["protective_stop"] = {"percent": "0.05"}  # 57,000 below a 60,000 entry
    path = tmp_path / "strategy_config.json"
    path.write_text(json.dumps(data))
    return path


ENTRY_THEN_STOP = [
    alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000"),
    alert("BTCUSDT", "sell", "2024-08-10T10:30:00Z", "61000", "Stop loss"),
]


def test_equity_is_marked_to_market_at_every_price_row_between_cycles_from_the_starting_cash(
    readme_config: StrategyConfig, tmp_path: Path
) -> None:
    prices = price_file(
        tmp_path,
        [
            ("2024-08-10T00:00:00Z", "BTC/USDT", "60000"),
            ("2024-08-10T08:00:00Z", "BTC/USDT", "60000"),
            ("2024-08-10T09:00:00Z", "BTC/USDT", "63000"),
            ("2024-08-10T10:00:00Z", "BTC/USDT", "61000"),
            ("2024-08-10T12:00:00Z", "BTC/USDT", "65000"),  # after the last cycle: all cash
        ],
    )
    result = replay(ENTRY_THEN_STOP, readme_config, ReplayOptions(cash=CASH, fee=D(0), increment=D(0), prices=prices))

    series = equity_series(result, prices)

    assert series.name == "boost"
    assert points(series) == [
        (at("2024-08-10T00:00"), CASH),  # the first price row, before the first alert
        (at("2024-08-10T08:00"), CASH),  # cash only until the entry's cycle
        (at("2024-08-10T08:01"), CASH),  # the entry's cycle: no fee
        (at("2024-08-10T09:00"), 600 + HELD * 63000),  # marked to market between cycles
        (at("2024-08-10T10:00"), 600 + HELD * 61000),
        (at("2024-08-10T10:30"), 600 + HELD * 61000),  # the stop loss's own cycle sold at 61,000
        (at("2024-08-10T12:00"), 600 + HELD * 61000),
    ]
    assert series.markers == (
        Marker(at("2024-08-10T08:01"), CASH, MarkerKind.ENTRY, "BTCUSDT"),
        Marker(at("2024-08-10T10:30"), D(12190), MarkerKind.STOP_LOSS, "BTCUSDT"),
    )
    fall = (D(12190) / D(12570) - 1) * 100  # from the 12,570 peak at 09:00
    assert [p.value for p in series.drawdown] == [0, 0, 0, 0, fall, fall, fall]
    assert fall.quantize(D("0.01")) == D("-3.02")


def test_without_prices_the_holdings_are_marked_at_each_alert_price(readme_config: StrategyConfig) -> None:
    alerts = [
        alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000"),
        alert("BTCUSDT", "sell", "2024-08-10T10:30:00Z", "63000"),
    ]
    result = replay(alerts, readme_config, ReplayOptions(cash=CASH, fee=D(0), increment=D(0)))

    series = equity_series(result)

    assert points(series) == [
        (at("2024-08-10T02:30"), CASH),  # the first alert
        (at("2024-08-10T08:01"), CASH),
        (at("2024-08-10T10:30"), 600 + HELD * 63000),  # the exit alert's price, before its cycle sells there
        (at("2024-08-10T16:01"), 600 + HELD * 63000),
    ]
    assert [(m.at, m.kind) for m in series.markers] == [
        (at("2024-08-10T08:01"), MarkerKind.ENTRY),
        (at("2024-08-10T16:01"), MarkerKind.EXIT),
    ]


def test_a_protective_stop_that_fills_between_cycles_changes_the_holdings_and_is_marked_where_it_filled(
    tmp_path: Path,
) -> None:
    config = StrategyConfig.load(protected_config(tmp_path), "USDT")
    prices = price_file(
        tmp_path,
        [
            ("2024-08-10T00:00:00Z", "BTC/USDT", "60000"),
            ("2024-08-11T00:00:00Z", "BTC/USDT", "56800"),  # through the 57,000 stop, above its 56,430 limit
            ("2024-08-12T00:00:00Z", "BTC/USDT", "62000"),  # the coins are sold: no longer worth more
            ("2024-08-13T08:00:00Z", "BTC/USDT", "60000"),
        ],
    )
    alerts = [
        alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000"),
        alert("BTCUSDT", "sell", "2024-08-13T08:30:00Z", "60000"),  # ignored: the stop sold already
    ]
    result = replay(alerts, config, ReplayOptions(cash=CASH, fee=D(0), increment=D(0), prices=prices))

    series = equity_series(result, prices)

    sold = 600 + HELD * 56800
    assert points(series) == [
        (at("2024-08-10T00:00"), CASH),
        (at("2024-08-10T08:01"), CASH),
        (at("2024-08-11T00:00"), sold),
        (at("2024-08-12T00:00"), sold),
        (at("2024-08-13T08:00"), sold),
        (at("2024-08-13T16:01"), sold),  # the cycle that books the stop
    ]
    assert [(m.at, m.equity, m.kind) for m in series.markers] == [
        (at("2024-08-10T08:01"), CASH, MarkerKind.ENTRY),
        (at("2024-08-11T00:00"), sold, MarkerKind.PROTECTIVE_STOP),
    ]


def test_after_the_last_cycle_the_holdings_are_marked_to_the_last_price_unless_a_stop_rests(tmp_path: Path) -> None:
    rows = [
        ("2024-08-10T00:00:00Z", "BTC/USDT", "60000"),
        ("2024-08-11T00:00:00Z", "BTC/USDT", "61000"),
        ("2024-08-12T00:00:00Z", "BTC/USDT", "62000"),
    ]
    prices = price_file(tmp_path, rows)
    entry = [alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000")]
    options = ReplayOptions(cash=CASH, fee=D(0), increment=D(0), prices=prices)
    bare = replay(entry, StrategyConfig.load(ROOT / "strategy_config.json", "USDT"), options)
    stopped = replay(entry, StrategyConfig.load(protected_config(tmp_path), "USDT"), options)

    assert points(equity_series(bare, prices))[-2:] == [
        (at("2024-08-11T00:00"), 600 + HELD * 61000),
        (at("2024-08-12T00:00"), 600 + HELD * 62000),
    ]
    assert points(equity_series(stopped, prices)) == [(at("2024-08-10T00:00"), CASH), (at("2024-08-10T08:01"), CASH)]


def test_a_boost_sell_down_is_marked_apart_from_the_entry_it_makes_room_for(readme_config: StrategyConfig) -> None:
    result = replay(
        [
            alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000"),
            alert("ETHUSDT", "buy", "2024-08-10T10:30:00Z", "3000"),
        ],
        readme_config,
        ReplayOptions(mode=ExecutionMode.BOOST, fee=D(0), increment=D(0)),
    )
    assert [(m.at, m.kind, m.strategy) for m in equity_series(result).markers] == [
        (at("2024-08-10T08:01"), MarkerKind.ENTRY, "BTCUSDT"),
        (at("2024-08-10T16:01"), MarkerKind.SELL_DOWN, "BTCUSDT"),
        (at("2024-08-10T16:01"), MarkerKind.ENTRY, "ETHUSDT"),
    ]


def test_tradingviews_cumulative_pnl_is_read_at_each_exit_from_the_first_entry() -> None:
    text = (FIXTURES / "BTCUSD_list_of_trades.csv").read_text(encoding="utf-8")

    profits = tradingview_profits(text, source="BTCUSD_list_of_trades.csv")

    assert profits == (
        Point(at("2024-08-10T02:30"), D(0)),
        Point(at("2024-08-10T14:00"), D("11.82")),
        Point(at("2024-08-11T09:45"), D("3.06")),
        Point(at("2024-08-12T08:00"), D("9.56")),
        Point(at("2024-08-13T23:00"), D("-4.84")),  # the open trade at the last close
    )
    series = tradingview_series([profits], D(10000))
    assert [p.value for p in series.points] == [D(10000), D("10011.82"), D("10003.06"), D("10009.56"), D("9995.16")]
    assert series.drawdown[2].value == (D("10003.06") / D("10011.82") - 1) * 100


def test_the_older_export_with_cum_profit_and_two_exports_summed() -> None:
    old = tradingview_profits((FIXTURES / "ETHUSDT_list_of_trades_old.csv").read_text(encoding="utf-8"))
    assert old == (
        Point(at("2023-03-04T10:00"), D(0)),
        Point(at("2023-03-05T14:00"), D("3.34")),
        Point(at("2023-03-10T06:00"), D("-53.07")),
    )
    later = (Point(at("2023-03-05T00:00"), D(0)), Point(at("2023-03-06T00:00"), D(10)))

    series = tradingview_series([old, later], D(1000), name="TradingView ETH, BTC")

    assert points(series) == [
        (at("2023-03-04T10:00"), D(1000)),
        (at("2023-03-05T00:00"), D(1000)),
        (at("2023-03-05T14:00"), D("1003.34")),
        (at("2023-03-06T00:00"), D("1013.34")),
        (at("2023-03-10T06:00"), D("956.93")),
    ]


def test_an_export_without_a_cumulative_pnl_column_is_refused_naming_the_column() -> None:
    text = "Trade #,Type,Signal,Date/Time,Price USD\n1,Entry long,L,2024-08-10 02:30,60000\n"
    with pytest.raises(InputError) as info:
        tradingview_profits(text, source="t.csv")
    assert "column Cum. Profit: is missing; accepted names: Cum. Profit <currency>" in str(info.value)


def test_a_cumulative_pnl_that_is_not_a_number_is_refused_naming_the_row() -> None:
    text = "Trade #,Type,Date/Time,Price USD,Cum. Profit USD\n1,Entry long,2024-08-10 02:30,60000,\n"
    text += "1,Exit long,2024-08-11 02:30,61000,1.234.5\n"
    with pytest.raises(InputError) as info:
        tradingview_profits(text, source="t.csv")
    assert "row 3, Cum. Profit USD: must be a number such as -4.84: not a number (got '1.234.5')" in str(info.value)


def test_compare_plot_overlays_both_modes_and_each_without_protections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[list[Series], Series | None]] = []
    monkeypatch.setattr(report, "plot_equity", lambda s, _out, _quote, *, backtest: drawn.append((list(s), backtest)))
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "time,symbol,price\n2024-08-10T00:00:00Z,BTC/USDT,60000\n2024-08-11T00:00:00Z,BTC/USDT,56800\n"
        "2024-08-13T08:00:00Z,BTC/USDT,60000\n"
    )
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        json.dumps(alert("BTCUSDT", "buy", "2024-08-10T02:30:00Z", "60000"))
        + "\n"
        + json.dumps(alert("BTCUSDT", "sell", "2024-08-13T08:30:00Z", "60000"))
        + "\n"
    )
    argv = ["replay", str(alerts), "--config", str(protected_config(tmp_path)), "--prices", str(prices)]
    argv += ["--cash", "12000", "--fee", "0", "--increment", "0", "--compare", "--json", "--plot", "x.png"]

    assert main(argv) == 0

    ((curves, backtest),) = drawn
    assert [c.name for c in curves] == ["boost", "multi", "boost without protections", "multi without protections"]
    assert [c.points[-1].value for c in curves] == [
        600 + HELD * 56800,  # boost: the stop sold at 56,800
        9600 + D("0.04") * 56800,  # multi: 20% = 0.04 BTC, the same stop
        CASH,  # boost without the stop: the exit alert sells at 60,000
        CASH,
    ]
    assert [m.kind for m in curves[0].markers] == [MarkerKind.ENTRY, MarkerKind.PROTECTIVE_STOP]
    assert [m.kind for m in curves[2].markers] == [MarkerKind.ENTRY, MarkerKind.EXIT]
    assert backtest is None


def test_plot_with_trades_draws_tradingviews_curve_from_the_starting_cash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Series | None] = []
    monkeypatch.setattr(report, "plot_equity", lambda _s, _out, _quote, *, backtest: drawn.append(backtest))
    config = tmp_path / "strategy_config.json"
    config.write_text(json.dumps({"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": 0.2}}))
    trades = FIXTURES / "BTCUSD_list_of_trades.csv"

    argv = ["replay", "--config", str(config), "--quote", "USD", "--trades", f"BTCUSD={trades}", "--json"]
    assert main([*argv, "--plot", str(tmp_path / "x.png")]) == 0

    (backtest,) = drawn
    assert backtest is not None
    assert backtest.name == "TradingView BTCUSD"
    assert backtest.points[0] == Point(at("2024-08-10T02:30"), D(10000))
    assert backtest.points[-1] == Point(at("2024-08-13T23:00"), D("9995.16"))


EVERY_3H = [datetime(2024, 8, 10, tzinfo=UTC) + timedelta(hours=3 * i) for i in range(36)]


def test_plot_writes_a_png_with_trades_markers_and_tradingviews_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps(
            {
                "BTCUSD": {
                    "exchange_symbol": "BTC/USD",
                    "base_asset": "BTC",
                    "percentage": 0.2,
                    "protective_stop": {"percent": "0.01"},
                }
            }
        )
    )
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "time,symbol,price\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},BTC/USD,{60000 + 150 * (i % 11)}\n" for i, t in enumerate(EVERY_3H))
    )
    out = tmp_path / "chart.png"
    argv = ["replay", "--config", str(config), "--quote", "USD", "--prices", str(prices), "--compare", "--json"]
    argv += ["--trades", f"BTCUSD={FIXTURES / 'BTCUSD_list_of_trades.csv'}", "--plot", str(out)]

    assert main(argv) == 0

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in capsys.readouterr().err
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
