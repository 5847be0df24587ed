"""``crypto-bot replay`` with TradingView trade lists: chart zones as TradingView names them, open trades, --json.

Issue 13 §5: ``--trades-tz UTC+2`` was refused, the ``Open`` row's price was dropped (an open trade was valued
at its entry), and ``--json --compare`` printed no comparison.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crypto_bot_tools.cli import main
from crypto_bot_tools.tradingview import LastClose, parse_chart_zone, read_trade_list

HEADER = "Trade #,Type,Signal,Date/Time,Price USD,Contracts,Profit USD"
CONFIG = {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": 0.2}}


def _csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "strategy_config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def _replay(capsys: pytest.CaptureFixture[str], config: Path, trades: Path, *options: str) -> list[dict[str, Any]]:
    argv = ["replay", "--config", str(config), "--quote", "USD", "--fee", "0", "--increment", "0"]
    assert main([*argv, "--trades", f"BTCUSD={trades}", "--json", *options]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("UTC+2", timedelta(hours=2)),
        ("UTC-3", timedelta(hours=-3)),
        ("UTC+5:30", timedelta(hours=5, minutes=30)),
        ("UTC+05:45", timedelta(hours=5, minutes=45)),
        ("utc-09:30", timedelta(hours=-9, minutes=-30)),
        ("UTC", timedelta(0)),
    ],
)
def test_tradingviews_offset_zones_are_fixed_offsets(name: str, offset: timedelta) -> None:
    assert parse_chart_zone(name).utcoffset(datetime(2024, 8, 10)) == offset  # noqa: DTZ001 (a wall clock)


def test_a_city_zone_follows_its_daylight_saving_time() -> None:
    berlin = parse_chart_zone("Europe/Berlin")
    assert berlin == ZoneInfo("Europe/Berlin")
    assert berlin.utcoffset(datetime(2024, 1, 10)) == timedelta(hours=1)  # noqa: DTZ001
    assert berlin.utcoffset(datetime(2024, 8, 10)) == timedelta(hours=2)  # noqa: DTZ001


@pytest.mark.parametrize("name", ["UTC+15", "UTC+2:75", "Mars/Olympus", "+2"])
def test_an_unknown_zone_is_refused_with_the_accepted_forms(name: str) -> None:
    with pytest.raises(ValueError, match="UTC"):
        parse_chart_zone(name)


def test_replay_reads_trade_times_in_a_utc_offset_zone(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    trades = tmp_path / "trades.csv"
    # 09:30 on a UTC+2 chart is 07:30 UTC: the 08:01 cycle takes it (read as UTC it would wait for 16:01).
    trades.write_text(_csv("1,Entry long,Long,2024-08-10 09:30,60000,0.01,"))
    (cycle,) = _replay(capsys, config, trades, "--trades-tz", "UTC+2")
    assert cycle["cycle"] == "2024-08-10T08:01:00Z"
    assert [order["side"] for order in cycle["orders"]] == ["buy"]


def test_replay_refuses_an_unknown_trades_zone(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--config", str(config), "--trades", "BTCUSD=x.csv", "--trades-tz", "UTC+2h"])
    assert exited.value.code == 2
    assert "--trades-tz 'UTC+2h': not a known timezone (e.g. UTC, UTC+2" in capsys.readouterr().err


def test_the_open_rows_price_is_kept_as_the_last_close() -> None:
    text = _csv(
        "1,Entry long,Long,2024-08-10 02:30,60000,0.01,",
        "1,Exit long,Open,2024-08-13 23:00,59010.5,0.01,-9.9",
    )
    trades = read_trade_list(text, strategy="BTCUSD", tz=timezone(timedelta(hours=2)))
    assert [a["order_action"] for a in trades.alerts] == ["buy"]
    assert trades.last_close == LastClose("59010.5", datetime(2024, 8, 13, 21, 0, tzinfo=UTC))


@pytest.mark.parametrize("exit_row", ["1,Exit long,Open,,,,", "1,Exit long,,Open,—,0.01,0"])
def test_an_open_row_without_a_price_gives_no_last_close(exit_row: str) -> None:
    trades = read_trade_list(_csv("1,Entry long,Long,2024-08-10 02:30,60000,0.01,", exit_row), strategy="BTCUSD")
    assert trades.last_close is None


def test_every_trade_closed_gives_no_last_close() -> None:
    text = _csv("1,Entry long,Long,2024-08-10 02:30,60000,0.01,", "1,Exit long,TP,2024-08-11 02:30,61000,0.01,10")
    assert read_trade_list(text, strategy="BTCUSD").last_close is None


def test_an_open_trade_is_valued_at_the_last_close_not_its_entry(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text(
        _csv("1,Entry long,Long,2024-08-10 02:30,60000,0.01,", "1,Exit long,Open,2024-08-13 23:00,66000,0.01,60")
    )
    cycle, closing = _replay(capsys, config, trades, "--compare")[:2]
    bought = Decimal(str(cycle["positions"]["BTCUSD"]["amount"]))
    cash = Decimal(str(cycle["cash"]))
    assert Decimal(str(cycle["equity"])) == cash + bought * 60000  # the last cycle knows only the entry price
    assert closing["closing"]["prices"] == {"BTC/USD": 66000}
    assert Decimal(str(closing["closing"]["equity"])) == cash + bought * 66000
    assert Decimal(str(closing["closing"]["positions"]["BTCUSD"]["value"])) == bought * 66000


def test_json_compare_ends_with_both_modes_figures(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text(
        _csv("1,Entry long,Long,2024-08-10 02:30,60000,0.01,", "1,Exit long,Open,2024-08-13 23:00,66000,0.01,60")
    )
    *_cycles, closing, last = _replay(capsys, config, trades, "--compare")
    comparison = last["comparison"]
    assert sorted(comparison) == ["boost", "multi"]
    assert set(comparison["boost"]) == {"final_equity", "return", "max_drawdown", "orders", "turnover", "fees"}
    # Both modes end at the closing valuation: one strategy, so both hold the same position.
    assert comparison["boost"]["final_equity"] == closing["closing"]["equity"]
    assert comparison["boost"]["orders"] == 1
    final = Decimal(str(comparison["boost"]["final_equity"]))
    assert Decimal(str(comparison["boost"]["return"])) == final / 10000 - 1


def test_json_without_compare_prints_no_comparison(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text(_csv("1,Entry long,Long,2024-08-10 02:30,60000,0.01,"))
    assert ["comparison" in line for line in _replay(capsys, config, trades)] == [False]
