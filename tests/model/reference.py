"""An independent reference model of the allocation rules, written from docs/allocation.md alone.

It shares no code with ``crypto_bot``: exact arithmetic with :class:`fractions.Fraction`. Each
strategy trades its own symbol, so a strategy's key also names its market. A market (:class:`ModelMarket`)
has a lot size, a tick size, a minimum order cost (the minimum amount is one lot) and one fee rate;
fills happen at the last price, as a taker. Fees are charged in the quote, or (``fee_in_base``) in the
asset received: the base on buys, the quote on sells.

Rules modelled (one cycle):

1. Netting: signals apply in time order; a strategy ends in the state of its last
   signal (buy → long, sell → flat). A strategy that flips and flips back trades nothing.
2. Exits first: a long strategy that ends flat sells its whole holding, truncated to the lot;
   the remainder is swept out of the strategy as dust (it stays in the account), so it is flat.
3. V = quote cash + Σ cost basis (fees included) of the strategies still long, after the exits.
4. Entries = strategies flat after the exits that end the cycle long.
5. multi: each entry's target is V × p.
6. boost (only with at least one entry): P = highest p among entries ∪ active (ties →
   alphabetically first key); A = Σ p of the strategies neither active nor entering;
   target = V × p, plus V × A for P. Active strategies above target sell
   ``holding × (cost basis − target) / cost basis`` (truncated to the lot), skipped under the
   market minimum or under 0.5% of V; never topped up. Selling releases the same share of the cost basis.
7. A buy's limit is last × (1 + increment), a sell's last × (1 − increment), each rounded to the tick.
   A buy's amount is target / (limit × (1 + fee)), capped by the free quote (cost plus fee), truncated
   to the lot; the precedence strategy buys last. An order under one lot or under the minimum cost
   (at its limit) is not sent.

Where the spec does not decide the outcome, the cycle is marked ``ambiguous`` with the reason:
cash too short for a buy other than the precedence one (the spec orders only that one), a price
exactly half a tick from two ticks, a sell-down whose worth is on either side of its threshold
depending on the price it is valued at, a limit rounded to the wrong side of the last price (the
order rests, and the spec leaves the rest to re-pricing), and a closing sell above one lot but under
the minimum cost (the spec calls it too small to sell and sweeps it; ``Ledger.sweep_dust`` looks at
the lot and the minimum amount only). The caller may then
:meth:`ModelAccount.adopt` the engine's state and go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

MIN_SELL_DOWN_SHARE = Fraction(5, 1000)
"""A boost sell-down under this share of V is skipped."""

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
class ModelMarket:
    """A market's rules: lot and tick sizes, the minimum order cost, and the fee rate (maker = taker)."""

    lot: Fraction | None = None
    """None: amounts are not truncated (the worked example's continuous market)."""
    tick: Fraction = Fraction(1, 100)
    min_cost: Fraction = Fraction(1)
    fee: Fraction = Fraction(0)


@dataclass(frozen=True)
class Snapshot:
    """The account right after one cycle, valued at that cycle's prices."""

    at: datetime
    urgent: bool
    cash: Fraction
    equity: Fraction
    longs: frozenset[str]
    amounts: Mapping[str, Fraction]
    cost_basis: Mapping[str, Fraction]
    weights: Mapping[str, Fraction]
    prices: Mapping[str, Fraction]
    ambiguous: str | None = None
    notes: frozenset[str] = frozenset()
    """Which rules the cycle exercised (for coverage statistics), e.g. ``sell-down``."""

    @property
    def cash_weight(self) -> Fraction:
        return self.cash / self.equity

    def weight(self, key: str) -> Fraction:
        return self.weights.get(key, Fraction(0))


def floor_to(value: Fraction, step: Fraction | None) -> Fraction:
    return value if step is None else (value // step) * step


def _round_to(value: Fraction, step: Fraction, doubts: list[str], what: str) -> Fraction:
    steps = value / step
    if steps - (steps // 1) == Fraction(1, 2):
        doubts.append(f"{what} {float(value)} is exactly half a tick from two ticks")
    return ((steps + Fraction(1, 2)) // 1) * step


@dataclass
class ModelAccount:
    """Quote cash, each long strategy's holding and cost basis, and dust left in the account by exits."""

    cash: Fraction
    amount: dict[str, Fraction] = field(default_factory=dict)
    cost_basis: dict[str, Fraction] = field(default_factory=dict)
    dust: dict[str, Fraction] = field(default_factory=dict)

    @property
    def longs(self) -> set[str]:
        return set(self.amount)

    def adopt(self, cash: Fraction, amount: Mapping[str, Fraction], cost_basis: Mapping[str, Fraction]) -> None:
        """Take the engine's state after a cycle the rules do not decide (dust is kept: it is below one lot)."""
        self.cash = cash
        self.amount = dict(amount)
        self.cost_basis = dict(cost_basis)

    def snapshot(
        self, at: datetime, urgent: bool, prices: Mapping[str, Fraction], doubt: str | None, notes: set[str]
    ) -> Snapshot:
        values = {key: amount * prices[key] for key, amount in self.amount.items()}
        dust = sum((amount * prices[key] for key, amount in self.dust.items()), Fraction(0))
        equity = self.cash + sum(values.values(), Fraction(0)) + dust
        return Snapshot(
            at=at,
            urgent=urgent,
            cash=self.cash,
            equity=equity,
            longs=frozenset(self.amount),
            amounts=dict(self.amount),
            cost_basis=dict(self.cost_basis),
            weights={key: value / equity for key, value in values.items()},
            prices=dict(prices),
            ambiguous=doubt,
            notes=frozenset(notes),
        )


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


@dataclass
class _Cycle:
    """One cycle's context: the account it changes, the cycle's prices and markets, and what it noted."""

    account: ModelAccount
    prices: Mapping[str, Fraction]
    markets: Mapping[str, ModelMarket]
    increment: Fraction
    fee_in_base: bool
    notes: set[str]
    doubts: list[str] = field(default_factory=list)

    def sell_limit(self, key: str) -> Fraction:
        last = self.prices[key]
        limit = _round_to(last * (1 - self.increment), self.markets[key].tick, self.doubts, f"sell limit of {key}")
        if limit > last:
            # Rounded above the last price, the order rests; the spec leaves what then fills to the re-pricing.
            self.doubts.append(f"sell limit of {key} is rounded above the last price")
        return limit

    def sell(self, key: str, amount: Fraction) -> None:
        account, held = self.account, self.account.amount[key]
        account.cash += amount * self.prices[key] * (1 - self.markets[key].fee)  # a sell's fee is always in the quote
        account.cost_basis[key] -= account.cost_basis[key] * amount / held
        account.amount[key] = held - amount

    def exit(self, key: str) -> None:
        account, market = self.account, self.markets[key]
        amount = floor_to(account.amount[key], market.lot)
        if amount > 0 and amount * self.sell_limit(key) < market.min_cost:
            self.doubts.append(f"closing sell of {key} is above one lot but under the minimum cost")
            return
        if amount > 0:
            self.sell(key, amount)
            self.notes.add("exit")
        if account.amount[key] > 0:
            self.notes.add("dust swept")
            account.dust[key] = account.dust.get(key, Fraction(0)) + account.amount[key]
        del account.amount[key], account.cost_basis[key]

    def sell_down(self, key: str, target: Fraction, value_v: Fraction) -> None:
        basis, market = self.account.cost_basis[key], self.markets[key]
        if basis <= target:
            return  # never top up
        amount = floor_to(self.account.amount[key] * (basis - target) / basis, market.lot)
        limit = self.sell_limit(key)
        floor = value_v * MIN_SELL_DOWN_SHARE
        if amount > 0 and (amount * limit < floor) != (amount * self.prices[key] < floor):
            self.doubts.append(f"sell-down of {key} is worth more or less than 0.5% of V by the price it is valued at")
        if amount > 0 and amount * limit >= market.min_cost and amount * limit >= floor:
            self.notes.add("sell-down")
            self.sell(key, amount)
        else:
            self.notes.add("sell-down skipped")

    def buy(self, key: str, target: Fraction, remaining: Fraction, precedence: str | None) -> Fraction:
        """Buy ``key`` toward ``target``; return the free quote left for the next buy."""
        account, market, last = self.account, self.markets[key], self.prices[key]
        limit = _round_to(last * (1 + self.increment), market.tick, self.doubts, f"buy limit of {key}")
        if limit < last:
            self.doubts.append(f"buy limit of {key} is rounded below the last price")
        per_unit = limit * (1 + market.fee)
        affordable = max(remaining, Fraction(0)) / per_unit
        wanted = target / per_unit
        if affordable < wanted:
            self.notes.add("buy capped by cash")
            if key != precedence:
                self.doubts.append(f"cash is short for {key}, which is not the precedence strategy")
        amount = floor_to(min(wanted, affordable), market.lot)
        if amount <= 0 or amount * limit < market.min_cost:
            self.notes.add("buy under the minimum")
            return remaining
        cost = amount * last
        if self.fee_in_base:
            account.cash -= cost
            account.amount[key] = amount * (1 - market.fee)
            account.cost_basis[key] = cost
        else:
            account.cash -= cost * (1 + market.fee)
            account.amount[key] = amount
            account.cost_basis[key] = cost * (1 + market.fee)
        return remaining - amount * per_unit


def run_cycle(
    account: ModelAccount,
    batch: Sequence[ModelAlert],
    percentages: Mapping[str, Fraction],
    prices: Mapping[str, Fraction],
    boost: bool,
    *,
    markets: Mapping[str, ModelMarket],
    increment: Fraction = Fraction(0),
    fee_in_base: bool = False,
    notes: set[str] | None = None,
) -> str | None:
    """Apply one cycle to ``account``; return why the result is ambiguous, if it is."""
    cycle = _Cycle(account, prices, markets, increment, fee_in_base, set() if notes is None else notes)
    start = account.longs
    end = net_signals(batch, start, cycle.notes)
    for key in sorted(start - end):
        cycle.exit(key)
    active = start & end
    incoming = end - start
    value_v = account.cash + sum((account.cost_basis[k] for k in active), Fraction(0))

    targets: dict[str, Fraction] = {key: value_v * percentages[key] for key in incoming}
    precedence: str | None = None
    if boost and incoming:
        holders = incoming | active
        precedence = min(holders, key=lambda k: (-percentages[k], k))
        if sum(1 for k in holders if percentages[k] == percentages[precedence]) > 1:
            cycle.notes.add("precedence tie")
        idle = sum((p for k, p in percentages.items() if k not in holders), Fraction(0))
        targets = {key: value_v * percentages[key] for key in holders}
        targets[precedence] += value_v * idle
        for key in sorted(active):
            cycle.sell_down(key, targets[key], value_v)
    elif not incoming and start - end:
        cycle.notes.add("sells only")

    # Buys: the precedence strategy last; the spec does not order the others, so none of them may be short.
    order = sorted((k for k in incoming if k != precedence), key=lambda k: (-percentages[k], k))
    order += [precedence] if precedence in incoming else []
    remaining = account.cash
    for key in order:
        remaining = cycle.buy(key, targets[key], remaining, precedence)
    return "; ".join(cycle.doubts) or None


def simulate(
    percentages: Mapping[str, Fraction],
    alerts: Sequence[ModelAlert],
    *,
    boost: bool,
    cash: Fraction,
    markets: Mapping[str, ModelMarket] | None = None,
    increment: Fraction = Fraction(0),
    fee_in_base: bool = False,
    adopt: Callable[[int, Snapshot], tuple[Fraction, dict[str, Fraction], dict[str, Fraction]] | None] | None = None,
) -> list[Snapshot]:
    """Run every cycle the alerts make and return the account after each one.

    After an ambiguous cycle, ``adopt(index, snapshot)`` may return the engine's cash, amounts and
    cost bases for the model to go on from.
    """
    chosen = markets or {key: ModelMarket() for key in percentages}
    account = ModelAccount(cash=cash)
    snapshots: list[Snapshot] = []
    for index, (at, urgent, batch) in enumerate(group_cycles(alerts)):
        prices = prices_at(alerts, at)
        notes = {"stop-loss cycle"} if urgent else set()
        doubt = run_cycle(
            account,
            batch,
            percentages,
            prices,
            boost,
            markets=chosen,
            increment=increment,
            fee_in_base=fee_in_base,
            notes=notes,
        )
        snapshot = account.snapshot(at, urgent, prices, doubt, notes)
        snapshots.append(snapshot)
        if doubt is not None and adopt is not None:
            state = adopt(index, snapshot)
            if state is not None:
                account.adopt(*state)
    return snapshots
