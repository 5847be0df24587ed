"""Each delivery of an alert can be found by the id the webhook answered it with, and when it was received.

Issue 13 §5: a duplicate POST's id appeared nowhere (the stored signal kept the first delivery's id), and
``signals`` showed when a cycle collected an alert as if it were when the webhook received it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.engine.workflow import Workflow, WorkflowSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
QUEUED = NOW - timedelta(hours=3, seconds=7)
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)
ALERT = (
    '{"time": "2026-12-01T09:00:00Z", "ticker": "BTCUSD", "order_action": "buy", "order_price": "60000", '
    '"order_comment": "long"}'
)


def workflow() -> Workflow:
    settings = WorkflowSettings(mode=ExecutionMode.BOOST, increment=D("0.001"))
    return Workflow(MemoryStore(), PaperExchange(balances={"USD": D(1000)}), CONFIG, settings, lambda: NOW)


def test_a_second_post_of_an_alert_is_recorded_ignored_under_its_own_id_naming_the_first() -> None:
    wf = workflow()
    first = wf.receive(ALERT, message_id="m-1", queued_at=QUEUED)
    again = wf.receive(ALERT, message_id="m-2", queued_at=QUEUED + timedelta(seconds=3))

    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.record.key == first.record.key  # the intake answers with the signal that trades
    by_id = {s.message_id: s for s in wf.store.recent_signals()}
    assert sorted(k or "" for k in by_id) == ["m-1", "m-2"]
    copy = by_id["m-2"]
    assert (copy.status, copy.strategy, copy.action) == (SignalStatus.IGNORED, "BTCUSD", "buy")
    assert copy.reason == (
        "a duplicate of signal m-1 (the same strategy, action, time, price, comment and order id), "
        "received 2026-12-01 08:59:53 UTC: not traded twice"
    )
    assert copy.queued_at == QUEUED + timedelta(seconds=3)
    # Only the first is pending: the copy never reaches a cycle.
    assert [s.message_id for s in wf.store.pending_signals()] == ["m-1"]


def test_a_redelivery_of_the_same_message_records_nothing_more() -> None:
    # SQS delivers a message again (same message id) when a Collect crashed before deleting it.
    wf = workflow()
    wf.receive(ALERT, message_id="m-1", queued_at=QUEUED)
    wf.receive(ALERT, message_id="m-1", queued_at=QUEUED)
    wf.receive(ALERT, message_id="m-2", queued_at=QUEUED)
    wf.receive(ALERT, message_id="m-2", queued_at=QUEUED)
    assert sorted(s.message_id or "" for s in wf.store.recent_signals()) == ["m-1", "m-2"]


def test_every_kind_of_record_keeps_the_time_the_webhook_queued_it() -> None:
    wf = workflow()
    stored = [
        wf.receive(ALERT, message_id="valid", queued_at=QUEUED).record,
        wf.receive("not json", message_id="rejected", queued_at=QUEUED).record,
        wf.receive('{"test": true}', message_id="test", queued_at=QUEUED).record,
    ]
    assert [r.status for r in stored] == [SignalStatus.RECEIVED, SignalStatus.REJECTED, SignalStatus.IGNORED]
    for record in stored:
        assert (record.queued_at, record.received_at) == (QUEUED, NOW)
    assert {s.queued_at for s in wf.store.recent_signals()} == {QUEUED}
