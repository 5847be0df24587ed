"""Replay alerts through the real engine and a paper exchange, cycle by cycle.

Alerts are grouped the way the deployed system groups them: a regular alert waits
for the first schedule tick at or after its time; a stop loss runs a cycle of its
own at once. Prices are the last alert price seen per symbol, or a price CSV. An alert whose price is
more than the price band away from its symbol's last known price is reported and not traded, as intake
refuses it where alert prices price the paper exchange (:mod:`crypto_bot.domain.price_band`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import CsvPrices, PaperExchange
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.controls import Guards
from crypto_bot.domain.errors import ConfigError, FieldProblem, SignalRejected
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market
from crypto_bot.domain.money import ZERO, to_json_number
from crypto_bot.domain.orders import ExchangeOrder
from crypto_bot.domain.price_band import DEFAULT_MAX_PRICE_JUMP, price_jump_problem
from crypto_bot.domain.signals import DEFAULT_STOP_LOSS_REGEX, Signal, parse_signal
from crypto_bot.domain.timeframe import Schedule, Timeframe
from crypto_bot.engine.records import IntentRecord, SignalRecord
from crypto_bot.engine.retry import NO_RETRY
from crypto_bot.engine.workflow import Workflow, WorkflowSettings, signal_record
from crypto_bot_tools.cycle import CycleReport, Engine, PositionView, equity_and_positions


@dataclass(frozen=True)
class ReplayOptions:
    mode: ExecutionMode = ExecutionMode.BOOST
    cash: Decimal = Decimal(10000)
    fee: Decimal = Decimal("0.001")
    increment: Decimal = Decimal("0.001")
    schedule: Schedule = field(default_factory=lambda: Schedule(Timeframe.parse("8h")))
    prices: CsvPrices | None = None
    markets: Mapping[str, Market] | None = None
    max_price_jump: Decimal = DEFAULT_MAX_PRICE_JUMP


@dataclass(frozen=True)
class Rejection:
    """An alert that never reached a cycle, with why."""

    source: str
    problems: tuple[FieldProblem, ...]

    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)


@dataclass
class CycleResult:
    """One replayed cycle: the engine's report plus the portfolio right after it."""

    report: CycleReport
    cash: Decimal
    equity: Decimal
    positions: dict[str, PositionView]
    balances: dict[str, Decimal] = field(default_factory=dict)  # every asset's total, free and locked

    def to_json(self) -> dict[str, Any]:
        """Shape the cycle as the documented ``--json`` object."""
        return {
            "cycle": self.report.at.isoformat().replace("+00:00", "Z"),
            "orders": [order_json(r) for r in self.report.results],
            "cash": to_json_number(self.cash),
            "equity": to_json_number(self.equity),
            "positions": {key: p.to_json() for key, p in self.positions.items()},
        }


def order_json(result: IntentRecord) -> dict[str, Any]:
    fee = sum((f.cost for f in result.fees), ZERO)
    return {
        "strategy": result.strategy,
        "symbol": result.symbol,
        "side": result.side.value,
        "amount": to_json_number(result.intent.amount),
        "price": to_json_number(result.intent.limit_price),
        "filled": to_json_number(result.filled),
        "cost": to_json_number(result.cost),
        "fee": to_json_number(fee),
        "status": result.status.value,
    }


@dataclass(frozen=True)
class RestingFill:
    """A resting order (a protective stop) that filled while the market moved between two cycles."""

    at: datetime  # the --prices row that crossed it
    order: ExchangeOrder  # as the venue reported it after the fill
    balances: dict[str, Decimal]  # every asset's total right after it


@dataclass
class ReplayResult:
    mode: ExecutionMode
    quote: str
    starting_cash: Decimal
    cycles: list[CycleResult]
    rejected: list[Rejection]
    outcomes: list[SignalRecord]
    exchange: PaperExchange
    store: MemoryStore
    # What the equity chart marks the account to between cycles (crypto_bot_tools.charts).
    alert_prices: list[tuple[datetime, str, Decimal]] = field(default_factory=list)  # kept alerts: time, symbol
    resting_fills: list[RestingFill] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return self.store.load_ledger()

    @property
    def final_equity(self) -> Decimal:
        return self.cycles[-1].equity if self.cycles else self.starting_cash


def read_alerts(path: str | Path) -> list[tuple[str, object]]:
    """Read an ALERTS.jsonl file: one webhook payload per line; blank lines are skipped.

    Return ``(where, payload)`` pairs; a line that is not JSON becomes a payload of
    ``None`` so that it is reported as rejected instead of stopping the replay.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read alerts file {path}: {e.strerror}") from e
    alerts: list[tuple[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            alerts.append((where, json.loads(line)))
        except json.JSONDecodeError as e:
            alerts.append((where, _NotJson(f"line is not valid JSON: {e.msg} at column {e.colno}")))
    return alerts


@dataclass(frozen=True)
class _NotJson:
    message: str


def replay(
    alerts: Iterable[tuple[str, object]] | Sequence[Mapping[str, Any]],
    config: StrategyConfig,
    options: ReplayOptions,
) -> ReplayResult:
    """Replay webhook payloads through the engine on a fresh paper account."""
    pairs = [a if isinstance(a, tuple) else (f"alert {i + 1}", a) for i, a in enumerate(alerts)]
    located: list[tuple[str, Signal]] = []
    rejected: list[Rejection] = []
    duplicates: list[SignalRecord] = []
    seen: set[str] = set()
    for where, payload in pairs:
        if isinstance(payload, _NotJson):
            rejected.append(Rejection(where, (FieldProblem("body", payload.message, "is not JSON"),)))
            continue
        try:
            signal = parse_signal(payload, config, stop_loss_regex=DEFAULT_STOP_LOSS_REGEX)
        except SignalRejected as e:
            rejected.append(Rejection(where, e.problems))
            continue
        if signal.dedupe_key in seen:
            duplicate = signal_record(signal, signal.time, where)
            duplicate.status, duplicate.reason = SignalStatus.IGNORED, f"{where}: duplicate alert"
            duplicates.append(duplicate)
            continue
        seen.add(signal.dedupe_key)
        located.append((where, signal))
    signals = _believable(located, config, options, rejected)

    exchange = PaperExchange(
        balances={config.quote: options.cash},
        markets=dict(options.markets or {}),
        default_fee=options.fee,
    )
    store = MemoryStore()
    now: list[datetime] = [datetime.now(UTC)]
    workflow = Workflow(
        store=store,
        exchange=exchange,
        config=config,
        # A replayed market does not move while a cycle runs, so an order that did not
        # fill at once never will: chase it right away instead of waiting.
        settings=WorkflowSettings(
            mode=options.mode,
            increment=options.increment,
            fill_timeout=timedelta(0),
            timeframe=options.schedule.timeframe,  # guards.cooldown_bars counts its bars
        ),
        clock=lambda: now[0],
    )
    engine = Engine(workflow, check_interval=0, place_retry=NO_RETRY, sleep=lambda _seconds: None)
    cycles: list[CycleResult] = []
    outcomes: list[SignalRecord] = list(duplicates)
    resting_fills: list[RestingFill] = []
    by_time = sorted(signals, key=lambda s: s.time)
    previous: datetime | None = None
    for at, urgent, batch in _cycles(signals, options.schedule):
        if options.prices is not None:
            # Between cycles the market passes through every price of the file: a protective stop resting on the
            # paper venue triggers where the price crossed it, as on a venue, and the next cycle books it.
            for moment, symbol, price in options.prices.between(config.symbols(), previous, at):
                for order in exchange.set_price(symbol, price):
                    resting_fills.append(RestingFill(moment, order, _totals(exchange)))
        previous = at
        _update_prices(exchange, config, by_time, at, options.prices)
        now[0] = at
        cycle_id = at.isoformat() + ("/stop" if urgent else "")
        report = engine.run_cycle(batch, cycle_id=cycle_id, at=at, urgent=urgent)
        outcomes.extend(report.outcomes)
        ledger = store.load_ledger()
        cash, equity, positions = equity_and_positions(config, ledger, exchange.fetch_balances(), exchange.prices)
        cycles.append(CycleResult(report, cash, equity, positions, _totals(exchange)))
    alert_prices = [(s.time, config[s.strategy].symbol, s.price) for s in by_time]
    return ReplayResult(
        options.mode,
        config.quote,
        options.cash,
        cycles,
        rejected,
        outcomes,
        exchange,
        store,
        alert_prices,
        resting_fills,
    )


def _totals(exchange: PaperExchange) -> dict[str, Decimal]:
    return {asset: balance.total for asset, balance in exchange.fetch_balances().items() if balance.total}


def _cycles(signals: Sequence[Signal], schedule: Schedule) -> list[tuple[datetime, bool, list[Signal]]]:
    regular: dict[datetime, list[Signal]] = {}
    stops: dict[datetime, list[Signal]] = {}
    for signal in signals:
        if signal.is_stop_loss:
            stops.setdefault(signal.time, []).append(signal)
        else:
            regular.setdefault(schedule.tick_at_or_after(signal.time), []).append(signal)
    # As deployed, a stop loss's cycle also takes its strategy's alerts that arrived before it and still wait
    # for their tick (Workflow.open_cycle): an entry followed by its stop nets out instead of buying later.
    for at in sorted(stops):
        stopped = {s.strategy for s in stops[at]}
        for tick, waiting in regular.items():
            if tick >= at:
                taken = [s for s in waiting if s.strategy in stopped and s.time <= at]
                stops[at][:0] = taken
                regular[tick] = [s for s in waiting if s not in taken]
    cycles = [(at, False, batch) for at, batch in regular.items() if batch]
    cycles += [(at, True, b) for at, b in stops.items()]
    # At the same instant a stop loss goes first: it is executed on arrival.
    return sorted(cycles, key=lambda c: (c[0], not c[1]))


def _believable(
    located: Sequence[tuple[str, Signal]], config: StrategyConfig, options: ReplayOptions, rejected: list[Rejection]
) -> list[Signal]:
    """Keep the alerts whose price is within the band of their symbol's last known price; report the others.

    Walked in time order, as prices are set. The last known price is the ``--prices`` row at or before the
    alert, else the price of the symbol's last kept alert; the first price of a symbol is kept. A refused
    alert sets no price, so the next one is compared with the last believable price.
    """
    last: dict[str, Decimal] = {}
    kept: list[Signal] = []
    for where, signal in sorted(located, key=lambda pair: pair[1].time):
        symbol = config[signal.strategy].symbol
        known = options.prices.at(symbol, signal.time) if options.prices is not None else None
        if known is None:
            known = last.get(symbol)
        shown = signal.payload.get("order_price", signal.price)
        problem = price_jump_problem(shown, signal.price, symbol, known, options.max_price_jump)
        if problem is not None:
            rejected.append(Rejection(where, (problem,)))
            continue
        last[symbol] = signal.price
        kept.append(signal)
    return kept


def _update_prices(
    exchange: PaperExchange,
    config: StrategyConfig,
    signals: Sequence[Signal],
    at: datetime,
    prices: CsvPrices | None,
) -> None:
    latest: dict[str, Decimal] = {}
    for signal in signals:  # sorted by time
        if signal.time > at:
            break
        latest[config[signal.strategy].symbol] = signal.price
    if prices is not None:
        for symbol in config.symbols():
            price = prices.at(symbol, at)
            if price is not None:
                latest[symbol] = price
    for symbol, price in sorted(latest.items()):
        exchange.set_price(symbol, price)


@dataclass(frozen=True)
class Summary:
    """Headline figures of one replay, for ``--compare``."""

    mode: ExecutionMode
    final_equity: Decimal
    total_return: Decimal
    max_drawdown: Decimal
    orders: int
    turnover: Decimal
    fees: Decimal
    variant: str = ""  # "without protections": the same alerts with no protective stop and no guard

    @property
    def name(self) -> str:
        return f"{self.mode.value} {self.variant}" if self.variant else self.mode.value


def protected(config: StrategyConfig) -> bool:
    """Say whether the config has protective stops or guards, whose effect ``--compare`` shows."""
    return config.guards.any or any(s.protective_stop is not None for s in config.strategies.values())


def unprotected(config: StrategyConfig) -> StrategyConfig:
    """Return the config without its protective stops and guards (alert stop prices still apply)."""
    strategies = {key: replace(s, protective_stop=None) for key, s in config.strategies.items()}
    return StrategyConfig(strategies=strategies, quote=config.quote, guards=Guards())


def summarize(result: ReplayResult) -> Summary:
    """Compute final equity, return, max drawdown (on cycle equities), orders, turnover and fees."""
    peak = result.starting_cash
    worst = ZERO
    for cycle in result.cycles:
        peak = max(peak, cycle.equity)
        if peak:
            worst = max(worst, (peak - cycle.equity) / peak)
    filled = [r for c in result.cycles for r in c.report.results if r.filled > 0]
    fees = ZERO
    for r in filled:
        for f in r.fees:
            # A base-currency fee is valued at the order's own average price.
            fees += f.cost if f.currency == result.quote else f.cost * (r.cost / r.filled)
    return Summary(
        mode=result.mode,
        final_equity=result.final_equity,
        total_return=(result.final_equity / result.starting_cash - 1) if result.starting_cash else ZERO,
        max_drawdown=worst,
        orders=len(filled),
        turnover=sum((r.cost for r in filled), ZERO),
        fees=fees,
    )
