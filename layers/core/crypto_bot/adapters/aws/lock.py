"""The cycle lock's lease times, and its renewal by the running holder.

The state machine acquires and releases the lock itself (DynamoDB putItem and
deleteItem with conditions). Times are written as fixed-width UTC strings, so the
lock's ConditionExpression can compare them as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crypto_bot.adapters.aws.errors import ConditionFailed, translate_errors

LOCK_KEY = {"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}}


def lease_time(moment: datetime) -> str:
    """Format a time for the lock: UTC, microseconds, always the same width."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def renew_lease(dynamodb: Any, table_name: str, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend the lease if ``owner`` still holds the lock; return False if it does not.

    Raise StoreUnavailable when DynamoDB throttled or failed (retry), StoreError when the call can never succeed
    (access denied, no such table).
    """
    try:
        with translate_errors(f"renew the cycle lock in {table_name}"):
            dynamodb.update_item(
                TableName=table_name,
                Key=LOCK_KEY,
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":until": {"S": lease_time(now + lease)}, ":me": {"S": owner}},
            )
    except ConditionFailed:
        return False
    return True
