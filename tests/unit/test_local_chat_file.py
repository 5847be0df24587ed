"""``crypto-bot local --chat-file``: the chat settings read, checked and named after the stage as deployed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.cli import build_parser
from crypto_bot_tools.local.cli import _settings
from crypto_bot_tools.local.settings import LocalSettings, StackPlan

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret (a made-up bot)


def settings_with(tmp_path: Path, chat: object) -> LocalSettings:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(chat), encoding="utf-8")
    settings: LocalSettings = _settings(build_parser().parse_args(["local", "--chat-file", str(path)]))
    return settings


def test_the_chat_file_names_the_stages_parameters_and_points_the_forwarder_at_the_given_urls(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, {"telegram_bot_token": TOKEN, "telegram_chat_id": "42", "telegram_api_url": "http://127.0.0.1:9"}
    )
    plan = StackPlan.build(settings)

    assert plan.parameters["TelegramBotTokenParameterName"] == "/crypto-bot/dev/telegram-bot-token"
    assert plan.parameters["TelegramChatIdParameterName"] == "/crypto-bot/dev/telegram-chat-id"
    assert "DiscordWebhookParameterName" not in plan.parameters
    assert plan.environment["TELEGRAM_API_URL"] == "http://127.0.0.1:9"
    assert "DISCORD_API_URL" not in plan.environment
    assert settings.chat_secrets("dev") == {
        "/crypto-bot/dev/telegram-bot-token": TOKEN,
        "/crypto-bot/dev/telegram-chat-id": "42",
    }
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("chat", "problem"),
    [
        ({"telegram_bot_token": TOKEN}, "telegram_bot_token and telegram_chat_id go together"),
        ({}, "neither telegram_bot_token nor discord_webhook_url is set"),
        ({"telegram_token": TOKEN, "telegram_chat_id": "42"}, r"unknown fields \['telegram_token'\]"),
        ([TOKEN], "expected a JSON object"),
    ],
)
def test_a_bad_chat_file_is_refused_naming_the_field_never_the_token(
    tmp_path: Path, chat: object, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        settings_with(tmp_path, chat)

    assert TOKEN not in str(raised.value)
