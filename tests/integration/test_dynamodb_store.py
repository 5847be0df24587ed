"""The DynamoDB store against the template's own table, on moto and on Amazon's DynamoDB Local.

The first half is the Store contract, run on MemoryStore (the reference) and on
DynamoDBStore alike; the second half checks what only the DynamoDB item design does:
the pending index, pagination, TTL, partial writes, transactions and error translation.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber

from crypto_bot.adapters.aws.dynamodb_store import TRANSACTION_LIMIT, DynamoDBStore, batch_write
from crypto_bot.adapters.aws.errors import ConditionFailed
from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import Strategy
from crypto_bot.domain.errors import StoreError, StoreUnavailable
from crypto_bot.domain.ledger import Ledger, LedgerEntry
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose
from crypto_bot.engine.ports import Store
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase, SignalRecord
from tests.integration.conftest import BACKENDS, TemplateTable, emptied_table, moto_disagrees

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# When the store writes, which dates the items' TTL (expires_at). In the future: DynamoDB deletes items whose TTL has
# passed ("typically within two days of expiration": API Reference, UpdateTimeToLive), and DynamoDB Local within a
# second here (seen for items that carry index keys), so a signal written with NOW's TTL, in 2024, vanished in the
# middle of a test there. moto never deletes expired items.
WRITTEN_AT = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
BTC = Strategy(key="BTCUSD", symbol="BTC/USD", base="BTC", quote="USD", percentage=Decimal("0.2"))
BTC_FAST = Strategy(key="BTCUSD_FAST", symbol="BTC/USD", base="BTC", quote="USD", percentage=Decimal("0.1"))
ETH = Strategy(key="ETHUSD", symbol="ETH/USD", base="ETH", quote="USD", percentage=Decimal("0.25"))


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def table(template_table: TemplateTable) -> str:
    return template_table.name


@pytest.fixture
def client(template_table: TemplateTable) -> Any:
    return template_table.client


@pytest.fixture
def dynamo(template_table: TemplateTable) -> DynamoDBStore:
    return DynamoDBStore(template_table.name, template_table.client, clock=lambda: WRITTEN_AT)


@pytest.fixture(params=["memory", *BACKENDS])
def store(request: pytest.FixtureRequest) -> Store:
    """Each contract test runs on the reference MemoryStore and on DynamoDBStore on both engines."""
    if request.param == "memory":
        return MemoryStore()
    table = emptied_table(request, request.param)
    return DynamoDBStore(table.name, table.client, clock=lambda: WRITTEN_AT)


def audit_of(store: Store) -> list[LedgerEntry]:
    if isinstance(store, MemoryStore):
        return list(store.audit)
    assert isinstance(store, DynamoDBStore)
    return store.audit_entries()


# -- builders ----------------------------------------------------------------------------------


def signal(key: str, *, minutes: int = 0, time: datetime | None = None, **changes: Any) -> SignalRecord:
    fields: dict[str, Any] = {
        "key": key,
        "status": SignalStatus.RECEIVED,
        "received_at": NOW + timedelta(minutes=minutes),
        "payload": {"ticker": "BTCUSD", "order_action": "buy", "order_price": 64250.5, "order_comment": ""},
        "strategy": "BTCUSD",
        "action": "buy",
        "time": time,
    }
    fields.update(changes)
    return SignalRecord(**fields)


def intent_record(cycle_id: str, intent_id: str, **changes: Any) -> IntentRecord:
    intent = OrderIntent(
        intent_id=intent_id,
        cycle_id=cycle_id,
        strategy="BTCUSD",
        symbol="BTC/USD",
        side=Side.BUY,
        purpose=Purpose.ENTRY,
        amount=Decimal("0.03110000"),
        limit_price=Decimal("64250.50"),
        notional=Decimal("2000.00"),
        signal_keys=("k1", "k2"),
    )
    fields: dict[str, Any] = {"intent": intent, "phase": Phase.ENTRIES}
    fields.update(changes)
    return IntentRecord(**fields)


def booked_ledger() -> Ledger:
    """Two strategies on BTC, one on ETH, dust, and the audit entries of their fills."""
    ledger = Ledger()
    fee = (Fee(Decimal("0.0000311"), "BTC"),)
    ledger.apply_fill(
        BTC, Side.BUY, order_id="o-1", filled=Decimal("0.0311"), cost=Decimal("1998.190"), fees=fee, at=NOW
    )
    ledger.apply_fill(
        BTC_FAST, Side.BUY, order_id="o-2", filled=Decimal("0.0100"), cost=Decimal("642.505"), fees=(), at=NOW
    )
    ledger.apply_fill(
        ETH,
        Side.BUY,
        order_id="o-3",
        filled=Decimal("1.5000"),
        cost=Decimal("4500.00"),
        fees=(Fee(Decimal("4.50"), "USD"),),
        at=NOW + timedelta(seconds=1),
    )
    ledger.apply_fill(
        ETH, Side.SELL, order_id="o-4", filled=Decimal("1.49995"), cost=Decimal("4650.00"), fees=(), at=NOW
    )
    market = Market("ETH/USD", "ETH", "USD", amount_step=Decimal("0.0001"), price_step=Decimal("0.01"))
    ledger.sweep_dust(ETH, market)
    return ledger


# -- the Store contract: MemoryStore and DynamoDBStore behave alike ---------------------------------


def test_add_signal_refuses_a_second_signal_with_the_same_key(store: Store) -> None:
    first = signal("k1", reason="first")

    assert store.add_signal(first) is True
    assert store.add_signal(signal("k1", minutes=5, reason="second")) is False
    assert store.get_signal("k1") == first


def test_unknown_keys_read_as_none(store: Store) -> None:
    assert store.get_signal("nope") is None
    assert store.get_cycle("nope") is None
    assert store.get_intent("nope", "nope") is None
    assert store.intents("nope") == []


@pytest.mark.parametrize(
    "payload",
    [
        {"ticker": "BTCUSD", "price": 0.1, "contracts": 3, "comment": "", "nested": {"list": [1.5e-08, None, True]}},
        {"text": "caf\u00e9 \u2192 \U0001f680", "empty": {}, "nothing": []},
        "not json at all {",
        "",
    ],
)
def test_signal_payload_round_trips_exactly(store: Store, payload: Any) -> None:
    record = signal("k1", payload=payload, time=NOW - timedelta(seconds=30), is_stop_loss=True, message_id="m-1")

    store.add_signal(record)
    stored = store.get_signal("k1")

    assert stored == record
    assert stored is not None
    assert stored.payload == payload


def test_put_signal_overwrites_the_status(store: Store) -> None:
    store.add_signal(signal("k1"))

    store.put_signal(signal("k1", status=SignalStatus.PLANNED, cycle_id="c-1", reason="netted"))

    stored = store.get_signal("k1")
    assert stored is not None
    assert (stored.status, stored.cycle_id, stored.reason) == (SignalStatus.PLANNED, "c-1", "netted")


def test_pending_signals_are_oldest_first_by_alert_time_then_arrival(store: Store) -> None:
    # Arrival order k1..k4; alert times put k3 first and make k2 and k4 tie on time.
    store.add_signal(signal("k1", minutes=0, time=NOW + timedelta(minutes=10)))
    store.add_signal(signal("k2", minutes=1, time=NOW + timedelta(minutes=5)))
    store.add_signal(signal("k3", minutes=2, time=NOW - timedelta(hours=1)))
    store.add_signal(signal("k4", minutes=3, time=NOW + timedelta(minutes=5)))
    store.add_signal(signal("k5", minutes=4))  # no alert time: its arrival counts

    assert [r.key for r in store.pending_signals()] == ["k3", "k5", "k2", "k4", "k1"]


def test_pending_signals_orders_times_of_different_offsets_by_instant(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.add_signal(signal("later", time=datetime(2024, 5, 1, 13, 30, tzinfo=plus_two)))  # 11:30 UTC
    store.add_signal(signal("earlier", time=datetime(2024, 5, 1, 11, 0, tzinfo=UTC)))

    assert [r.key for r in store.pending_signals()] == ["earlier", "later"]


def test_a_signal_leaves_pending_when_its_status_changes(store: Store) -> None:
    store.add_signal(signal("k1"))
    store.add_signal(signal("k2", minutes=1))

    store.put_signal(signal("k1", status=SignalStatus.PLANNED, cycle_id="c-1"))

    assert [r.key for r in store.pending_signals()] == ["k2"]


def test_recent_signals_are_the_last_received_oldest_first(store: Store) -> None:
    for n in range(6):
        store.add_signal(signal(f"k{n}", minutes=n))
    store.put_signal(signal("k4", minutes=4, status=SignalStatus.REJECTED))
    store.put_signal(signal("k1", minutes=1, status=SignalStatus.FILLED))

    assert [r.key for r in store.recent_signals(limit=3)] == ["k3", "k4", "k5"]
    assert [r.key for r in store.recent_signals()] == ["k0", "k1", "k2", "k3", "k4", "k5"]


def test_cycle_round_trips_with_exact_decimals(store: Store) -> None:
    cycle = CycleRecord(
        cycle_id="c-1",
        at=NOW,
        urgent=True,
        status="done",
        signal_keys=["k1", "k2"],
        exits=["ETHUSD"],
        entries=["BTCUSD"],
        deciding={"BTCUSD": ["k1"], "ETHUSD": []},
        planned_phases=["exits", "sell_downs"],
        account_value=Decimal("10000.00"),
        precedence="boost",
        idle_share=Decimal("0.10000000"),
        targets={"BTCUSD": Decimal("2000.50"), "ETHUSD": Decimal("0E-8")},
        entry_order=["BTCUSD"],
        summary={"signals": {"filled": 2}, "orders": {}, "traded": {"BTCUSD": "buy 0.0311"}},
        error="",
    )

    store.put_cycle(cycle)
    stored = store.get_cycle("c-1")

    assert stored is not None
    assert stored.to_dict() == cycle.to_dict()
    assert str(stored.idle_share) == "0.10000000"
    assert str(stored.targets["ETHUSD"]) == "0E-8"
    assert stored.summary["signals"]["filled"] == 2
    assert type(stored.summary["signals"]["filled"]) is int


def test_intents_lists_the_intents_of_one_cycle(store: Store) -> None:
    done = intent_record(
        "c-1",
        "i-2",
        status=IntentStatus.PARTIALLY_FILLED,
        attempt=2,
        placed_at=NOW,
        orders=[
            ExchangeOrder(
                id="o-9",
                client_order_id="cbi-2a2",
                symbol="BTC/USD",
                side=Side.BUY,
                amount=Decimal("0.03110000"),
                price=Decimal("64300.00"),
                status=OrderStatus.CANCELED,
                filled=Decimal("0.01"),
                cost=Decimal("643.000"),
                fees=(Fee(Decimal("0.00001"), "BTC"),),
            )
        ],
        filled=Decimal("0.0100"),
        cost=Decimal("643.000"),
        fees=[Fee(Decimal("0.00001"), "BTC")],
        reason="chased twice",
    )
    store.put_intent(intent_record("c-1", "i-1"))
    store.put_intent(done)
    store.put_intent(intent_record("c-2", "i-1"))

    listed = sorted(store.intents("c-1"), key=lambda r: r.intent.intent_id)

    assert [r.to_dict() for r in listed] == [intent_record("c-1", "i-1").to_dict(), done.to_dict()]
    assert store.get_intent("c-1", "i-2") == done
    assert [r.intent.cycle_id for r in store.intents("c-2")] == ["c-2"]


def test_ledger_round_trips_positions_dust_and_appends_entries_once(store: Store) -> None:
    ledger = booked_ledger()
    entries = list(ledger.entries)

    store.save_ledger(ledger)
    loaded = store.load_ledger()

    assert ledger.entries == []
    assert loaded.to_dict() == ledger.to_dict()
    assert loaded.positions["BTCUSD"].amount == Decimal("0.0310689")
    assert loaded.positions["BTCUSD_FAST"].cost_basis == Decimal("642.505")
    assert loaded.dust == {"ETH": Decimal("0.00005")}
    assert sorted(audit_of(store), key=lambda e: e.order_id) == entries

    store.save_ledger(loaded)  # nothing new was booked: the audit trail stays as it was
    assert len(audit_of(store)) == 4


def test_saving_a_ledger_without_a_position_removes_it(store: Store) -> None:
    ledger = booked_ledger()
    store.save_ledger(ledger)

    del ledger.positions["BTCUSD_FAST"]
    ledger.dust.clear()
    store.save_ledger(ledger)

    loaded = store.load_ledger()
    assert sorted(loaded.positions) == ["BTCUSD", "ETHUSD"]
    assert loaded.dust == {}


# -- DynamoDB only: the item design --------------------------------------------------------------


class CountingClient:
    """A DynamoDB client that counts the calls made through it.

    For ``throttled_rounds`` batch writes it acts as throttled DynamoDB does: it writes only
    the first ``taken`` items and hands back the rest as unprocessed.
    """

    def __init__(self, client: Any, *, throttled_rounds: int = 0, taken: int = 1) -> None:
        self.client = client
        self.calls: dict[str, int] = {}
        self.written: list[dict[str, Any]] = []
        self.throttled_rounds = throttled_rounds
        self.taken = taken

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(**kwargs)

        return call

    def batch_write_item(self, **kwargs: Any) -> Any:
        self.calls["batch_write_item"] = self.calls.get("batch_write_item", 0) + 1
        ((table, requests),) = kwargs["RequestItems"].items()
        self.written.extend(requests)
        if self.throttled_rounds > 0:
            self.throttled_rounds -= 1
            if requests[: self.taken]:
                self.client.batch_write_item(RequestItems={table: requests[: self.taken]})
            rest = requests[self.taken :]
            return {"UnprocessedItems": {table: rest} if rest else {}}
        return self.client.batch_write_item(**kwargs)


def raw_item(client: Any, table: str, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]
    return item


def index_keys(client: Any, table: str, partition: str) -> list[str]:
    response = client.query(
        TableName=table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": partition}},
    )
    return [item["pk"]["S"] for item in response["Items"]]


def test_template_table_has_the_keys_index_and_ttl_the_store_uses(table: str, client: Any) -> None:
    description = client.describe_table(TableName=table)["Table"]
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]

    assert {k["AttributeName"]: k["KeyType"] for k in description["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    (index,) = description["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert {k["AttributeName"] for k in index["KeySchema"]} == {"gsi1pk", "gsi1sk"}
    assert index["Projection"]["ProjectionType"] == "ALL"
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == ("expires_at", "ENABLED")


def test_pending_signals_reads_every_page_of_the_index(table: str, client: Any) -> None:
    counting = CountingClient(client)
    paged = DynamoDBStore(table, counting, clock=lambda: WRITTEN_AT, page_size=2)
    for n in range(7):
        paged.add_signal(signal(f"k{n}", minutes=-n))

    pending = paged.pending_signals()

    assert [r.key for r in pending] == [f"k{n}" for n in reversed(range(7))]
    assert counting.calls["query"] == 4


# DynamoDB answers a page that stops at its Limit with a LastEvaluatedKey even when nothing follows ("If
# LastEvaluatedKey is not empty, it does not necessarily mean that there is more data": Developer Guide,
# Paginating table query results), so the store reads on to an empty page.
@moto_disagrees("no LastEvaluatedKey on a full page when nothing follows it")
def test_pending_signals_reads_on_to_the_page_without_a_last_key(template_table: TemplateTable) -> None:
    counting = CountingClient(template_table.client)
    paged = DynamoDBStore(template_table.name, counting, clock=lambda: WRITTEN_AT, page_size=2)
    for n in range(6):
        paged.add_signal(signal(f"k{n}", minutes=-n))

    pending = paged.pending_signals()

    assert [r.key for r in pending] == [f"k{n}" for n in reversed(range(6))]
    assert counting.calls["query"] == 4  # three full pages, then an empty one


def test_recent_signals_stops_reading_at_the_limit(table: str, client: Any) -> None:
    counting = CountingClient(client)
    paged = DynamoDBStore(table, counting, clock=lambda: WRITTEN_AT, page_size=2)
    for n in range(9):
        paged.add_signal(signal(f"k{n}", minutes=n, status=SignalStatus.FILLED))

    recent = paged.recent_signals(limit=3)

    assert [r.key for r in recent] == ["k6", "k7", "k8"]
    assert counting.calls["query"] == 3  # two pages of SIGNALS for 3 items, one (empty) of PENDING


def test_status_change_moves_the_signal_out_of_the_pending_partition(dynamo: DynamoDBStore, client: Any) -> None:
    dynamo.add_signal(signal("k1"))
    assert index_keys(client, dynamo.table_name, "PENDING") == ["SIGNAL#k1"]

    dynamo.put_signal(signal("k1", status=SignalStatus.PLANNED, cycle_id="c-1"))

    assert index_keys(client, dynamo.table_name, "PENDING") == []
    assert index_keys(client, dynamo.table_name, "SIGNALS") == ["SIGNAL#k1"]


def test_pending_signals_trusts_the_table_over_a_stale_index(table: str, client: Any) -> None:
    # An index copy lags the table for a moment after a write: replay the index as it was
    # before k1 was taken by a cycle.
    store = DynamoDBStore(table, client, clock=lambda: WRITTEN_AT)
    store.add_signal(signal("k1"))
    store.add_signal(signal("k2", minutes=1))
    stale = client.query(
        TableName=table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": "PENDING"}},
    )
    store.put_signal(signal("k1", status=SignalStatus.PLANNED, cycle_id="c-1"))
    lagging = StaleIndexClient(client, stale)

    pending = DynamoDBStore(table, lagging, clock=lambda: WRITTEN_AT).pending_signals()

    assert [r.key for r in pending] == ["k2"]
    assert lagging.stale_reads == 1


class StaleIndexClient:
    """A DynamoDB client whose index queries answer with an earlier, stale response."""

    def __init__(self, client: Any, stale: dict[str, Any]) -> None:
        self.client = client
        self.stale = stale
        self.stale_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def query(self, **kwargs: Any) -> Any:
        if "IndexName" in kwargs:
            self.stale_reads += 1
            return self.stale
        return self.client.query(**kwargs)


def test_signals_cycles_intents_and_entries_expire_but_positions_do_not(dynamo: DynamoDBStore, client: Any) -> None:
    table = dynamo.table_name
    in_90_days = str(int((WRITTEN_AT + timedelta(days=90)).timestamp()))
    dynamo.add_signal(signal("k1"))
    dynamo.put_cycle(CycleRecord(cycle_id="c-1", at=NOW, urgent=False))
    dynamo.put_intent(intent_record("c-1", "i-1"))
    dynamo.save_ledger(booked_ledger())

    assert raw_item(client, table, "SIGNAL#k1", "SIGNAL")["expires_at"] == {"N": in_90_days}
    assert raw_item(client, table, "CYCLE#c-1", "CYCLE")["expires_at"] == {"N": in_90_days}
    assert raw_item(client, table, "CYCLE#c-1", "INTENT#i-1")["expires_at"] == {"N": in_90_days}
    ledger_items = client.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "LEDGER"}}
    )["Items"]
    expiring = {item["sk"]["S"].split("#")[0] for item in ledger_items if "expires_at" in item}
    lasting = {item["sk"]["S"].split("#")[0] for item in ledger_items if "expires_at" not in item}
    assert (expiring, lasting) == ({"ENTRY"}, {"POSITION", "DUST"})


def test_signal_payload_is_stored_as_a_json_string(dynamo: DynamoDBStore, client: Any) -> None:
    dynamo.add_signal(signal("k1", payload={"order_price": 0.1, "order_comment": ""}))

    item = raw_item(client, dynamo.table_name, "SIGNAL#k1", "SIGNAL")

    assert item["payload"] == {"S": '{"order_price": 0.1, "order_comment": ""}'}


def test_ledger_numbers_are_stored_as_exact_strings(dynamo: DynamoDBStore, client: Any) -> None:
    dynamo.save_ledger(booked_ledger())

    position = raw_item(client, dynamo.table_name, "LEDGER", "POSITION#BTCUSD_FAST")
    dust = raw_item(client, dynamo.table_name, "LEDGER", "DUST#ETH")

    assert position["cost_basis"] == {"S": "642.505"}
    assert position["amount"] == {"S": "0.0100"}
    assert dust["amount"] == {"S": "0.00005"}


def test_save_ledger_writes_only_the_positions_that_changed(table: str, client: Any) -> None:
    counting = CountingClient(client)
    store = DynamoDBStore(table, counting, clock=lambda: WRITTEN_AT)
    store.save_ledger(booked_ledger())
    ledger = store.load_ledger()
    counting.written.clear()

    ledger.apply_fill(BTC, Side.BUY, order_id="o-5", filled=Decimal("0.001"), cost=Decimal("64.25"), fees=(), at=NOW)
    store.save_ledger(ledger)

    written = sorted(r["PutRequest"]["Item"]["sk"]["S"] for r in counting.written)
    assert len(written) == 2
    assert written[0].startswith("ENTRY#")
    assert "#o-5#" in written[0]
    assert written[1] == "POSITION#BTCUSD"


def test_save_ledger_retries_the_items_dynamodb_left_unprocessed(table: str, client: Any) -> None:
    counting = CountingClient(client, throttled_rounds=3)
    slept: list[float] = []
    store = DynamoDBStore(table, counting, clock=lambda: WRITTEN_AT, sleep=slept.append)

    store.save_ledger(booked_ledger())

    assert store.load_ledger().to_dict() == booked_ledger().to_dict()
    assert len(store.audit_entries()) == 4
    assert slept == [0.05, 0.1, 0.2]


def test_batch_write_gives_up_when_items_stay_unprocessed(table: str, client: Any) -> None:
    counting = CountingClient(client, throttled_rounds=100, taken=0)
    requests = [{"PutRequest": {"Item": {"pk": {"S": "X"}, "sk": {"S": str(n)}}}} for n in range(3)]

    with pytest.raises(StoreUnavailable, match="still unprocessed"):
        batch_write(counting, table, requests, sleep=lambda _s: None)


def test_save_ledger_writes_hundreds_of_positions_in_batches(table: str, client: Any) -> None:
    counting = CountingClient(client)
    store = DynamoDBStore(table, counting, clock=lambda: WRITTEN_AT)
    ledger = Ledger()
    for n in range(60):
        strategy = Strategy(key=f"S{n:03d}", symbol="BTC/USD", base="BTC", quote="USD", percentage=Decimal("0.01"))
        ledger.apply_fill(
            strategy, Side.BUY, order_id=f"o-{n}", filled=Decimal("0.001"), cost=Decimal("64"), fees=(), at=NOW
        )

    store.save_ledger(ledger)

    assert counting.calls["batch_write_item"] == 5  # 60 positions + 60 entries, 25 a batch
    assert len(store.load_ledger().positions) == 60


# -- limits of DynamoDB that the store's writes keep to ---------------------------------------------


def item_key(n: int) -> dict[str, Any]:
    return {"pk": {"S": "LIMIT"}, "sk": {"S": f"{n:04d}"}}


def refusal(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


@moto_disagrees("BatchWriteItem takes any number of requests", raises=pytest.fail.Exception)
def test_dynamodb_refuses_a_batch_write_of_more_than_25_requests(template_table: TemplateTable) -> None:
    requests = [{"PutRequest": {"Item": item_key(n)}} for n in range(26)]

    with pytest.raises(ClientError) as refused:
        template_table.client.batch_write_item(RequestItems={template_table.name: requests})

    assert refusal(refused) == ("ValidationException", "Too many items requested for the BatchWriteItem call")


@moto_disagrees("BatchWriteItem takes two requests for the same key", raises=pytest.fail.Exception)
def test_dynamodb_refuses_a_batch_write_with_two_requests_for_one_key(template_table: TemplateTable) -> None:
    requests = [{"PutRequest": {"Item": item_key(1)}}, {"DeleteRequest": {"Key": item_key(1)}}]

    with pytest.raises(ClientError) as refused:
        template_table.client.batch_write_item(RequestItems={template_table.name: requests})

    assert refusal(refused) == ("ValidationException", "Provided list of item keys contains duplicates")


def test_dynamodb_takes_a_transaction_of_100_items_and_refuses_101(template_table: TemplateTable) -> None:
    client, table = template_table.client, template_table.name
    items = [{"Put": {"TableName": table, "Item": item_key(n)}} for n in range(TRANSACTION_LIMIT + 1)]

    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=items)
    client.transact_write_items(TransactItems=items[:TRANSACTION_LIMIT])

    # Both engines refuse it; only the wording differs: DynamoDB Local says "Member must have length less than or
    # equal to 100", moto "1 validation error detected at 'transactItems' failed to satisfy constraint: Member must
    # have length less than or equal to 100."
    code, message = refusal(refused)
    assert code == "ValidationException"
    assert "Member must have length less than or equal to 100" in message
    assert client.scan(TableName=table, Select="COUNT")["Count"] == TRANSACTION_LIMIT


# -- error translation -------------------------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[DynamoDBStore, Stubber]]:
    """A store on a client whose answers the test scripts (no moto, no network)."""
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield DynamoDBStore("t", client, clock=lambda: WRITTEN_AT), stubber


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_throttling_and_server_errors_are_store_unavailable(
    stubbed: tuple[DynamoDBStore, Stubber], code: str, status: int
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=status)

    with pytest.raises(StoreUnavailable, match=code):
        store.get_signal("k1")


def test_other_client_errors_are_permanent_store_errors(stubbed: tuple[DynamoDBStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ResourceNotFoundException", http_status_code=400)

    with pytest.raises(StoreError, match="ResourceNotFoundException") as raised:
        store.put_cycle(CycleRecord(cycle_id="c-1", at=NOW, urgent=False))

    assert not isinstance(raised.value, StoreUnavailable)


def test_a_failed_condition_on_add_signal_is_a_duplicate_not_an_error(stubbed: tuple[DynamoDBStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ConditionalCheckFailedException", http_status_code=400)

    assert store.add_signal(signal("k1")) is False


def test_book_stores_the_intent_and_the_ledger_together(store: Store) -> None:
    ledger = booked_ledger()
    record = intent_record("c1", "i1", filled=Decimal("0.0311"))
    store.book(record, ledger)
    assert store.get_intent("c1", "i1") == record
    assert store.load_ledger().positions == ledger.positions
    assert ledger.entries == []
    assert len(audit_of(store)) == 4


def test_a_failed_booking_writes_neither_the_intent_nor_the_ledger(
    dynamo: DynamoDBStore, client: Any, table: str
) -> None:
    ledger = booked_ledger()
    record = intent_record("c1", "i1", filled=Decimal("0.0311"))
    # Make DynamoDB refuse the transaction: the last item carries a condition that cannot hold.
    original = client.transact_write_items

    def failing(**request: Any) -> Any:
        items = request["TransactItems"]
        items[-1]["Put"]["ConditionExpression"] = "attribute_exists(never_there)"
        # Another request now, so another token: DynamoDB Local remembers tokens across these tests' tables.
        request["ClientRequestToken"] = uuid.uuid4().hex
        return original(**request)

    client.transact_write_items = failing
    try:
        with pytest.raises(StoreError) as failed:
            dynamo.book(record, ledger)
    finally:
        client.transact_write_items = original
    # One reason per item, in order: the intent, 3 positions, the dust, 4 audit entries.
    reasons = ", ".join(["None"] * 8 + ["ConditionalCheckFailed"])
    assert str(failed.value) == (
        f"book intent i1 in {table}: TransactionCanceledException: "
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{reasons}]"
    )
    # A failed condition inside the transaction is a conflict, not an outage: it is not retried.
    assert type(failed.value) is ConditionFailed
    cause = failed.value.__cause__
    assert isinstance(cause, ClientError)
    assert [reason["Code"] for reason in cause.response["CancellationReasons"]] == reasons.split(", ")
    assert dynamo.get_intent("c1", "i1") is None
    assert dynamo.load_ledger().positions == {}
    assert len(ledger.entries) == 4  # still pending: the caller's retry books them again


class LostAnswers:
    """A DynamoDB client whose first ``lost`` TransactWriteItems are applied but answered with a read timeout.

    That is the failure ClientRequestToken exists for: the transaction committed, the caller never heard, and
    botocore has given up retrying. Every request it sends is kept.

    The tests using it book intents of their own ids: DynamoDB Local remembers a token for its 10 minutes
    across the tests' emptied tables, so a request equal to another test's would be answered as a replay.
    """

    def __init__(self, client: Any, *, lost: int = 1) -> None:
        self.client = client
        self.lost = lost
        self.sent: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **request: Any) -> Any:
        self.sent.append(copy.deepcopy(request))
        answer = self.client.transact_write_items(**request)
        if self.lost:
            self.lost -= 1
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return answer


def test_a_booking_resent_after_a_lost_answer_books_its_fills_once(template_table: TemplateTable) -> None:
    # Ids of its own: DynamoDB Local remembers a token for 10 minutes, across the tests' emptied tables.
    lossy = LostAnswers(template_table.client)
    dynamo = DynamoDBStore(
        template_table.name, lossy, clock=iter(WRITTEN_AT + timedelta(seconds=n) for n in range(9)).__next__
    )
    ledger = booked_ledger()
    record = intent_record("c-lost", "i-lost", filled=Decimal("0.0311"))

    with pytest.raises(StoreUnavailable, match="ReadTimeoutError"):
        dynamo.book(record, ledger)
    dynamo.book(record, ledger)  # the caller's retry

    first, second = lossy.sent
    assert second == first  # the very same request, TTL and token included, though the clock moved on
    assert 1 <= len(first["ClientRequestToken"]) <= 36
    assert len(dynamo.audit_entries()) == 4
    assert dynamo.get_intent("c-lost", "i-lost") == record
    assert dynamo.load_ledger().positions == booked_ledger().positions
    assert ledger.entries == []


@moto_disagrees("it ignores ClientRequestToken and applies a re-sent transaction again")
def test_a_resent_booking_dynamodb_applied_already_is_not_applied_again(template_table: TemplateTable) -> None:
    lossy = LostAnswers(template_table.client)
    dynamo = DynamoDBStore(template_table.name, lossy, clock=lambda: WRITTEN_AT)
    ledger = booked_ledger()
    record = intent_record("c-resent", "i-resent", filled=Decimal("0.0311"))
    with pytest.raises(StoreUnavailable):
        dynamo.book(record, ledger)
    # Meanwhile the intent moved on; a re-send that DynamoDB applied a second time would put it back.
    later = intent_record("c-resent", "i-resent", filled=Decimal("0.0311"), status=IntentStatus.FILLED)
    DynamoDBStore(template_table.name, template_table.client, clock=lambda: WRITTEN_AT).put_intent(later)

    dynamo.book(record, ledger)

    assert dynamo.get_intent("c-resent", "i-resent") == later


def test_two_bookings_of_one_intent_carry_different_tokens(dynamo: DynamoDBStore, client: Any) -> None:
    counting = LostAnswers(client, lost=0)
    dynamo.client = counting
    record = intent_record("c-tokens", "i-tokens", status=IntentStatus.OPEN)
    dynamo.book(record, Ledger())
    record.filled = Decimal("0.0311")
    ledger = booked_ledger()
    dynamo.book(record, ledger)
    dynamo.book(record, Ledger.from_dict(ledger.to_dict()))  # the same state again, without new entries

    tokens = [request["ClientRequestToken"] for request in counting.sent]
    assert len(set(tokens)) == 3
    assert len(dynamo.audit_entries()) == 4


def ledger_to_book(dynamo: DynamoDBStore, fills: int, *, closes_one: bool) -> Ledger:
    """Return a ledger whose booking writes a position and an entry per fill, and deletes a stored position or not."""
    stored = Ledger()
    stored.apply_fill(BTC, Side.BUY, order_id="o-old", filled=Decimal("0.001"), cost=Decimal("64"), fees=(), at=NOW)
    dynamo.save_ledger(stored)
    ledger = dynamo.load_ledger()
    if closes_one:
        del ledger.positions["BTCUSD"]
    for n in range(fills):
        strategy = Strategy(key=f"S{n:03d}", symbol="BTC/USD", base="BTC", quote="USD", percentage=Decimal("0.01"))
        ledger.apply_fill(
            strategy, Side.BUY, order_id=f"o-{n}", filled=Decimal("0.001"), cost=Decimal("64"), fees=(), at=NOW
        )
    return ledger


def test_book_writes_a_whole_transaction_of_100_items(dynamo: DynamoDBStore) -> None:
    ledger = ledger_to_book(dynamo, fills=49, closes_one=True)  # the intent, 49 positions and entries, a deletion

    dynamo.book(intent_record("c1", "i1"), ledger)

    assert dynamo.get_intent("c1", "i1") == intent_record("c1", "i1")
    assert sorted(dynamo.load_ledger().positions) == [f"S{n:03d}" for n in range(49)]
    assert len(dynamo.audit_entries()) == 50


def test_book_refuses_more_than_one_transaction_takes_and_writes_nothing(dynamo: DynamoDBStore) -> None:
    ledger = ledger_to_book(dynamo, fills=50, closes_one=False)  # the intent, 50 positions and 50 entries

    with pytest.raises(StoreError, match=r"touches 101 items, more than one transaction takes \(100\)"):
        dynamo.book(intent_record("c1", "i1"), ledger)

    assert dynamo.get_intent("c1", "i1") is None
    assert sorted(dynamo.load_ledger().positions) == ["BTCUSD"]
    assert len(dynamo.audit_entries()) == 1
    assert len(ledger.entries) == 50


def test_booking_intent_after_intent_reads_the_ledger_once(dynamo: DynamoDBStore, client: Any) -> None:
    dynamo.save_ledger(booked_ledger())
    original = client.query
    queries: list[str] = []

    def counting(**request: Any) -> Any:
        queries.append(request["ExpressionAttributeValues"][":pk"]["S"])
        return original(**request)

    client.query = counting
    try:
        fresh = DynamoDBStore(dynamo.table_name, client)
        ledger = fresh.load_ledger()
        for n in range(5):
            ledger.apply_fill(
                BTC, Side.BUY, order_id=f"o-{n}", filled=Decimal("0.001"), cost=Decimal("64"), fees=(), at=NOW
            )
            fresh.book(intent_record("c1", f"i{n}"), ledger)
    finally:
        client.query = original
    assert queries.count("LEDGER") == 2  # positions and dust, read once by load_ledger
    assert fresh.load_ledger().positions["BTCUSD"].amount == Decimal("0.0361") - Decimal("0.0000311")
