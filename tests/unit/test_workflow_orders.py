"""Placing, checking, chasing and booking orders: the workflow's place and reconcile steps,
against the paper exchange's fault modes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import Fault, PaperExchange, default_market
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeNetworkError,
    InsufficientFunds,
    OutcomeUnknown,
    RateLimited,
    RequestTimeout,
)
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import ExchangeOrder, OrderIntent, OrderStatus, Purpose, intent_id
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase
from crypto_bot.engine.retry import RetryPolicy
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from tests.support.clock import T0, Clock

CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)
MARKET = default_market("BTC/USD", fee=D("0.001"))


def paper_account(usd: str = "10000", btc: str = "1") -> PaperExchange:
    exchange = PaperExchange(balances={"USD": D(usd), "BTC": D(btc)}, markets={"BTC/USD": MARKET})
    exchange.set_price("BTC/USD", D(60000))
    return exchange


@pytest.fixture
def paper() -> PaperExchange:
    return paper_account()


def workflow(exchange: PaperExchange, clock: Clock, **settings: object) -> Workflow:
    values: dict[str, object] = {"fill_timeout": timedelta(seconds=30), "max_reprice_attempts": 2}
    values.update(settings)
    return Workflow(
        store=MemoryStore(),
        exchange=exchange,
        config=CONFIG,
        settings=WorkflowSettings(mode=ExecutionMode.BOOST, increment=D("0.001"), **values),  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
    )


def intent(side: Side = Side.BUY, amount: str = "0.1", price: str = "60060") -> OrderIntent:
    purpose = Purpose.ENTRY if side is Side.BUY else Purpose.EXIT
    return OrderIntent(
        intent_id=intent_id("cycle-1", purpose, "BTCUSD"),
        cycle_id="cycle-1",
        strategy="BTCUSD",
        symbol="BTC/USD",
        side=side,
        purpose=purpose,
        amount=D(amount),
        limit_price=D(price),
        notional=D(amount) * D(price),
    )


def settle(wf: Workflow, clock: Clock, order: OrderIntent, *, rounds: int = 20) -> IntentRecord:
    """Place an intent and reconcile it every 10 s until it is done, as the state machine does."""
    phase = Phase.ENTRIES if order.side is Side.BUY else Phase.EXITS
    wf.store.put_intent(IntentRecord(intent=order, phase=phase))
    wf.place(order.cycle_id, order.intent_id)
    for _ in range(rounds):
        if not wf.reconcile(order.cycle_id, phase):
            break
        clock.sleep(10)
    record = wf.store.get_intent(order.cycle_id, order.intent_id)
    assert record is not None
    return record


def test_marketable_buy_fills_at_last_and_is_booked_once(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    record = settle(wf, clock, intent())
    assert record.status is IntentStatus.FILLED
    assert record.cost == D("6000.0")
    assert record.fee_total("USD") == D("6.0000")
    assert wf.store.load_ledger().positions["BTCUSD"].cost_basis == D("6006.0000")
    wf.reconcile("cycle-1", Phase.ENTRIES)  # a second look books nothing more
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.1")


@pytest.mark.parametrize(
    "error",
    [RequestTimeout("read timed out"), OutcomeUnknown("binance -1006: execution status unknown")],
    ids=["timeout", "outcome-unknown"],
)
def test_an_unknown_outcome_after_the_exchange_accepted_places_exactly_one_order(
    paper: PaperExchange, error: ExchangeError
) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    paper.faults.append(Fault("create_limit_order", error, after_effect=True))
    wf.store.put_intent(IntentRecord(intent=intent(), phase=Phase.ENTRIES))
    with pytest.raises(type(error)):
        wf.place("cycle-1", intent().intent_id)
    stored = wf.store.get_intent("cycle-1", intent().intent_id)
    assert stored is not None
    assert stored.status is IntentStatus.PLACING  # the outcome is unknown, and says so
    wf.place("cycle-1", intent().intent_id)  # the state machine's retry
    assert len(paper.orders()) == 1
    assert paper.calls["find_order"] == 1
    assert wf.reconcile("cycle-1", Phase.ENTRIES) == 0
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.1")


def test_network_error_before_the_exchange_saw_the_order_is_placed_on_retry(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    paper.faults.append(Fault("create_limit_order", ExchangeNetworkError("connection reset")))
    wf.store.put_intent(IntentRecord(intent=intent(), phase=Phase.ENTRIES))
    with pytest.raises(ExchangeNetworkError):
        wf.place("cycle-1", intent().intent_id)
    record = wf.place("cycle-1", intent().intent_id)
    assert record.status is IntentStatus.OPEN
    assert len(paper.orders()) == 1
    assert paper.calls["create_limit_order"] == 2


def test_placing_twice_sends_once(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    wf.store.put_intent(IntentRecord(intent=intent(), phase=Phase.ENTRIES))
    wf.place("cycle-1", intent().intent_id)
    wf.place("cycle-1", intent().intent_id)
    assert paper.calls["create_limit_order"] == 1


def test_transient_reads_are_retried_with_backoff(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock, retry=RetryPolicy(attempts=3, base_delay=0.5))
    paper.faults.append(Fault("fetch_order", RateLimited("429"), times=2))
    record = settle(wf, clock, intent())
    assert record.status is IntentStatus.FILLED
    assert clock.sleeps[:2] == [0.5, 1.0]


def test_permanent_error_fails_the_order_without_retrying(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    paper.faults.append(Fault("create_limit_order", AuthenticationFailed("invalid api key")))
    record = settle(wf, clock, intent())
    assert record.status is IntentStatus.FAILED
    assert "AuthenticationFailed: invalid api key" in record.reason
    assert paper.calls["create_limit_order"] == 1
    assert "BTCUSD" not in wf.store.load_ledger().positions


def test_order_the_balance_cannot_cover_fails_and_locks_nothing(paper: PaperExchange) -> None:
    clock = Clock()
    record = settle(workflow(paper, clock), clock, intent(amount="0.2"))  # 12,012 USD with fee > 10,000
    assert record.status is IntentStatus.FAILED
    assert "InsufficientFunds" in record.reason
    assert paper.fetch_balances()["USD"].free == D(10000)


def test_resting_order_waits_for_the_fill_timeout_then_is_chased_wider(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock)
    record = settle(wf, clock, intent(price="59000"))
    assert record.status is IntentStatus.FILLED
    first, second = record.orders
    assert first.status is OrderStatus.CANCELED
    assert second.price == D("60120.00")  # last × (1 + 2 × increment)
    assert second.client_order_id == intent().client_order_id(1)
    # Checked at 0, 10 and 20 s; cancelled and chased at 30 s; the chase is seen filled at 40 s.
    assert clock.sleeps == [10, 10, 10, 10]
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.1")


def test_partial_fill_then_silence_chases_only_the_remainder(paper: PaperExchange) -> None:
    paper.partial_fill_ratio = D("0.4")
    clock = Clock()
    wf = workflow(paper, clock, fill_timeout=timedelta(0), max_reprice_attempts=1)
    record = settle(wf, clock, intent())
    assert [o.filled for o in record.orders] == [D("0.04"), D("0.024")]
    assert [o.amount for o in record.orders] == [D("0.1"), D("0.06")]
    assert record.status is IntentStatus.PARTIALLY_FILLED
    assert "0.036 BTC unfilled after 2 placements" in record.reason
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.064")
    assert paper.open_orders() == []
    assert paper.fetch_balances()["USD"].used == 0


def test_fill_that_races_the_cancel_is_booked() -> None:
    class FillsDuringCancel(PaperExchange):
        def cancel_order(self, order_id: str, symbol: str):  # type: ignore[no-untyped-def]
            self.fill_resting(order_id)
            return super().cancel_order(order_id, symbol)

    racer = FillsDuringCancel(balances={"USD": D(10000)}, markets={"BTC/USD": MARKET})
    racer.set_price("BTC/USD", D(60000))
    clock = Clock()
    wf = workflow(racer, clock, fill_timeout=timedelta(0))
    record = settle(wf, clock, intent(price="59000"))
    assert record.status is IntentStatus.FILLED
    assert [o.status for o in record.orders] == [OrderStatus.CLOSED]
    position = wf.store.load_ledger().positions["BTCUSD"]
    assert position.cost_basis == D("5900.0") + D("5.9000")  # at its limit, with the maker fee


def test_network_error_on_cancel_is_retried(paper: PaperExchange) -> None:
    clock = Clock()
    wf = workflow(paper, clock, fill_timeout=timedelta(0), retry=RetryPolicy(attempts=2, base_delay=0))
    paper.faults.append(Fault("cancel_order", ExchangeNetworkError("reset")))
    record = settle(wf, clock, intent(price="59000"))
    assert record.status is IntentStatus.FILLED
    assert paper.calls["cancel_order"] == 2


def test_chased_buy_is_resized_to_what_the_balance_still_covers() -> None:
    poor = paper_account(usd="6010", btc="0")
    clock = Clock()
    record = settle(workflow(poor, clock, fill_timeout=timedelta(0)), clock, intent(price="59000"))
    second = record.orders[1]
    assert second.amount * second.price * (1 + MARKET.taker_fee) <= D("6010")
    assert poor.fetch_balances()["USD"].free >= 0


def test_exit_refused_for_funds_fails_cleanly(paper: PaperExchange) -> None:
    clock = Clock()
    paper.faults.append(Fault("create_limit_order", InsufficientFunds("balance")))
    record = settle(workflow(paper, clock), clock, intent(Side.SELL, "0.5", "59940"))
    assert record.status is IntentStatus.FAILED


@pytest.mark.parametrize(
    ("side", "average", "expected"),
    [(Side.BUY, "60060", "10"), (Side.BUY, "59940", "-10"), (Side.SELL, "59940", "10"), (Side.SELL, "60000", "0")],
)
def test_slippage_is_measured_against_the_planned_last_price(side: Side, average: str, expected: str) -> None:
    order = intent(side)
    order = OrderIntent(**{**order.__dict__, "reference_price": D(60000)})
    record = IntentRecord(intent=order, phase=Phase.ENTRIES, filled=D("0.1"), cost=D(average) * D("0.1"))
    assert record.slippage_bps == D(expected)


def test_slippage_is_unknown_without_fills() -> None:
    assert IntentRecord(intent=intent(), phase=Phase.ENTRIES).slippage_bps is None


def test_a_spent_budget_leaves_the_rest_for_the_next_round_and_starts_with_the_unplaced() -> None:
    paper = paper_account(usd="100000")
    clock = Clock()
    wf = workflow(paper, clock)
    ids = [intent_id("cycle-1", Purpose.ENTRY, f"S{n}") for n in range(3)]
    orders = [OrderIntent(**{**intent().__dict__, "intent_id": i}) for i in ids]
    for order in orders:
        wf.store.put_intent(IntentRecord(intent=order, phase=Phase.ENTRIES))
    wf.place("cycle-1", orders[0].intent_id)  # placed earlier: the other two go first
    # One intent per round when the budget is spent: the first unplaced one, placed and filled at once.
    assert wf.reconcile("cycle-1", Phase.ENTRIES, budget=timedelta(0)) == 2
    records = {r.intent.intent_id: r for r in wf.store.intents("cycle-1")}
    assert records[orders[1].intent_id].status is IntentStatus.FILLED
    assert records[orders[0].intent_id].status is IntentStatus.OPEN  # placed before, not looked at yet
    assert records[orders[2].intent_id].status is IntentStatus.PLANNED
    while wf.reconcile("cycle-1", Phase.ENTRIES, budget=timedelta(0)):
        pass
    assert all(r.status is IntentStatus.FILLED for r in wf.store.intents("cycle-1"))


def _cycle_with_one_entry(wf: Workflow, clock: Clock) -> None:
    wf.store.put_cycle(CycleRecord(cycle_id="cycle-1", at=T0, urgent=False, signal_keys=[]))
    settle(wf, clock, intent())


def test_finalize_reports_an_asset_the_account_holds_less_of_than_the_ledger() -> None:
    clock = Clock()
    paper = paper_account(btc="0")
    wf = workflow(paper, clock)
    _cycle_with_one_entry(wf, clock)
    paper.balances["BTC"] -= D("0.00008")  # coins gone from the account behind the ledger's back

    summary = wf.finalize("cycle-1").summary

    assert summary["drift"] == {"BTC": "the account holds 0.00008 BTC less than the ledger's 0.1"}
    assert summary["notes"]["drift BTC"] == summary["drift"]["BTC"]


def test_finalize_reports_no_drift_when_the_account_holds_what_the_ledger_says_or_more() -> None:
    clock = Clock()
    paper = paper_account(btc="0.5")  # coins from before the bot are not drift
    wf = workflow(paper, clock)
    _cycle_with_one_entry(wf, clock)

    assert "drift" not in wf.finalize("cycle-1").summary


def test_a_chase_whose_order_id_sorts_before_the_first_books_each_order_once() -> None:
    # The venue's ids are "paper-9" then "paper-10": as strings the chase's sorts first.
    exchange = PaperExchange(
        balances={"USD": D(10000), "BTC": D(1)}, markets={"BTC/USD": MARKET}, _ids=itertools.count(9)
    )
    exchange.set_price("BTC/USD", D(60000))
    exchange.partial_fill_ratio = D("0.4")
    clock = Clock()
    wf = workflow(exchange, clock, fill_timeout=timedelta(0), max_reprice_attempts=1)
    record = settle(wf, clock, intent())
    assert [(o.id, o.filled) for o in record.orders] == [("paper-9", D("0.04")), ("paper-10", D("0.024"))]
    assert record.filled == D("0.064")
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.064")


def test_an_order_read_back_with_a_freshly_parsed_id_is_booked_once() -> None:
    class ParsesIds(PaperExchange):
        # A real venue's every answer is parsed anew: equal ids, never the same string object.
        def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
            order = super().fetch_order(order_id, symbol)
            return replace(order, id=order.id.encode().decode())

    exchange = ParsesIds(balances={"USD": D(10000), "BTC": D(1)}, markets={"BTC/USD": MARKET})
    exchange.set_price("BTC/USD", D(60000))
    exchange.partial_fill_ratio = D("0.4")
    clock = Clock()
    # Each order is read back several times before the 30 s fill timeout chases it.
    wf = workflow(exchange, clock, max_reprice_attempts=1)
    record = settle(wf, clock, intent())
    assert [(o.id, o.filled) for o in record.orders] == [("paper-1", D("0.04")), ("paper-2", D("0.024"))]
    assert record.filled == D("0.064")
    assert wf.store.load_ledger().positions["BTCUSD"].amount == D("0.064")
