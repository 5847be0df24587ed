"""Send the user's notifications through SNS, one message per cycle or failure, worded by the engine (notices)."""

from __future__ import annotations

from typing import Any

from crypto_bot.adapters.aws.errors import translate_errors
from crypto_bot.engine.notices import MAX_SUBJECT


def publish(sns: Any, topic_arn: str, subject: str, message: str) -> None:
    """Publish to the notifications topic; StoreUnavailable when SNS throttled or failed, StoreError otherwise."""
    with translate_errors(f"publish to {topic_arn}"):
        sns.publish(TopicArn=topic_arn, Subject=subject[:MAX_SUBJECT], Message=message)
