"""One trade cycle, in process: net the signals, exit, sell down, enter.

This is the engine behind ``crypto-bot replay`` and the demo. The deployed workflow
runs the very same phases as separate Step Functions states, calling the same
planning and execution functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial

from crypto_bot.allocation import (
    EntryPlan,
    Netting,
    Plan,
    PlanContext,
    SignalOutcome,
    SignalStatus,
    net_signals,
    plan_entries,
    plan_exits,
    size_entries,
)
from crypto_bot.config import ExecutionMode, StrategyConfig
from crypto_bot.execution import OrderResult, ResultStatus, SettlePolicy, execute_intent
from crypto_bot.ledger import Ledger
from crypto_bot.markets import Market
from crypto_bot.money import ZERO
from crypto_bot.orders import Balance, Purpose
from crypto_bot.ports import Exchange
from crypto_bot.retry import call_with_retry
from crypto_bot.signals import Signal


@dataclass
class CycleReport:
    """Everything one cycle decided and did, for output and for the audit trail."""

    cycle_id: str
    at: datetime
    urgent: bool
    netting: Netting
    outcomes: list[SignalOutcome]
    results: list[OrderResult] = field(default_factory=list)
    entry_plan: EntryPlan | None = None


@dataclass
class Engine:
    """Runs cycles against one exchange account with one ledger."""

    config: StrategyConfig
    exchange: Exchange
    ledger: Ledger
    mode: ExecutionMode
    increment: Decimal
    policy: SettlePolicy = field(default_factory=SettlePolicy)
    clock: Callable[[], datetime] | None = None
    sleep: Callable[[float], None] = time.sleep
    _markets: dict[str, Market] = field(default_factory=dict)

    def markets(self) -> Mapping[str, Market]:
        if not self._markets:
            self._markets.update(self.exchange.load_markets(self.config.symbols()))
        return self._markets

    def run_cycle(self, signals: Sequence[Signal], *, cycle_id: str, at: datetime, urgent: bool = False) -> CycleReport:
        """Run one cycle over ``signals`` and return its report.

        Errors placing an order are recorded on that order. Reading balances or prices
        is retried like any transient call; if it still fails the error propagates
        before anything further is sent, and the cycle can be run again safely because
        intent ids (and so client order ids) depend only on the cycle id.
        """
        now: Callable[[], datetime] = self.clock or (lambda: at)
        markets = self.markets()
        is_long = {key: self.ledger.position(s).is_long for key, s in self.config.strategies.items()}
        netting = net_signals(signals, is_long)
        report = CycleReport(cycle_id, at, urgent, netting, list(netting.outcomes))
        if not netting.exits and not netting.entries:
            return report

        # Phase 1: exits, from the ledger amounts.
        ctx = self._context(cycle_id, netting, markets)
        exits = plan_exits(netting.exits, ctx)
        self._sweep_unsellable_exits(exits, markets)
        report.results += self._execute(exits, markets, now)

        # Phase 2: targets from the account value after the exits; boost sell-downs.
        ctx = self._context(cycle_id, netting, markets)
        entry_plan = plan_entries(self.mode, netting.entries, ctx)
        report.entry_plan = entry_plan
        report.results += self._execute(entry_plan.sell_downs, markets, now)

        # Phase 3: entries, sized from the balances left after the sell-downs.
        if entry_plan.entries:
            ctx = self._context(cycle_id, netting, markets)
            report.results += self._execute(size_entries(entry_plan, ctx), markets, now)

        report.outcomes = _final_outcomes(netting, report.results)
        return report

    def _context(self, cycle_id: str, netting: Netting, markets: Mapping[str, Market]) -> PlanContext:
        balances: Mapping[str, Balance] = call_with_retry(
            self.exchange.fetch_balances, self.policy.retry, sleep=self.sleep
        )
        # Prices of the strategies that can trade this cycle: the movers and every holder.
        keys = set(netting.exits) | set(netting.entries) | {p.strategy for p in self.ledger.long_positions()}
        symbols = sorted({self.config[k].symbol for k in keys if k in self.config.strategies})
        prices = {
            symbol: call_with_retry(
                partial(self.exchange.fetch_last_price, symbol), self.policy.retry, sleep=self.sleep
            )
            for symbol in symbols
        }
        quote = balances.get(self.config.quote, Balance())
        return PlanContext(
            cycle_id=cycle_id,
            config=self.config,
            ledger=self.ledger,
            free={asset: b.free for asset, b in balances.items()},
            total_quote=quote.total,
            markets=markets,
            prices=prices,
            increment=self.increment,
            deciding=netting.deciding,
        )

    def _sweep_unsellable_exits(self, plan: Plan, markets: Mapping[str, Market]) -> None:
        for skipped in plan.skipped:
            strategy = self.config[skipped.strategy]
            self.ledger.sweep_dust(strategy, markets[strategy.symbol])

    def _execute(self, plan: Plan, markets: Mapping[str, Market], now: Callable[[], datetime]) -> list[OrderResult]:
        results = [
            OrderResult(
                strategy=s.strategy,
                symbol=s.symbol,
                side=s.side,
                purpose=s.purpose,
                amount=s.amount,
                limit_price=s.limit_price,
                status=ResultStatus.SKIPPED,
                reason=s.reason,
            )
            for s in plan.skipped
        ]
        for intent in plan.intents:
            strategy = self.config[intent.strategy]
            market = markets[intent.symbol]
            result = execute_intent(
                self.exchange,
                intent,
                strategy=strategy,
                market=market,
                ledger=self.ledger,
                increment=self.increment,
                policy=self.policy,
                clock=now,
                sleep=self.sleep,
            )
            if intent.purpose is Purpose.EXIT:
                self.ledger.sweep_dust(strategy, market)
            results.append(result)
        return results


def _final_outcomes(netting: Netting, results: Sequence[OrderResult]) -> list[SignalOutcome]:
    """Give every planned signal the terminal status of the order its strategy traded."""
    by_strategy = {r.strategy: r for r in results if r.purpose is not Purpose.SELL_DOWN}
    final = []
    for outcome in netting.outcomes:
        if outcome.status is not SignalStatus.PLANNED:
            final.append(outcome)
            continue
        result = by_strategy.get(outcome.strategy)
        if result is None:
            final.append(SignalOutcome(outcome.dedupe_key, outcome.strategy, SignalStatus.FAILED, "no order planned"))
            continue
        status, reason = _signal_status(result)
        final.append(SignalOutcome(outcome.dedupe_key, outcome.strategy, status, reason))
    return final


def _signal_status(result: OrderResult) -> tuple[SignalStatus, str]:
    what = f"{result.side.value} {result.filled} of {result.amount} {result.symbol}"
    match result.status:
        case ResultStatus.FILLED:
            return SignalStatus.FILLED, f"{what} filled"
        case ResultStatus.PARTIALLY_FILLED:
            return SignalStatus.FILLED, f"{what} partially filled: {result.reason}"
        case ResultStatus.SKIPPED:
            return SignalStatus.IGNORED, result.reason
        case ResultStatus.UNFILLED:
            return SignalStatus.FAILED, f"nothing filled: {result.reason}"
        case ResultStatus.FAILED:
            return SignalStatus.FAILED, result.reason
    raise ValueError(f"unknown result status {result.status!r}")


@dataclass(frozen=True)
class PositionView:
    """A long strategy valued at the last price; ``weight`` is value / equity."""

    symbol: str
    amount: Decimal
    cost_basis: Decimal
    value: Decimal
    weight: Decimal


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
