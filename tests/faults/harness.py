"""Run cycles on the emulated stack with faults injected, and check what must hold after each."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from crypto_bot.aws.dynamodb_store import DynamoDBStore
from crypto_bot.aws.paper_state import PaperStateStore
from crypto_bot.config import StrategyConfig
from crypto_bot.exchanges.paper import PaperExchange
from crypto_bot.local.aws import LocalStack, local_stack
from crypto_bot.signals import parse_signal
from crypto_bot.store import CycleRecord, IntentStatus
from tests.conftest import ROOT, load_event, paper_environment

CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USD")
ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")
BTC_BUY, ETH_BUY, BTC_SELL, ETH_SELL = ALERTS[0], ALERTS[1], ALERTS[2], ALERTS[3]
BTC_STOP = {**BTC_SELL, "order_comment": "Stop loss", "order_price": "57000"}
# The venue's own balance read, kept before any case patches it, so checking never trips a fault.
_BALANCES = PaperExchange.fetch_balances
ABANDONED = {IntentStatus.UNFILLED, IntentStatus.PARTIALLY_FILLED, IntentStatus.FAILED}


def environment() -> dict[str, str]:
    """Return the functions' settings for fault runs: paper trading priced by the alerts, no waiting."""
    return paper_environment(
        MAX_REPRICE_ATTEMPTS="2", POWERTOOLS_METRICS_NAMESPACE="CryptoBotFaults", POWERTOOLS_LOG_LEVEL="WARNING"
    )


@contextmanager
def fault_stack(**substitutions: str) -> Iterator[LocalStack]:
    """Start the stack with no real waiting: Wait states of 0 s and Step Functions retries at once."""
    with local_stack(
        ROOT / "template.yaml",
        parameters={"IncrementPct": "0"},
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "3"}
        | substitutions,
        environment=environment(),
        retry_interval_scale=0,
    ) as stack:
        yield stack


@dataclass
class Case:
    """One fault case: the stack, the alerts handed to it, and how many injected faults fired."""

    stack: LocalStack
    sent: list[dict[str, Any]] = field(default_factory=list)
    faults: int = 0
    duplicates: int = -1  # set by check_invariants
    lost: int = -1

    def send(self, payload: dict[str, Any], *, queue: str = "SignalsQueue", times: int = 1) -> None:
        """Queue an alert as the webhook does, ``times`` times (a resend or a redelivery)."""
        for _ in range(times):
            self.stack.client("sqs").send_message(QueueUrl=self.stack.resource(queue), MessageBody=json.dumps(payload))
        self.sent.append(payload)

    def run(self, execution_input: Any = None, *, name: str | None = None, expect: str = "SUCCEEDED") -> dict[str, Any]:
        """Run one execution of the trade cycle to its end and check how it ended."""
        arn = self.stack.start_execution("TradeCycleStateMachine", execution_input or {"trigger": "manual"}, name=name)
        result = self.stack.wait_for_execution(arn, timeout=120)
        assert result["status"] == expect, json.dumps(result["history"][-4:], default=str)[:3000]
        return result

    def urgent(self, payload: dict[str, Any], message_id: str, *, name: str | None = None) -> dict[str, Any]:
        """Start a cycle as the urgent queue's pipe does: a batch of SQS records as the input."""
        self.sent.append(payload)
        return self.run([{"messageId": message_id, "body": json.dumps(payload)}], name=name)

    def fault(self) -> None:
        self.faults += 1

    @property
    def store(self) -> DynamoDBStore:
        return DynamoDBStore(self.stack.resource("Table"), self.stack.client("dynamodb"))

    def paper(self) -> PaperExchange:
        state, _version = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb")).load()
        assert state is not None, "no paper account: nothing ran"
        return PaperExchange.from_state(state)

    def cycles(self) -> list[CycleRecord]:
        items = self.stack.client("dynamodb").scan(TableName=self.stack.resource("Table"))["Items"]
        ids = sorted(i["pk"]["S"].removeprefix("CYCLE#") for i in items if i["sk"]["S"] == "CYCLE")
        found = [self.store.get_cycle(cycle_id) for cycle_id in ids]
        return [c for c in found if c is not None]

    def notifications(self) -> list[str]:
        """Return every SNS message published (subject and body), from moto's backend."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns.models import sns_backends

        topic = sns_backends[DEFAULT_ACCOUNT_ID][self.stack.region].topics[self.stack.resource("NotificationsTopic")]
        return [f"{subject}\n{message}" for _id, message, subject, _attrs, _group in topic.sent_notifications]

    def lock_held(self) -> bool:
        key = {"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}}
        return "Item" in self.stack.client("dynamodb").get_item(TableName=self.stack.resource("Table"), Key=key)


def check_invariants(case: Case, *, failed_cycles: int = 0) -> None:
    """Assert what must hold after any fault; ``failed_cycles`` is how many cycles the case means to fail."""
    store, paper, cycles = case.store, case.paper(), case.cycles()

    # 0 duplicate orders: one exchange order per intent attempt, none outside an intent.
    attempts: set[str] = set()
    for cycle in cycles:
        for intent in store.intents(cycle.cycle_id):
            ids = {intent.intent.client_order_id(n) for n in range(intent.attempt + 1)}
            assert not ids & attempts, f"two intents share a client order id: {sorted(ids & attempts)}"
            attempts |= ids
    per_client_id = Counter(o.client_order_id for o in paper.orders())
    case.duplicates = sum(n - 1 for n in per_client_id.values())
    assert case.duplicates == 0, f"duplicate orders: {per_client_id}"
    orphans = set(per_client_id) - attempts
    assert not orphans, f"exchange orders no intent attempt accounts for: {orphans}"

    # 0 lost signals: every distinct alert sent is stored.
    stored = {s.key: s for s in store.recent_signals(limit=10_000)}
    keys = {parse_signal(a, CONFIG).dedupe_key for a in case.sent}
    case.lost = len(keys - set(stored))
    assert case.lost == 0, f"lost signals: {sorted(keys - set(stored))}"

    # Every signal in a terminal status, with its reason.
    for signal in stored.values():
        assert signal.status.is_terminal, f"{signal.key} is still {signal.status.value}"
        assert signal.reason, f"{signal.key} is {signal.status.value} without a reason"

    # The ledger owns exactly what the exchange holds.
    drift = store.load_ledger().drift(_BALANCES(paper))
    assert all(d == Decimal(0) for d in drift.values()), f"ledger drift: {drift}"
    assert not paper.open_orders(), f"orders left working: {paper.open_orders()}"

    # Failures, and orders given up, are notified.
    assert sum(c.status == "failed" for c in cycles) == failed_cycles, [(c.cycle_id, c.error) for c in cycles]
    messages = "\n".join(case.notifications())
    for cycle in cycles:
        if cycle.status == "failed":
            assert cycle.error, f"{cycle.cycle_id} failed without an error"
            assert cycle.error in messages, f"failure of {cycle.cycle_id} not notified"
        for intent in store.intents(cycle.cycle_id):
            if intent.status in ABANDONED:
                assert intent.reason, f"{intent.intent.intent_id} is {intent.status.value} without a reason"
                assert intent.reason in messages, f"not notified: {intent.reason!r}"
    assert not case.lock_held(), "the cycle lock was not released"


Patch = Callable[..., Any]


def inject(
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
    method: str,
    error: BaseException,
    *,
    times: int = 1,
    after: bool = False,
    skip: int = 0,
) -> None:
    """Make ``PaperExchange.<method>`` raise ``error`` on ``times`` calls after ``skip`` good ones.

    With ``after`` the call takes effect on the venue first, then the answer is lost.
    """
    original: Patch = getattr(PaperExchange, method)
    calls = Counter[str]()

    def faulty(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if skip < calls["n"] <= skip + times:
            case.fault()
            if after:
                original(self, *args, **kwargs)
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PaperExchange, method, faulty)


def seed_account(case: Case, **settings: Any) -> None:
    """Create the paper account before any cycle, with venue settings (partial fills, fees)."""
    exchange = PaperExchange(balances={"USD": Decimal(10000)}, **settings)
    PaperStateStore(case.stack.resource("Table"), case.stack.client("dynamodb")).save(exchange.to_state(), 0)
