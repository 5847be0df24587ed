"""The Source methods the dashboard added, on a deployed stack under moto: cycles and execution paths.

The stack is test_ops_cli.py's: template.yaml's resources under moto, registered as a CloudFormation stack,
after one README cycle (the BTCUSDT buy). ``crypto-bot local``'s side is read by the browser tests.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from crypto_bot.engine.records import IntentStatus, Phase
from crypto_bot_tools.ops import aws_source
from tests.integration.test_ops_cli import REGION, STACK, Deployed, deployed

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

__all__ = ["deployed"]


def _source(deployed: Deployed) -> aws_source.AwsSource:
    client = deployed.stack.client
    return aws_source.AwsSource(aws_source.stack_resources(client("cloudformation"), STACK), client)


def test_cycles_reads_the_cycle_record_with_its_filled_intent(deployed: Deployed) -> None:
    [row] = _source(deployed).cycles(10)

    assert row.record.cycle_id == "manual-first"
    assert row.record.status == "done"
    [intent] = row.intents
    assert (intent.intent.strategy, intent.intent.symbol, intent.phase) == ("BTCUSDT", "BTC/USDT", Phase.ENTRIES)
    assert intent.status is IntentStatus.FILLED
    # IncrementPct 0 and no fee: 9500 of 10000 at 60000.
    assert (intent.filled, intent.cost, intent.attempt) == (D("0.15833333"), D("9499.99980000"), 0)
    assert _source(deployed).cycles(0) == []


def test_execution_path_lists_each_state_entered_with_its_times_and_the_cycle(deployed: Deployed) -> None:
    path = _source(deployed).execution_path("first")

    names = [s.name for s in path.states]
    assert names[:3] == ["Collect", "HasPendingSignals", "AcquireLock"]
    assert names[-1] == "CycleDone"
    assert "PlaceOrders" in names
    assert path.cycle_id == "manual-first"
    assert path.error == ""
    collect = path.states[0]
    assert collect.entered is not None
    assert collect.exited is not None
    assert collect.exited >= collect.entered
    assert all(state.entered is not None for state in path.states)
    assert REGION in deployed.outputs["TradeCycleStateMachineArn"]
