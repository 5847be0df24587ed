"""The :class:`~crypto_bot.engine.records.Store` port on one DynamoDB table (the template's ``Table``).

Item design (``pk``/``sk`` strings; one sparse GSI ``gsi1`` on ``gsi1pk``/``gsi1sk``; TTL on
``expires_at``, epoch seconds)::

    entity        pk                 sk                          gsi1pk     gsi1sk
    signal        SIGNAL#<key>       SIGNAL                      PENDING    <time or received_at>#<received_at>#<key>
                                                                 SIGNALS    <received_at>#<key>
    cycle         CYCLE#<cycle_id>   CYCLE                       -
    intent        CYCLE#<cycle_id>   INTENT#<intent_id>          -
    position      LEDGER             POSITION#<strategy>         -
    dust          LEDGER             DUST#<asset>                -
    audit entry   LEDGER             ENTRY#<at>#<order_id>#<n>   -
    controls      CONTROLS           CONTROLS                    -

* Attributes are the record's ``to_dict()`` form, top level, so items read well in the
  console. Decimals are strings there already (``"0.10"`` keeps its scale, which a DynamoDB
  number would not); the only numbers are small ints (``attempt``, summary counts), which
  come back as ints. A signal's ``payload`` is a JSON *string* so any alert, empty strings
  and floats included, round-trips exactly (JSON numbers come back as ``json.loads`` makes them).
* Signals, cycles, intents and audit entries carry ``expires_at`` = write time + 90 days.
  Positions, dust and the controls never expire. The controls (kill switch and guards,
  :mod:`crypto_bot.domain.controls`) are one JSON document beside a ``version`` number that
  each write must match, so an operator's pause and a cycle's guard update never lose each other.
* Times in sort keys are UTC with microseconds (``2024-05-01T12:00:00.000000Z``) so that
  string order is time order whatever offset the record had.
* ``gsi1`` holds every signal, in one of two partitions: ``PENDING`` while it waits for a
  cycle (ordered as :meth:`MemoryStore.pending_signals` orders them), ``SIGNALS`` after
  (ordered by arrival). An item can be in one partition only, so :meth:`recent_signals`
  reads the newest of ``SIGNALS`` plus all of ``PENDING`` (few: the next cycle takes them).
  One partition takes ~1000 writes/s, orders of magnitude above any alert rate.
* Index reads are eventually consistent: a signal a cycle has just taken may still be listed
  under ``PENDING`` for a moment. :meth:`pending_signals` therefore re-reads the listed items
  from the table with consistent reads and keeps only those still ``received``, so two cycles
  in a row never take the same signal (a signal added a moment ago may miss one cycle; the
  next takes it).
* Audit entries' ``<n>`` is the entry's position in its save plus a suffix, so two saves
  booking the same order at the same instant (a frozen clock) never overwrite each other: for
  :meth:`DynamoDBStore.book` a digest of the booked state (a re-sent booking rewrites the
  same entries), for :meth:`DynamoDBStore.save_ledger` a random one.

Every botocore error is translated by :mod:`crypto_bot.adapters.aws.errors`: throttling, 5xx,
conflicting transactions and connection failures raise
:class:`~crypto_bot.domain.errors.StoreUnavailable` (retry with backoff); anything else raises
:class:`~crypto_bot.domain.errors.StoreError`. A failed condition is an answer, not an error:
:meth:`DynamoDBStore.add_signal` returns False.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from crypto_bot.adapters.aws.errors import ConditionFailed, translate_errors
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.controls import Controls
from crypto_bot.domain.errors import StoreConflict, StoreError, StoreUnavailable
from crypto_bot.domain.ledger import Ledger, LedgerEntry
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import Fee
from crypto_bot.engine.records import CycleRecord, IntentRecord, SignalRecord, arrival_order

TRANSACTION_LIMIT = 100  # DynamoDB's maximum items in one TransactWriteItems

__all__ = [
    "RETENTION",
    "DynamoDBStore",
    "batch_write",
    "from_item",
    "to_item",
]

RETENTION: Final = timedelta(days=90)
"""How long signals, cycles, intents and audit entries are kept (DynamoDB TTL)."""

PENDING: Final = "PENDING"
SIGNALS: Final = "SIGNALS"
CONTROLS: Final = "CONTROLS"  # the pk and sk of the one kill-switch and guards item
LEDGER: Final = "LEDGER"
INDEX: Final = "gsi1"
# Attributes of the item design, not of the record: stripped when an item is read back.
_KEYS: Final = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "expires_at"})

_BATCH_WRITE_SIZE: Final = 25  # the BatchWriteItem maximum
_BATCH_GET_SIZE: Final = 100  # the BatchGetItem maximum
_BATCH_ATTEMPTS: Final = 8  # unprocessed items are retried this many times, with backoff

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# --------------------------------------------------------------------------------------------
# Helpers shared with crypto_bot.adapters.aws.paper_state
# --------------------------------------------------------------------------------------------


def to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize a mapping of plain values into a DynamoDB item (``{"name": {"S": ...}}``)."""
    return {name: _serializer.serialize(value) for name, value in data.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize a DynamoDB item into plain values; whole numbers come back as ints."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    # Records hold decimals as strings, so every number in an item was an int (counts, attempt).
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def batch_write(
    client: Any,
    table_name: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send write requests (``{"PutRequest": ...}`` / ``{"DeleteRequest": ...}``) in batches of 25.

    Items DynamoDB leaves unprocessed (throttling) are re-sent with exponential backoff;
    raise StoreUnavailable if some are still unprocessed after the last attempt.
    """
    for start in range(0, len(requests), _BATCH_WRITE_SIZE):
        pending: list[Any] = list(requests[start : start + _BATCH_WRITE_SIZE])
        for attempt in range(_BATCH_ATTEMPTS):
            with translate_errors(f"write {len(pending)} items to {table_name}"):
                response = client.batch_write_item(RequestItems={table_name: pending})
            pending = list(response.get("UnprocessedItems", {}).get(table_name, []))
            if not pending:
                break
            if attempt + 1 < _BATCH_ATTEMPTS:
                sleep(min(0.05 * 2**attempt, 2.0))
        if pending:
            raise StoreUnavailable(
                f"{table_name}: {len(pending)} items still unprocessed after {_BATCH_ATTEMPTS} batch writes"
            )


def _sort_time(moment: datetime) -> str:
    """Render a time so that string order is time order: UTC, fixed width."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _entry_to_dict(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "strategy": entry.strategy,
        "side": entry.side.value,
        "order_id": entry.order_id,
        "base_delta": str(entry.base_delta),
        "cost_delta": str(entry.cost_delta),
        "realized_pnl": str(entry.realized_pnl),
        "fees": [{"cost": str(f.cost), "currency": f.currency} for f in entry.fees],
        "at": entry.at.isoformat(),
        "note": entry.note,
    }


def _entry_from_dict(data: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        strategy=str(data["strategy"]),
        side=Side(data["side"]),
        order_id=str(data["order_id"]),
        base_delta=Decimal(str(data["base_delta"])),
        cost_delta=Decimal(str(data["cost_delta"])),
        realized_pnl=Decimal(str(data["realized_pnl"])),
        fees=tuple(Fee(Decimal(str(f["cost"])), str(f["currency"])) for f in data.get("fees", [])),
        at=datetime.fromisoformat(str(data["at"])),
        note=str(data.get("note", "")),
    )


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class DynamoDBStore:
    """The workflow's store on the single table described in the module docstring.

    ``client`` is a low-level boto3 DynamoDB client (tests pass a moto-backed one).
    ``clock`` dates the TTL; ``page_size`` caps the items per Query page (tests use it to
    exercise pagination); ``sleep`` waits between batch retries.
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        clock: Callable[[], datetime] = _utc_now,
        retention: timedelta = RETENTION,
        page_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.clock = clock
        self.retention = retention
        self.page_size = page_size
        self.sleep = sleep
        # The positions and dust as this store last read or wrote them. A store lives for one
        # Lambda invocation and the cycle lock makes it the ledger's only writer, so booking
        # intent after intent diffs against this instead of querying the ledger every time.
        self._ledger_known: dict[str, dict[str, Any]] | None = None
        # The booking whose last transaction may or may not have been applied, and the items it was sent with.
        self._unconfirmed: tuple[str, list[dict[str, Any]]] | None = None

    # -- signals -------------------------------------------------------------------------

    def add_signal(self, record: SignalRecord) -> bool:
        """Insert a signal unless its key exists; return False for a duplicate."""
        try:
            self._put(self._signal_item(record), condition="attribute_not_exists(pk)")
        except ConditionFailed:
            return False
        return True

    def get_signal(self, key: str) -> SignalRecord | None:
        """Return the signal with this dedupe key, or None."""
        item = self._get(f"SIGNAL#{key}", "SIGNAL")
        return _signal_from_item(item) if item else None

    def put_signal(self, record: SignalRecord) -> None:
        """Overwrite a signal (status changes); it leaves the pending index unless still received."""
        self._put(self._signal_item(record))

    def pending_signals(self) -> list[SignalRecord]:
        """Return the signals received and not yet taken by a cycle, oldest first."""
        listed = self._query("#pk = :pk", {"#pk": "gsi1pk"}, {":pk": {"S": PENDING}}, index=INDEX, consistent=False)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in listed]
        current = [_signal_from_item(item) for item in self._batch_get(keys)]
        pending = [r for r in current if r.status is SignalStatus.RECEIVED]
        return sorted(pending, key=_pending_order)

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]:
        """Return the ``limit`` most recently received signals, oldest first.

        Reads the index, so a change of the last moment may not show yet: meant for
        operators and reports, not for decisions.
        """
        if limit <= 0:
            return []
        newest = self._query(
            "#pk = :pk",
            {"#pk": "gsi1pk"},
            {":pk": {"S": SIGNALS}},
            index=INDEX,
            consistent=False,
            forward=False,
            limit=limit,
        )
        pending = self._query("#pk = :pk", {"#pk": "gsi1pk"}, {":pk": {"S": PENDING}}, index=INDEX, consistent=False)
        records = {r.key: r for r in map(_signal_from_item, [*newest, *pending])}
        return sorted(records.values(), key=lambda r: (r.received_at, r.key))[-limit:]

    def _signal_item(self, record: SignalRecord) -> dict[str, Any]:
        data = record.to_dict()
        data["payload"] = json.dumps(record.payload, ensure_ascii=False, default=_json_number)
        if record.status is SignalStatus.RECEIVED:
            moment = record.time or record.received_at
            index = (PENDING, f"{_sort_time(moment)}#{_sort_time(record.received_at)}#{record.key}")
        else:
            index = (SIGNALS, f"{_sort_time(record.received_at)}#{record.key}")
        keys = {"pk": f"SIGNAL#{record.key}", "sk": "SIGNAL", "gsi1pk": index[0], "gsi1sk": index[1]}
        return to_item({**data, **keys, "expires_at": self._expires_at()})

    # -- cycles and intents ---------------------------------------------------------------

    def get_cycle(self, cycle_id: str) -> CycleRecord | None:
        """Return the cycle, or None."""
        item = self._get(f"CYCLE#{cycle_id}", "CYCLE")
        return CycleRecord.from_dict(_record(item)) if item else None

    def put_cycle(self, record: CycleRecord) -> None:
        """Write the cycle, replacing any earlier version."""
        keys = {"pk": f"CYCLE#{record.cycle_id}", "sk": "CYCLE", "expires_at": self._expires_at()}
        self._put(to_item({**record.to_dict(), **keys}))

    def get_intent(self, cycle_id: str, intent_id: str) -> IntentRecord | None:
        """Return one intent of a cycle, or None."""
        item = self._get(f"CYCLE#{cycle_id}", f"INTENT#{intent_id}")
        return IntentRecord.from_dict(_record(item)) if item else None

    def put_intent(self, record: IntentRecord) -> None:
        """Write the intent, replacing any earlier version."""
        self._put(self._intent_item(record))

    def _intent_item(self, record: IntentRecord, *, expires: int | None = None) -> dict[str, Any]:
        intent = record.intent
        expires_at = self._expires_at() if expires is None else expires
        keys = {"pk": f"CYCLE#{intent.cycle_id}", "sk": f"INTENT#{intent.intent_id}", "expires_at": expires_at}
        return to_item({**record.to_dict(), **keys})

    def intents(self, cycle_id: str) -> list[IntentRecord]:
        """Return every intent of a cycle, by intent id."""
        items = self._query(
            "pk = :pk AND begins_with(sk, :prefix)",
            None,
            {":pk": {"S": f"CYCLE#{cycle_id}"}, ":prefix": {"S": "INTENT#"}},
        )
        return [IntentRecord.from_dict(_record(item)) for item in items]

    # -- the ledger ------------------------------------------------------------------------

    def load_ledger(self) -> Ledger:
        """Read every position and the dust (never the audit entries)."""
        stored = self._ledger_known = self._ledger_items()
        positions = {data["strategy"]: data for sk, data in stored.items() if sk.startswith("POSITION#")}
        dust = {data["asset"]: data["amount"] for sk, data in stored.items() if sk.startswith("DUST#")}
        return Ledger.from_dict({"positions": positions, "dust": dust})

    def save_ledger(self, ledger: Ledger) -> None:
        """Persist the positions and dust, and append the ledger's new entries to the audit trail.

        Only items that differ from the stored ones are written; a position or dust bucket
        no longer in the ledger is deleted, so the table ends up holding exactly the ledger.
        The entries are cleared once written.
        """
        batch_write(self.client, self.table_name, self._ledger_requests(ledger), sleep=self.sleep)
        self._ledger_known = _ledger_rows(ledger)
        ledger.entries.clear()

    def book(self, record: IntentRecord, ledger: Ledger) -> None:
        """Write an intent and the ledger changes it caused in one DynamoDB transaction, idempotently.

        The transaction carries a ClientRequestToken derived from what it writes: the intent with its
        booked fill state, and the ledger's rows and new entries. When an attempt's outcome is unknown
        (StoreUnavailable: the answer was lost, or DynamoDB throttled), the next booking of the same
        state by this store re-sends exactly the same request, so DynamoDB applies it at most once
        within its 10-minute idempotency window (API Reference, TransactWriteItems). The audit
        entries' sort keys derive from the booked state too, so even a re-send after that window
        rewrites the same entries instead of adding copies.
        """
        booking = _booking_key(record, ledger)
        unconfirmed = self._unconfirmed
        if unconfirmed is not None and unconfirmed[0] == booking:
            # Not rebuilt: the ledger rows already written would drop out of the diff, and the TTL moves on.
            items = unconfirmed[1]
        else:
            items = self._booking_items(record, ledger, booking)
        try:
            with translate_errors(f"book intent {record.intent.intent_id} in {self.table_name}"):
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=request_token(items))
        except StoreUnavailable:
            # It may have been applied: a re-send of this booking must be the very same request.
            self._unconfirmed = (booking, items)
            raise
        self._unconfirmed = None
        self._ledger_known = _ledger_rows(ledger)
        ledger.entries.clear()

    def _booking_items(self, record: IntentRecord, ledger: Ledger, booking: str) -> list[dict[str, Any]]:
        """Return the TransactItems of a booking: the intent, then the ledger's writes."""
        expires = self._expires_at()
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table_name, "Item": self._intent_item(record, expires=expires)}}
        ]
        for request in self._ledger_requests(ledger, expires=expires, entry_tag=booking[:12]):
            if "PutRequest" in request:
                items.append({"Put": {"TableName": self.table_name, "Item": request["PutRequest"]["Item"]}})
            else:
                items.append({"Delete": {"TableName": self.table_name, "Key": request["DeleteRequest"]["Key"]}})
        if len(items) > TRANSACTION_LIMIT:
            raise StoreError(
                f"booking intent {record.intent.intent_id} touches {len(items)} items, more than one "
                f"transaction takes ({TRANSACTION_LIMIT})"
            )
        return items

    def _ledger_requests(
        self, ledger: Ledger, *, expires: int | None = None, entry_tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the writes that make the table hold ``ledger``, its new entries appended to the audit trail.

        An entry's sort key ends in its position and ``entry_tag`` (random without one), so two saves
        booking the same order at the same instant (a frozen clock) never overwrite each other.
        """
        stored = self._ledger_known if self._ledger_known is not None else self._ledger_items()
        wanted = _ledger_rows(ledger)
        requests: list[dict[str, Any]] = [
            {"PutRequest": {"Item": to_item({"pk": LEDGER, "sk": sk, **data})}}
            for sk, data in wanted.items()
            if stored.get(sk) != data
        ]
        requests += [
            {"DeleteRequest": {"Key": {"pk": {"S": LEDGER}, "sk": {"S": sk}}}}
            for sk in sorted(stored.keys() - wanted.keys())
        ]
        expires = self._expires_at() if expires is None else expires
        for n, entry in enumerate(ledger.entries):
            tag = entry_tag or uuid.uuid4().hex[:12]
            sk = f"ENTRY#{_sort_time(entry.at)}#{entry.order_id}#{n:04d}-{tag}"
            item = {"pk": LEDGER, "sk": sk, **_entry_to_dict(entry), "expires_at": expires}
            requests.append({"PutRequest": {"Item": to_item(item)}})
        return requests

    def audit_entries(self) -> list[LedgerEntry]:
        """Return the audit trail of booked fills, oldest first (an ops and test call: it reads all of it)."""
        items = self._query(
            "pk = :pk AND begins_with(sk, :prefix)", None, {":pk": {"S": LEDGER}, ":prefix": {"S": "ENTRY#"}}
        )
        return [_entry_from_dict(_record(item)) for item in items]

    def _ledger_items(self) -> dict[str, dict[str, Any]]:
        """Return the stored positions and dust, by sort key, as plain attributes without keys."""
        rows: dict[str, dict[str, Any]] = {}
        for prefix in ("POSITION#", "DUST#"):
            items = self._query(
                "pk = :pk AND begins_with(sk, :prefix)", None, {":pk": {"S": LEDGER}, ":prefix": {"S": prefix}}
            )
            rows.update({item["sk"]["S"]: _record(item) for item in items})
        return rows

    # -- the kill switch and guards ------------------------------------------------------------

    def get_controls(self) -> Controls:
        """Read the controls item (a JSON document beside its version), or all off when there is none."""
        item = self._get(CONTROLS, CONTROLS)
        if not item:
            return Controls()
        data = json.loads(item["controls"]["S"])
        return Controls.from_dict({**data, "version": int(item["version"]["N"])})

    def put_controls(self, controls: Controls) -> Controls:
        """Write the controls under a version condition: StoreConflict if another writer came first.

        The item never expires: a pause must outlive the table's retention of signals and cycles.
        """
        written = replace(controls, version=controls.version + 1)
        item = {
            "pk": {"S": CONTROLS},
            "sk": {"S": CONTROLS},
            "version": {"N": str(written.version)},
            "controls": {"S": json.dumps(written.to_dict(), sort_keys=True)},
        }
        try:
            if controls.version == 0:
                self._put(item, condition="attribute_not_exists(pk)")
            else:
                self._put(
                    item,
                    condition="#version = :read",
                    names={"#version": "version"},
                    values={":read": {"N": str(controls.version)}},
                )
        except ConditionFailed:
            raise StoreConflict(
                f"the controls in {self.table_name} changed since version {controls.version} was read"
            ) from None
        return written

    # -- DynamoDB calls ----------------------------------------------------------------------

    def _expires_at(self) -> int:
        return int((self.clock() + self.retention).timestamp())

    def _put(
        self,
        item: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        request: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if condition:
            request["ConditionExpression"] = condition
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = values
        with translate_errors(f"put {item['pk']['S']} {item['sk']['S']} in {self.table_name}"):
            self.client.put_item(**request)

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with translate_errors(f"get {pk} {sk} from {self.table_name}"):
            response = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query(
        self,
        condition: str,
        names: dict[str, str] | None,
        values: dict[str, Any],
        *,
        index: str | None = None,
        consistent: bool = True,
        forward: bool = True,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Run a Query to its last page (or ``limit`` items) and return the raw items."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent  # a GSI refuses ConsistentRead, even False
        items: list[dict[str, Any]] = []
        while True:
            caps = [cap for cap in (self.page_size, None if limit is None else limit - len(items)) if cap]
            if caps:
                request["Limit"] = min(caps)
            with translate_errors(f"query {self.table_name} {index or 'table'} {condition}"):
                response = self.client.query(**request)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(items) >= limit):
                return items
            request["ExclusiveStartKey"] = last

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read items by key with consistent reads, retrying the keys DynamoDB leaves unprocessed."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), _BATCH_GET_SIZE):
            request: dict[str, Any] = {"Keys": keys[start : start + _BATCH_GET_SIZE], "ConsistentRead": True}
            for attempt in range(_BATCH_ATTEMPTS):
                with translate_errors(f"read {len(request['Keys'])} items from {self.table_name}"):
                    response = self.client.batch_get_item(RequestItems={self.table_name: request})
                found.extend(response.get("Responses", {}).get(self.table_name, []))
                unprocessed = response.get("UnprocessedKeys", {}).get(self.table_name)
                if not unprocessed or not unprocessed.get("Keys"):
                    break
                request = unprocessed
                if attempt + 1 == _BATCH_ATTEMPTS:
                    raise StoreUnavailable(
                        f"{self.table_name}: {len(request['Keys'])} keys still unprocessed "
                        f"after {_BATCH_ATTEMPTS} batch reads"
                    )
                self.sleep(min(0.05 * 2**attempt, 2.0))
        return found


def _record(item: Mapping[str, Any]) -> dict[str, Any]:
    """Return an item's record attributes: the plain values without the item design's keys."""
    return {k: v for k, v in from_item(item).items() if k not in _KEYS}


def _signal_from_item(item: Mapping[str, Any]) -> SignalRecord:
    data = _record(item)
    data["payload"] = json.loads(data["payload"])
    return SignalRecord.from_dict(data)


def _pending_order(record: SignalRecord) -> tuple[datetime, datetime, datetime, str]:
    # The order of MemoryStore.pending_signals, which the cycle's netting relies on.
    return arrival_order(record)


def _ledger_rows(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Return the ledger's positions and dust as the attributes their items hold, by sort key."""
    data = ledger.to_dict()
    rows = {f"POSITION#{strategy}": position for strategy, position in data["positions"].items()}
    rows.update({f"DUST#{asset}": {"asset": asset, "amount": amount} for asset, amount in data["dust"].items()})
    return rows


def _booking_key(record: IntentRecord, ledger: Ledger) -> str:
    """Identify a booking by what it writes: the intent with its fill state, the ledger's rows, the new entries."""
    state = {
        "intent": record.to_dict(),
        "ledger": _ledger_rows(ledger),
        "entries": [_entry_to_dict(entry) for entry in ledger.entries],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def request_token(items: Sequence[Mapping[str, Any]]) -> str:
    """Derive a TransactWriteItems ClientRequestToken from the request's items (at most 36 characters).

    The same items give the same token, and DynamoDB refuses a token re-used with other items
    (IdempotentParameterMismatchException), so the token is a digest of all of them, TTL included.
    """
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:36]


def _json_number(value: object) -> Any:
    """Let json.dumps write a Decimal (a payload parsed with parse_float=Decimal) as a JSON number.

    The json module can only write it through an int or the nearest float; alerts parsed
    the default way hold floats already, which round-trip exactly.
    """
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
