"""Faults injected into cycles on the emulated stack, and what must hold after each.

The stack and the way cycles are driven are the shared harness's (tests/support/harness.py); this module
adds what only the fault suite needs: the case that counts its faults, the invariants and the injectors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.orders import ExchangeOrder
from crypto_bot.domain.signals import parse_signal
from crypto_bot.engine.records import IntentRecord, IntentStatus
from crypto_bot.entrypoints import paper_account
from tests.conftest import ROOT, load_event, paper_environment
from tests.support.harness import RETRY_INTERVAL_SCALE, Pipeline, cycle_stack

CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")


def _dated_now(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Date the README alerts a few seconds apart, in their order, ending a minute before the suite starts.

    Their 2024 times would be expired by the template's signal age limit, which the cases keep on.
    """
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [
        {**a, "time": (newest - timedelta(seconds=len(alerts) - 1 - n)).isoformat().replace("+00:00", "Z")}
        for n, a in enumerate(alerts)
    ]


ALERTS: list[dict[str, Any]] = _dated_now(load_event("alerts/readme_example.jsonl"))
BTC_BUY, ETH_BUY, BTC_SELL, ETH_SELL = ALERTS[0], ALERTS[1], ALERTS[2], ALERTS[3]
BTC_STOP = {**BTC_SELL, "order_comment": "Stop loss", "order_price": "57000"}
# The venue's own balance read, kept before any case patches it, so checking never trips a fault.
_BALANCES = PaperExchange.fetch_balances
ABANDONED = {IntentStatus.UNFILLED, IntentStatus.PARTIALLY_FILLED, IntentStatus.FAILED}


def environment() -> dict[str, str]:
    """Return the functions' settings for fault runs: paper trading priced by the alerts, the rest the template's."""
    return paper_environment(POWERTOOLS_METRICS_NAMESPACE="CryptoBotFaults", POWERTOOLS_LOG_LEVEL="WARNING")


@contextmanager
def fault_stack(**substitutions: str) -> Iterator[Case]:
    """Start the stack as deployed (the template's IncrementPct and Retry), retry waits scaled, Wait states 0 s."""
    with cycle_stack(
        substitutions=substitutions, environment=environment(), retry_interval_scale=RETRY_INTERVAL_SCALE
    ) as pipeline:
        yield Case(pipeline.stack)


class FaultKind(StrEnum):
    """The only two things that count as an injected fault (docs/reliability.md)."""

    RAISED = "error raised"  # a real exception raised into the bot where a call would have answered
    WITHHELD = "response withheld"  # a fill the venue would have given, not given


@dataclass(frozen=True)
class Fault:
    """One fault that fired, recorded at its injection point when it fired."""

    kind: FaultKind
    where: str  # the call or step it hit
    what: str
    symbol: str | None = None  # the market it hit; None for a fault on the whole cycle


@dataclass(frozen=True)
class Violation:
    """One invariant that did not hold after a case; ``symbol`` None means the whole account or cycle."""

    invariant: str
    message: str
    symbol: str | None = None


@dataclass
class Case(Pipeline):
    """One fault case: the shared pipeline, plus the alerts handed to it and how many injected faults fired."""

    sent: list[Mapping[str, Any]] = field(default_factory=list)
    injected: list[Fault] = field(default_factory=list)
    # Copies of an alert delivered again (TradingView resends, SQS redelivers): reported beside the faults, not
    # among them, since nothing is raised or withheld.
    redeliveries: int = 0
    # Set by check_invariants; None until it ran (a case that failed before its checks proves nothing).
    violations: list[Violation] | None = None
    duplicates: int = -1
    lost: int = -1

    def send(self, payload: Mapping[str, Any], *, queue: str = "SignalsQueue", times: int = 1) -> str:
        """Queue an alert as the webhook does, ``times`` times, counting every copy after the first."""
        message_id = super().send(payload, queue=queue, times=times)
        self.redeliveries += times - 1 + (payload in self.sent)
        self.sent.append(payload)
        return message_id

    def urgent(self, payload: Mapping[str, Any], message_id: str, *, name: str | None = None) -> dict[str, Any]:
        """Start a cycle as the urgent queue's pipe does, counting an alert already sent as a redelivery."""
        self.redeliveries += payload in self.sent
        self.sent.append(payload)
        return super().urgent(payload, message_id, name=name)

    def fault(self, kind: FaultKind, where: str, what: str, symbol: str | None = None) -> None:
        """Record a fault where it fires."""
        self.injected.append(Fault(kind, where, what, symbol))

    @property
    def faults(self) -> int:
        return len(self.injected)

    def count(self, kind: FaultKind) -> int:
        """Return how many faults of one kind fired."""
        return sum(f.kind is kind for f in self.injected)

    def survived(self) -> list[bool] | None:
        """Say for each fault whether every invariant that concerns it held; None if the checks never ran.

        An invariant of one market concerns the faults on that market and the faults on the whole cycle;
        an invariant of the whole account or cycle concerns every fault.
        """
        if self.violations is None:
            return None
        return [
            not any(v.symbol is None or f.symbol is None or v.symbol == f.symbol for v in self.violations)
            for f in self.injected
        ]

    def lock_refusals(self, history: list[dict[str, Any]]) -> None:
        """Record each AcquireLock that DynamoDB refused (its condition failed) in an execution's history.

        The refusal is a real ConditionalCheckFailedException raised inside the state machine's own
        DynamoDB call, which no Python code of the case sees; the history is where it is recorded.
        """
        for event in history:
            failed = event.get("taskFailedEventDetails") or {}
            if failed.get("error") == "DynamoDB.ConditionalCheckFailedException":
                self.fault(FaultKind.RAISED, "AcquireLock", "ConditionalCheckFailedException: the lock is held")


def check_invariants(case: Case, *, failed_cycles: int = 0) -> None:
    """Check what must hold after any fault, every invariant; ``failed_cycles`` is how many the case means to fail.

    Every invariant is evaluated (none stops at the first), so that each fault of the case can be judged
    by the invariants that concern it (:meth:`Case.survived`); then the case fails on any violation.
    """
    store, paper, cycles = case.store, case.paper(), case.cycles()
    violations: list[Violation] = []
    records = [r for cycle in cycles for r in store.intents(cycle.cycle_id)]

    # 0 duplicate orders, counted on the venue's side over its whole order history.
    duplicates = venue_duplicates(paper.orders(), records)
    case.duplicates = len(duplicates)
    violations += duplicates
    attempts = {r.intent.client_order_id(n) for r in records for n in range(r.attempt + 1)}
    for order in paper.orders():
        if order.client_order_id not in attempts:
            message = f"venue order {order.id} ({order.client_order_id}) of no intent attempt"
            violations.append(Violation("orphan order", message, order.symbol))

    # 0 lost signals: every distinct alert sent is stored.
    stored = {s.key: s for s in store.recent_signals(limit=10_000)}
    sent = {s.dedupe_key: s for s in (parse_signal(a, CONFIG) for a in case.sent)}
    lost = [s for key, s in sent.items() if key not in stored]
    case.lost = len(lost)
    violations += [Violation("lost signal", f"lost signal {s.dedupe_key}", _symbol(s.strategy)) for s in lost]

    # Every signal in a terminal status, with its reason.
    for signal in stored.values():
        symbol = _symbol(signal.strategy)
        if not signal.status.is_terminal:
            violations.append(Violation("signal settled", f"{signal.key} is still {signal.status.value}", symbol))
        elif not signal.reason:
            message = f"{signal.key} is {signal.status.value} without a reason"
            violations.append(Violation("signal settled", message, symbol))

    # The ledger owns exactly what the exchange holds.
    bases = {s.base: s.symbol for s in CONFIG.strategies.values()}
    for asset, drift in store.load_ledger().drift(_BALANCES(paper)).items():
        if drift != Decimal(0):
            violations.append(Violation("ledger = venue", f"ledger drift of {asset}: {drift}", bases.get(asset)))
    for order in paper.open_orders():
        violations.append(Violation("nothing working", f"order left working: {order.client_order_id}", order.symbol))

    # Failures, and orders given up, are notified.
    failed = [(c.cycle_id, c.error) for c in cycles if c.status == "failed"]
    if len(failed) != failed_cycles:
        message = f"{len(failed)} failed cycles where {failed_cycles} were meant: {failed}"
        violations.append(Violation("failures notified", message))
    messages = "\n".join(case.notifications())
    for cycle in cycles:
        if cycle.status == "failed" and not (cycle.error and cycle.error in messages):
            violations.append(Violation("failures notified", f"failure of {cycle.cycle_id} not notified"))
    for intent in records:
        if intent.status in ABANDONED and not (intent.reason and intent.reason in messages):
            message = f"{intent.intent.intent_id} is {intent.status.value}, not notified: {intent.reason!r}"
            violations.append(Violation("failures notified", message, intent.symbol))
    if case.lock_held():
        violations.append(Violation("lock released", "the cycle lock was not released"))

    case.violations = violations
    assert not violations, "\n".join(f"{v.invariant}: {v.message}" for v in violations)


def venue_duplicates(orders: list[ExchangeOrder], records: list[IntentRecord]) -> list[Violation]:
    """Return the venue's orders that trade something twice, whatever their client ids say.

    Read from the venue's whole order history: a second order of one intent attempt (one client id); an
    intent whose orders filled more than the intent's amount (an attempt re-placed while an earlier one
    was still working or had filled); and an alert traded by intents of more than one cycle (a late
    duplicate decided again). The paper venue refuses a client id it has seen, so only the last two can
    catch a bot that re-places under a new id; all three are counted.
    """
    found: list[Violation] = []
    for client_id, n in Counter(o.client_order_id for o in orders).items():
        if n > 1:
            symbol = next(o.symbol for o in orders if o.client_order_id == client_id)
            found += [Violation("duplicate order", f"{n} venue orders share {client_id}", symbol)] * (n - 1)
    by_prefix = {r.intent.client_order_id(0)[:-5]: r for r in records}
    filled: defaultdict[str, Decimal] = defaultdict(Decimal)
    for order in orders:
        record = by_prefix.get((order.client_order_id or "")[:-5])
        if record is not None:
            filled[record.intent.intent_id] += order.filled
    traded: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    for record in records:
        intent = record.intent
        if filled[intent.intent_id] > intent.amount:
            message = f"{intent.intent_id} filled {filled[intent.intent_id]} on the venue for {intent.amount}"
            found.append(Violation("duplicate order", message, intent.symbol))
        if filled[intent.intent_id] > 0:
            for key in intent.signal_keys:
                traded[(key, intent.strategy, intent.side.value)].add(intent.cycle_id)
    for (key, strategy, side), cycle_ids in traded.items():
        if len(cycle_ids) > 1:
            message = f"alert {key} ({strategy} {side}) traded in {len(cycle_ids)} cycles: {sorted(cycle_ids)}"
            found += [Violation("duplicate order", message, _symbol(strategy))] * (len(cycle_ids) - 1)
    return found


def _symbol(strategy: str | None) -> str | None:
    known = CONFIG.strategies.get(strategy or "")
    return known.symbol if known is not None else None


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

    With ``after`` the call takes effect on the venue first, then the answer is lost. The venue must then
    keep what it did although the step fails, which the deployed paper session does not (see
    :func:`venue_keeps_its_state`), so the venue is switched to one that does.
    """
    original: Patch = getattr(PaperExchange, method)
    calls = Counter[str]()
    if after:
        venue_keeps_its_state(monkeypatch)

    def faulty(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if skip < calls["n"] <= skip + times:
            symbol = kwargs.get("symbol", next((a for a in args if isinstance(a, str) and "/" in a), None))
            if after:
                original(self, *args, **kwargs)
            case.fault(FaultKind.RAISED, f"PaperExchange.{method}", f"{type(error).__name__}: {error}", symbol)
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PaperExchange, method, faulty)


def withhold_fills(monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    """Make every limit order rest unfilled where the venue would fill it: a market without counterparties.

    Each order whose fill is withheld is one fault, recorded the first time the venue withholds it.
    """
    marketable = PaperExchange._marketable
    withheld: set[str] = set()

    def no_counterparty(order: Any, last: Decimal) -> bool:
        if marketable(order, last) and order.id not in withheld:
            withheld.add(order.id)
            what = f"no fill for {order.side.value} {order.amount} at {order.price} (last {last})"
            case.fault(FaultKind.WITHHELD, "PaperExchange.create_limit_order", what, order.symbol)
        return False

    monkeypatch.setattr(PaperExchange, "_marketable", staticmethod(no_counterparty))


def withhold_part_of_fills(monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    """Record each fill the venue gives only in part (``partial_fill_ratio``): the rest is withheld."""
    fill = PaperExchange._fill

    def partial(self: PaperExchange, order: Any, amount: Decimal, price: Decimal, *, taker: bool) -> None:
        rest = order.amount - order.filled - amount
        if rest > 0:
            what = f"{amount} of {order.amount - order.filled} filled, {rest} withheld"
            case.fault(FaultKind.WITHHELD, "PaperExchange.create_limit_order", what, order.symbol)
        fill(self, order, amount, price, taker=taker)

    monkeypatch.setattr(PaperExchange, "_fill", partial)


@contextmanager
def _venue_session(store: PaperStateStore, factory: Callable[[], PaperExchange]) -> Iterator[PaperExchange]:
    """Keep what happened on the paper venue even when the Lambda step then fails.

    The deployed paper session drops a failed step's changes, which is right for a dry run but would make an
    order accepted before a lost answer vanish. A real exchange keeps it, so the fault suite's venue does
    too, in the cases whose fault takes effect before it raises.
    """
    state, version = store.load()
    exchange = factory() if state is None else PaperExchange.from_state(state)
    before = None if state is None else exchange.to_state()
    try:
        yield exchange
    finally:
        after = exchange.to_state()
        if after != before:
            store.save(after, version)


def venue_keeps_its_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the case a venue whose state outlives a failing step (in place of the deployed paper session).

    Patched where the composition root's paper account calls it: a patch of the adapter module's own name would
    leave the account holding the deployed session, and the lost-answer cases would test a venue that forgets.
    """
    monkeypatch.setattr(paper_account, "paper_session", _venue_session)


def seed_account(case: Case, **settings: Any) -> None:
    """Create the paper account before any cycle, with venue settings (partial fills, fees)."""
    case.seed_account(**settings)
