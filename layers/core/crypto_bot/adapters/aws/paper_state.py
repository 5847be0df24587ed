"""The paper exchange's account, kept in the store's table between Lambda invocations.

One item, ``pk="PAPER"``, ``sk="STATE"``:

* ``state``: :meth:`PaperExchange.to_state` as zlib-compressed JSON (binary). Every order
  ever placed stays in the state, and compression keeps a long paper run far below
  DynamoDB's 400 KB item limit (plain JSON would reach it after roughly a thousand orders).
* ``version``: a number raised by one on every save. A save only succeeds if the stored
  version is still the one that was loaded (optimistic locking), so two Lambdas that ran
  on the same account (a Map of parallel placements) cannot silently overwrite each
  other: the later one gets :class:`~crypto_bot.domain.errors.StoreConflict` and is re-run by
  the state machine's Retry, on fresh state.
* ``updated_at``: ISO time of the save, for operators.

The item never expires.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from crypto_bot.adapters.aws.errors import ConditionFailed, translate_errors
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import StoreConflict, StoreError

__all__ = ["PaperStateStore", "paper_session"]

_KEY: Final = {"pk": {"S": "PAPER"}, "sk": {"S": "STATE"}}
_ENCODING: Final = "json+zlib"


class PaperStateStore:
    """Load and save the paper account's state with a version check."""

    def __init__(self, table_name: str, client: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        self.table_name = table_name
        self.client = client
        self.clock = clock or (lambda: datetime.now(UTC))

    def load(self) -> tuple[dict[str, Any] | None, int]:
        """Return the stored state and its version, or ``(None, 0)`` if there is none yet."""
        with translate_errors(f"get the paper state from {self.table_name}"):
            response = self.client.get_item(TableName=self.table_name, Key=_KEY, ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None, 0
        encoding = item.get("encoding", {}).get("S")
        if encoding != _ENCODING:
            raise StoreError(f"{self.table_name}: the paper state is encoded as {encoding!r}, not {_ENCODING}")
        state: dict[str, Any] = json.loads(zlib.decompress(item["state"]["B"]))
        return state, int(item["version"]["N"])

    def save(self, state: dict[str, Any], expected_version: int) -> int:
        """Store ``state`` if the stored version is still ``expected_version``; return the new version.

        Raise StoreConflict when another writer saved in between (or created the item
        while ``expected_version`` is 0).
        """
        version = expected_version + 1
        blob = zlib.compress(json.dumps(state, separators=(",", ":")).encode())
        try:
            with translate_errors(f"save the paper state in {self.table_name}"):
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        **_KEY,
                        "state": {"B": blob},
                        "encoding": {"S": _ENCODING},
                        "version": {"N": str(version)},
                        "updated_at": {"S": self.clock().isoformat()},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR version = :expected",
                    ExpressionAttributeValues={":expected": {"N": str(expected_version)}},
                )
        except ConditionFailed as e:
            raise StoreConflict(
                f"the paper state changed since version {expected_version} was loaded: re-run the step"
            ) from e
        return version


@contextmanager
def paper_session(store: PaperStateStore, factory: Callable[[], PaperExchange]) -> Iterator[PaperExchange]:
    """Yield the stored paper exchange (or a new one from ``factory``) and save it when the block succeeds.

    Nothing is saved if the block raises, so a failed step leaves the account as it was.
    A block that changed nothing writes nothing, so read-only steps never conflict.
    Raise StoreConflict on exit if another writer saved the account meanwhile.
    """
    state, version = store.load()
    exchange = factory() if state is None else PaperExchange.from_state(state)
    before = None if state is None else exchange.to_state()
    yield exchange
    after = exchange.to_state()
    if after != before:
        store.save(after, version)
