"""A stop loss decides its strategy together with that strategy's waiting alerts, through the executed state machine.

TradingView sends what the strategy did, in order: an entry waiting in the signals queue for the next cycle and
a stop loss right after it mean the strategy ended flat. Each sequence runs the real state machine under moto:
entries go to SignalsQueue as the webhook sends them, and the stop arrives through the urgent path (the batch the
EventBridge Pipe delivers from UrgentQueue).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crypto_bot.engine.records import SignalRecord
from tests.conftest import AlertClock
from tests.integration.test_trade_cycle import BTC_BOUGHT, CONFIG
from tests.support.harness import Pipeline


def alert(action: str, time: str, comment: str, price: str = "60000") -> dict[str, str]:
    return {"time": time, "ticker": "BTCUSDT", "order_action": action, "order_price": price, "order_comment": comment}


BUY = alert("buy", "2024-08-10T02:30:02Z", "long")
STOP = alert("sell", "2024-08-10T02:30:03Z", "Stop loss", "59000")


def buy_then_stop() -> tuple[dict[str, Any], dict[str, Any]]:
    """BUY and STOP a second apart, dated now: the template's expiry is on."""
    buy, stop = AlertClock()([BUY, STOP])
    return buy, stop


def iso(payload: dict[str, Any]) -> str:
    return datetime.fromisoformat(str(payload["time"])).isoformat()


def urgent(pipeline: Pipeline, payload: dict[str, str], name: str) -> dict[str, Any]:
    return pipeline.urgent(payload, f"m-{name}", name=name)


def outcomes(pipeline: Pipeline) -> dict[str, tuple[str, str]]:
    """Each stored alert by its comment: (status, reason)."""
    found: dict[str, SignalRecord] = {}
    for record in pipeline.store.recent_signals(100):
        assert isinstance(record.payload, dict)
        found[str(record.payload["order_comment"])] = record
    return {comment: (r.status.value, r.reason) for comment, r in found.items()}


def orders(pipeline: Pipeline) -> list[tuple[str, str]]:
    store = pipeline.store
    return [(r.side.value, r.status.value) for c in pipeline.cycles() for r in store.intents(c.cycle_id) if r.filled]


def test_a_stop_after_a_waiting_entry_nets_out_and_the_next_cycle_buys_nothing(stack_factory: Any) -> None:
    buy, stop = buy_then_stop()
    with stack_factory() as pipeline:
        pipeline.send(buy)  # waits for the scheduled cycle
        urgent(pipeline, stop, "stop-1")
        pipeline.run(name="next-cycle")

        assert pipeline.portfolio(CONFIG)[2] == {}
        assert orders(pipeline) == []
        seen = outcomes(pipeline)
        assert seen["long"] == ("ignored", "netted out: a later signal in the same cycle reversed it")
        assert seen["Stop loss"] == (
            "ignored",
            "netted out: it reverses this cycle's earlier signals, so the strategy stays flat",
        )


def test_an_older_entry_arriving_after_the_stop_does_not_re_enter(stack_factory: Any) -> None:
    buy, stop = buy_then_stop()
    with stack_factory() as pipeline:
        urgent(pipeline, stop, "stop-1")  # the strategy is flat: nothing to sell
        pipeline.send(buy)  # delivered late: its time is before the stop's
        pipeline.run(name="next-cycle")

        assert pipeline.portfolio(CONFIG)[2] == {}
        assert orders(pipeline) == []
        seen = outcomes(pipeline)
        assert seen["Stop loss"] == ("ignored", "the strategy is already flat: nothing to sell")
        assert seen["long"] == (
            "ignored",
            f"out of order: its time {iso(buy)} is before {iso(stop)}, "
            "the time of a newer alert that already decided this strategy",
        )


def test_a_stop_while_long_with_a_waiting_sell_sells_once(stack_factory: Any) -> None:
    dated = AlertClock()
    with stack_factory() as pipeline:
        pipeline.send(dated([BUY])[0])
        pipeline.run(name="entry")
        held = pipeline.portfolio(CONFIG)[2]["BTCUSDT"]
        assert held == BTC_BOUGHT
        exit_, stop = dated(
            [
                alert("sell", "2024-08-10T10:30:02Z", "exit", "59500"),
                alert("sell", "2024-08-10T10:30:03Z", "Stop loss", "59000"),
            ]
        )
        pipeline.send(exit_)  # waits for the next cycle
        urgent(pipeline, stop, "stop-1")
        pipeline.run(name="next-cycle")

        assert pipeline.portfolio(CONFIG)[2] == {}
        assert orders(pipeline) == [("buy", "filled"), ("sell", "filled")]
        seen = outcomes(pipeline)
        assert seen["exit"][0] == "filled"
        assert seen["Stop loss"] == ("ignored", "the strategy is already flat: nothing to sell")
