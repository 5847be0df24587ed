"""The chat text of a notification: the e-mail's subject and body once each, and alarms made readable."""

from __future__ import annotations

import json

from crypto_bot.engine.channel_text import channel_text


def test_a_cycle_summary_whose_body_starts_with_its_subject_says_it_once() -> None:
    subject = "crypto-bot cycle 2024-01-02 08:01 UTC done"
    body = f"{subject}\n\n  BTCUSDT: buy 0.15817515\n"

    assert channel_text(subject, body) == f"{subject}\n\n  BTCUSDT: buy 0.15817515"


def test_a_message_whose_body_does_not_start_with_its_subject_gets_it_as_a_first_line() -> None:
    assert channel_text("crypto-bot paused by ops@example", "scope: the whole account") == (
        "crypto-bot paused by ops@example\n\nscope: the whole account"
    )


def test_a_cloudwatch_alarm_is_its_name_state_description_and_reason() -> None:
    # The fields of CloudWatch's SNS notification of an alarm (CloudWatch User Guide, alarm notifications).
    message = json.dumps(
        {
            "AlarmName": "crypto-bot-dev-FailedCycleAlarm-ABC",
            "AlarmDescription": "A trade cycle failed.",
            "NewStateValue": "ALARM",
            "NewStateReason": "Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0).",
            "OldStateValue": "OK",
        }
    )

    assert channel_text('ALARM: "crypto-bot-dev-FailedCycleAlarm-ABC" in US East', message) == (
        "crypto-bot alarm crypto-bot-dev-FailedCycleAlarm-ABC: ALARM\n\nA trade cycle failed.\n\n"
        "why: Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0)."
    )


def test_a_json_body_that_is_not_an_alarm_is_sent_as_it_is() -> None:
    assert channel_text("s", '{"signals": 1}') == 's\n\n{"signals": 1}'
