"""A stop loss wins over its strategy's waiting alerts, over HTTP against `crypto-bot local` (issue 10, §1).

The same three sequences as ``tests/integration/test_stop_loss_wins.py``, sent as TradingView sends them: every
alert is POSTed to the webhook, the stop loss is a sell with the comment "Stop loss", which the webhook's mapping
template routes to the urgent queue and the emulated EventBridge Pipe runs at once; a cycle is asked for only where
the sequence needs the next scheduled one. Each sequence trades its own strategy of ``strategy_config.json``, so one
stack serves the module: the first two end flat with the cash untouched, and nothing any of them sends stays pending.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.test_local_stack import Local, assert_nothing_queued, start_local, stop_local, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    started = start_local(tmp_path_factory.mktemp("stop-loss-wins") / "local.log")
    try:
        yield started
    finally:
        stop_local(started)


# Alerts are dated just before the test runs: the stack keeps the template's expiry (MaxSignalAgeMinutes 485).
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def at(seconds: int) -> str:
    """A time ``seconds`` after BASE, as TradingView's {{timenow}} writes it."""
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat()


def alert(ticker: str, action: str, time: str, comment: str, price: str) -> dict[str, str]:
    return {"time": time, "ticker": ticker, "order_action": action, "order_price": price, "order_comment": comment}


def send(local: Local, payload: dict[str, str]) -> str:
    """POST one alert; return the id the webhook answered with, which /_local/state lists the signal under."""
    response = local.post_alert(payload)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["accepted"] is True
    return str(answer["id"])


def state_of(local: Local) -> dict[str, Any]:
    """``GET /_local/state`` with its money read as Decimals, so amounts compare exactly."""
    return local.state()


def stop_loss_ran(local: Local, urgent_before: int) -> dict[str, Any]:
    """Wait until the stop loss's own (urgent) execution has ended; return the state then."""

    def ended() -> dict[str, Any] | None:
        state = state_of(local)
        urgent = [e for e in state["executions"] if e["trigger"] == "urgent"]
        done = len(urgent) > urgent_before and all(e["status"] != "RUNNING" for e in urgent)
        return state if done else None

    state: dict[str, Any] = wait_until(ended, "the stop loss's own execution")
    last = [e for e in state["executions"] if e["trigger"] == "urgent"][-1]
    assert last["status"] == "SUCCEEDED", last
    return state


def urgent_count(local: Local) -> int:
    return sum(e["trigger"] == "urgent" for e in state_of(local)["executions"])


def outcome(state: dict[str, Any], signal_id: str) -> tuple[str, str]:
    [record] = [s for s in state["signals"] if s["id"] == signal_id]
    return record["status"], record["reason"]


def orders_of(state: dict[str, Any], strategy: str) -> list[tuple[str, str, Decimal, Decimal]]:
    return [(o["side"], o["status"], o["amount"], o["filled"]) for o in state["orders"] if o["strategy"] == strategy]


def test_a_buy_then_a_stop_a_second_later_nets_out_and_the_next_cycle_buys_nothing(stack: Local) -> None:
    urgent_before = urgent_count(stack)
    buy = send(stack, alert("BTCUSDT", "buy", at(0), "long", "60000"))  # waits for the next cycle
    stop = send(stack, alert("BTCUSDT", "sell", at(1), "Stop loss", "59000"))
    state = stop_loss_ran(stack, urgent_before)

    assert outcome(state, buy) == ("ignored", "netted out: a later signal in the same cycle reversed it")
    assert outcome(state, stop) == (
        "ignored",
        "netted out: it reverses this cycle's earlier signals, so the strategy stays flat",
    )
    detail = stack.cycle()  # the next scheduled cycle
    assert detail["transitions"] == ["Collect", "HasPendingSignals", "NothingToDo"]
    state = state_of(stack)
    assert "BTCUSDT" not in state["positions"]
    assert orders_of(state, "BTCUSDT") == []
    assert state["cash"] == Decimal(10000)
    assert_nothing_queued(state)


def test_a_stop_then_an_older_buy_arriving_late_does_not_re_enter(stack: Local) -> None:
    urgent_before = urgent_count(stack)
    stop = send(stack, alert("ETHUSDT", "sell", at(1), "Stop loss", "2400"))
    state = stop_loss_ran(stack, urgent_before)
    assert outcome(state, stop) == ("ignored", "the strategy is already flat: nothing to sell")

    late = send(stack, alert("ETHUSDT", "buy", at(0), "long", "2500"))  # delivered late
    stack.cycle()

    state = state_of(stack)
    assert outcome(state, late) == (
        "ignored",
        f"out of order: its time {iso(0)} is before {iso(1)}, "
        "the time of a newer alert that already decided this strategy",
    )
    assert "ETHUSDT" not in state["positions"]
    assert orders_of(state, "ETHUSDT") == []
    assert state["cash"] == Decimal(10000)
    assert_nothing_queued(state)


def test_a_stop_while_long_with_a_waiting_sell_of_the_same_strategy_sells_once(stack: Local) -> None:
    entry = send(stack, alert("SOLUSDT", "buy", at(0), "long", "150"))
    stack.cycle()
    held = state_of(stack)["positions"]["SOLUSDT"]["amount"]
    assert held == Decimal("63.27006327")  # boost: 9,500 (95% of 10,000) / (150 × 1.001), in 1e-8 lots

    urgent_before = urgent_count(stack)
    exit_ = send(stack, alert("SOLUSDT", "sell", at(3600), "exit", "149"))  # waits for the next cycle
    stop = send(stack, alert("SOLUSDT", "sell", at(3601), "Stop loss", "148"))
    state = stop_loss_ran(stack, urgent_before)

    assert outcome(state, entry)[0] == "filled"
    assert outcome(state, exit_)[0] == "filled"
    assert outcome(state, stop) == ("ignored", "the strategy is already flat: nothing to sell")
    assert "SOLUSDT" not in state["positions"]
    assert orders_of(state, "SOLUSDT") == [("buy", "filled", held, held), ("sell", "filled", held, held)]
    assert state["balances"].get("SOL", {"total": 0})["total"] == 0
    assert_nothing_queued(state)
