"""The chat channels against emulated Telegram and Discord servers on 127.0.0.1 (tests/support/chat_servers.py).

Delivery, flood control and rate limits honoured within a bounded wait, permanent refusals counted and never
retried, the vendors' length limits, and no secret in anything sent, raised or logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from crypto_bot.adapters.chat.delivery import ChannelError
from crypto_bot.adapters.chat.discord import DiscordChannel
from crypto_bot.adapters.chat.telegram import TelegramChannel
from crypto_bot.engine.channel_text import channel_text
from crypto_bot.engine.ports import Channel
from crypto_bot.entrypoints.forwarder import forward
from tests.conftest import load_event
from tests.support.chat_servers import DiscordServer, Reply, TelegramServer, utf16_length
from tests.support.environment import template_environment

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret (the emulator's own bot)
CHAT_ID = "-1001234567890"
WEBHOOK_ID = "1234567890123456789"
WEBHOOK_TOKEN = "m0ck-W3bh00k-T0ken_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"  # pragma: allowlist secret
NOTIFICATION = load_event("sns_notification.json")


class Sleeps(list[float]):
    """A sleep that waits for nothing and remembers how long it was asked to."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def telegram_server() -> Iterator[TelegramServer]:
    server = TelegramServer(TOKEN, CHAT_ID)
    with server.running():
        yield server


@pytest.fixture
def discord_server() -> Iterator[DiscordServer]:
    server = DiscordServer(WEBHOOK_ID, WEBHOOK_TOKEN)
    with server.running():
        yield server


def telegram(server: TelegramServer, sleeps: Sleeps, token: str = TOKEN, chat_id: str = CHAT_ID) -> TelegramChannel:
    return TelegramChannel(lambda: token, lambda: chat_id, api_url=server.url, sleep=sleeps)


def discord(server: DiscordServer, sleeps: Sleeps, url: str | None = None) -> DiscordChannel:
    webhook = url or server.webhook_url
    return DiscordChannel(lambda: webhook, api_url=f"{server.url}/api/webhooks/", sleep=sleeps)


def test_a_cycle_summary_reaches_both_channels_as_the_same_text(
    telegram_server: TelegramServer, discord_server: DiscordServer
) -> None:
    sleeps = Sleeps()
    channels: list[Channel] = [telegram(telegram_server, sleeps), discord(discord_server, sleeps)]

    result = forward(NOTIFICATION, channels)

    sns = NOTIFICATION["Records"][0]["Sns"]
    assert result == {"delivered": 2, "failed": 0, "failures": []}
    assert telegram_server.delivered == discord_server.delivered == [channel_text(sns["Subject"], sns["Message"])]
    assert telegram_server.delivered[0].count(sns["Subject"]) == 1  # the body starts with it: said once
    # Discord is asked to confirm the message was saved, and to ping no one whatever the text says.
    assert discord_server.requests[0].query == {"wait": ["true"]}
    assert discord_server.bodies[0]["allowed_mentions"] == {"parse": []}
    assert sleeps == []


def test_telegram_flood_control_is_waited_out_once_then_delivered(telegram_server: TelegramServer) -> None:
    sleeps = Sleeps()
    telegram_server.queue(TelegramServer.flood(retry_after=3))

    telegram(telegram_server, sleeps).send("crypto-bot cycle done")

    assert sleeps == [3.0]
    assert len(telegram_server.requests) == 2
    assert telegram_server.delivered == ["crypto-bot cycle done"]


def test_a_discord_rate_limit_of_a_fraction_of_a_second_is_honoured(discord_server: DiscordServer) -> None:
    sleeps = Sleeps()
    discord_server.queue(DiscordServer.rate_limited(0.25))

    discord(discord_server, sleeps).send("crypto-bot cycle done")

    assert sleeps == [0.25]  # the body's float, not the header's rounded-up whole second
    assert discord_server.delivered == ["crypto-bot cycle done"]


@pytest.mark.parametrize("second", ["refused again", "too long to wait"])
def test_a_rate_limit_is_waited_at_most_once_and_never_longer_than_the_bound(
    telegram_server: TelegramServer, second: str
) -> None:
    sleeps = Sleeps()
    if second == "refused again":
        telegram_server.queue(TelegramServer.flood(2), TelegramServer.flood(2))
    else:
        telegram_server.queue(TelegramServer.flood(30))

    with pytest.raises(ChannelError, match="rate limited") as raised:
        telegram(telegram_server, sleeps).send("crypto-bot cycle done")

    assert raised.value.transient
    assert sleeps == ([2.0] if second == "refused again" else [])
    assert len(telegram_server.requests) == (2 if second == "refused again" else 1)
    assert telegram_server.delivered == []


@pytest.mark.parametrize(
    ("channel", "status", "what"),
    [
        ("telegram-token", 401, "Unauthorized"),
        ("telegram-chat", 400, "chat not found"),
        ("discord-token", 401, "Invalid Webhook Token"),
        ("discord-webhook", 404, "Unknown Webhook"),
    ],
)
def test_a_refusal_that_only_the_trader_can_fix_is_permanent_and_not_retried(
    telegram_server: TelegramServer, discord_server: DiscordServer, channel: str, status: int, what: str
) -> None:
    sleeps = Sleeps()
    sender: TelegramChannel | DiscordChannel
    if channel == "telegram-token":
        sender = telegram(telegram_server, sleeps, token="987654321:AAwrongwrongwrongwrongwrongwrongwro")
    elif channel == "telegram-chat":
        sender = telegram(telegram_server, sleeps, chat_id="42")
    elif channel == "discord-token":
        sender = discord(discord_server, sleeps, f"{discord_server.url}/api/webhooks/{WEBHOOK_ID}/not-the-token")
    else:
        sender = discord(discord_server, sleeps, f"{discord_server.url}/api/webhooks/999/{WEBHOOK_TOKEN}")
    server = telegram_server if channel.startswith("telegram") else discord_server

    with pytest.raises(ChannelError, match=f"HTTP {status}.*{what}") as raised:
        sender.send("crypto-bot cycle done")

    assert not raised.value.transient
    assert len(server.requests) == 1
    assert sleeps == []


def test_the_waits_of_all_a_messages_parts_share_one_bound(telegram_server: TelegramServer) -> None:
    sleeps = Sleeps()
    # Three parts, each refused once for 2 s: the third would bring the wait to 6 s, past the 5 s bound.
    telegram_server.queue(
        TelegramServer.flood(2), Reply(200, {"ok": True, "result": {}}),
        TelegramServer.flood(2), Reply(200, {"ok": True, "result": {}}),
        TelegramServer.flood(2),
    )  # fmt: skip

    with pytest.raises(ChannelError, match=r"part 3 of 3\): rate limited, retry_after=2 s is more than the 1 s"):
        telegram(telegram_server, sleeps).send(summary_lines(200))

    assert sleeps == [2.0, 2.0]


def test_a_server_error_is_transient(discord_server: DiscordServer) -> None:
    discord_server.queue(Reply(502, {"message": "Bad Gateway", "code": 0}))

    with pytest.raises(ChannelError, match="HTTP 502") as raised:
        discord(discord_server, Sleeps()).send("crypto-bot cycle done")

    assert raised.value.transient


def test_a_failing_channel_is_counted_and_the_other_still_delivers(
    telegram_server: TelegramServer, discord_server: DiscordServer
) -> None:
    sleeps = Sleeps()
    channels: list[Channel] = [telegram(telegram_server, sleeps, chat_id="42"), discord(discord_server, sleeps)]

    result = forward(NOTIFICATION, channels)

    assert result["delivered"] == 1
    assert result["failed"] == 1
    assert [(f["channel"], f["transient"]) for f in result["failures"]] == [("telegram", False)]
    assert len(discord_server.delivered) == 1


def summary_lines(count: int) -> str:
    return "\n".join(f"  strategy-{n:04d}: bought 0.00100000 BTC at 60000.00 (entry)" for n in range(count))


@pytest.mark.parametrize(
    ("channel", "limit", "lines"),
    [("telegram", 4096, 100), ("discord", 2000, 50)],  # two messages' worth each, well within three
)
def test_a_long_message_is_split_at_line_ends_within_the_documented_limit(
    telegram_server: TelegramServer, discord_server: DiscordServer, channel: str, limit: int, lines: int
) -> None:
    text = summary_lines(lines)
    server = telegram_server if channel == "telegram" else discord_server
    sender = telegram(telegram_server, Sleeps()) if channel == "telegram" else discord(discord_server, Sleeps())

    sender.send(text)

    assert len(server.delivered) == 2
    assert all(utf16_length(part) <= limit for part in server.delivered)
    assert "\n".join(server.delivered) == text  # cut between lines, nothing lost


@pytest.mark.parametrize(("channel", "limit"), [("telegram", 4096), ("discord", 2000)])
def test_a_message_past_three_parts_is_cut_with_a_note_and_astral_characters_count_twice(
    telegram_server: TelegramServer, discord_server: DiscordServer, channel: str, limit: int
) -> None:
    # One long line of emoji (two UTF-16 units each): the servers count UTF-16 units, as Discord documents.
    text = "\U0001f4c8" * (limit * 2)
    server = telegram_server if channel == "telegram" else discord_server
    sender = telegram(telegram_server, Sleeps()) if channel == "telegram" else discord(discord_server, Sleeps())

    sender.send(text)

    assert len(server.delivered) == 3
    assert all(utf16_length(part) <= limit for part in server.delivered)
    assert server.delivered[-1].endswith("[... cut: the whole message is in the e-mail]")
    assert "".join(server.delivered[:2]) == text[:limit]  # whole characters, never half a pair


def test_a_message_holding_a_token_or_the_webhook_url_reaches_no_channel_with_it(
    telegram_server: TelegramServer, discord_server: DiscordServer
) -> None:
    sleeps = Sleeps()
    message = f"error: GET https://api.telegram.org/bot{TOKEN}/getMe and {discord_server.webhook_url} failed"
    event = {"Records": [{"Sns": {"Subject": "crypto-bot cycle FAILED", "Message": message}}]}

    result = forward(event, [telegram(telegram_server, sleeps), discord(discord_server, sleeps)])

    assert result["delivered"] == 2
    for server in (telegram_server, discord_server):
        (delivered,) = server.delivered
        assert TOKEN not in delivered
        assert WEBHOOK_TOKEN not in delivered
        assert delivered.count("[redacted]") == 2
    # The token travels only where Telegram wants it, in the path; never in a body.
    assert all(TOKEN.encode() not in r.body for r in telegram_server.requests)
    assert all(WEBHOOK_TOKEN.encode() not in r.body for r in discord_server.requests)
    assert all(WEBHOOK_TOKEN.encode() not in r for r in [telegram_server.every_byte()])


def test_no_error_carries_the_secret_even_when_the_server_echoes_it(
    telegram_server: TelegramServer, discord_server: DiscordServer
) -> None:
    telegram_server.queue(TelegramServer.refusal(400, f"Bad Request: bot{TOKEN} is not a member of the chat"))
    discord_server.queue(DiscordServer.error(400, 50035, f"Invalid Form Body for {WEBHOOK_TOKEN}"))

    errors = []
    for sender in (telegram(telegram_server, Sleeps()), discord(discord_server, Sleeps())):
        with pytest.raises(ChannelError) as raised:
            sender.send("crypto-bot cycle done")
        errors.append(raised.value)

    for error in errors:
        assert TOKEN not in str(error)
        assert WEBHOOK_TOKEN not in str(error)
        assert "[redacted]" in str(error)
        # No urllib error (it keeps the URL) is chained or shown as the context.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_an_unreachable_server_is_transient_and_its_url_redacted() -> None:
    server = TelegramServer(TOKEN, CHAT_ID)  # bound, never served, then closed: nothing listens on its port
    server.httpd.server_close()
    channel = TelegramChannel(lambda: TOKEN, lambda: CHAT_ID, api_url=server.url, sleep=Sleeps())

    with pytest.raises(ChannelError, match="no answer") as raised:
        channel.send("crypto-bot cycle done")

    assert raised.value.transient
    assert TOKEN not in str(raised.value)
    assert raised.value.__cause__ is None  # urllib's URLError is not chained: its request holds the URL
    assert raised.value.__suppress_context__


def test_a_webhook_url_on_another_host_is_refused_without_showing_it(discord_server: DiscordServer) -> None:
    foreign = f"https://attacker.example/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    with pytest.raises(ChannelError, match="must start with") as raised:
        discord(discord_server, Sleeps(), foreign).send("crypto-bot cycle done")

    assert WEBHOOK_TOKEN not in str(raised.value)
    assert discord_server.requests == []


# -- the forwarder's Lambda handler: settings, SSM, metrics and logs -------------------------------------


@pytest.fixture
def forwarder_environment(
    monkeypatch: pytest.MonkeyPatch, telegram_server: TelegramServer, discord_server: DiscordServer
) -> Iterator[dict[str, str]]:
    environment = template_environment(TABLE_NAME="t") | {
        "TELEGRAM_BOT_TOKEN_PARAMETER": "/crypto-bot/test/telegram-bot-token",
        "TELEGRAM_CHAT_ID_PARAMETER": "/crypto-bot/test/telegram-chat-id",
        "DISCORD_WEBHOOK_PARAMETER": "/crypto-bot/test/discord-webhook-url",
        "TELEGRAM_API_URL": telegram_server.url,
        "DISCORD_API_URL": f"{discord_server.url}/api/webhooks/",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's documented fake)
        "POWERTOOLS_METRICS_NAMESPACE": "CryptoBot",
        "POWERTOOLS_SERVICE_NAME": "crypto-bot",
        "POWERTOOLS_METRICS_DISABLED": "false",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        for name, value in [
            ("/crypto-bot/test/telegram-bot-token", TOKEN),
            ("/crypto-bot/test/telegram-chat-id", CHAT_ID),
            ("/crypto-bot/test/discord-webhook-url", discord_server.webhook_url),
        ]:
            ssm.put_parameter(Name=name, Value=value, Type="SecureString")
        yield environment


class Context:
    function_name = "ChannelForwarderFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ChannelForwarderFunction"
    memory_limit_in_mb = 128
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/ChannelForwarderFunction"
    log_stream_name = "local"


def emitted_metrics(output: str) -> dict[str, Any]:
    """The EMF metrics Powertools printed (one JSON object per flush)."""
    values: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_the_handler_counts_a_failed_channel_in_the_alarmed_metric_and_logs_no_secret(
    forwarder_environment: dict[str, str],
    telegram_server: TelegramServer,
    discord_server: DiscordServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from crypto_bot.entrypoints.forwarder import forwarder_handler

    handler = forwarder_handler()
    telegram_server.queue(TelegramServer.refusal(403, f"Forbidden: bot{TOKEN} was blocked by the user"))

    result = handler(NOTIFICATION, Context())  # type: ignore[arg-type]

    output = capsys.readouterr().out
    assert (result["delivered"], result["failed"]) == (1, 1)
    metrics = emitted_metrics(output)
    assert (metrics["NotificationsFailed"], metrics["NotificationsDelivered"]) == (1.0, 1.0)
    # Powertools' logger writes to the stdout of its first use, which an earlier test may have held: read the records.
    failures = [r for r in caplog.records if r.getMessage() == "chat delivery failed"]
    assert [getattr(r, "channel", None) for r in failures] == ["telegram"]
    logged = output + "".join(str(vars(r)) for r in caplog.records)
    assert "[redacted]" in logged
    assert TOKEN not in logged
    assert WEBHOOK_TOKEN not in logged
    assert len(discord_server.delivered) == 1


def test_the_handler_raises_for_lambdas_retry_only_when_every_channel_failed_transiently(
    forwarder_environment: dict[str, str],
    telegram_server: TelegramServer,
    discord_server: DiscordServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from crypto_bot.entrypoints.forwarder import ChannelsUnavailable, forwarder_handler

    handler = forwarder_handler()
    telegram_server.queue(Reply(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}))
    discord_server.queue(Reply(503, {"message": "Service Unavailable", "code": 0}))

    with pytest.raises(ChannelsUnavailable) as raised:
        handler(NOTIFICATION, Context())  # type: ignore[arg-type]

    output = capsys.readouterr().out
    assert emitted_metrics(output)["NotificationsFailed"] == 2.0  # counted even though it raised
    assert TOKEN not in str(raised.value)
    assert WEBHOOK_TOKEN not in str(raised.value)


def test_the_handler_does_not_ask_for_a_retry_when_a_channel_took_the_message(
    forwarder_environment: dict[str, str], telegram_server: TelegramServer, discord_server: DiscordServer
) -> None:
    from crypto_bot.entrypoints.forwarder import forwarder_handler

    handler = forwarder_handler()
    telegram_server.queue(Reply(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}))

    result = handler(NOTIFICATION, Context())  # type: ignore[arg-type]  # a retry would post to Discord twice

    assert (result["delivered"], result["failed"]) == (1, 1)
    assert len(discord_server.delivered) == 1


def test_a_chat_secret_is_read_from_ssm_once_per_five_minutes_and_errors_name_only_the_parameter() -> None:
    from crypto_bot.adapters.aws.secrets import CachedParameter
    from crypto_bot.domain.errors import ConfigError

    now = [0.0]
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/crypto-bot/test/telegram-bot-token", Value=TOKEN, Type="SecureString")
        reads: list[str] = []

        def clients(service: str) -> Any:
            reads.append(service)
            return ssm

        token = CachedParameter(clients, "/crypto-bot/test/telegram-bot-token", clock=lambda: now[0])
        assert token() == TOKEN
        ssm.put_parameter(
            Name="/crypto-bot/test/telegram-bot-token", Value="rotated", Type="SecureString", Overwrite=True
        )
        now[0] = 299.0
        assert token() == TOKEN  # cached
        now[0] = 300.0
        assert token() == "rotated"
        assert reads == ["ssm", "ssm"]

        missing = CachedParameter(lambda service: ssm, "/crypto-bot/test/discord-webhook-url")
        with pytest.raises(ConfigError, match="/crypto-bot/test/discord-webhook-url: ParameterNotFound"):
            missing()
