"""DynamoDB capacity units of one call, estimated from item sizes as DynamoDB bills them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def item_bytes(item: Mapping[str, Any]) -> int:
    # DynamoDB sizes a binary attribute by its bytes; its JSON repr (b'x\\x9c…') would count each byte up to 4 times.
    return sum(
        len(name) + (len(value["B"]) if isinstance(value.get("B"), bytes) else len(json.dumps(value, default=str)))
        for name, value in item.items()
    )


def units(operation: str, params: Mapping[str, Any], response: Mapping[str, Any] | None) -> tuple[float, float]:
    """Estimate (WRU, RRU) of one DynamoDB call from item sizes: 1 KB per WRU, 4 KB per RRU (half if eventual)."""

    def write(item: Mapping[str, Any] | None) -> float:
        size = item_bytes(item) if item else 1
        # An item in the sparse GSI is written there too.
        return math.ceil(size / 1024) + (1 if item and "gsi1pk" in item else 0)

    def read(size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    response = response or {}
    consistent = bool(params.get("ConsistentRead"))
    if operation == "PutItem":
        return write(params.get("Item")), 0
    if operation in ("UpdateItem", "DeleteItem"):
        return write(None), 0
    if operation == "BatchWriteItem":
        requests = [r for rs in params.get("RequestItems", {}).values() for r in rs]
        return sum(write(r.get("PutRequest", {}).get("Item")) for r in requests), 0
    if operation == "TransactWriteItems":
        return sum(2 * write((t.get("Put") or {}).get("Item")) for t in params.get("TransactItems", [])), 0
    if operation == "GetItem":
        return 0, read(item_bytes(response.get("Item") or {}), consistent)
    if operation in ("Query", "Scan"):
        return 0, read(sum(item_bytes(i) for i in response.get("Items", [])), consistent)
    if operation == "BatchGetItem":
        items = [i for rs in response.get("Responses", {}).values() for i in rs]
        return 0, sum(read(item_bytes(i), consistent) for i in items)
    if operation == "TransactGetItems":
        return 0, sum(2 * read(item_bytes(r.get("Item") or {}), True) for r in response.get("Responses", []))
    return 0, 0


def items_written(operation: str, params: Mapping[str, Any]) -> int:
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 1
    if operation == "BatchWriteItem":
        return sum(len(v) for v in params.get("RequestItems", {}).values())
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    return 0
