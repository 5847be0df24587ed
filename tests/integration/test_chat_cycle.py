"""The chat channels in the stack: a cycle's summary and the operator's pause reach Telegram and Discord.

template.yaml's stack under moto (tests/support/harness.py) with the chat parameters set: the topic's lambda
subscription delivers every publish to ChannelForwarderFunction (moto's SNS invokes the function, which the
local stack runs in-process), and the forwarder posts to emulated servers (tests/support/chat_servers.py).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.engine.channel_text import channel_text
from crypto_bot_tools.cli import build_parser
from crypto_bot_tools.local.cli import _settings
from crypto_bot_tools.local.controls import apply_request
from crypto_bot_tools.local.server import LocalServer
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT, AlertClock, load_event, paper_environment
from tests.support.chat_servers import DiscordServer, TelegramServer
from tests.support.harness import TEMPLATE, Pipeline, cycle_stack

TOKEN: Final = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret (the emulator's bot)
CHAT_ID: Final = "-1001234567890"
WEBHOOK_TOKEN: Final = "m0ck-W3bh00k-T0ken_abcdefghijklmnopqrstuvwxyz0123456789"  # pragma: allowlist secret
# Named as the README's setup names them, after the stage.
PARAMETERS: Final = {
    "TelegramBotTokenParameterName": "/crypto-bot/dev/telegram-bot-token",
    "TelegramChatIdParameterName": "/crypto-bot/dev/telegram-chat-id",
    "DiscordWebhookParameterName": "/crypto-bot/dev/discord-webhook-url",
}
README_ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")


@pytest.fixture
def servers() -> Iterator[tuple[TelegramServer, DiscordServer]]:
    telegram, discord = TelegramServer(TOKEN, CHAT_ID), DiscordServer("1234567890", WEBHOOK_TOKEN)
    with telegram.running(), discord.running():
        yield telegram, discord


def chat_stack(telegram: TelegramServer, discord: DiscordServer, token: str = TOKEN) -> Any:
    return cycle_stack(
        parameters=PARAMETERS,
        environment=paper_environment(TELEGRAM_API_URL=telegram.url, DISCORD_API_URL=f"{discord.url}/api/webhooks/"),
        ssm_values={
            PARAMETERS["TelegramBotTokenParameterName"]: token,
            PARAMETERS["TelegramChatIdParameterName"]: CHAT_ID,
            PARAMETERS["DiscordWebhookParameterName"]: discord.webhook_url,
        },
    )


def published(pipeline: Pipeline) -> list[str]:
    """The chat text of every SNS publish so far, as the forwarder composes it."""
    return [channel_text(*text.split("\n", 1)) for text in pipeline.notifications()]


def test_a_cycles_summary_reaches_telegram_and_discord_as_the_email_says_it(
    servers: tuple[TelegramServer, DiscordServer],
) -> None:
    telegram, discord = servers
    with chat_stack(telegram, discord) as pipeline:
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        pipeline.run()

        (summary,) = published(pipeline)
        assert "  BTCUSDT: buy 0.15817515" in summary
        assert telegram.delivered == [summary]
        assert discord.delivered == [summary]
        # Run as SNS runs it: once, after Finalize's invocation ended (its publish does not wait for it).
        invoked = [logical for logical, _seconds in pipeline.stack.invocations()]
        assert invoked[-2:] == ["FinalizeFunction", "ChannelForwarderFunction"]
        assert invoked.count("ChannelForwarderFunction") == 1


def test_a_channel_that_refuses_fails_no_cycle_and_the_other_still_gets_it(
    servers: tuple[TelegramServer, DiscordServer],
) -> None:
    telegram, discord = servers
    with chat_stack(telegram, discord, token="987654321:AAwrongwrongwrongwrongwrongwrong") as pipeline:
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        result = pipeline.run()  # SUCCEEDED: the forwarder runs after the publish, outside the cycle

        assert json.loads(result["output"])["status"] == "done"
        assert telegram.delivered == []
        assert len(telegram.requests) == 1  # a 401 is not retried
        assert discord.delivered == published(pipeline)


def test_the_operators_pause_reaches_the_chats(servers: tuple[TelegramServer, DiscordServer]) -> None:
    telegram, discord = servers
    config = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
    with chat_stack(telegram, discord) as pipeline:
        status, answer = apply_request(
            {"command": "pause", "strategy": None, "reason": "exchange maintenance", "by": "trader@local"},
            stack=pipeline.stack,
            config=config,
            config_source="strategy_config.json",
            log=lambda line: None,
        )

        assert (status, answer["notification_error"]) == (200, None)
        (pause,) = telegram.delivered
        assert pause.startswith("crypto-bot paused by trader@local")
        assert "exchange maintenance" in pause
        assert discord.delivered == [pause]


def test_no_chat_parameter_means_no_forwarder() -> None:
    resources = load_template(TEMPLATE)["Resources"]
    chat = [k for k, r in resources.items() if r.get("Condition") == "HasChatChannel"]
    with cycle_stack(environment=paper_environment()) as pipeline:
        assert not set(chat) & set(pipeline.stack.outputs)
    assert set(chat) == {
        "ChannelForwarderFunction",
        "ChannelForwarderSubscription",
        "ChannelForwarderPermission",
        "ChannelFailureAlarm",
        "ChannelForwarderErrorAlarm",
    }


def test_crypto_bot_local_with_a_chat_file_posts_its_cycles_and_pauses_to_the_chats(
    servers: tuple[TelegramServer, DiscordServer], tmp_path: Path
) -> None:
    telegram, discord = servers
    chat_file = tmp_path / "chat.json"
    chat_file.write_text(
        json.dumps(
            {
                "telegram_bot_token": TOKEN,
                "telegram_chat_id": CHAT_ID,
                "discord_webhook_url": discord.webhook_url,
                "telegram_api_url": telegram.url,
                "discord_api_url": f"{discord.url}/api/webhooks/",
            }
        ),
        encoding="utf-8",
    )
    settings = _settings(
        build_parser().parse_args(["local", "--port", "0", "--token", "t0ken", "--chat-file", str(chat_file)])
    )

    with LocalServer(settings, log=lambda _line: None) as server:
        server.serve_in_background()
        assert server.parameters["TelegramBotTokenParameterName"] == "/crypto-bot/dev/telegram-bot-token"
        alert = json.dumps(AlertClock()(README_ALERTS[0:1])[0]).encode()
        request = urllib.request.Request(  # noqa: S310 (the local server's http URL)
            f"{server.url}/signals?token=t0ken", data=alert, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the local server)
            assert response.status == 200
        detail = server.run_cycle()
        assert detail["status"] == "SUCCEEDED"
        server.apply_controls({"command": "pause", "strategy": None, "reason": "", "by": "trader@local"})

    summary, pause = telegram.delivered
    assert "  BTCUSDT: buy 0.15817515" in summary
    assert pause.startswith("crypto-bot paused by trader@local")
    assert discord.delivered == telegram.delivered
