"""The controls record (kill switch and guards) on the template's table, on moto and on DynamoDB Local.

One record, two writers (the operator's commands and the cycles): each write must match the version it
read, so neither loses the other's change (crypto_bot.adapters.aws.dynamodb_store, put_controls).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.domain.controls import Controls, Hold, pause, request_flatten, resume
from crypto_bot.domain.errors import StoreConflict
from crypto_bot.engine.ports import Store
from tests.integration.conftest import TemplateTable

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def stores(template_table: TemplateTable) -> list[Store]:
    return [DynamoDBStore(template_table.name, template_table.client), MemoryStore()]


def test_no_record_reads_as_everything_off(template_table: TemplateTable) -> None:
    for store in stores(template_table):
        assert store.get_controls() == Controls()
        assert store.get_controls().entry_hold("BTCUSDT", AT) is None


def test_controls_round_trip_exactly(template_table: TemplateTable) -> None:
    controls = request_flatten(
        pause(Controls(), by="alice", reason="news", at=AT, strategy="ETHUSDT"),
        by="arn:aws:iam::123456789012:user/alice",
        reason="",
        at=AT + timedelta(minutes=1),
    )
    controls = controls.__class__(
        **{
            **controls.__dict__,
            "peak_equity": Decimal("10234.5678"),
            "strategy_peaks": {"BTCUSDT": Decimal("-12.5")},
            "cooldowns": {"BTCUSDT": Hold("cooldown", AT + timedelta(hours=16))},
        }
    )
    for store in stores(template_table):
        written = store.put_controls(controls)
        assert written.version == 1
        assert store.get_controls() == written


def test_a_write_from_a_stale_read_is_refused_and_loses_nothing(template_table: TemplateTable) -> None:
    for store in stores(template_table):
        read_by_cycle = store.get_controls()
        store.put_controls(pause(store.get_controls(), by="alice", reason="", at=AT))  # the operator, meanwhile
        with pytest.raises(StoreConflict):
            store.put_controls(resume(read_by_cycle, by="cycle", at=AT))
        assert store.get_controls().paused is not None
        # Re-read, re-applied: the second write goes through on top of the first.
        again = store.get_controls()
        assert store.put_controls(resume(again, by="alice", at=AT)).version == 2
        assert store.get_controls().paused is None


def test_the_controls_item_never_expires(template_table: TemplateTable) -> None:
    store = DynamoDBStore(template_table.name, template_table.client)
    store.put_controls(pause(Controls(), by="alice", reason="", at=AT))
    item = template_table.client.get_item(
        TableName=template_table.name, Key={"pk": {"S": "CONTROLS"}, "sk": {"S": "CONTROLS"}}
    )["Item"]
    assert "expires_at" not in item


def test_a_position_with_its_resting_stop_round_trips_exactly(template_table: TemplateTable) -> None:
    # The stop's booked fills live in the position item itself, so a re-read books only the difference.
    from crypto_bot.domain.ledger import Ledger, Position, RestingStop
    from crypto_bot.domain.orders import Fee

    stop = RestingStop(
        order_id="1001",
        client_order_id="cb0123456789abcdef01234567s00000",  # pragma: allowlist secret
        amount=Decimal("0.08307"),
        stop_price=Decimal("57057.06"),
        limit_price=Decimal("56486.49"),
        placed_at=AT,
        filled=Decimal("0.04"),
        cost=Decimal("2282.2"),
        fees=(Fee(Decimal("2.2822"), "USDT"),),
    )
    position = Position(
        "BTCUSDT", "BTC/USDT", "BTC", "USDT", Decimal("0.04307684"), Decimal("2587.3"), stop=stop,
        stop_level=Decimal("57057.06"),
    )  # fmt: skip
    flat = Position("ETHUSDT", "ETH/USDT", "ETH", "USDT", stopped_at=AT)
    for store in stores(template_table):
        store.save_ledger(Ledger(positions={"BTCUSDT": position, "ETHUSDT": flat}))
        loaded = store.load_ledger()
        assert loaded.positions == {"BTCUSDT": position, "ETHUSDT": flat}
