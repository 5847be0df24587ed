"""The chat forwarder: each notification published to the topic, posted to every configured chat channel.

template.yaml subscribes ``ChannelForwarderFunction`` to ``NotificationsTopic``, so everything the trader is
e-mailed (cycle summaries and failures, stop losses, guard trips, the CLI's pause, resume and flatten, the
alarms) reaches Telegram and Discord too, with no code in the publishers. SNS invokes the function
asynchronously ("Invoking Lambda functions using Amazon SNS notifications", Lambda Developer Guide), so a
channel that fails never fails the cycle that published: the failure is counted (``NotificationsFailed``,
alarmed in the template) and logged without the channel's secrets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypedDict

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from crypto_bot.adapters.chat.delivery import Redactor
from crypto_bot.domain.errors import CryptoBotError, FieldProblem, InputError
from crypto_bot.engine.channel_text import channel_text
from crypto_bot.engine.ports import Channel
from crypto_bot.entrypoints.bootstrap import boto3_clients, chat_channels
from crypto_bot.entrypoints.settings import Settings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
# The metrics the handler emits; template.yaml's ChannelFailureAlarm watches FAILED_METRIC.
DELIVERED_METRIC: Final = "NotificationsDelivered"
FAILED_METRIC: Final = "NotificationsFailed"


class Failure(TypedDict):
    channel: str
    error: str
    transient: bool


class ForwardResult(TypedDict):
    delivered: int
    failed: int
    failures: list[Failure]


class ChannelsUnavailable(Exception):
    """Every channel failed, each in a way a later attempt may not: raised so Lambda retries the event.

    Only then: a retry after a partial success would post the message twice to the channels that took it.
    """


def forward(event: Mapping[str, Any], channels: Sequence[Channel]) -> ForwardResult:
    """Send each SNS record's subject and message to every channel; count the deliveries and the failures."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise InputError("invalid event", [FieldProblem("Records", records, "is not a list of SNS records")])
    result: ForwardResult = {"delivered": 0, "failed": 0, "failures": []}
    known: list[str] = []
    for channel in channels:
        try:
            known += channel.secrets()
        except CryptoBotError:
            # Its secret cannot be read, so it cannot be sent either: its send below fails and is counted.
            continue
    redact = Redactor(known)
    for index, record in enumerate(records):
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        if not isinstance(sns, Mapping) or not isinstance(sns.get("Message"), str):
            raise InputError("invalid event", [FieldProblem(f"Records[{index}].Sns.Message", sns, "is not a string")])
        # Every channel's secrets, so that a message quoting one (an error naming a URL) reaches no chat with it.
        text = redact(channel_text(str(sns.get("Subject") or ""), sns["Message"]))
        for channel in channels:
            try:
                channel.send(text)
            except CryptoBotError as e:
                # The channels' errors are redacted where they are raised (crypto_bot.adapters.chat.delivery).
                transient = bool(getattr(e, "transient", False))
                result["failures"].append({"channel": channel.name, "error": str(e), "transient": transient})
                result["failed"] += 1
            else:
                result["delivered"] += 1
    return result


def forwarder_handler() -> Handler:
    """Read the settings and build the channels once per container; return the Lambda handler."""
    logger = Logger()
    metrics = Metrics()
    channels = chat_channels(Settings.from_env(os.environ), boto3_clients(), sleep=time.sleep)

    @metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        result = forward(event, channels)
        metrics.add_metric(name=DELIVERED_METRIC, unit=MetricUnit.Count, value=result["delivered"])
        metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=result["failed"])
        for failure in result["failures"]:
            logger.warning("chat delivery failed", extra=dict(failure))
        if result["failed"] and not result["delivered"] and all(f["transient"] for f in result["failures"]):
            raise ChannelsUnavailable("; ".join(f"{f['channel']}: {f['error']}" for f in result["failures"]))
        logger.info("notification forwarded", extra={"delivered": result["delivered"], "failed": result["failed"]})
        return dict(result)

    # log_event stays off: the event is the trader's whole message.
    return logger.inject_lambda_context(lambda_handler, log_event=False)
