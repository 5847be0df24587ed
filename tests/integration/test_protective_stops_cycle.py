"""Protective stops through the executed state machine on the paper account kept in the table (issue 14 §1).

The same stack as tests/integration/test_controls_cycle.py: template.yaml under moto, the real ASL and handlers.
The paper venue's price is moved between cycles as the market moves it, which triggers a resting stop.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from crypto_bot.domain.orders import OrderStatus
from crypto_bot.engine.stops import STOP_FILLED
from tests.conftest import AlertClock
from tests.integration.test_controls_cycle import (
    STRATEGIES,
    alert,
    amounts,
    assert_ledger_is_the_account,
    move_price,
    stack,
    statuses,
)

PROTECTED = {**STRATEGIES, "BTCUSDT": {**STRATEGIES["BTCUSDT"], "protective_stop": {"percent": "0.05"}}}


def test_an_entry_places_its_stop_a_stop_filled_between_cycles_is_the_exit_and_the_late_alert_is_ignored(
    tmp_path: Path,
) -> None:
    dated = AlertClock()
    with stack(tmp_path, strategies=PROTECTED) as pipeline:
        pipeline.seed_account()
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="entry")
        position = pipeline.store.load_ledger().long_positions()[0]
        assert position.stop is not None
        (stop,) = [o for o in pipeline.paper().orders() if o.stop_price is not None]
        assert (stop.status, stop.amount, stop.stop_price) == (OrderStatus.OPEN, position.amount, D("57000.00"))
        assert any("protective stop placed" in n for n in pipeline.notifications())
        assert_ledger_is_the_account(pipeline)

        move_price(pipeline, "BTC/USDT", D(56900))  # through the stop (57,000), above its limit: it fills
        (stop_alert,) = dated([alert("BTCUSDT", "sell", "56900", "Stop loss")])
        pipeline.urgent(stop_alert, "m-stop", name="stop")

        status, reason = statuses(pipeline, "urgent-stop")["BTCUSDT"]
        assert status == "ignored"
        assert reason.startswith(STOP_FILLED)
        assert amounts(pipeline) == {}
        assert [o.side.value for o in pipeline.paper().orders()] == ["buy", "sell"]  # the stop's sell, once
        assert any(STOP_FILLED in n for n in pipeline.notifications())
        assert_ledger_is_the_account(pipeline)


def test_an_exit_alert_cancels_the_stop_before_it_sells(tmp_path: Path) -> None:
    dated = AlertClock()
    with stack(tmp_path, strategies=PROTECTED) as pipeline:
        pipeline.seed_account()
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="entry")
        pipeline.send(dated([alert("BTCUSDT", "sell", "61000")])[0])
        pipeline.run(name="exit")
        orders = pipeline.paper().orders()
        assert [(o.side.value, o.stop_price is not None, o.status) for o in orders] == [
            ("buy", False, OrderStatus.CLOSED),
            ("sell", True, OrderStatus.CANCELED),
            ("sell", False, OrderStatus.CLOSED),
        ]
        assert amounts(pipeline) == {}
        assert_ledger_is_the_account(pipeline)
