"""Exchange faults during real cycles: lost answers, outages, throttling, refusals, odd fills."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import (
    AuthenticationFailed,
    ExchangeNetworkError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    RateLimited,
    RequestTimeout,
)
from crypto_bot.domain.orders import OrderStatus
from crypto_bot.engine.records import IntentStatus
from tests.faults.harness import (
    BTC_BUY,
    BTC_STOP,
    ETH_BUY,
    Case,
    FaultKind,
    check_invariants,
    inject,
    seed_account,
    withhold_fills,
    withhold_part_of_fills,
)


def btc_intent(case: Case, cycle_id: str = "manual-run") -> Any:
    (intent,) = case.store.intents(cycle_id)
    return intent


# --------------------------------------------------------------------------- placement


def test_timeout_after_the_exchange_accepted_the_order_places_it_once(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject(monkeypatch, case, "create_limit_order", RequestTimeout("read timed out"), after=True)
    case.send(BTC_BUY)
    case.run(name="run")
    assert case.faults == 1
    assert btc_intent(case).status is IntentStatus.FILLED
    assert len(case.paper().orders()) == 1
    check_invariants(case)


@pytest.mark.parametrize(
    "error",
    [
        ExchangeUnavailable("503 Service Unavailable"),
        RateLimited("429 Too Many Requests"),
        ExchangeNetworkError("reset"),
    ],
    ids=["5xx", "429", "network"],
)
def test_transient_placement_error_is_retried_until_the_order_is_placed(
    case: Case, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    inject(monkeypatch, case, "create_limit_order", error, times=2)
    case.send(BTC_BUY)
    case.run(name="run")
    assert case.faults == 2
    assert btc_intent(case).status is IntentStatus.FILLED
    check_invariants(case)


def test_placement_failing_past_every_retry_is_placed_by_reconcile(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Map's four attempts all fail (LeftToReconcile); reconcile looks the order up, then sends it.
    inject(monkeypatch, case, "create_limit_order", ExchangeUnavailable("maintenance"), times=4)
    case.send(BTC_BUY)
    case.run(name="run")
    assert case.faults == 4
    intent = btc_intent(case)
    assert (intent.status, intent.attempt) == (IntentStatus.FILLED, 0)
    check_invariants(case)


def test_timeout_then_a_failing_lookup_still_places_once(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    inject(monkeypatch, case, "create_limit_order", RequestTimeout("read timed out"), after=True)
    inject(monkeypatch, case, "find_order_by_client_id", ExchangeNetworkError("reset"))
    case.send(BTC_BUY)
    case.run(name="run")
    assert case.faults == 2
    assert len(case.paper().orders()) == 1
    check_invariants(case)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InsufficientFunds("account has 0 USDT"), "InsufficientFunds: account has 0 USDT"),
        (InvalidOrder("order cost 5 is below the minimum 10"), "InvalidOrder: order cost 5 is below the minimum 10"),
        (InvalidOrder("price 60000.005 is not on the tick grid"), "InvalidOrder: price 60000.005 is not on the tick"),
        (AuthenticationFailed("invalid API key"), "AuthenticationFailed: invalid API key"),
    ],
    ids=["insufficient-funds", "min-notional", "precision", "auth"],
)
def test_refused_order_fails_its_signal_with_the_reason_and_is_notified(
    case: Case, monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    inject(monkeypatch, case, "create_limit_order", error)
    case.send(BTC_BUY)
    case.run(name="run")
    intent = btc_intent(case)
    assert intent.status is IntentStatus.FAILED
    assert expected in intent.reason
    (signal,) = case.store.recent_signals()
    assert signal.status.value == "failed"
    assert expected in signal.reason
    assert case.paper().orders() == []
    check_invariants(case)


# --------------------------------------------------------------------------- reads


def test_auth_error_while_planning_fails_the_cycle_and_notifies(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_account(case)
    inject(monkeypatch, case, "fetch_balances", AuthenticationFailed("API key revoked"), times=10)
    case.send(BTC_BUY)
    case.run(name="run", expect="FAILED")
    (cycle,) = case.cycles()
    assert "AuthenticationFailed" in cycle.error
    assert "API key revoked" in case.notifications()[0]
    check_invariants(case, failed_cycles=1)


@pytest.mark.parametrize(
    ("method", "error", "times"),
    [
        ("fetch_balances", ExchangeUnavailable("502 Bad Gateway"), 3),
        ("fetch_last_price", RequestTimeout("ticker timed out"), 3),
        ("fetch_order", RateLimited("429"), 3),
    ],
    ids=["balances-5xx", "ticker-timeout", "order-read-429"],
)
def test_transient_read_errors_are_retried_by_the_step_and_the_state_machine(
    case: Case, monkeypatch: pytest.MonkeyPatch, method: str, error: Exception, times: int
) -> None:
    seed_account(case)
    case.send(BTC_BUY)
    inject(monkeypatch, case, method, error, times=times)
    case.run(name="run")
    assert case.faults == times
    assert btc_intent(case).status is IntentStatus.FILLED
    check_invariants(case)


# --------------------------------------------------------------------------- cancels and fills


def test_network_error_on_cancel_is_retried_and_the_chase_goes_on(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    withhold_fills(monkeypatch, case)
    inject(monkeypatch, case, "cancel_order", ExchangeNetworkError("connection reset"), times=3)
    case.send(BTC_BUY)
    case.run(name="run")
    # Three placements rest without the fill the venue would have given; three cancels fail.
    assert (case.count(FaultKind.WITHHELD), case.count(FaultKind.RAISED)) == (3, 3)
    intent = btc_intent(case)
    assert intent.status is IntentStatus.UNFILLED
    assert [o.status for o in intent.orders] == [OrderStatus.CANCELED] * 3
    check_invariants(case)


def test_cancel_whose_answer_is_lost_is_not_cancelled_twice_into_confusion(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    withhold_fills(monkeypatch, case)
    inject(monkeypatch, case, "cancel_order", RequestTimeout("cancel timed out"), after=True)
    case.send(BTC_BUY)
    case.run(name="run")
    assert (case.count(FaultKind.WITHHELD), case.count(FaultKind.RAISED)) == (3, 1)
    assert btc_intent(case).status is IntentStatus.UNFILLED
    check_invariants(case)


def test_partial_fill_then_silence_chases_the_remainder_and_reports_it(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_account(case, partial_fill_ratio=D("0.5"))
    withhold_part_of_fills(monkeypatch, case)
    case.send(BTC_BUY)
    case.run(name="run")
    intent = btc_intent(case)
    assert intent.status is IntentStatus.PARTIALLY_FILLED
    # 9500 USDT at 60000 + 0.1 % = 60060 buys 0.15817515 BTC; each attempt fills half of what is left (lot
    # 1e-8, rounded down) and the rest is chased one increment wider.
    assert [o.filled for o in intent.orders] == [D("0.07908757"), D("0.03954379"), D("0.01977189")]
    assert [o.price for o in intent.orders] == [D("60060"), D("60120"), D("60180")]
    assert case.count(FaultKind.WITHHELD) == 3
    assert "unfilled after 3 placements" in intent.reason
    check_invariants(case)


def test_fill_that_races_the_cancel_is_booked(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    withhold_fills(monkeypatch, case)
    original = PaperExchange.cancel_order

    def fill_first(self: PaperExchange, order_id: str, symbol: str) -> Any:
        # A fill arriving just before the cancel: nothing raised or withheld, so no fault is counted for it.
        self.fill_resting(order_id)
        return original(self, order_id, symbol)

    monkeypatch.setattr(PaperExchange, "cancel_order", fill_first)
    case.send(BTC_BUY)
    case.run(name="run")
    intent = btc_intent(case)
    assert intent.status is IntentStatus.FILLED
    assert [o.status for o in intent.orders] == [OrderStatus.CLOSED]
    check_invariants(case)


def test_order_that_never_fills_is_given_up_and_notified(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    withhold_fills(monkeypatch, case)
    case.send(ETH_BUY)
    case.run(name="run")
    (intent,) = case.store.intents("manual-run")
    assert intent.status is IntentStatus.UNFILLED
    assert any("unfilled after 3 placements" in m for m in case.notifications())
    check_invariants(case)


# --------------------------------------------------------------------------- stop losses


def test_stop_loss_unfilled_by_limit_orders_falls_back_to_a_market_order(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    case.send(BTC_BUY)
    case.run(name="entry")
    withhold_fills(monkeypatch, case)
    case.urgent(BTC_STOP, "m-stop", name="stop")
    (intent,) = case.store.intents("urgent-stop")
    assert intent.status is IntentStatus.FILLED
    assert intent.reason == "fell back to a market order after 3 limit attempts"
    assert intent.attempt == 3
    assert any("fell back to a market order" in m for m in case.notifications())
    check_invariants(case)


def test_stop_loss_market_fallback_whose_answer_is_lost_sells_once(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    case.send(BTC_BUY)
    case.run(name="entry")
    withhold_fills(monkeypatch, case)
    inject(monkeypatch, case, "create_market_order", RequestTimeout("read timed out"), after=True)
    case.urgent(BTC_STOP, "m-stop", name="stop")
    (intent,) = case.store.intents("urgent-stop")
    assert intent.status is IntentStatus.FILLED
    assert sum(o.client_order_id == intent.intent.client_order_id(3) for o in case.paper().orders()) == 1
    assert (case.count(FaultKind.WITHHELD), case.count(FaultKind.RAISED)) == (3, 1)
    check_invariants(case)


def test_stop_loss_without_market_orders_is_given_up_with_the_reason(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    case.send(BTC_BUY)
    case.run(name="entry")
    withhold_fills(monkeypatch, case)
    restore = PaperExchange.from_state.__func__  # type: ignore[attr-defined]

    def limit_only(cls: type[PaperExchange], state: Any, **kwargs: Any) -> PaperExchange:
        return restore(cls, state, supports_market_orders=False, **kwargs)

    monkeypatch.setattr(PaperExchange, "from_state", classmethod(limit_only))
    case.urgent(BTC_STOP, "m-stop", name="stop")
    (intent,) = case.store.intents("urgent-stop")
    assert intent.status is IntentStatus.UNFILLED
    assert "takes no market orders to fall back to" in intent.reason
    check_invariants(case)
