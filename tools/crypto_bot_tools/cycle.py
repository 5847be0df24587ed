"""Run whole cycles in process: the workflow's steps in the deployed order.

This is the engine behind ``crypto-bot replay`` and the demo. It calls exactly the
steps the Step Functions workflow calls (:mod:`crypto_bot.engine.workflow`), in the same
order, so what replay shows is what the deployed system does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import CryptoBotError
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.money import ZERO, to_json_number
from crypto_bot.domain.orders import Balance
from crypto_bot.domain.signals import Signal
from crypto_bot.engine.records import CycleRecord, IntentRecord, Phase, SignalRecord
from crypto_bot.engine.retry import RetryPolicy, call_with_retry
from crypto_bot.engine.workflow import Workflow, signal_record

MAX_RECONCILE_ROUNDS = 1000
"""A phase that has not settled after this many reconcile rounds is a bug, not a slow fill."""


@dataclass
class CycleReport:
    """What one cycle decided and did: the cycle record, its signals and its orders."""

    cycle: CycleRecord
    outcomes: list[SignalRecord]
    results: list[IntentRecord]

    @property
    def at(self) -> datetime:
        return self.cycle.at

    @property
    def urgent(self) -> bool:
        return self.cycle.urgent


@dataclass
class Engine:
    """Runs cycles through the workflow steps, waiting between fill checks."""

    workflow: Workflow
    check_interval: float = 1.0
    place_retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    def run_cycle(self, signals: Sequence[Signal], *, cycle_id: str, at: datetime, urgent: bool = False) -> CycleReport:
        """Receive ``signals``, then open, plan, place, reconcile and finalize one cycle."""
        wf = self.workflow
        for n, signal in enumerate(signals):
            # The alerts arrive in the order given: one bar's exit and re-entry keep their order (arrival_order).
            wf.store.add_signal(signal_record(signal, at, None, queued_at=at + timedelta(microseconds=n)))
        wf.open_cycle(cycle_id, at, urgent=urgent)
        for phase in Phase:
            for intent_id in wf.plan(cycle_id, phase):
                call_with_retry(partial(wf.place, cycle_id, intent_id), self.place_retry, sleep=self.sleep)
            rounds = 0
            while wf.reconcile(cycle_id, phase):
                rounds += 1
                if rounds >= MAX_RECONCILE_ROUNDS:
                    raise CryptoBotError(f"cycle {cycle_id}: {phase.value} did not settle in {rounds} rounds")
                self.sleep(self.check_interval)
        cycle = wf.finalize(cycle_id)
        outcomes = [s for key in cycle.signal_keys if (s := wf.store.get_signal(key)) is not None]
        results = sorted(wf.store.intents(cycle_id), key=lambda r: (list(Phase).index(r.phase), r.intent.strategy))
        return CycleReport(cycle, outcomes, results)


@dataclass(frozen=True)
class PositionView:
    """A long strategy valued at the last price; ``weight`` is value / equity."""

    symbol: str
    amount: Decimal
    cost_basis: Decimal
    value: Decimal
    weight: Decimal

    def to_json(self) -> dict[str, Any]:
        """Shape the position as ``replay --json`` and ``/_local/state`` show it."""
        return {
            "symbol": self.symbol,
            "amount": to_json_number(self.amount),
            "cost_basis": to_json_number(self.cost_basis),
            "value": to_json_number(self.value),
            "weight": to_json_number(self.weight),
        }


def equity_and_positions(
    config: StrategyConfig,
    ledger: Ledger,
    balances: Mapping[str, Balance],
    prices: Mapping[str, Decimal],
) -> tuple[Decimal, Decimal, dict[str, PositionView]]:
    """Value the account: quote cash, equity, and each long strategy's value and weight."""
    cash = balances.get(config.quote, Balance()).total
    equity = cash
    for asset, balance in balances.items():
        if asset != config.quote and balance.total:
            equity += balance.total * prices.get(f"{asset}/{config.quote}", ZERO)
    positions: dict[str, PositionView] = {}
    for position in ledger.long_positions():
        value = position.amount * prices.get(position.symbol, ZERO)
        positions[position.strategy] = PositionView(
            symbol=position.symbol,
            amount=position.amount,
            cost_basis=position.cost_basis,
            value=value,
            weight=value / equity if equity else ZERO,
        )
    return cash, equity, positions
