from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError


def entry(symbol: str = "BTC/USD", base: str = "BTC", pct: object = 0.2) -> dict[str, object]:
    return {"exchange_symbol": symbol, "base_asset": base, "percentage": pct}


def test_seed_format_loads_with_exact_percentages(tmp_path: Path) -> None:
    path = tmp_path / "strategy_config.json"
    path.write_text(json.dumps({"BTCUSD": entry(pct=0.2), "ETHUSD": entry("ETH/USD", "ETH", 0.25)}))
    config = StrategyConfig.load(path, "USD")
    assert config["BTCUSD"].percentage == Decimal("0.2")
    assert config.total_percentage == Decimal("0.45")
    assert config.symbols() == ["BTC/USD", "ETH/USD"]


def test_sum_above_98_percent_names_the_file_each_percentage_and_the_sum(tmp_path: Path) -> None:
    path = tmp_path / "strategy_config.json"
    path.write_text(json.dumps({"BTCUSD": entry(pct=0.5), "ETHUSD": entry("ETH/USD", "ETH", 0.49)}))
    with pytest.raises(ConfigError) as info:
        StrategyConfig.load(path, "USD")
    assert str(info.value) == (
        f"{path}: strategy percentages add up to 0.99 (BTCUSD 0.5 + ETHUSD 0.49), more than the allowed 0.98 "
        "(2% of the account stays in cash for fees)"
    )


def test_exactly_98_percent_is_allowed() -> None:
    config = StrategyConfig.from_mapping({"A": entry(pct="0.5"), "B": entry("ETH/USD", "ETH", "0.48")}, "USD")
    assert config.total_percentage == Decimal("0.98")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"A": entry(pct=1.5)}, "['A'].percentage: must be a fraction in [0, 1]"),
        (
            {"A": entry(pct=Decimal("-0.1"))},
            "['A'].percentage: must be a fraction in [0, 1] (0.2 means 20%) (got -0.1)",
        ),
        ({"A": entry(pct="lots")}, "['A'].percentage: not a number (got 'lots')"),
        ({"A": entry(symbol="BTC/USDT")}, "['A'].exchange_symbol: quotes in USDT, not the account's USD"),
        ({"A": entry(base="ETH")}, "['A'].base_asset: does not match the symbol's base BTC (got 'ETH')"),
        ({"A": entry(symbol="BTCUSD")}, "['A'].exchange_symbol: is not of the form BASE/QUOTE"),
        ({"A": {"exchange_symbol": "BTC/USD", "percentage": 0.2}}, "['A'].base_asset: is required"),
        ({"A": {**entry(), "percentag": 0.2}}, "['A'].percentag: is not a known field (typo?)"),
        ({"A": "BTC/USD"}, "['A']: must be an object"),
        ({}, "defines no strategies"),
        ([], "expected a JSON object of strategies"),
    ],
)
def test_invalid_config_gets_a_clear_error(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        StrategyConfig.from_mapping(data, "USD")
    assert message in str(info.value)


def test_all_entry_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        StrategyConfig.from_mapping({"A": entry(pct=2), "B": entry(symbol="ETH/EUR", base="ETH")}, "USD")
    assert "['A'].percentage" in str(info.value)
    assert "['B'].exchange_symbol" in str(info.value)


def test_several_strategies_may_share_a_base_asset() -> None:
    config = StrategyConfig.from_mapping({"FAST": entry(pct="0.3"), "SLOW": entry(pct="0.3")}, "USD")
    assert {s.base for s in config.strategies.values()} == {"BTC"}


def test_unreadable_and_malformed_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read strategy config"):
        StrategyConfig.load(tmp_path / "missing.json", "USD")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON at line 1"):
        StrategyConfig.load(bad, "USD")
