"""The sample events in events/ drive the real handlers: they stay in step with the code."""

from __future__ import annotations

import json
from typing import Any

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot_tools.local.stack import local_stack
from tests.conftest import ROOT, AlertClock, load_event, paper_environment


def invoke(stack: Any, function: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = stack.client("lambda").invoke(FunctionName=stack.resource(function), Payload=json.dumps(event))
    payload: dict[str, Any] = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, payload
    return payload


def test_the_sample_events_run_a_stop_loss_cycle_through_every_handler() -> None:
    # The alerts are dated now, the stop after the entry, so the template's expiry lets them through;
    # the cycles' ticks still come from the events' own start times.
    dated = AlertClock()
    (entry,) = dated(
        [{"time": "2024-08-10T02:30:00Z", "ticker": "BTCUSDT", "order_action": "buy", "order_price": "60000"}]
    )
    urgent_event = load_event("collect_urgent.json")
    (record,) = urgent_event["input"]
    (stop,) = dated([json.loads(record["body"])])
    record["body"] = json.dumps(stop)
    with local_stack(ROOT / "template.yaml", environment=paper_environment()) as stack:
        stack.client("sqs").send_message(
            QueueUrl=stack.resource("SignalsQueue"), MessageBody=json.dumps({**entry, "order_comment": "long"})
        )
        scheduled = invoke(stack, "CollectFunction", load_event("collect_scheduled.json"))
        assert scheduled["received"] == 1
        assert scheduled["at"] == "2024-08-10T08:01:00+00:00"  # the tick, not the start time

        urgent = invoke(stack, "CollectFunction", urgent_event)
        assert urgent["urgent"] is True
        assert urgent["pending"] == 2  # the stop loss, and the waiting entry of the strategy it stops

        base = {"cycle_id": urgent["cycle_id"], "at": urgent["at"], "urgent": True}
        plan = invoke(stack, "PlanFunction", {**load_event("plan_exits.json"), **base, "execution_id": ""})
        assert plan == {"phase": "exits", "intent_ids": [], "count": 0, "next_phase": "sell_downs"}
        done = {**load_event("finalize_done.json"), "cycle_id": urgent["cycle_id"]}
        finalize = invoke(stack, "FinalizeFunction", done)
        assert finalize["signals"] == {"ignored": 2}  # the entry and its stop net out: BTC stays flat

        failure = load_event("finalize_failure.json")
        failure["failed_state"]["cycle"]["cycle_id"] = scheduled["cycle_id"]
        invoke(stack, "PlanFunction", {**base, "cycle_id": scheduled["cycle_id"], "urgent": False, "phase": "exits"})
        failed = invoke(stack, "FinalizeFunction", failure)
        assert failed["status"] == "failed"
        store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
        cycle = store.get_cycle(scheduled["cycle_id"])
        assert cycle is not None
        assert cycle.error == "ExchangeUnavailable: ExchangeUnavailable: binance is in maintenance"


def test_place_and_reconcile_events_name_the_fields_their_steps_read() -> None:
    assert set(load_event("place_order.json")) == {"cycle_id", "intent_id"}
    assert set(load_event("reconcile_entries.json")) == {"cycle_id", "phase", "execution_id"}
