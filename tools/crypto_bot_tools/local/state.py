"""``GET /_local/state`` and the cycle a finished execution reports: read from the table and the account."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crypto_bot.domain.money import plain
from crypto_bot_tools.local.account import Account
from crypto_bot_tools.local.executions import Executions, iso
from crypto_bot_tools.local.settings import StackPlan
from crypto_bot_tools.ops.rows import alert_field

__all__ = ["StateReader"]


class StateReader:
    """Read what the stack holds: signals, orders, positions, balances, executions and queue depths.

    ``/_local/state`` writes every amount, price and sum of money as an exact decimal string ("0.15833333"),
    never a JSON number, which most readers take as a float. A finished cycle is shaped as replay's ``--json``.
    """

    def __init__(
        self, plan: StackPlan, stack: Any, account: Account, executions: Executions, queues: Mapping[str, str]
    ) -> None:
        self.plan = plan
        self.stack = stack
        self.account = account
        self.executions = executions
        self.queues = queues

    def state(self) -> dict[str, Any]:
        """Return what ``GET /_local/state`` answers: signals, orders, positions, balances, cash, equity, executions,
        queues and the controls."""
        # Executions first: whatever one reported finished has done to the table is in the rest of the answer.
        executions = self.executions.listed()
        store = self._store()
        signals = self._signals(store)
        orders = self._orders(store)
        balances, prices, cash, equity, positions = self._portfolio()
        ledger_amounts = store.load_ledger().amounts_by_asset()
        return {
            "signals": signals,
            "orders": orders,
            "positions": {
                key: {
                    "symbol": p.symbol,
                    "amount": plain(p.amount),
                    "cost_basis": plain(p.cost_basis),
                    "value": plain(p.value),
                    "weight": plain(p.weight),
                }
                for key, p in positions.items()
            },
            "balances": {
                asset: {
                    "free": plain(b.free),
                    "used": plain(b.used),
                    "total": plain(b.total),
                }
                for asset, b in balances.items()
            },
            "cash": plain(cash),
            "equity": plain(equity),
            "prices": {symbol: plain(price) for symbol, price in sorted(prices.items())},
            # Where the balances come from: "paper", or the ccxt venue the stack trades on.
            "exchange": self.plan.settings.exchange or "paper",
            # What the ledger says the strategies own, per asset, to read beside the balances.
            "ledger": {asset: plain(amount) for asset, amount in sorted(ledger_amounts.items())},
            "executions": executions,
            "queues": self._queue_depths(),
            # The kill switch and guards (crypto_bot.domain.controls), as the record is stored.
            "controls": store.get_controls().to_dict(),
        }

    def cycle_json(self, cycle_id: str) -> dict[str, Any] | None:
        """Shape a finished cycle as ``crypto-bot replay --json`` does, with the portfolio right after it."""
        from crypto_bot_tools.cycle import CycleReport
        from crypto_bot_tools.replay import CycleResult

        store = self._store()
        record = store.get_cycle(cycle_id)
        if record is None:
            return None
        outcomes = [s for key in record.signal_keys if (s := store.get_signal(key)) is not None]
        report = CycleReport(record, outcomes, self._intents(store, cycle_id))
        _balances, _prices, cash, equity, positions = self._portfolio()
        return CycleResult(report, cash, equity, positions).to_json()

    def cycles(self, limit: int) -> dict[str, Any]:
        """Return what ``GET /_local/cycles`` answers: the ``limit`` newest cycle records, oldest first, each with
        its intents, in the shapes the table stores them (``CycleRecord.to_dict``, ``IntentRecord.to_dict``)."""
        store = self._store()
        return {
            "cycles": [
                {"cycle": cycle.to_dict(), "intents": [r.to_dict() for r in self._intents(store, cycle.cycle_id)]}
                for cycle in (self._cycles()[-limit:] if limit > 0 else [])
            ]
        }

    def _signals(self, store: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": s.message_id or s.key,
                "strategy": s.strategy,
                "action": s.action,
                "status": s.status.value,
                "reason": s.reason,
                "dedupe_key": s.key,
                "received_at": iso(s.received_at),
                "queued_at": iso(s.queued_at),
                "time": iso(s.time),
                # What the alert was for and its price as sent: a rejected alert has no strategy to show.
                "ticker": alert_field(s.payload, "ticker"),
                "price": alert_field(s.payload, "order_price"),
                "is_stop_loss": s.is_stop_loss,
                "cycle_id": s.cycle_id,
            }
            for s in store.recent_signals(limit=100_000)
        ]

    def _orders(self, store: Any) -> list[dict[str, Any]]:
        orders = []
        for cycle in self._cycles():
            for r in self._intents(store, cycle.cycle_id):
                current = r.current_order
                orders.append(
                    {
                        "intent_id": r.intent.intent_id,
                        "client_order_id": current.client_order_id if current else r.intent.client_order_id(r.attempt),
                        "strategy": r.strategy,
                        "symbol": r.symbol,
                        "side": r.side.value,
                        "status": r.status.value,
                        "amount": plain(r.intent.amount),
                        "filled": plain(r.filled),
                        "price": plain(r.price),
                        "cost": plain(r.cost),
                        "cycle_id": cycle.cycle_id,
                        "phase": r.phase.value,
                        "attempt": r.attempt,
                        "reason": r.reason,
                    }
                )
        return orders

    def _queue_depths(self) -> dict[str, dict[str, int]]:
        sqs = self.stack.client("sqs")
        depths = {}
        for logical_id in self.queues:
            attributes = sqs.get_queue_attributes(
                QueueUrl=self.stack.resource(logical_id),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            depths[logical_id] = {
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            }
        return depths

    def _store(self) -> Any:
        from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

        return DynamoDBStore(self.stack.resource("Table"), self.stack.client("dynamodb"))

    def _cycles(self) -> list[Any]:
        """Every cycle record in the table, oldest first."""
        from crypto_bot.adapters.aws.dynamodb_store import from_item
        from crypto_bot.engine.records import CycleRecord

        dynamodb = self.stack.client("dynamodb")
        request: dict[str, Any] = {
            "TableName": self.stack.resource("Table"),
            # The lock item is (LOCK, CYCLE): cycles are the (CYCLE#<id>, CYCLE) items.
            "FilterExpression": "begins_with(pk, :prefix) AND sk = :cycle",
            "ExpressionAttributeValues": {":prefix": {"S": "CYCLE#"}, ":cycle": {"S": "CYCLE"}},
        }
        records = []
        while True:
            page = dynamodb.scan(**request)
            records += [CycleRecord.from_dict(from_item(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(records, key=lambda r: (r.at, r.cycle_id))

    def _intents(self, store: Any, cycle_id: str) -> list[Any]:
        from crypto_bot.engine.records import Phase

        phases = list(Phase)
        return sorted(store.intents(cycle_id), key=lambda r: (phases.index(r.phase), r.intent.strategy))

    def _portfolio(self) -> tuple[Mapping[str, Any], dict[str, Decimal], Decimal, Decimal, dict[str, Any]]:
        from crypto_bot_tools.cycle import equity_and_positions

        balances, prices = self.account.balances_and_prices()
        ledger = self._store().load_ledger()
        cash, equity, positions = equity_and_positions(self.plan.config, ledger, balances, prices)
        return balances, prices, cash, equity, positions
