"""The notification's words (crypto_bot.engine.notices): pure text from a finished cycle, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crypto_bot.engine.notices import MAX_SUBJECT, cycle_message, worth_notifying
from crypto_bot.engine.records import CycleRecord

AT = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)


def cycle(*, urgent: bool = False, status: str = "done", **summary: Any) -> CycleRecord:
    return CycleRecord(cycle_id="c", at=AT, urgent=urgent, status=status, summary=summary)


def test_cycle_message_lists_trades_and_errors_without_secrets() -> None:
    failed = cycle(urgent=True, status="failed", traded={"BTCUSD": "sell 0.1"}, signals={"failed": 1},
                   orders={"failed": 1})  # fmt: skip
    failed.error = "AuthenticationFailed: invalid api key"

    subject, body = cycle_message(failed)

    assert subject == "crypto-bot stop-loss cycle 2024-08-10 08:01 UTC FAILED"
    assert "BTCUSD: sell 0.1" in body
    assert "error: AuthenticationFailed: invalid api key" in body


def test_cycle_message_lists_the_orders_not_simply_filled_in_order() -> None:
    done = cycle(
        traded={"ETHUSD": "buy 2", "BTCUSD": "sell 0.1"},
        notes={"ETHUSD entry": "partially_filled: 1 ETH unfilled", "BTCUSD exit": "filled: fell back to market"},
        signals={"filled": 2},
        orders={"filled": 1, "partially_filled": 1},
    )

    subject, body = cycle_message(done)

    assert body.splitlines() == [
        "crypto-bot cycle 2024-08-10 08:01 UTC done",
        "",
        "  BTCUSD: sell 0.1",
        "  ETHUSD: buy 2",
        "",
        "orders not simply filled, and ledger drift:",
        "  BTCUSD exit: filled: fell back to market",
        "  ETHUSD entry: partially_filled: 1 ETH unfilled",
        "",
        'signals: {"filled": 2}',
        'orders: {"filled": 1, "partially_filled": 1}',
    ]
    assert subject == body.splitlines()[0]
    assert len(subject) <= MAX_SUBJECT


def test_a_quiet_cycle_says_so() -> None:
    assert cycle_message(cycle())[1].splitlines()[2] == "  no trades"


@pytest.mark.parametrize(
    ("record", "worth"),
    [
        (cycle(), False),
        (cycle(orders={"filled": 0, "skipped": 2}), False),
        (cycle(urgent=True), True),
        (cycle(status="failed"), True),
        (cycle(traded={"BTCUSD": "buy 0.1"}), True),
        (cycle(drift={"BTC": "the account holds 0.1 BTC less"}), True),
        (cycle(orders={"unfilled": 1}), True),
        (cycle(orders={"partially_filled": 1}), True),
        (cycle(orders={"failed": 1}), True),
    ],
    ids=["quiet", "skipped-only", "urgent", "failed", "traded", "drift", "unfilled", "partial", "order-failed"],
)
def test_only_a_cycle_that_did_or_lost_something_is_worth_a_message(record: CycleRecord, worth: bool) -> None:
    assert worth_notifying(record) is worth
