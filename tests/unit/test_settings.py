"""The step functions' settings: template.yaml's Globals are required, read typed, refused with name and value."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from crypto_bot.domain.config import ExecutionMode
from crypto_bot.domain.errors import ConfigError
from crypto_bot.entrypoints.settings import PaperSettings, Settings
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT
from tests.support.environment import template_environment

GLOBALS = load_template(ROOT / "template.yaml")["Globals"]["Function"]["Environment"]["Variables"]
# Read by Powertools or the handler glue, not by the settings.
NOT_SETTINGS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL", "POWERTOOLS_TRACE_DISABLED"}
# Read only when PAPER_TRADING is true.
PAPER_ONLY = {"PAPER_STARTING_CASH", "PAPER_PRICES", "PAPER_MARKETS"}


def test_the_template_defaults_read_as_deployed() -> None:
    settings = Settings.from_env(template_environment(TABLE_NAME="t"))

    assert settings.table_name == "t"
    assert settings.exchange_name == "binance"
    assert settings.exchange_options == {}
    assert settings.sandbox is False
    assert settings.quote_currency == "USDT"
    assert settings.timeframe.seconds == 8 * 3600
    assert settings.increment_pct == Decimal("0.001")
    assert settings.execution_mode is ExecutionMode.BOOST
    assert settings.stop_loss_regex.search("Stop loss hit") is not None
    assert settings.max_signal_age == timedelta(minutes=485)
    assert settings.fill_timeout == timedelta(seconds=60)
    assert settings.max_reprice_attempts == 2
    assert settings.lock_lease == timedelta(seconds=900)
    assert (settings.secret_store, settings.api_key_parameter) == ("ssm", "/crypto-bot/dev/exchange-api-key")
    assert settings.paper is None
    # The tunables the template leaves unset.
    assert settings.schedule_offset == timedelta(minutes=1)
    assert settings.max_price_jump == Decimal("0.5")
    assert settings.reconcile_budget == timedelta(seconds=60)
    assert settings.sqs_wait_seconds == 1
    # Set on one function each, not in Globals.
    assert (settings.signals_queue_url, settings.notifications_topic_arn) == (None, None)


def test_every_variable_parses_to_its_type() -> None:
    env = template_environment(
        TABLE_NAME="t",
        EXCHANGE_NAME="Bybit",
        TIMEFRAME="4h",
        QUOTE_CURRENCY="usdt",
        INCREMENT_PCT="0.002",
        EXECUTION_STRATEGY="MULTI",
        SANDBOX="true",
        EXCHANGE_OPTIONS='{"options": {"defaultType": "spot"}}',
        SCHEDULE_OFFSET="2m",
        MAX_PRICE_JUMP="0.25",
        MAX_SIGNAL_AGE_MINUTES="0",
        RECONCILE_BUDGET_SECONDS="30",
        SECRET_STORE="secretsmanager",  # pragma: allowlist secret (the store's name)
        PAPER_TRADING="true",
        PAPER_STARTING_CASH="2500.50",
        PAPER_PRICES="alerts",
        PAPER_MARKETS="recorded:/tmp/markets.json",
        SIGNALS_QUEUE_URL="https://sqs/q",
        SQS_WAIT_SECONDS="0",
        NOTIFICATIONS_TOPIC_ARN="arn:aws:sns:us-east-1:1:t",
    )
    settings = Settings.from_env(env)

    assert settings.exchange_name == "bybit"
    assert settings.quote_currency == "USDT"
    assert settings.increment_pct == Decimal("0.002")
    assert settings.execution_mode is ExecutionMode.MULTI
    assert settings.sandbox is True
    assert settings.exchange_options == {"options": {"defaultType": "spot"}}
    assert settings.schedule_offset == timedelta(minutes=2)
    assert settings.max_price_jump == Decimal("0.25")
    assert settings.max_signal_age is None  # 0: never expire, as the local stack's --max-signal-age 0 asks
    assert settings.reconcile_budget == timedelta(seconds=30)
    assert settings.secret_store == "secretsmanager"  # pragma: allowlist secret (a store's name)
    assert settings.paper == PaperSettings(Decimal("2500.50"), "alerts", "recorded:/tmp/markets.json")
    assert settings.strategy_config_path == ROOT / "strategy_config.json"
    assert isinstance(settings.strategy_config_path, Path)
    assert (settings.signals_queue_url, settings.sqs_wait_seconds) == ("https://sqs/q", 0)
    assert settings.notifications_topic_arn == "arn:aws:sns:us-east-1:1:t"


@pytest.mark.parametrize("name", sorted(set(GLOBALS) - NOT_SETTINGS - PAPER_ONLY))
def test_every_setting_the_template_sets_is_required(name: str) -> None:
    env = template_environment(TABLE_NAME="t")
    del env[name]

    with pytest.raises(ConfigError, match=f"^invalid settings: {name} is required but not set$"):
        Settings.from_env(env)


@pytest.mark.parametrize("name", sorted(PAPER_ONLY))
def test_a_paper_stage_requires_its_paper_settings(name: str) -> None:
    env = template_environment(TABLE_NAME="t", PAPER_TRADING="true")
    del env[name]

    with pytest.raises(ConfigError, match=f"^invalid settings: {name} is required but not set$"):
        Settings.from_env(env)
    del env["PAPER_TRADING"]
    with pytest.raises(ConfigError, match="^invalid settings: PAPER_TRADING is required but not set$"):
        Settings.from_env(env)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TIMEFRAME": "8h", "SANDBOX": "maybe"})
    message = str(info.value)
    assert "EXCHANGE_NAME is required but not set" in message
    assert "TABLE_NAME is required but not set" in message
    assert "SANDBOX='maybe': 'maybe' is not a boolean (use true or false)" in message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INCREMENT_PCT", "abc", "INCREMENT_PCT='abc': not a number"),
        ("INCREMENT_PCT", "0.5", "INCREMENT_PCT='0.5': must be a fraction in [0, 0.1)"),
        ("EXECUTION_STRATEGY", "yolo", "EXECUTION_STRATEGY='yolo': must be one of boost, multi"),
        ("SANDBOX", "Flase", "SANDBOX='Flase': 'Flase' is not a boolean"),
        ("PAPER_TRADING", "ja", "PAPER_TRADING='ja': 'ja' is not a boolean"),
        ("EXCHANGE_OPTIONS", "[1]", "EXCHANGE_OPTIONS='[1]': must be a JSON object"),
        ("EXCHANGE_OPTIONS", "{x", "EXCHANGE_OPTIONS='{x': not valid JSON"),
        ("TIMEFRAME", "7h", "does not divide a day evenly"),
        ("TIMEFRAME", "8 hours", "is not of the form <n>m, <n>h or <n>d"),
        ("SCHEDULE_OFFSET", "9h", "SCHEDULE_OFFSET: schedule offset 9:00:00 must be in [0, 8h)"),
        ("SCHEDULE_OFFSET", "soon", "SCHEDULE_OFFSET='soon': 'soon' is not a duration like 30s, 1m or 2h"),
        ("STOP_LOSS_PATTERN", "(", "STOP_LOSS_PATTERN='(': not a valid regular expression"),
        ("MAX_PRICE_JUMP", "0", "MAX_PRICE_JUMP='0': must be a fraction above 0 (0.5 means a price may move 50%"),
        ("MAX_PRICE_JUMP", "half", "MAX_PRICE_JUMP='half': not a number"),
        ("MAX_SIGNAL_AGE_MINUTES", "-1", "MAX_SIGNAL_AGE_MINUTES='-1': must be 0 or more"),
        ("FILL_TIMEOUT_SECONDS", "1.5", "FILL_TIMEOUT_SECONDS='1.5': not a whole number"),
        ("MAX_REPRICE_ATTEMPTS", "two", "MAX_REPRICE_ATTEMPTS='two': not a whole number"),
        ("LOCK_LEASE_SECONDS", "15m", "LOCK_LEASE_SECONDS='15m': not a whole number"),
        ("RECONCILE_BUDGET_SECONDS", "x", "RECONCILE_BUDGET_SECONDS='x': not a whole number"),
        ("SQS_WAIT_SECONDS", "-2", "SQS_WAIT_SECONDS='-2': must be 0 or more"),
        ("SECRET_STORE", "vault", "SECRET_STORE='vault': must be ssm or secretsmanager"),  # pragma: allowlist secret
    ],
)
def test_a_bad_setting_names_the_variable_and_its_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(template_environment(TABLE_NAME="t", **{name: value}))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PAPER_STARTING_CASH", "lots", "PAPER_STARTING_CASH='lots': not a number"),
        ("PAPER_STARTING_CASH", "-1", "PAPER_STARTING_CASH='-1': must be 0 or more"),
        ("PAPER_PRICES", "ticker", "PAPER_PRICES='ticker': must be live or alerts"),
        ("PAPER_MARKETS", "exchange", "PAPER_MARKETS='exchange': must be venue, recorded:PATH or permissive"),
        ("PAPER_MARKETS", "recorded:", "PAPER_MARKETS='recorded:': must be venue, recorded:PATH or permissive"),
    ],
)
def test_a_bad_paper_setting_names_the_variable_and_its_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(template_environment(TABLE_NAME="t", PAPER_TRADING="true", **{name: value}))
    assert message in str(info.value)
