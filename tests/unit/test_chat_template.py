"""template.yaml's chat channels agree with the code: the forwarder's settings, its permissions, and its alarm."""

from __future__ import annotations

from typing import Any

from crypto_bot.entrypoints.forwarder import FAILED_METRIC
from crypto_bot.entrypoints.settings import Settings
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT
from tests.support.environment import template_environment

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
FORWARDER: dict[str, Any] = RESOURCES["ChannelForwarderFunction"]["Properties"]
CHAT_PARAMETERS = ("TelegramBotTokenParameterName", "TelegramChatIdParameterName", "DiscordWebhookParameterName")


def test_every_chat_channel_is_off_by_default_and_nothing_of_them_is_created() -> None:
    assert all(PARAMETERS[name]["Default"] == "" for name in CHAT_PARAMETERS)
    chat = {k for k, r in RESOURCES.items() if k.startswith("Channel")}
    assert {k for k in chat if RESOURCES[k].get("Condition") != "HasChatChannel"} == set()


def test_the_forwarders_variables_are_the_ones_the_settings_read() -> None:
    variables = FORWARDER["Environment"]["Variables"]
    named = {value["Ref"]: name for name, value in variables.items()}
    assert set(named) == set(CHAT_PARAMETERS)

    settings = Settings.from_env(template_environment(TABLE_NAME="t", **{v: f"/p/{k}" for k, v in named.items()}))

    assert settings.chat.telegram_token_parameter == "/p/TelegramBotTokenParameterName"
    assert settings.chat.telegram_chat_parameter == "/p/TelegramChatIdParameterName"
    assert settings.chat.discord_webhook_parameter == "/p/DiscordWebhookParameterName"


def test_the_forwarder_may_read_only_the_channels_parameters() -> None:
    read: list[tuple[str, str]] = []
    for policy in FORWARDER["Policies"]:
        condition, statement, otherwise = policy["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        assert set(statement) == {"SSMParameterWithSlashPrefixReadPolicy"}
        read.append((condition, statement["SSMParameterWithSlashPrefixReadPolicy"]["ParameterName"]["Ref"]))

    assert read == [
        ("HasTelegram", "TelegramBotTokenParameterName"),
        ("HasTelegram", "TelegramChatIdParameterName"),
        ("HasDiscord", "DiscordWebhookParameterName"),
    ]


def test_the_topic_invokes_the_forwarder_and_only_the_topic_may() -> None:
    subscription = RESOURCES["ChannelForwarderSubscription"]["Properties"]
    permission = RESOURCES["ChannelForwarderPermission"]["Properties"]

    assert subscription == {
        "TopicArn": {"Ref": "NotificationsTopic"},
        "Protocol": "lambda",
        "Endpoint": {"Fn::GetAtt": ["ChannelForwarderFunction", "Arn"]},
    }
    assert permission["Principal"] == "sns.amazonaws.com"
    assert permission["SourceArn"] == {"Ref": "NotificationsTopic"}
    assert permission["FunctionName"] == {"Ref": "ChannelForwarderFunction"}


def test_the_channel_failure_alarm_watches_the_metric_the_forwarder_emits() -> None:
    alarm = RESOURCES["ChannelFailureAlarm"]["Properties"]
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["MetricName"] == FAILED_METRIC
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == ("Sum", "GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "NotificationsTopic"}]
