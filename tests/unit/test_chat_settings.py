"""The chat channels' settings: off unless named, Telegram's two names together, base URLs checked."""

from __future__ import annotations

import pytest

from crypto_bot.adapters.chat.discord import DiscordChannel
from crypto_bot.adapters.chat.telegram import TelegramChannel
from crypto_bot.domain.errors import ConfigError
from crypto_bot.entrypoints.bootstrap import chat_channels
from crypto_bot.entrypoints.settings import Settings
from tests.support.environment import template_environment

TOKEN_NAME = "/crypto-bot/dev/telegram-bot-token"
CHAT_NAME = "/crypto-bot/dev/telegram-chat-id"
WEBHOOK_NAME = "/crypto-bot/dev/discord-webhook-url"


def no_client(service: str) -> object:
    raise AssertionError(f"no {service} client is needed to build the channels: secrets are read at the first send")


def test_the_template_defaults_configure_no_channel() -> None:
    settings = Settings.from_env(template_environment(TABLE_NAME="t"))

    assert not settings.chat.any
    assert chat_channels(settings, no_client, sleep=lambda seconds: None) == []


def test_each_named_channel_is_built_with_the_vendors_url_by_default() -> None:
    environment = template_environment(
        TABLE_NAME="t",
        TELEGRAM_BOT_TOKEN_PARAMETER=TOKEN_NAME,
        TELEGRAM_CHAT_ID_PARAMETER=CHAT_NAME,
        DISCORD_WEBHOOK_PARAMETER=WEBHOOK_NAME,
    )
    settings = Settings.from_env(environment)

    telegram, discord = chat_channels(settings, no_client, sleep=lambda seconds: None)

    assert isinstance(telegram, TelegramChannel)
    assert telegram.api_url == "https://api.telegram.org"
    assert isinstance(discord, DiscordChannel)
    assert discord.api_url == "https://discord.com/api/webhooks/"


@pytest.mark.parametrize(
    ("given", "named"),
    [({"TELEGRAM_BOT_TOKEN_PARAMETER": TOKEN_NAME}, "TELEGRAM_CHAT_ID_PARAMETER=''"),
     ({"TELEGRAM_CHAT_ID_PARAMETER": CHAT_NAME}, "TELEGRAM_BOT_TOKEN_PARAMETER=''")],
)  # fmt: skip
def test_telegram_needs_both_its_names(given: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=f"{named}.*Telegram needs both"):
        Settings.from_env(template_environment(TABLE_NAME="t", **given))


def test_a_base_url_that_is_not_http_is_refused_with_its_name_and_value() -> None:
    with pytest.raises(ConfigError, match=r"TELEGRAM_API_URL='api.telegram.org': must be an http\(s\) URL"):
        Settings.from_env(template_environment(TABLE_NAME="t", TELEGRAM_API_URL="api.telegram.org"))
