"""The deployed pipeline on the local stack, started one way and driven one way.

The trade-cycle integration tests, the fault suite (tests/faults) and the benchmark (bench/) all run
real cycles the same way: template.yaml's resources under moto (``crypto_bot_tools.local.stack.local_stack``),
the real state machine definition executing the real handlers, a paper exchange kept in the table. This
module is that world: :func:`cycle_stack` starts it with the waits shortened, and :class:`Pipeline`
queues alerts as the webhook does, runs executions to their end and reads back what they left.

Each caller still chooses what differs between them (template parameters, the functions' environment,
how much of the Retry intervals to wait), so the shared part changes no test's or benchmark's settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.engine.records import CycleRecord
from crypto_bot_tools.cycle import equity_and_positions
from crypto_bot_tools.local.stack import LocalStack, local_stack

ROOT: Final = Path(__file__).resolve().parents[2]
TEMPLATE: Final = ROOT / "template.yaml"
TRADE_CYCLE: Final = "TradeCycleStateMachine"
# ASL Wait states take whole seconds, so the deployed 15 s fill check and 20 s lock wait cannot be scaled
# like the Retry intervals; 0 s keeps the loops' logic (FILL_TIMEOUT_SECONDS=0 ends a chase attempt at its
# first check) without a minute of real waiting per cycle.
NO_WAITS: Final = {"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0"}
# Step Functions' Retry intervals as deployed (2 s, doubling, 4 to 5 attempts: up to a minute per state) run
# at 1/100 of their length: the same retries in the same order, ~0.3 s where AWS would wait 30 s.
RETRY_INTERVAL_SCALE: Final = 0.01
LOCK_KEY: Final = {"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}}


@contextmanager
def cycle_stack(
    *,
    parameters: Mapping[str, str] | None = None,
    substitutions: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    ssm_values: Mapping[str, str] | None = None,
    retry_interval_scale: float = RETRY_INTERVAL_SCALE,
) -> Iterator[Pipeline]:
    """Start template.yaml's stack with no Wait-state waiting and scaled retries, and yield its pipeline.

    ``parameters`` override the template's defaults; ``substitutions`` are merged over :data:`NO_WAITS`;
    ``environment`` over every function's; ``ssm_values`` are stored as SecureString parameters first.
    """
    with local_stack(
        TEMPLATE,
        parameters=parameters,
        substitution_overrides=NO_WAITS | dict(substitutions or {}),
        environment=environment,
        ssm_values=ssm_values,
        retry_interval_scale=retry_interval_scale,
    ) as stack:
        yield Pipeline(stack)


@dataclass
class Pipeline:
    """Drive the trade cycle of one local stack: queue alerts, run executions, read what they left."""

    stack: LocalStack

    def send(self, payload: Mapping[str, Any], *, queue: str = "SignalsQueue", times: int = 1) -> str:
        """Queue an alert as the webhook does, ``times`` times (a resend or a redelivery); return the last id."""
        sqs, url = self.stack.client("sqs"), self.stack.resource(queue)
        message_id = ""
        for _ in range(times):
            message_id = str(sqs.send_message(QueueUrl=url, MessageBody=json.dumps(payload))["MessageId"])
        return message_id

    def send_batch(self, payloads: Sequence[Mapping[str, Any]], *, queue: str = "SignalsQueue") -> None:
        """Queue alerts ten per call (SQS's batch limit): the same messages as one call each, sooner."""
        sqs, url = self.stack.client("sqs"), self.stack.resource(queue)
        for start in range(0, len(payloads), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(p)} for i, p in enumerate(payloads[start : start + 10])]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

    def start(self, execution_input: Any = None, *, name: str | None = None) -> str:
        """Start an execution of the trade cycle (a manual one by default) and return its ARN."""
        return self.stack.start_execution(TRADE_CYCLE, execution_input or {"trigger": "manual"}, name=name)

    def run(
        self,
        execution_input: Any = None,
        *,
        name: str | None = None,
        expect: str = "SUCCEEDED",
        timeout: float = 120,
    ) -> dict[str, Any]:
        """Run one execution of the trade cycle to its end and check how it ended."""
        result = self.stack.wait_for_execution(self.start(execution_input, name=name), timeout=timeout)
        assert result["status"] == expect, json.dumps(result.get("history", [])[-4:], default=str)[:3000]
        return result

    def urgent(self, payload: Mapping[str, Any], message_id: str, *, name: str | None = None) -> dict[str, Any]:
        """Run a cycle as the urgent queue's pipe starts one: a batch of SQS records as the input."""
        return self.run([{"messageId": message_id, "body": json.dumps(payload)}], name=name)

    @property
    def store(self) -> DynamoDBStore:
        return DynamoDBStore(self.stack.resource("Table"), self.stack.client("dynamodb"))

    def paper(self) -> PaperExchange:
        """Return the paper venue as the last step left it in the table."""
        state, _version = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb")).load()
        assert state is not None, "no paper account: nothing ran"
        return PaperExchange.from_state(state)

    def seed_account(self, cash: Decimal = Decimal(10000), **settings: Any) -> None:
        """Create the paper account before any cycle, with venue settings (partial fills, fees)."""
        # The repository's strategy_config.json quotes in USDT (template.yaml's QuoteCurrency).
        exchange = PaperExchange(balances={"USDT": cash}, **settings)
        PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb")).save(exchange.to_state(), 0)

    def portfolio(self, config: StrategyConfig) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
        """Return cash, equity and each strategy's amount held, as ``crypto-bot replay`` reports them."""
        paper = self.paper()
        cash, equity, positions = equity_and_positions(
            config, self.store.load_ledger(), paper.fetch_balances(), paper.prices
        )
        return cash, equity, {key: p.amount for key, p in positions.items()}

    def cycles(self) -> list[CycleRecord]:
        """Return every cycle recorded in the table, oldest id first."""
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

    def put_lock(self, owner: str, lease_until: str) -> None:
        """Store the cycle lock as a cycle that holds it would have left it."""
        item = {**LOCK_KEY, "owner": {"S": owner}, "lease_until": {"S": lease_until}}
        self.stack.client("dynamodb").put_item(TableName=self.stack.resource("Table"), Item=item)

    def lock_held(self) -> bool:
        table = self.stack.resource("Table")
        return "Item" in self.stack.client("dynamodb").get_item(TableName=table, Key=LOCK_KEY)
