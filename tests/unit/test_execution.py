"""Placing, waiting, chasing and booking one order, against the paper exchange's fault modes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from crypto_bot.config import Strategy
from crypto_bot.errors import (
    AuthenticationFailed,
    ExchangeNetworkError,
    InsufficientFunds,
    RateLimited,
    RequestTimeout,
)
from crypto_bot.exchanges.paper import Fault, PaperExchange, default_market
from crypto_bot.execution import OrderResult, ResultStatus, SettlePolicy, execute_intent, place_intent
from crypto_bot.ledger import Ledger
from crypto_bot.markets import Side
from crypto_bot.orders import OrderIntent, OrderStatus, Purpose, intent_id
from crypto_bot.retry import RetryPolicy

NOW = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
BTC = Strategy(key="BTCUSD", symbol="BTC/USD", base="BTC", quote="USD", percentage=D("0.5"))
MARKET = default_market("BTC/USD", fee=D("0.001"))
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0)


@pytest.fixture
def paper() -> PaperExchange:
    exchange = PaperExchange(balances={"USD": D(10000), "BTC": D(1)}, markets={"BTC/USD": MARKET})
    exchange.set_price("BTC/USD", D(60000))
    return exchange


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


def execute(
    paper: PaperExchange, order: OrderIntent, ledger: Ledger | None = None, **policy: int
) -> tuple[OrderResult, Ledger, list[float]]:
    ledger = ledger or Ledger()
    sleeps: list[float] = []
    values = {"fill_checks": 2, "max_reprice_attempts": 2}
    values.update(policy)
    result = execute_intent(
        paper,
        order,
        strategy=BTC,
        market=MARKET,
        ledger=ledger,
        increment=D("0.001"),
        policy=SettlePolicy(check_interval=0.5, retry=FAST_RETRY, **values),
        clock=lambda: NOW,
        sleep=sleeps.append,
    )
    return result, ledger, sleeps


def test_marketable_buy_fills_at_last_and_is_booked(paper: PaperExchange) -> None:
    result, ledger, _ = execute(paper, intent())
    assert result.status is ResultStatus.FILLED
    assert result.cost == D("6000.0")
    assert result.fee_total("USD") == D("6.0000")
    assert ledger.position(BTC).cost_basis == D("6006.0000")
    assert paper.fetch_balances()["USD"].total == D(10000) - D("6006")


def test_timeout_after_the_exchange_accepted_places_exactly_one_order(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", RequestTimeout("read timed out"), after_effect=True))
    result, ledger, _ = execute(paper, intent())
    assert result.status is ResultStatus.FILLED
    assert len(paper.orders()) == 1
    assert ledger.position(BTC).amount == D("0.1")
    assert paper.calls["find_order"] == 1


def test_timeout_before_the_exchange_saw_the_order_is_retried_once_and_placed(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", ExchangeNetworkError("connection reset")))
    result, _, _ = execute(paper, intent())
    assert result.status is ResultStatus.FILLED
    assert len(paper.orders()) == 1
    assert paper.calls["create_limit_order"] == 2


def test_rate_limit_is_retried_with_backoff(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", RateLimited("429"), times=2))
    sleeps: list[float] = []
    order = place_intent(
        paper,
        intent(),
        attempt=0,
        amount=D("0.1"),
        price=D("60060"),
        retry=RetryPolicy(attempts=3, base_delay=0.5),
        sleep=sleeps.append,
    )
    assert order.status is OrderStatus.CLOSED
    assert sleeps == [0.5, 1.0]


def test_permanent_error_fails_the_order_without_retrying(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", AuthenticationFailed("invalid api key")))
    result, ledger, _ = execute(paper, intent())
    assert result.status is ResultStatus.FAILED
    assert "AuthenticationFailed: invalid api key" in result.reason
    assert paper.calls["create_limit_order"] == 1
    assert not ledger.position(BTC).is_long


def test_insufficient_funds_is_refused_by_the_paper_exchange(paper: PaperExchange) -> None:
    result, _, _ = execute(paper, intent(amount="0.2"))  # 12,012 USD with fee > 10,000
    assert result.status is ResultStatus.FAILED
    assert "InsufficientFunds" in result.reason
    assert paper.fetch_balances()["USD"].free == D(10000)


def test_resting_order_is_chased_at_a_wider_price_until_filled(paper: PaperExchange) -> None:
    # Priced below the market: it rests, is cancelled, and re-placed at last × (1 + 2 × increment).
    result, ledger, sleeps = execute(paper, intent(price="59000"))
    assert result.status is ResultStatus.FILLED
    first, second = result.orders
    assert first.status is OrderStatus.CANCELED
    assert second.price == D("60120.00")
    assert second.client_order_id == intent(price="59000").client_order_id(1)
    assert sleeps == [0.5, 0.5]
    assert ledger.position(BTC).amount == D("0.1")


def test_partial_fill_then_silence_chases_only_the_remainder(paper: PaperExchange) -> None:
    paper.partial_fill_ratio = D("0.4")
    result, ledger, _ = execute(paper, intent(), max_reprice_attempts=1)
    assert [o.filled for o in result.orders] == [D("0.04"), D("0.024")]
    assert [o.amount for o in result.orders] == [D("0.1"), D("0.06")]
    assert result.status is ResultStatus.PARTIALLY_FILLED
    assert "0.036 BTC unfilled after 2 placements" in result.reason
    assert ledger.position(BTC).amount == D("0.064")
    assert paper.open_orders() == []
    assert paper.fetch_balances()["USD"].used == 0


def test_fill_that_races_the_cancel_is_booked(paper: PaperExchange) -> None:
    class FillsDuringCancel(PaperExchange):
        def cancel_order(self, order_id: str, symbol: str):  # type: ignore[no-untyped-def]
            self.fill_resting(order_id)
            return super().cancel_order(order_id, symbol)

    racer = FillsDuringCancel(balances={"USD": D(10000)}, markets={"BTC/USD": MARKET})
    racer.set_price("BTC/USD", D(60000))
    result, ledger, _ = execute(racer, intent(price="59000"))
    assert result.status is ResultStatus.FILLED
    assert len(result.orders) == 1
    assert result.orders[0].status is OrderStatus.CLOSED
    assert ledger.position(BTC).amount == D("0.1")
    assert ledger.position(BTC).cost_basis == D("5900.0") + D("5.9000")  # filled at its limit, maker fee


def test_network_error_on_cancel_is_retried(paper: PaperExchange) -> None:
    paper.faults.append(Fault("cancel_order", ExchangeNetworkError("reset")))
    result, _, _ = execute(paper, intent(price="59000"))
    assert result.status is ResultStatus.FILLED
    assert paper.calls["cancel_order"] == 2


def test_unreachable_exchange_fails_after_the_retry_budget(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", ExchangeNetworkError("down"), times=10))
    result, _, _ = execute(paper, intent())
    assert result.status is ResultStatus.FAILED
    assert "unreachable" in result.reason
    assert paper.calls["create_limit_order"] == 3
    assert paper.orders() == []


def test_chased_buy_is_resized_to_what_the_balance_still_covers(paper: PaperExchange) -> None:
    poor = PaperExchange(balances={"USD": D("6010")}, markets={"BTC/USD": MARKET})
    poor.set_price("BTC/USD", D(60000))
    result, _, _ = execute(poor, intent(price="59000"))
    second = result.orders[1]
    assert second.amount * second.price * (1 + MARKET.taker_fee) <= D("6010")
    assert poor.fetch_balances()["USD"].free >= 0


def test_sell_exit_with_insufficient_base_balance_fails_cleanly(paper: PaperExchange) -> None:
    paper.faults.append(Fault("create_limit_order", InsufficientFunds("balance")))
    result, _, _ = execute(paper, intent(Side.SELL, "0.5", "59940"))
    assert result.status is ResultStatus.FAILED
