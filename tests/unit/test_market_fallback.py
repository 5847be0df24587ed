"""The stop-loss market-order fallback: the port's market order on the paper exchange and
through ccxt, and the workflow's switch to it after the last limit attempt of a stop loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import Fault, PaperExchange, default_market
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import InsufficientFunds, InvalidOrder, RequestTimeout, UnsupportedExchange
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose, intent_id
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase
from crypto_bot.engine.workflow import Workflow, WorkflowSettings, _signal_outcome
from tests.unit.test_ccxt_exchange import CID, Venue, ccxt_errors, make_venue, venue_data

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)
MARKET = default_market("BTC/USD", fee=D("0.001"))


class NoBids(PaperExchange):
    """A venue whose limit orders never meet a counterparty: every chase rests until cancelled."""

    @staticmethod
    def _marketable(order: Any, last: D) -> bool:
        return False


def account(cls: type[PaperExchange] = PaperExchange, **kwargs: Any) -> PaperExchange:
    exchange = cls(balances={"USD": D(10000), "BTC": D(1)}, markets={"BTC/USD": MARKET}, **kwargs)
    exchange.set_price("BTC/USD", D(60000))
    return exchange


# --------------------------------------------------------------------------- the paper exchange


def test_paper_market_order_fills_at_once_at_the_last_price_as_a_taker() -> None:
    paper = account()
    order = paper.create_market_order("BTC/USD", Side.SELL, D("0.5"), "cb-m-1")
    assert order == ExchangeOrder(
        id=order.id,
        client_order_id="cb-m-1",
        symbol="BTC/USD",
        side=Side.SELL,
        amount=D("0.5"),
        price=D(60000),
        status=OrderStatus.CLOSED,
        filled=D("0.5"),
        cost=D("30000.0"),
        fees=(Fee(D("30.0000"), "USD"),),
    )
    assert paper.balances == {"USD": D("39970.0000"), "BTC": D("0.5")}


def test_paper_market_order_checks_funds_minimums_and_client_ids() -> None:
    paper = account()
    with pytest.raises(InsufficientFunds):
        paper.create_market_order("BTC/USD", Side.SELL, D("2"), "cb-m-1")
    with pytest.raises(InvalidOrder, match="minimum"):
        paper.create_market_order("BTC/USD", Side.SELL, D("0.00001"), "cb-m-2")
    paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "cb-m-3")
    with pytest.raises(InvalidOrder, match="duplicate client order id"):
        paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "cb-m-3")
    assert len(paper.orders()) == 1


def test_paper_without_market_orders_refuses_them() -> None:
    paper = account(supports_market_orders=False)
    with pytest.raises(UnsupportedExchange):
        paper.create_market_order("BTC/USD", Side.SELL, D("0.5"), "cb-m-1")
    assert paper.orders() == []


# --------------------------------------------------------------------------- ccxt


@pytest.fixture
def binance() -> Venue:
    return make_venue("binance")


def _binance_market_fill() -> dict[str, Any]:
    filled: dict[str, Any] = dict(venue_data("binance")["order_new_filled"])
    return {**filled, "type": "MARKET", "side": "SELL", "price": "0.00000000"}


def test_ccxt_market_order_sends_type_market_with_the_client_id_and_no_price(binance: Venue) -> None:
    binance.http.on("POST", "/api/v3/order", _binance_market_fill())
    order = binance.exchange.create_market_order("BTC/USDT", Side.SELL, D("0.00123"), CID)
    sent = binance.http.last("POST", "/api/v3/order").form()
    assert (sent["type"], sent["side"], sent["quantity"], sent["newClientOrderId"]) == (
        "MARKET",
        "SELL",
        "0.00123",
        CID,
    )
    assert "price" not in sent
    assert (order.status, order.filled, order.cost) == (OrderStatus.CLOSED, D("0.00123"), D("79.9500123"))


def test_ccxt_market_order_is_not_retried_when_the_outcome_is_unknown(binance: Venue) -> None:
    binance.http.on("POST", "/api/v3/order", ccxt_errors().RequestTimeout("binance POST /api/v3/order"))
    with pytest.raises(RequestTimeout):
        binance.exchange.create_market_order("BTC/USDT", Side.SELL, D("0.00123"), CID)
    assert binance.http.count("POST", "/api/v3/order") == 1


def test_ccxt_venue_without_market_orders_raises_unsupported_before_sending(binance: Venue) -> None:
    binance.exchange.client.has = {**binance.exchange.client.has, "createMarketOrder": False}
    assert binance.exchange.supports_market_orders is False
    with pytest.raises(UnsupportedExchange, match="takes no market orders"):
        binance.exchange.create_market_order("BTC/USDT", Side.SELL, D("0.00123"), CID)
    assert binance.http.count("POST", "/api/v3/order") == 0


# --------------------------------------------------------------------------- the workflow


def stop_loss_sell() -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id("cycle-1", Purpose.EXIT, "BTCUSD"),
        cycle_id="cycle-1",
        strategy="BTCUSD",
        symbol="BTC/USD",
        side=Side.SELL,
        purpose=Purpose.EXIT,
        amount=D("0.5"),
        limit_price=D("59940"),
        notional=D("29970"),
    )


def exit_workflow(exchange: PaperExchange, *, urgent: bool) -> Workflow:
    """A workflow holding one planned exit, in an urgent (stop-loss) or a scheduled cycle."""
    wf = Workflow(
        store=MemoryStore(),
        exchange=exchange,
        config=CONFIG,
        settings=WorkflowSettings(
            mode=ExecutionMode.BOOST, increment=D("0.001"), fill_timeout=timedelta(0), max_reprice_attempts=2
        ),
        clock=lambda: T0,
    )
    wf.store.put_cycle(CycleRecord(cycle_id="cycle-1", at=T0, urgent=urgent))
    wf.store.put_intent(IntentRecord(intent=stop_loss_sell(), phase=Phase.EXITS))
    return wf


def settle(wf: Workflow, rounds: int = 10) -> IntentRecord:
    """Place the exit, then reconcile until it is done, as the state machine does."""
    wf.place("cycle-1", stop_loss_sell().intent_id)
    for _ in range(rounds):
        if not wf.reconcile("cycle-1", Phase.EXITS):
            break
    record = wf.store.get_intent("cycle-1", stop_loss_sell().intent_id)
    assert record is not None
    return record


def settle_exit(exchange: PaperExchange, *, urgent: bool) -> tuple[Workflow, IntentRecord]:
    wf = exit_workflow(exchange, urgent=urgent)
    return wf, settle(wf)


def test_unfilled_stop_loss_falls_back_to_a_market_order_after_the_last_limit_attempt() -> None:
    paper = account(NoBids)
    _wf, record = settle_exit(paper, urgent=True)
    assert record.status is IntentStatus.FILLED
    assert record.reason == "fell back to a market order after 3 limit attempts"
    assert [o.client_order_id for o in record.orders] == [stop_loss_sell().client_order_id(n) for n in range(4)]
    assert [o.status for o in record.orders] == [OrderStatus.CANCELED] * 3 + [OrderStatus.CLOSED]
    assert record.filled == D("0.5")
    assert paper.balances["BTC"] == D("0.5")
    status, reason = _signal_outcome(record, "")
    assert (status.value, reason) == (
        "filled",
        "sell 0.5 of 0.5 BTC/USD filled (fell back to a market order after 3 limit attempts)",
    )


def test_unfilled_exit_of_a_scheduled_cycle_is_given_up_without_a_market_order() -> None:
    paper = account(NoBids)
    _wf, record = settle_exit(paper, urgent=False)
    assert record.status is IntentStatus.UNFILLED
    assert record.reason == "0.5 BTC unfilled after 3 placements; the remainder was cancelled"
    assert paper.calls.get("create_market_order", 0) == 0


def test_stop_loss_on_a_venue_without_market_orders_is_given_up_with_the_reason() -> None:
    paper = account(NoBids, supports_market_orders=False)
    _wf, record = settle_exit(paper, urgent=True)
    assert record.status is IntentStatus.UNFILLED
    assert "paper takes no market orders to fall back to" in record.reason
    assert paper.calls.get("create_market_order", 0) == 0


def test_market_fallback_whose_answer_is_lost_is_looked_up_not_sent_twice() -> None:
    paper = account(NoBids)
    paper.faults.append(Fault("create_market_order", RequestTimeout("read timed out"), after_effect=True))
    wf = exit_workflow(paper, urgent=True)
    with pytest.raises(RequestTimeout):
        settle(wf)
    stored = wf.store.get_intent("cycle-1", stop_loss_sell().intent_id)
    assert stored is not None
    assert (stored.status, stored.attempt) == (IntentStatus.PLACING, 3)
    record = settle(wf)  # the state machine's retry of the reconcile step
    assert record.status is IntentStatus.FILLED
    market_orders = [o for o in paper.orders() if o.client_order_id == stop_loss_sell().client_order_id(3)]
    assert len(market_orders) == 1
    assert paper.calls["create_market_order"] == 1
    assert paper.calls["find_order"] == 1
    assert record.filled == D("0.5")
    assert paper.balances["BTC"] == D("0.5")


def test_refused_market_fallback_is_recorded_with_both_reasons() -> None:
    paper = account(NoBids)
    paper.faults.append(Fault("create_market_order", InsufficientFunds("balance moved")))
    _wf, record = settle_exit(paper, urgent=True)
    assert record.status is IntentStatus.FAILED
    assert record.reason == (
        "fell back to a market order after 3 limit attempts, but the exchange refused attempt 4: "
        "InsufficientFunds: balance moved"
    )
