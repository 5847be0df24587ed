"""The cycle lock's conditional writes on the template's table, on moto and on DynamoDB Local.

The state machine takes and releases the lock itself (AcquireLock, ReleaseLock and ReleaseLockAfterFailure call
DynamoDB directly), so these tests send the requests of those states, read from the definition file, as Step
Functions sends them; the running holder renews its lease with :func:`crypto_bot.adapters.aws.lock.renew_lease`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError

from crypto_bot.adapters.aws.lock import LOCK_KEY, lease_time, renew_lease
from tests.conftest import ROOT
from tests.integration.conftest import TemplateTable, moto_disagrees

DEFINITION: Final = ROOT / "statemachine" / "trade_cycle.asl.json"
NOW: Final = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
LEASE: Final = timedelta(minutes=15)


def state_request(state: str, table: str, execution: str, now: datetime) -> dict[str, Any]:
    """Return the DynamoDB request of a state of the trade cycle, as Step Functions builds it for ``execution``.

    Only ``${TableName}`` appears in the lock states; the other substitutions become 0, which keeps the
    definition valid JSON where one stands for a number.
    """
    text = re.sub(r"\$\{(\w+)\}", lambda m: table if m.group(1) == "TableName" else "0", DEFINITION.read_text())
    paths = {
        "$$.Execution.Id": execution,
        "$.cycle.now": lease_time(now),
        "$.cycle.lease_until": lease_time(now + LEASE),
    }
    return _resolve(json.loads(text)["States"][state]["Parameters"], paths)


def _resolve(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key.removesuffix(".$"): paths[item] if key.endswith(".$") else _resolve(item, paths)
            for key, item in value.items()
        }
    return value


def acquire(table: TemplateTable, execution: str, now: datetime) -> bool:
    """Send AcquireLock; return False when its condition fails (the state machine then waits and retries)."""
    return _send(table.client.put_item, state_request("AcquireLock", table.name, execution, now))


def release(table: TemplateTable, execution: str, state: str = "ReleaseLock") -> bool:
    """Send ReleaseLock (or ReleaseLockAfterFailure); return False when its condition fails."""
    return _send(table.client.delete_item, state_request(state, table.name, execution, NOW))


def _send(call: Any, request: dict[str, Any]) -> bool:
    try:
        call(**request)
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def holder(table: TemplateTable) -> dict[str, str] | None:
    item = table.client.get_item(TableName=table.name, Key=LOCK_KEY, ConsistentRead=True).get("Item")
    return None if item is None else {name: value["S"] for name, value in item.items()}


def test_a_free_lock_is_taken_and_records_its_holder_and_lease(template_table: TemplateTable) -> None:
    assert acquire(template_table, "exec-a", NOW)

    assert holder(template_table) == {
        "pk": "LOCK",
        "sk": "CYCLE",
        "owner": "exec-a",
        "acquired_at": "2024-08-10T08:01:00.000000Z",
        "lease_until": "2024-08-10T08:16:00.000000Z",
    }


def test_a_held_lock_is_refused_to_another_cycle_until_its_lease_runs_out(template_table: TemplateTable) -> None:
    acquire(template_table, "exec-a", NOW)

    assert not acquire(template_table, "exec-b", NOW + timedelta(minutes=1))
    assert not acquire(template_table, "exec-b", NOW + LEASE)  # the lease still holds at its last instant
    assert acquire(template_table, "exec-b", NOW + LEASE + timedelta(microseconds=1))
    holding = holder(template_table)
    assert holding is not None
    assert (holding["owner"], holding["lease_until"]) == ("exec-b", "2024-08-10T08:31:00.000001Z")


def test_the_holder_takes_its_own_lock_again_as_a_redrive_does(template_table: TemplateTable) -> None:
    acquire(template_table, "exec-a", NOW)

    assert acquire(template_table, "exec-a", NOW + timedelta(minutes=5))
    holding = holder(template_table)
    assert holding is not None
    assert holding["lease_until"] == "2024-08-10T08:21:00.000000Z"


@pytest.mark.parametrize("state", ["ReleaseLock", "ReleaseLockAfterFailure"])
def test_only_the_holder_releases_the_lock(template_table: TemplateTable, state: str) -> None:
    acquire(template_table, "exec-a", NOW)

    assert not release(template_table, "exec-b", state)
    assert holder(template_table) is not None
    assert release(template_table, "exec-a", state)
    assert holder(template_table) is None
    assert not release(template_table, "exec-a", state)  # a lock already gone is not released twice


def test_the_holder_renews_its_lease_and_nobody_else_can(template_table: TemplateTable) -> None:
    client, table = template_table.client, template_table.name
    acquire(template_table, "me", NOW)

    assert renew_lease(client, table, "me", NOW + timedelta(minutes=1), LEASE)
    assert not renew_lease(client, table, "someone-else", NOW + timedelta(minutes=1), LEASE)
    holding = holder(template_table)
    assert holding is not None
    assert (holding["owner"], holding["lease_until"]) == ("me", "2024-08-10T08:17:00.000000Z")


def test_a_lease_cannot_be_renewed_once_the_lock_is_released(template_table: TemplateTable) -> None:
    acquire(template_table, "me", NOW)
    release(template_table, "me")

    assert not renew_lease(template_table.client, template_table.name, "me", NOW, LEASE)
    assert holder(template_table) is None  # the failed condition did not create an item either


# DynamoDB refuses a request with a value no expression uses ("Value provided in ExpressionAttributeValues unused
# in expressions"), so a lock condition edited without its values would fail on AWS while passing under moto.
@moto_disagrees("it takes values no expression uses", raises=pytest.fail.Exception)
def test_dynamodb_refuses_a_lock_request_with_an_unused_value(template_table: TemplateTable) -> None:
    request = state_request("AcquireLock", template_table.name, "exec-a", NOW)
    request["ExpressionAttributeValues"][":unused"] = {"S": "x"}

    with pytest.raises(ClientError) as refused:
        template_table.client.put_item(**request)

    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}",
    }
