"""The dashboard of a deployed stack under moto: the Source methods it added (cycles, execution paths), its pages
and a pause through its form.

The stack is test_ops_cli.py's: template.yaml's resources under moto, registered as a CloudFormation stack,
after one README cycle (the BTCUSDT buy). ``crypto-bot local``'s side is read by the browser tests.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.engine.records import IntentStatus, Phase
from crypto_bot_tools.ops import aws_source
from tests.integration.test_ops_cli import REGION, STACK, Deployed, deployed, prices

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

__all__ = ["deployed", "prices"]  # the fixtures, shared with test_ops_cli.py


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


def test_the_dashboard_of_a_deployed_stack_shows_its_pages_and_pauses_it(
    deployed: Deployed, prices: list[tuple[str, bool]]
) -> None:
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
    from crypto_bot_tools.dashboard.app import Dashboard, Request, allowed_hosts
    from crypto_bot_tools.dashboard.reader import StackReader
    from crypto_bot_tools.ops.stack import aws_errors

    board = Dashboard(
        StackReader(_source(deployed), ttl=0, errors=aws_errors),
        stack=STACK,
        hosts=allowed_hosts("127.0.0.1", 8050),
        token="t",
    )
    host = {"host": "127.0.0.1:8050"}

    def page(path: str) -> str:
        answer = board.handle(Request("GET", path, host))
        assert answer.status == 200, answer.body
        return answer.body.decode()

    overview = page("/")
    # 0.15833333 BTC at the public ticker's 61000 (the prices fixture).
    assert "<td>BTCUSDT</td><td>BTC/USDT</td><td class=num>0.15833333</td><td class=num>9,500.00</td>" in overview
    assert "<td class=num>9,658.33</td>" in overview
    assert "Running: nothing holds entries back." in overview
    cycles = page("/cycles")
    assert f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}#/v2/executions/details/" in cycles
    assert "<li>Collect <span" in cycles
    assert "<td>buy BTC/USDT</td>" in page("/orders")

    form = b"csrf=t&command=pause&strategy=&reason=from+the+dashboard&confirmed=yes"
    sent = board.handle(Request("POST", "/control", {**host, "origin": "http://127.0.0.1:8050"}, form))

    assert sent.status == 303
    controls = DynamoDBStore(deployed.outputs["TableName"], deployed.stack.client("dynamodb")).get_controls()
    assert controls.paused is not None
    assert controls.paused.by.startswith("arn:aws:")  # the caller's identity, as crypto-bot pause records it
    assert "from the dashboard" in controls.paused.reason
    assert "Entries are held back." in page("/")


class CountingQueries:
    """A DynamoDB client that counts its Query calls (the intents' reads)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.queries = 0

    def query(self, **request: Any) -> Any:
        self.queries += 1
        return self.inner.query(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_ended_cycles_intents_are_read_once(deployed: Deployed) -> None:
    counting = CountingQueries(deployed.stack.client("dynamodb"))
    client = deployed.stack.client
    source = aws_source.AwsSource(
        aws_source.stack_resources(client("cloudformation"), STACK),
        lambda service: counting if service == "dynamodb" else client(service),
    )

    first = source.cycles(10)
    read = counting.queries
    again = source.cycles(10)

    assert read >= 1
    assert counting.queries == read  # the scan finds the same ended cycle: its intents are not read again
    assert again == first
