"""The text a chat channel shows for one notification: the e-mail's own words, as one message.

Every notification reaches the chats through the notifications topic, so the text is what was published there:
a cycle summary (:func:`crypto_bot.engine.notices.cycle_message`, whose body starts with its subject), the
operator's pause, resume or flatten (``crypto-bot pause``...), or a CloudWatch alarm, which publishes JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def channel_text(subject: str, message: str) -> str:
    """Return the chat text of a published notification: the subject line first, then the body."""
    alarm = _alarm(message)
    if alarm is not None:
        return alarm
    subject = subject.strip()
    body = message.strip("\n")
    if not subject or body.startswith(subject):
        return body
    return f"{subject}\n\n{body}"


def _alarm(message: str) -> str | None:
    # CloudWatch's alarm notification is a JSON object with AlarmName, AlarmDescription, NewStateValue and
    # NewStateReason (CloudWatch User Guide, "Using Amazon CloudWatch alarms", the Amazon SNS notification example).
    if not message.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, Mapping) or "AlarmName" not in data or "NewStateValue" not in data:
        return None
    lines = [f"crypto-bot alarm {data['AlarmName']}: {data['NewStateValue']}"]
    if data.get("AlarmDescription"):
        lines += ["", str(data["AlarmDescription"])]
    if data.get("NewStateReason"):
        lines += ["", f"why: {data['NewStateReason']}"]
    return "\n".join(lines)
