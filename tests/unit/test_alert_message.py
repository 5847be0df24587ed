"""``crypto-bot alert-message``: the printed message, filled in as TradingView fills it, is an alert the stack takes.

Each test runs the command, replaces the placeholders of what it printed with the values TradingView
writes when an order fills (https://www.tradingview.com/support/solutions/43000531021/), and sends the
result through the webhook's mapping template (rendered offline, as in test_webhook_templates.py) and
the core's intake (Workflow.receive: parse_signal, then the interval and clock checks).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pytest
from moto import mock_aws

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.timeframe import Timeframe, tradingview_interval_seconds
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot_tools.alert_message import tradingview_interval
from crypto_bot_tools.cli import main
from crypto_bot_tools.local.api_gateway import WebhookDefinition, new_context
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
SIGNALS: Final = "crypto-bot-SignalsQueue-1A2B3C4D5E6F"  # pragma: allowlist secret (a queue name)
URGENT: Final = "crypto-bot-UrgentQueue-7A8B9C0D1E2F"  # pragma: allowlist secret (a queue name)
WEBHOOK = WebhookDefinition.from_template(
    TEMPLATE, {"SignalsQueue.QueueName": SIGNALS, "UrgentQueue.QueueName": URGENT}
)
REQUEST_ID: Final = "0f4c2b7e-2d0a-4c55-9a1e-6b1d8f0c9e21"
FILLED_AT: Final = datetime(2024, 8, 10, 8, 0, 4, tzinfo=UTC)
STRATEGIES: Final = {
    "BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.2"},
    "ETHUSD": {"exchange_symbol": "ETH/USD", "base_asset": "ETH", "percentage": "0.25"},
}
# Two strategies on one ticker, and one whose key is a name rather than a ticker.
SHARED: Final = {
    "BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.3"},
    "BTCUSD_fast": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.2"},
    "sol-trend": {"exchange_symbol": "SOL/USD", "base_asset": "SOL", "percentage": "0.4"},
}
# What TradingView writes for each placeholder when an order fills: an entry, a take profit and a stop (the
# stop leg's comment_loss), on the BTCUSD chart at 8 hours.
FILLS: Final = {
    "entry": {"strategy.order.action": "buy", "strategy.order.comment": "Long entry", "strategy.order.id": "Long"},
    "exit": {"strategy.order.action": "sell", "strategy.order.comment": "Take profit", "strategy.order.id": "Exit"},
    "stop": {"strategy.order.action": "sell", "strategy.order.comment": "Stop loss", "strategy.order.id": "Exit"},
}


def chart(fill: str, *, ticker: str = "BTCUSD", interval: str = "480") -> dict[str, str]:
    """Return every placeholder's value for one fill on a chart of ``ticker`` at ``interval``."""
    position = "long" if FILLS[fill]["strategy.order.action"] == "buy" else "flat"
    return {
        "timenow": FILLED_AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticker": ticker,
        "strategy.order.price": "60000",
        "strategy.market_position": position,
        "interval": interval,
        **FILLS[fill],
    }


def fill_in(message: str, values: dict[str, str]) -> str:
    """Replace each {{placeholder}} as TradingView does: plain text substitution; every one must be known."""
    body = re.sub(r"\{\{([^}]+)\}\}", lambda m: values[m.group(1)], message)
    assert "{{" not in body
    return body


def write_config(tmp_path: Path, strategies: dict[str, Any]) -> Path:
    path = tmp_path / "strategy_config.json"
    path.write_text(json.dumps(strategies), encoding="utf-8")
    return path


def alert_message(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``crypto-bot alert-message ARGV --message-only`` and return what it printed."""
    code = main(["alert-message", *argv, "--template", str(ROOT / "template.yaml"), "--message-only"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def intake(body: str, strategies: dict[str, Any], timeframe: str) -> Any:
    """Receive ``body`` as Collect does for a stack on ``timeframe``; return the stored record."""
    workflow = Workflow(
        MemoryStore(),
        PaperExchange(balances={"USD": Decimal(1000)}),
        StrategyConfig.from_mapping(strategies, "USD"),
        WorkflowSettings(mode=ExecutionMode.BOOST, increment=Decimal("0.001"), timeframe=Timeframe.parse(timeframe)),
        clock=lambda: FILLED_AT + timedelta(seconds=1),
    )
    return workflow.receive(body, message_id="m-1").record


# ------------------------------------------------------------------------------ the message against the stack's rules


@pytest.mark.parametrize(("fill", "queue"), [("entry", SIGNALS), ("exit", SIGNALS), ("stop", URGENT)])
def test_the_filled_message_is_queued_by_the_webhook_and_accepted_by_the_core(
    fill: str, queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = alert_message(capsys, "--strategy", "BTCUSD", "--config", str(write_config(tmp_path, STRATEGIES)))
    body = fill_in(message, chart(fill, interval=tradingview_interval(Timeframe.parse("8h"))))

    request = WEBHOOK.integration_request(body, "application/json", new_context(REQUEST_ID))
    assert request is not None
    assert (request.queue, request.form["MessageBody"]) == (queue, body)
    record = intake(body, STRATEGIES, "8h")
    assert (record.status.value, record.reason) == ("received", "")
    assert (record.strategy, record.action, record.is_stop_loss) == (
        "BTCUSD",
        FILLS[fill]["strategy.order.action"],
        fill == "stop",
    )


def test_the_message_from_a_chart_on_another_timeframe_is_refused_with_the_expected_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = alert_message(capsys, "--strategy", "BTCUSD", "--config", str(write_config(tmp_path, STRATEGIES)))

    record = intake(fill_in(message, chart("entry", interval="60")), STRATEGIES, "8h")

    assert record.status.value == "rejected"
    assert "interval: is another chart's timeframe: this stack trades the 8h timeframe (480 in" in record.reason


def test_the_message_of_a_strategy_that_owns_its_ticker_leaves_the_ticker_to_name_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = alert_message(capsys, "--strategy", "ETHUSD", "--config", str(write_config(tmp_path, STRATEGIES)))

    assert "strategy" not in json.loads(message)
    assert intake(fill_in(message, chart("entry", ticker="ETHUSD")), STRATEGIES, "8h").strategy == "ETHUSD"


def test_two_strategies_on_one_ticker_each_carry_their_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path, SHARED))
    bodies = {
        key: fill_in(alert_message(capsys, "--strategy", key, "--config", config), chart("entry"))
        for key in ("BTCUSD", "BTCUSD_fast")
    }

    # Both alerts come from BTCUSD charts, each names its own strategy, and each is booked to it.
    assert {key: json.loads(body)["strategy"] for key, body in bodies.items()} == {
        "BTCUSD": "BTCUSD",
        "BTCUSD_fast": "BTCUSD_fast",
    }
    assert {key: json.loads(body)["ticker"] for key, body in bodies.items()} == {
        "BTCUSD": "BTCUSD",
        "BTCUSD_fast": "BTCUSD",
    }
    assert {key: intake(body, SHARED, "8h").strategy for key, body in bodies.items()} == {
        "BTCUSD": "BTCUSD",
        "BTCUSD_fast": "BTCUSD_fast",
    }


def test_the_instructions_say_why_the_message_names_the_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, SHARED))

    assert main(["alert-message", "--strategy", "BTCUSD", "--config", config, "--timeframe", "8h"]) == 0
    assert '"strategy": "BTCUSD" because BTCUSD_fast also trades BTC/USD' in capsys.readouterr().out
    assert main(["alert-message", "--strategy", "sol-trend", "--config", config, "--timeframe", "8h"]) == 0
    assert "because sol-trend is not the ticker of SOL/USD (SOLUSD)" in capsys.readouterr().out


def test_a_key_that_is_no_ticker_is_named_in_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = alert_message(capsys, "--strategy", "sol-trend", "--config", str(write_config(tmp_path, SHARED)))

    assert json.loads(message)["strategy"] == "sol-trend"
    record = intake(fill_in(message, chart("entry", ticker="SOLUSD")), SHARED, "8h")
    assert (record.status.value, record.strategy) == ("received", "sol-trend")


@pytest.mark.parametrize(
    ("timeframe", "interval"),
    [
        ("1m", "1"),
        ("15m", "15"),
        ("1h", "60"),
        ("4h", "240"),
        ("8h", "480"),
        ("12h", "720"),
        ("1d", "1D"),
        ("3d", "3D"),
        ("7d", "1W"),
    ],
)
def test_the_interval_is_what_tradingview_writes_and_what_intake_reads_back(timeframe: str, interval: str) -> None:
    parsed = Timeframe.parse(timeframe)

    assert tradingview_interval(parsed) == interval
    assert tradingview_interval_seconds(interval) == parsed.seconds


# ------------------------------------------------------------------------------ where the timeframe and URL come from


def test_without_a_stack_the_template_defaults_give_the_interval_and_the_url_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, STRATEGIES))
    default = Timeframe.parse(TEMPLATE["Parameters"]["Timeframe"]["Default"])
    stage = TEMPLATE["Parameters"]["Stage"]["Default"]

    assert (
        main(["alert-message", "--strategy", "BTCUSD", "--config", config, "--template", str(ROOT / "template.yaml")])
        == 0
    )
    out = capsys.readouterr().out

    assert f"https://<api-id>.execute-api.<region>.amazonaws.com/{stage}/signals?token=<token>" in out
    assert f"{{{{interval}}}} is then {tradingview_interval(default)};" in out
    message = alert_message(capsys, "--strategy", "BTCUSD", "--config", config)
    body = fill_in(message, chart("entry", interval=tradingview_interval(default)))
    assert intake(body, STRATEGIES, default.label).status.value == "received"


def test_a_deployed_stack_gives_its_timeframe_webhook_url_token_parameter_and_stop_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, STRATEGIES))
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/signals"
    parameters = {
        "Stage": "prod",
        "Timeframe": "4h",
        "QuoteCurrency": "USD",
        "StopLossPattern": r"\bsl\b",
        "WebhookTokenParameterName": "/crypto-bot/prod/webhook-token",
    }
    with mock_aws():
        import boto3

        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="crypto-bot-prod",
            TemplateBody=json.dumps(
                {
                    "Parameters": {key: {"Type": "String"} for key in parameters},
                    "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"WebhookUrl": {"Value": url}},
                }
            ),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        argv = ["alert-message", "--strategy", "BTCUSD", "--config", config, "--stack", "crypto-bot-prod"]
        assert main([*argv, "--region", "eu-west-1"]) == 0
        out = capsys.readouterr().out
        message = alert_message(capsys, *argv[1:], "--region", "eu-west-1")

    assert f"Webhook URL:  {url}?token=<token>" in out
    assert "--name /crypto-bot/prod/webhook-token" in out
    assert "{{interval}} is then 240;" in out
    assert r'must match \bsl\b (case-insensitive), e.g. strategy.exit(..., comment_loss="sl")' in out
    assert intake(fill_in(message, chart("entry", interval="240")), STRATEGIES, "4h").status.value == "received"


@pytest.mark.parametrize(
    ("strategies", "key", "error"),
    [
        (STRATEGIES, "DOGEUSD", "--strategy DOGEUSD: not a strategy of the config (known: BTCUSD, ETHUSD)"),
        (
            {**STRATEGIES, "ETHUSD": {**STRATEGIES["ETHUSD"], "percentage": "0"}},
            "ETHUSD",
            "--strategy ETHUSD: its percentage is 0",
        ),
    ],
)
def test_an_unknown_or_disabled_strategy_has_no_message(
    strategies: dict[str, Any], key: str, error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, strategies))

    assert main(["alert-message", "--strategy", key, "--config", config, "--timeframe", "8h"]) == 2
    assert error in capsys.readouterr().err


def test_stack_and_timeframe_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["alert-message", "--strategy", "BTCUSD", "--stack", "s", "--timeframe", "8h"])
    assert "not allowed with argument" in capsys.readouterr().err
