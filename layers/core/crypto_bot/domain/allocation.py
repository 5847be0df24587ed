"""Allocation: which strategies trade in a cycle, and how much of the account each gets.

The rules are stated in docs/allocation.md; this module is their only implementation.
Everything here is a pure function of its inputs: no I/O, exact decimals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from crypto_bot.domain.config import ExecutionMode, Strategy, StrategyConfig
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ZERO
from crypto_bot.domain.orders import OrderIntent, Purpose, Skipped, intent_id
from crypto_bot.domain.signals import Desired, Signal
from crypto_bot.domain.sizing import buy_cost_with_fee, limit_price, size_buy, size_sell

DUST_SHARE_OF_ACCOUNT = Decimal("0.005")
"""Boost skips a sell-down worth less than 0.5% of the account value: not worth the fees."""


class SignalStatus(StrEnum):
    """The life of a signal: received → planned → ordered → one terminal status."""

    RECEIVED = "received"
    PLANNED = "planned"
    ORDERED = "ordered"
    FILLED = "filled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    IGNORED = "ignored"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {
    SignalStatus.FILLED,
    SignalStatus.REJECTED,
    SignalStatus.EXPIRED,
    SignalStatus.IGNORED,
    SignalStatus.FAILED,
}


@dataclass(frozen=True)
class SignalOutcome:
    dedupe_key: str
    strategy: str
    status: SignalStatus
    reason: str


@dataclass(frozen=True)
class Netting:
    """The result of applying a cycle's signals to the strategies' current states."""

    exits: tuple[str, ...]  # long now, flat at the end of the cycle
    entries: tuple[str, ...]  # flat now, long at the end of the cycle
    outcomes: tuple[SignalOutcome, ...]
    deciding: Mapping[str, tuple[str, ...]]  # strategy -> dedupe keys of the signals its trade acts on


def _no_change(signal: Signal, state: Desired) -> str:
    """Say why a signal asking for the state its strategy is already in trades nothing."""
    if signal.action is Side.SELL and signal.desired is Desired.LONG:
        # TradingView sends market_position "long" after a sell that leaves part of the position open.
        return 'partial exits are not supported: this sell leaves market_position "long"; a full exit is "flat"'
    if signal.action is Side.BUY and signal.desired is Desired.FLAT:
        return 'a buy that leaves market_position "flat" closes a short, and spot trading has no shorts'
    return (
        "the strategy is already long: nothing to buy"
        if state is Desired.LONG
        else ("the strategy is already flat: nothing to sell")
    )


def net_signals(signals: Sequence[Signal], is_long: Mapping[str, bool]) -> Netting:
    """Apply signals in time order; each strategy ends in the state its last signal asks for.

    A signal asking for the state the strategy is already in is ignored with a reason
    and never stops the others. Flips that cancel out within the cycle trade nothing.
    """
    ordered = sorted(enumerate(signals), key=lambda pair: (pair[1].time, pair[0]))
    state: dict[str, Desired] = {}
    flips: dict[str, list[Signal]] = {}
    outcomes: dict[int, SignalOutcome] = {}
    initial: dict[str, Desired] = {}
    for index, signal in ordered:
        key = signal.strategy
        if key not in state:
            initial[key] = Desired.LONG if is_long.get(key, False) else Desired.FLAT
            state[key] = initial[key]
            flips[key] = []
        if signal.desired is state[key]:
            outcomes[index] = SignalOutcome(
                signal.dedupe_key, key, SignalStatus.IGNORED, _no_change(signal, state[key])
            )
            continue
        state[key] = signal.desired
        flips[key].append(signal)

    exits: list[str] = []
    entries: list[str] = []
    deciding: dict[str, tuple[str, ...]] = {}
    final_flip: dict[str, Signal] = {}
    for key in sorted(state):
        if state[key] is initial[key]:
            continue
        (exits if initial[key] is Desired.LONG else entries).append(key)
        final_flip[key] = flips[key][-1]
        deciding[key] = (flips[key][-1].dedupe_key,)

    for index, signal in ordered:
        if index in outcomes:
            continue
        key = signal.strategy
        if final_flip.get(key) is signal:
            outcomes[index] = SignalOutcome(signal.dedupe_key, key, SignalStatus.PLANNED, "")
        elif key not in final_flip and flips[key][-1] is signal:
            # The last flip of a strategy that ends where it started: it undid the earlier ones before they traded.
            reason = f"netted out: it reverses this cycle's earlier signals, so the strategy stays {initial[key].value}"
            outcomes[index] = SignalOutcome(signal.dedupe_key, key, SignalStatus.IGNORED, reason)
        else:
            outcomes[index] = SignalOutcome(
                signal.dedupe_key,
                key,
                SignalStatus.IGNORED,
                "netted out: a later signal in the same cycle reversed it",
            )
    return Netting(
        exits=tuple(exits),
        entries=tuple(entries),
        outcomes=tuple(outcomes[i] for i in range(len(signals))),
        deciding=deciding,
    )


@dataclass(frozen=True)
class PlanContext:
    """What a planner may read: config, ledger, balances, markets and last prices."""

    cycle_id: str
    config: StrategyConfig
    ledger: Ledger
    free: Mapping[str, Decimal]  # free balance by asset
    total_quote: Decimal  # quote cash, free plus locked in our open orders
    markets: Mapping[str, Market]
    prices: Mapping[str, Decimal]
    increment: Decimal
    deciding: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    intents: tuple[OrderIntent, ...]
    skipped: tuple[Skipped, ...]


def plan_exits(exits: Sequence[str], ctx: PlanContext) -> Plan:
    """Sell the whole ledger amount of every exiting strategy, capped by the free balance.

    Strategies sharing a base asset share its free balance, in key order.
    """
    free = dict(ctx.free)
    intents: list[OrderIntent] = []
    skipped: list[Skipped] = []
    for key in sorted(exits):
        strategy = ctx.config[key]
        position = ctx.ledger.position(strategy)
        market = ctx.markets[strategy.symbol]
        price = limit_price(ctx.prices[strategy.symbol], Side.SELL, ctx.increment, market)
        sized = size_sell(position.amount, free.get(strategy.base, ZERO), price, market)
        if not sized.ok:
            skipped.append(
                Skipped(key, strategy.symbol, Side.SELL, Purpose.EXIT, f"exit not sent: {sized.reason}", ZERO, price)
            )
            continue
        free[strategy.base] = free.get(strategy.base, ZERO) - sized.amount
        intents.append(_intent(ctx, strategy, Side.SELL, Purpose.EXIT, sized.amount, price))
    return Plan(tuple(intents), tuple(skipped))


@dataclass(frozen=True)
class EntryPlan:
    """How the account is split when strategies enter: targets, and sell-downs to fund them."""

    mode: ExecutionMode
    account_value: Decimal  # V: quote cash + cost basis of active strategies
    precedence: str | None  # boost: the strategy that receives the idle capital
    idle_share: Decimal  # boost: Σ p of strategies neither active nor entering
    targets: Mapping[str, Decimal]  # notional per entering (and, in boost, active) strategy
    entries: tuple[str, ...]  # strategies to buy, in placement order
    sell_downs: Plan


def precedence_order(strategies: Sequence[Strategy]) -> list[Strategy]:
    """Order by precedence: highest percentage first, ties to the alphabetically first key."""
    return sorted(strategies, key=lambda s: (-s.percentage, s.key))


def plan_entries(mode: ExecutionMode, entries: Sequence[str], ctx: PlanContext) -> EntryPlan:
    """Compute targets for the entering strategies (after the exits have settled).

    In boost mode, also plan the sell-downs of active strategies above their target;
    they must fill before the buys are sized with :func:`size_entries`.
    """
    config = ctx.config
    active = [config[p.strategy] for p in ctx.ledger.long_positions() if p.strategy in config.strategies]
    account_value = ctx.total_quote + ctx.ledger.invested_cost_basis()
    entering = [config[k] for k in entries]
    if not entering:
        return EntryPlan(mode, account_value, None, ZERO, {}, (), Plan((), ()))

    targets: dict[str, Decimal] = {s.key: account_value * s.percentage for s in entering}
    precedence: str | None = None
    idle_share = ZERO
    sell_downs = Plan((), ())
    if mode is ExecutionMode.BOOST:
        involved = {s.key for s in entering} | {s.key for s in active}
        precedence = precedence_order([config[k] for k in involved])[0].key
        idle_share = sum((s.percentage for s in config.strategies.values() if s.key not in involved), ZERO)
        for s in active:
            targets[s.key] = account_value * s.percentage
        targets[precedence] += account_value * idle_share
        sell_downs = _plan_sell_downs(active, targets, account_value, ctx)

    others = [s for s in precedence_order(entering) if s.key != precedence]
    # The precedence strategy buys last: its boost is opportunistic, so it absorbs any shortfall.
    order = [s.key for s in others] + ([precedence] if precedence in {s.key for s in entering} else [])
    return EntryPlan(mode, account_value, precedence, idle_share, targets, tuple(order), sell_downs)


def _plan_sell_downs(
    active: Sequence[Strategy], targets: Mapping[str, Decimal], account_value: Decimal, ctx: PlanContext
) -> Plan:
    free = dict(ctx.free)
    intents: list[OrderIntent] = []
    skipped: list[Skipped] = []
    for strategy in sorted(active, key=lambda s: s.key):
        position = ctx.ledger.position(strategy)
        target = targets[strategy.key]
        if position.cost_basis <= target:
            continue  # never top up an active strategy
        market = ctx.markets[strategy.symbol]
        price = limit_price(ctx.prices[strategy.symbol], Side.SELL, ctx.increment, market)
        wanted = position.amount * (position.cost_basis - target) / position.cost_basis
        sized = size_sell(wanted, free.get(strategy.base, ZERO), price, market)
        notional = sized.amount * price
        reason = sized.reason
        if reason is None and notional < account_value * DUST_SHARE_OF_ACCOUNT:
            reason = f"notional {notional:.2f} is below 0.5% of the account value {account_value:.2f}"
        if reason is not None:
            skipped.append(
                Skipped(
                    strategy.key,
                    strategy.symbol,
                    Side.SELL,
                    Purpose.SELL_DOWN,
                    f"sell-down skipped: {reason}",
                    ZERO,
                    price,
                )
            )
            continue
        free[strategy.base] = free.get(strategy.base, ZERO) - sized.amount
        intents.append(_intent(ctx, strategy, Side.SELL, Purpose.SELL_DOWN, sized.amount, price))
    return Plan(tuple(intents), tuple(skipped))


def size_entries(plan: EntryPlan, ctx: PlanContext) -> Plan:
    """Size the entry buys from fresh balances, in the plan's order, never beyond free cash."""
    remaining = ctx.free.get(ctx.config.quote, ZERO)
    intents: list[OrderIntent] = []
    skipped: list[Skipped] = []
    for key in plan.entries:
        strategy = ctx.config[key]
        market = ctx.markets[strategy.symbol]
        price = limit_price(ctx.prices[strategy.symbol], Side.BUY, ctx.increment, market)
        notional = plan.targets[key]
        sized = size_buy(notional, price, remaining, market)
        if not sized.ok:
            skipped.append(
                Skipped(key, strategy.symbol, Side.BUY, Purpose.ENTRY, f"entry not sent: {sized.reason}", ZERO, price)
            )
            continue
        remaining -= buy_cost_with_fee(sized.amount, price, market)
        intents.append(_intent(ctx, strategy, Side.BUY, Purpose.ENTRY, sized.amount, price, notional))
    return Plan(tuple(intents), tuple(skipped))


def _intent(
    ctx: PlanContext,
    strategy: Strategy,
    side: Side,
    purpose: Purpose,
    amount: Decimal,
    price: Decimal,
    notional: Decimal | None = None,
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id(ctx.cycle_id, purpose, strategy.key),
        cycle_id=ctx.cycle_id,
        strategy=strategy.key,
        symbol=strategy.symbol,
        side=side,
        purpose=purpose,
        amount=amount,
        limit_price=price,
        notional=notional if notional is not None else amount * price,
        signal_keys=ctx.deciding.get(strategy.key, ()),
        reference_price=ctx.prices[strategy.symbol],
    )
