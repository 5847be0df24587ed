from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from crypto_bot.domain.config import ExecutionMode, Settings, StrategyConfig
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


def test_settings_have_typed_defaults() -> None:
    settings = Settings.from_env({"EXCHANGE_NAME": "Binance", "TIMEFRAME": "8h"})
    assert settings.exchange_name == "binance"
    assert settings.quote_currency == "USD"
    assert settings.increment_pct == Decimal("0.001")
    assert settings.execution_mode is ExecutionMode.BOOST
    assert settings.sandbox is False
    assert settings.exchange_options == {}
    assert settings.schedule_offset == timedelta(minutes=1)
    assert settings.timeframe.seconds == 8 * 3600
    assert settings.max_price_jump == Decimal("0.5")


def test_settings_parse_every_variable() -> None:
    settings = Settings.from_env(
        {
            "EXCHANGE_NAME": "bybit",
            "TIMEFRAME": "4h",
            "QUOTE_CURRENCY": "usdt",
            "INCREMENT_PCT": "0.002",
            "EXECUTION_STRATEGY": "MULTI",
            "SANDBOX": "true",
            "EXCHANGE_OPTIONS": '{"options": {"defaultType": "spot"}}',
            "SCHEDULE_OFFSET": "2m",
            "MAX_PRICE_JUMP": "0.25",
        }
    )
    assert settings.quote_currency == "USDT"
    assert settings.increment_pct == Decimal("0.002")
    assert settings.execution_mode is ExecutionMode.MULTI
    assert settings.sandbox is True
    assert settings.exchange_options == {"options": {"defaultType": "spot"}}
    assert settings.schedule_offset == timedelta(minutes=2)
    assert settings.max_price_jump == Decimal("0.25")


def test_missing_required_settings_fail_fast_with_their_names() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    assert "EXCHANGE_NAME is required" in str(info.value)
    assert "TIMEFRAME is required" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INCREMENT_PCT", "abc", "INCREMENT_PCT='abc': not a number"),
        ("INCREMENT_PCT", "0.5", "INCREMENT_PCT='0.5': must be a fraction in [0, 0.1)"),
        ("EXECUTION_STRATEGY", "yolo", "EXECUTION_STRATEGY='yolo': must be one of boost, multi"),
        ("SANDBOX", "Flase", "SANDBOX='Flase': 'Flase' is not a boolean"),
        ("EXCHANGE_OPTIONS", "[1]", "EXCHANGE_OPTIONS='[1]': must be a JSON object"),
        ("EXCHANGE_OPTIONS", "{x", "EXCHANGE_OPTIONS='{x': not valid JSON"),
        ("TIMEFRAME", "7h", "does not divide a day evenly"),
        ("TIMEFRAME", "8 hours", "is not of the form <n>m, <n>h or <n>d"),
        ("SCHEDULE_OFFSET", "9h", "SCHEDULE_OFFSET: schedule offset 9:00:00 must be in [0, 8h)"),
        ("STOP_LOSS_PATTERN", "(", "STOP_LOSS_PATTERN='(': not a valid regular expression"),
        ("MAX_PRICE_JUMP", "0", "MAX_PRICE_JUMP='0': must be a fraction above 0 (0.5 means a price may move 50%"),
        ("MAX_PRICE_JUMP", "-0.5", "MAX_PRICE_JUMP='-0.5': must be a fraction above 0"),
        ("MAX_PRICE_JUMP", "half", "MAX_PRICE_JUMP='half': not a number"),
    ],
)
def test_bad_setting_names_the_variable_and_value(name: str, value: str, message: str) -> None:
    env = {"EXCHANGE_NAME": "binance", "TIMEFRAME": "8h", name: value}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
