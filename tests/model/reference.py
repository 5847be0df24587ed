"""An independent reference model of the allocation rules, written from the spec alone.

It shares no code with ``crypto_bot``: exact arithmetic with :class:`fractions.Fraction`,
no lot sizes, no fees, fills at the market price. Each strategy trades its own symbol,
so a strategy's key also names its market.

Rules modelled (one cycle):

1. Netting: signals apply in time order; a strategy ends in the state of its last
   signal (buy → long, sell → flat). A strategy that flips and flips back trades nothing.
2. Sells first: a long strategy that ends flat sells its whole holding.
3. V = cash + Σ cost basis of the strategies still long, after the sells.
4. Incoming = strategies flat after the sells that end the cycle long.
5. multi: each incoming strategy buys V × p.
6. boost (only with at least one incoming strategy): P = highest p among incoming ∪
   active (ties → alphabetically first key); A = Σ p of the strategies neither active
   nor incoming; target = V × p, plus V × A for P. Active strategies above target sell
   down to it (skipped under 1 USD or under 0.5% of V), never topped up; incoming
   strategies buy their target.
7. Orders under 1 USD are not sent.

Where the spec does not decide the outcome (not enough cash for the buys, an order
within rounding distance of a threshold, an order under 1 USD that the spec does not
say how to treat), the cycle is marked ``ambiguous`` with the reason; the simulation
goes on, but later cycles depend on that guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

MIN_ORDER_COST = Fraction(1)
"""Orders under this notional (in the quote currency) are not sent."""

MIN_SELL_DOWN_SHARE = Fraction(5, 1000)
"""A boost sell-down under this share of V is skipped."""

THRESHOLD_MARGIN = Fraction(5, 100)
"""An order this close to a threshold may land on either side once amounts are rounded to lots."""

CYCLE_LENGTH = timedelta(hours=8)
CYCLE_OFFSET = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ModelAlert:
    """One alert: ``key`` is the strategy (and its market), ``price`` the alert's price."""

    time: datetime
    key: str
    buy: bool
    price: Fraction
    stop: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The account right after one cycle, valued at that cycle's prices."""

    at: datetime
    urgent: bool
    cash: Fraction
    equity: Fraction
    longs: frozenset[str]
    weights: Mapping[str, Fraction]
    ambiguous: str | None = None
    notes: frozenset[str] = frozenset()
    """Which rules the cycle exercised (for coverage statistics), e.g. ``sell-down``."""

    @property
    def cash_weight(self) -> Fraction:
        return self.cash / self.equity

    def weight(self, key: str) -> Fraction:
        return self.weights.get(key, Fraction(0))


@dataclass
class _Account:
    cash: Fraction
    amount: dict[str, Fraction] = field(default_factory=dict)
    cost_basis: dict[str, Fraction] = field(default_factory=dict)

    @property
    def longs(self) -> set[str]:
        return set(self.amount)

    def buy(self, key: str, notional: Fraction, price: Fraction) -> None:
        self.cash -= notional
        self.amount[key] = notional / price
        self.cost_basis[key] = notional

    def sell_all(self, key: str, price: Fraction) -> None:
        self.cash += self.amount.pop(key) * price
        del self.cost_basis[key]

    def sell_part(self, key: str, amount: Fraction, price: Fraction) -> None:
        held = self.amount[key]
        self.cash += amount * price
        self.cost_basis[key] -= amount / held * self.cost_basis[key]
        self.amount[key] = held - amount


def tick_at_or_after(moment: datetime) -> datetime:
    """The first schedule tick (00:01, 08:01, 16:01 UTC) at or after ``moment``."""
    since = moment.astimezone(UTC) - _EPOCH - CYCLE_OFFSET
    tick = _EPOCH + (since // CYCLE_LENGTH) * CYCLE_LENGTH + CYCLE_OFFSET
    return tick if tick >= moment else tick + CYCLE_LENGTH


def group_cycles(alerts: Sequence[ModelAlert]) -> list[tuple[datetime, bool, list[ModelAlert]]]:
    """Group alerts into cycles: regular ones by tick, each stop-loss instant on its own.

    At the same instant a stop-loss cycle runs before the regular one.
    """
    regular: dict[datetime, list[ModelAlert]] = {}
    stops: dict[datetime, list[ModelAlert]] = {}
    for alert in alerts:
        if alert.stop:
            stops.setdefault(alert.time, []).append(alert)
        else:
            regular.setdefault(tick_at_or_after(alert.time), []).append(alert)
    # The rule: a strategy is decided by all its alerts that have arrived, in time order. A stop-loss cycle at T
    # therefore also takes the stopped strategy's regular alerts timed at or before T whose tick is not yet past.
    for at in sorted(stops):
        keys = {a.key for a in stops[at]}
        for tick in list(regular):
            if tick < at:
                continue
            early = [a for a in regular[tick] if a.key in keys and a.time <= at]
            regular[tick] = [a for a in regular[tick] if a not in early]
            stops[at] = early + stops[at]
    cycles = [(at, False, batch) for at, batch in regular.items() if batch]
    cycles += [(at, True, b) for at, b in stops.items()]
    return sorted(cycles, key=lambda c: (c[0], not c[1]))


def prices_at(alerts: Sequence[ModelAlert], at: datetime) -> dict[str, Fraction]:
    """The last alert price per market with a time at or before ``at``."""
    latest: dict[str, Fraction] = {}
    for alert in sorted(alerts, key=lambda a: a.time):
        if alert.time <= at:
            latest[alert.key] = alert.price
    return latest


def net_signals(batch: Sequence[ModelAlert], longs: set[str], notes: set[str] | None = None) -> set[str]:
    """The strategies long at the end of the cycle (rule 1); ``notes`` collects what netting did."""
    desired = {key: True for key in longs}
    changes: dict[str, int] = {}
    for alert in sorted(batch, key=lambda a: a.time):
        if desired.get(alert.key, False) == alert.buy:
            if notes is not None:
                notes.add("redundant signal")
        else:
            changes[alert.key] = changes.get(alert.key, 0) + 1
        desired[alert.key] = alert.buy
    if notes is not None and any(n >= 2 for n in changes.values()):
        notes.add("flip and back")
    return {key for key, long in desired.items() if long}


def _near(value: Fraction, threshold: Fraction) -> bool:
    return abs(value - threshold) <= THRESHOLD_MARGIN


def run_cycle(
    account: _Account,
    batch: Sequence[ModelAlert],
    percentages: Mapping[str, Fraction],
    prices: Mapping[str, Fraction],
    boost: bool,
    notes: set[str] | None = None,
) -> str | None:
    """Apply one cycle to ``account``; return why the result is ambiguous, if it is."""
    notes = set() if notes is None else notes
    doubts: list[str] = []
    start = account.longs
    end = net_signals(batch, start, notes)
    for key in sorted(start - end):
        value = account.amount[key] * prices[key]
        if value < MIN_ORDER_COST + THRESHOLD_MARGIN:
            doubts.append(f"closing sell of {key} is worth only {float(value):.4f}")
        account.sell_all(key, prices[key])
    active = start & end
    incoming = end - start
    value_v = account.cash + sum((account.cost_basis[k] for k in active), Fraction(0))

    buys: dict[str, Fraction]
    if not boost:
        buys = {key: value_v * percentages[key] for key in incoming}
    elif incoming:
        holders = incoming | active
        precedence = min(holders, key=lambda k: (-percentages[k], k))
        if sum(1 for k in holders if percentages[k] == percentages[precedence]) > 1:
            notes.add("precedence tie")
        idle = sum((p for k, p in percentages.items() if k not in holders), Fraction(0))
        target = {key: value_v * percentages[key] for key in holders}
        target[precedence] += value_v * idle
        for key in sorted(active):
            basis = account.cost_basis[key]
            if basis <= target[key]:
                continue  # never top up
            amount = account.amount[key] * (basis - target[key]) / basis
            notional = amount * prices[key]
            floor = max(MIN_ORDER_COST, value_v * MIN_SELL_DOWN_SHARE)
            if _near(notional, floor):
                doubts.append(f"sell-down of {key} ({float(notional):.4f}) is at a threshold")
            if notional >= floor:
                notes.add("sell-down")
                account.sell_part(key, amount, prices[key])
            else:
                notes.add("sell-down skipped")
        buys = {key: target[key] for key in incoming}
    else:
        buys = {}
        if start - end:
            notes.add("sells only")

    if sum(buys.values(), Fraction(0)) > account.cash:
        doubts.append(f"buys need {float(sum(buys.values())):.4f}, cash is {float(account.cash):.4f}")
    for key in sorted(buys):
        if buys[key] < MIN_ORDER_COST + THRESHOLD_MARGIN:
            doubts.append(f"buy of {key} is worth only {float(buys[key]):.4f}")
            if buys[key] < MIN_ORDER_COST:
                continue
        account.buy(key, buys[key], prices[key])
    return "; ".join(doubts) or None


def simulate(
    percentages: Mapping[str, Fraction],
    alerts: Sequence[ModelAlert],
    *,
    boost: bool,
    cash: Fraction,
) -> list[Snapshot]:
    """Run every cycle the alerts make and return the account after each one."""
    account = _Account(cash=cash)
    snapshots: list[Snapshot] = []
    for at, urgent, batch in group_cycles(alerts):
        prices = prices_at(alerts, at)
        notes = {"stop-loss cycle"} if urgent else set()
        doubt = run_cycle(account, batch, percentages, prices, boost, notes)
        values = {key: amount * prices[key] for key, amount in account.amount.items()}
        equity = account.cash + sum(values.values(), Fraction(0))
        snapshots.append(
            Snapshot(
                at=at,
                urgent=urgent,
                cash=account.cash,
                equity=equity,
                longs=frozenset(account.longs),
                weights={key: value / equity for key, value in values.items()},
                ambiguous=doubt,
                notes=frozenset(notes),
            )
        )
    return snapshots
