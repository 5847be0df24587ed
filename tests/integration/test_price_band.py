"""Where alert prices price the paper exchange (PAPER_PRICES=alerts), an implausible price is refused at intake.

Through the executed state machine: Collect stores each alert, and an accepted alert's price becomes its symbol's
paper price; one too far from the last known price (MAX_PRICE_JUMP, default 50%) is recorded `rejected` with the
field, the value and the last price, sets no price and never trades (issue 10, §4).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from tests.conftest import paper_environment
from tests.support.harness import Pipeline, cycle_stack

HELD = D("0.15833333")  # 95% of 10,000 at 60,000, in 1e-8 lots (boost, IncrementPct 0)


def stack(**environment: str) -> AbstractContextManager[Pipeline]:
    return cycle_stack(
        parameters={"IncrementPct": "0"},
        substitutions={"MaxLockWaits": "3"},
        environment=paper_environment(**environment),
        retry_interval_scale=0,
    )


def alert(action: str, minutes_ago: int, price: str, comment: str) -> dict[str, str]:
    # Dated just before now: the template's expiry (MaxSignalAgeMinutes) stays on.
    time = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    return {"time": time, "ticker": "BTCUSDT", "order_action": action, "order_price": price, "order_comment": comment}


def cycle(local: Pipeline, *alerts: dict[str, str]) -> dict[str, Any]:
    for payload in alerts:
        local.send(payload)
    return local.run()


def outcomes(local: Pipeline) -> dict[str, tuple[str, str]]:
    found = {}
    for record in local.store.recent_signals(100):
        assert isinstance(record.payload, dict)
        found[str(record.payload["order_comment"])] = (record.status.value, record.reason)
    return found


@pytest.mark.parametrize(
    ("price", "believed"),
    [("89999.99", True), ("90000", True), ("90000.01", False)],  # just inside, at and just over 50% above 60,000
)
def test_a_price_beyond_the_band_is_rejected_at_intake_and_neither_prices_nor_trades(
    price: str, believed: bool
) -> None:
    with stack() as local:
        cycle(local, alert("buy", 30, "60000", "entry"))  # the first price: nothing to compare
        cycle(local, alert("sell", 20, price, "exit"))

        account = local.paper()
        if believed:
            assert outcomes(local)["exit"][0] == "filled"
            assert account.prices["BTC/USDT"] == D(price)
            assert account.fetch_balances()["USDT"].total == D(10000) - HELD * 60000 + HELD * D(price)
        else:
            assert outcomes(local)["exit"] == (
                "rejected",
                "order_price: is more than 50% away from BTC/USDT's last price 60000: only 30000 to 90000 is believed "
                f"(the price band: MAX_PRICE_JUMP, --max-price-jump) (got '{price}')",
            )
            assert account.prices["BTC/USDT"] == D(60000)
            assert account.fetch_balances()["BTC"].total == HELD
        assert outcomes(local)["entry"][0] == "filled"


def test_the_band_is_the_max_price_jump_setting() -> None:
    with stack(MAX_PRICE_JUMP="1") as local:
        cycle(local, alert("buy", 30, "60000", "entry"))
        cycle(
            local,
            alert("sell", 20, "120000", "exit"),
            alert("buy", 10, "240000.01", "again"),
        )

        seen = outcomes(local)
        assert seen["exit"][0] == "filled"
        assert seen["again"] == (
            "rejected",
            "order_price: is more than 100% away from BTC/USDT's last price 120000: only 0 to 240000 is believed "
            "(the price band: MAX_PRICE_JUMP, --max-price-jump) (got '240000.01')",
        )
        assert local.paper().prices["BTC/USDT"] == D(120000)


def test_an_alert_refused_for_another_reason_sets_no_price() -> None:
    with stack() as local:
        cycle(local, alert("buy", 30, "60000", "entry"))
        future = {**alert("sell", 0, "61000", "from the future"), "time": "2099-01-01T00:00:00Z"}
        cycle(local, future)

        assert outcomes(local)["from the future"][0] == "rejected"
        assert local.paper().prices["BTC/USDT"] == D(60000)
