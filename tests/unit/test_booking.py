"""Booking fills into the ledger as an order fills in parts: each read books only what is new since the last."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal as D

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange, default_market
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import ExchangeOrder, Fee, OrderIntent, Purpose, intent_id
from crypto_bot.engine.records import IntentRecord, Phase
from crypto_bot.engine.workflow import Workflow, WorkflowSettings

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)


def test_a_resting_buy_filled_in_two_parts_books_each_part_once_with_its_own_fee() -> None:
    paper = PaperExchange(balances={"USD": D(10000)}, markets={"BTC/USD": default_market("BTC/USD", D("0.001"))})
    paper.set_price("BTC/USD", D(60000))
    wf, store, buy = _resting_buy(paper)
    (order,) = paper.open_orders()
    booked = []
    for part in (D("0.04"), D("0.06")):
        paper.fill_resting(order.id, part)
        wf.reconcile("c1", Phase.ENTRIES)
        position = store.load_ledger().positions["BTCUSD"]
        booked.append((position.amount, position.cost_basis))
    # 0.04 × 59,000 = 2,360 plus the 0.1% maker fee, then 0.06 × 59,000 = 3,540 plus its own fee.
    assert booked == [(D("0.04"), D("2362.36")), (D("0.10"), D("5905.90"))]
    record = store.get_intent("c1", buy.intent_id)
    assert record is not None
    assert (record.filled, record.cost) == (D("0.10"), D("5900"))
    assert record.fees == [Fee(D("2.36"), "USD"), Fee(D("3.54"), "USD")]
    assert [(e.base_delta, e.fees, e.note) for e in store.audit] == [
        (D("0.04"), (Fee(D("2.36"), "USD"),), ""),
        (D("0.06"), (Fee(D("3.54"), "USD"),), ""),
    ]


def _resting_buy(paper: PaperExchange) -> tuple[Workflow, MemoryStore, OrderIntent]:
    store = MemoryStore()
    wf = Workflow(
        store=store,
        exchange=paper,
        config=CONFIG,
        settings=WorkflowSettings(mode=ExecutionMode.BOOST, increment=D(0)),
        clock=lambda: T0,
        sleep=lambda _seconds: None,
    )
    buy = OrderIntent(
        intent_id=intent_id("c1", Purpose.ENTRY, "BTCUSD"),
        cycle_id="c1",
        strategy="BTCUSD",
        symbol="BTC/USD",
        side=Side.BUY,
        purpose=Purpose.ENTRY,
        amount=D("0.1"),
        limit_price=D(59000),  # below the last price: it rests
        notional=D(5900),
    )
    store.put_intent(IntentRecord(intent=buy, phase=Phase.ENTRIES))
    wf.place("c1", buy.intent_id)
    return wf, store, buy


def test_a_read_with_nothing_new_books_nothing() -> None:
    paper = PaperExchange(balances={"USD": D(10000)}, markets={"BTC/USD": default_market("BTC/USD", D("0.001"))})
    paper.set_price("BTC/USD", D(60000))
    wf, store, _ = _resting_buy(paper)
    wf.reconcile("c1", Phase.ENTRIES)
    assert store.load_ledger().positions == {}
    assert store.audit == []


@dataclass
class FeelessReads(PaperExchange):
    """A venue whose order reads carry no fee (Binance's order query, per binance-spot-api-docs)."""

    def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        return replace(super().fetch_order(order_id, symbol), fees=(), fees_reported=False)


def test_a_fill_read_without_fees_is_booked_with_a_note_saying_so() -> None:
    paper = FeelessReads(balances={"USD": D(10000)}, markets={"BTC/USD": default_market("BTC/USD", D("0.001"))})
    paper.set_price("BTC/USD", D(60000))
    wf, store, _ = _resting_buy(paper)
    (order,) = paper.open_orders()
    paper.fill_resting(order.id, D("0.04"))
    wf.reconcile("c1", Phase.ENTRIES)
    (entry,) = store.audit
    assert entry.note == f"paper reported no fee for order {order.id}; booked without one"
    assert (entry.base_delta, entry.cost_delta, entry.fees) == (D("0.04"), D("2360"), ())
