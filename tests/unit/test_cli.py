from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto_bot_tools.cli import main
from tests.conftest import EVENTS, ROOT

ALERTS = str(EVENTS / "alerts" / "readme_example.jsonl")
CONFIG = str(ROOT / "strategy_config.json")


def test_replay_json_prints_one_object_per_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", ALERTS, "--config", CONFIG, "--fee", "0", "--increment", "0", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    cycles = [json.loads(line) for line in lines]
    assert len(cycles) == 5
    assert cycles[0]["positions"]["BTCUSDT"]["weight"] == 0.94999998  # 9,499.9998 of 10,000: the lot truncation
    assert cycles[2]["positions"] == {}
    assert cycles[2]["cash"] == 10000


def test_replay_table_shows_each_cycle_and_the_portfolio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", ALERTS, "--config", CONFIG, "--fee", "0", "--increment", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("cycle 2024-08-") == 5
    assert "95.00%" in out
    assert "equity" in out


def test_compare_prints_both_modes_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", ALERTS, "--config", CONFIG, "--compare", "--mode", "multi"]) == 0
    out = capsys.readouterr().out
    assert "mode comparison" in out
    assert out.index("multi mode") < out.index("boost mode")
    assert "max drawdown" in out


def test_missing_config_is_a_clear_error_with_exit_code_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", ALERTS, "--config", str(tmp_path / "nope.json")]) == 2
    assert "cannot read strategy config" in capsys.readouterr().err


def test_bad_number_option_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", ALERTS, "--cash", "lots"])
    assert info.value.code == 2
    assert "--cash 'lots': not a number" in capsys.readouterr().err


def test_replay_needs_alerts_or_trades(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--config", CONFIG]) == 2
    assert "give an ALERTS.jsonl file" in capsys.readouterr().err


def test_trades_for_an_unknown_strategy_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", "--config", CONFIG, "--trades", f"DOGE={tmp_path / 'x.csv'}"]) == 2
    assert "DOGE is not a strategy" in capsys.readouterr().err


def test_trade_list_export_replays(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = ROOT / "tests" / "fixtures" / "tradingview" / "BTCUSD_list_of_trades.csv"
    assert main(["replay", "--config", CONFIG, "--trades", f"BTCUSDT={fixture}", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The fixture's last trade is still open: after the cycles, its valuation at the export's last close.
    *cycles, closing = lines
    assert cycles
    assert all(order["strategy"] == "BTCUSDT" for c in cycles for order in c["orders"])
    assert list(closing) == ["closing"]


def test_rejected_alerts_go_to_stderr_in_json_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text('{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSDT", "order_action": "hodl"}\n')
    assert main(["replay", str(alerts), "--config", CONFIG, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    rejection = json.loads(captured.err.strip())
    assert rejection["rejected"] == "alerts.jsonl:1"
    assert "order_action: must be buy or sell (got 'hodl')" in rejection["reason"]


@pytest.mark.parametrize(("band", "reported"), [(None, ["alerts.jsonl:2"]), ("1", [])])
def test_replay_max_price_jump_sets_the_price_band(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, band: str | None, reported: list[str]
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    base = {"ticker": "BTCUSDT", "order_comment": "x"}
    lines = [
        {**base, "time": "2024-08-10T02:30:02Z", "order_action": "buy", "order_price": "60000"},
        {**base, "time": "2024-08-10T10:30:02Z", "order_action": "sell", "order_price": "120000"},  # +100%
    ]
    alerts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    option = ["--max-price-jump", band] if band is not None else []

    assert main(["replay", str(alerts), "--config", CONFIG, "--json", *option]) == 0

    captured = capsys.readouterr()
    assert [json.loads(line)["rejected"] for line in captured.err.splitlines()] == reported
    assert len(captured.out.splitlines()) == 2 - len(reported)


def test_a_max_price_jump_of_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", ALERTS, "--max-price-jump", "0"])
    assert info.value.code == 2
    assert "--max-price-jump '0': must be a fraction above 0" in capsys.readouterr().err


def test_plot_writes_both_equity_curves_to_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "equity.png"
    assert main(["replay", ALERTS, "--config", CONFIG, "--plot", str(out), "--json"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert f"wrote {out}" in capsys.readouterr().err
