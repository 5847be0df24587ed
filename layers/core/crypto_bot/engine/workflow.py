"""The trade cycle as steps: intake, open, plan a phase, place, reconcile, finalize.

These functions are the only implementation of a cycle. The deployed Step Functions
workflow calls them one Lambda per step; the in-process engine (replay, demo) calls
them in the same order. Every step reads what it needs from the store and writes
back what it did, so any step can be retried or re-run without trading twice:

* planning a phase twice returns the intents stored the first time;
* an intent's client order id depends only on its intent id and attempt number,
  and a placement whose outcome is unknown is looked up on the exchange before it
  is sent again;
* fills are booked as the difference between the order's stored state and its
  fresh state, so reading an order twice books nothing twice.

Placing an intent's order and chasing what stays unfilled (repricing, the stop-loss
market-order fallback) is :mod:`crypto_bot.engine.chase`; booking the fills it brings
into the ledger stays here, in ``_book``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from crypto_bot.domain.allocation import (
    EntryPlan,
    Netting,
    Plan,
    PlanContext,
    SignalStatus,
    net_signals,
    plan_entries,
    plan_exits,
    size_entries,
)
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.controls import (
    ACCOUNT,
    Controls,
    Event,
    Flatten,
    Marks,
    check_guards,
    end_cooldowns,
    start_cooldown,
)
from crypto_bot.domain.errors import (
    MISSING,
    ConfigError,
    ExchangeError,
    FieldProblem,
    SignalRejected,
    StoreConflict,
)
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ZERO, parse_decimal, plain
from crypto_bot.domain.orders import Balance, ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose, Skipped, intent_id
from crypto_bot.domain.signals import DEFAULT_STOP_LOSS_REGEX, Signal, is_test_alert, parse_signal
from crypto_bot.domain.timeframe import Timeframe, tradingview_interval_seconds
from crypto_bot.engine.chase import ChaseRules, OrderChase
from crypto_bot.engine.ports import Exchange, Store
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase, SignalRecord
from crypto_bot.engine.retry import NO_RETRY, RetryPolicy, call_with_retry
from crypto_bot.engine.stops import STOP_FILLED, StopKeeper

# TradingView stamps {{timenow}} from its servers' clocks; more than this ahead of ours is not a real alert.
MAX_CLOCK_SKEW = timedelta(minutes=2)

# The longest alert body accepted. TradingView's alerts are a few hundred characters; a DynamoDB item holds 400 KB.
MAX_ALERT_CHARS = 64 * 1024

# The reason of an alert marked {"test": true} (crypto_bot.domain.signals.is_test_alert): stored ignored, never netted.
TEST_ALERT_REASON = 'a test alert ("test": true): recorded, never traded'


@dataclass(frozen=True)
class WorkflowSettings:
    mode: ExecutionMode
    increment: Decimal
    fill_timeout: timedelta = timedelta(seconds=60)  # an order still open this long is cancelled and chased
    max_reprice_attempts: int = 2  # chases after the first placement
    max_signal_age: timedelta | None = None  # older signals expire instead of trading
    stop_loss_regex: re.Pattern[str] = DEFAULT_STOP_LOSS_REGEX
    retry: RetryPolicy = field(default_factory=lambda: NO_RETRY)  # in-step retries of reads
    # The stack's timeframe: an alert whose optional `interval` names another chart is refused. None: unchecked.
    timeframe: Timeframe | None = None
    max_clock_skew: timedelta = MAX_CLOCK_SKEW  # an alert dated further ahead of the clock is refused


@dataclass(frozen=True)
class Intake:
    """What became of one received alert."""

    record: SignalRecord
    duplicate: bool


@dataclass
class Workflow:
    """The steps of a cycle over one store, one exchange and one strategy config."""

    store: Store
    exchange: Exchange
    config: StrategyConfig
    settings: WorkflowSettings
    clock: Callable[[], datetime]
    sleep: Callable[[float], None] = lambda _seconds: None
    _markets: dict[str, Market] = field(default_factory=dict)

    # -- intake ------------------------------------------------------------------

    def receive(
        self, body: str | Mapping[str, Any], *, message_id: str | None = None, queued_at: datetime | None = None
    ) -> Intake:
        """Validate and persist one alert, once. A bad alert is stored as rejected with its reason.

        ``queued_at`` is when the webhook queued the delivery (the time it was received), kept beside the
        time this stores it. A second delivery of an alert already stored (TradingView resends, or the same
        alert fired twice) is not traded again, and it is recorded as ignored under its own message id, so
        the id the webhook answered that POST with can be found.
        """
        now = self.clock()
        payload: object = body
        if isinstance(body, str) and len(body) > MAX_ALERT_CHARS:
            # Found by the webhook fuzzer: a 1 MB alert fits in SQS but not in a DynamoDB item (400 KB), so storing
            # it raised a StoreError that failed Collect for the whole queue, cycle after cycle. Refuse it here,
            # keeping only its start.
            problem = FieldProblem("body", MISSING, f"is {len(body)} characters; an alert may have {MAX_ALERT_CHARS}")
            return self._reject(body[:200], [problem], message_id, queued_at)
        if isinstance(body, str):
            try:
                payload = json.loads(body)
            except (json.JSONDecodeError, RecursionError) as e:
                reason = f"is not JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else "is nested too deeply"
                return self._reject(body[:200], [FieldProblem("body", body[:80], reason)], message_id, queued_at)
        if _unencodable(payload):
            # Found by the webhook fuzzer: JSON may escape a lone surrogate ("\ud800"), which no UTF-8 store or
            # hash accepts; the alert failed Collect instead of being rejected. It is kept in its escaped form.
            problem = FieldProblem("body", MISSING, "holds an unpaired surrogate (\\ud800-\\udfff): not valid Unicode")
            return self._reject(json.dumps(payload, default=str)[:200], [problem], message_id, queued_at)
        if is_test_alert(payload):
            return self._record(payload, SignalStatus.IGNORED, TEST_ALERT_REASON, message_id, queued_at, prefix="test-")
        try:
            signal = parse_signal(payload, self.config, stop_loss_regex=self.settings.stop_loss_regex)
        except SignalRejected as e:
            return self._reject(payload, list(e.problems), message_id, queued_at)
        problems = self._implausible(signal, now)
        if problems:
            return self._reject(payload, problems, message_id, queued_at)
        record = signal_record(signal, now, message_id, queued_at)
        if self.store.add_signal(record):
            return Intake(record, duplicate=False)
        original = self.store.get_signal(record.key) or record
        if message_id is not None and original.message_id not in (None, message_id):
            # Another delivery than the stored one (an SQS redelivery keeps its message id and is not recorded).
            reason = (
                f"a duplicate of signal {original.message_id} (the same strategy, action, time, price, comment "
                f"and order id), received {_when(original)}: not traded twice"
            )
            text = json.dumps(payload, sort_keys=True, default=str)
            copy = replace(
                signal_record(signal, now, message_id, queued_at),
                key="duplicate-" + hashlib.sha256(f"{message_id}|{text}".encode()).hexdigest()[:40],
                status=SignalStatus.IGNORED,
                reason=reason,
            )
            self.store.add_signal(copy)  # False: this delivery's copy was recorded already (a redelivery)
        return Intake(original, duplicate=True)

    def _implausible(self, signal: Signal, now: datetime) -> list[FieldProblem]:
        """Find what a well-formed alert says that cannot be true here: a future time, another chart's interval."""
        problems = []
        ahead = signal.time - now
        if ahead > self.settings.max_clock_skew:
            problems.append(
                FieldProblem(
                    "time",
                    signal.payload.get("time"),
                    f"is {_age(ahead)} ahead of the clock ({now:%Y-%m-%dT%H:%M:%SZ}); "
                    f"at most {_age(self.settings.max_clock_skew)} of clock skew is accepted",
                )
            )
        timeframe = self.settings.timeframe
        if signal.interval is not None and timeframe is not None:
            seconds = tradingview_interval_seconds(signal.interval)
            if seconds != timeframe.seconds:
                what = "is not a TradingView interval" if seconds is None else "is another chart's timeframe"
                problems.append(
                    FieldProblem(
                        "interval",
                        signal.interval,
                        f"{what}: this stack trades the {timeframe.label} timeframe "
                        f"({timeframe.seconds // 60} in TradingView's {{{{interval}}}})",
                    )
                )
        return problems

    def _reject(
        self, payload: object, problems: list[FieldProblem], message_id: str | None, queued_at: datetime | None
    ) -> Intake:
        reason = "; ".join(str(p) for p in problems)
        return self._record(payload, SignalStatus.REJECTED, reason, message_id, queued_at, prefix="rejected-")

    def _record(
        self,
        payload: object,
        status: SignalStatus,
        reason: str,
        message_id: str | None,
        queued_at: datetime | None,
        *,
        prefix: str,
    ) -> Intake:
        """Store a delivery that will not trade, once per delivery (keyed by its message id and body)."""
        text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
        key = prefix + hashlib.sha256(f"{message_id}|{text}".encode()).hexdigest()[:40]
        stored: Mapping[str, Any] | str = payload if isinstance(payload, Mapping) else text
        record = SignalRecord(
            key=key,
            status=status,
            received_at=self.clock(),
            payload=stored,
            reason=reason,
            message_id=message_id,
            queued_at=queued_at,
        )
        added = self.store.add_signal(record)
        return Intake(record, duplicate=not added)

    # -- open a cycle ----------------------------------------------------------------

    def open_cycle(self, cycle_id: str, at: datetime, *, urgent: bool) -> CycleRecord:
        """Take the pending signals and net each strategy's in time order.

        A scheduled cycle takes every pending signal. An urgent cycle takes every pending signal of each
        strategy that has a stop loss waiting, so a stop decides its strategy together with the entry that
        arrived before it instead of leaving that entry for the next cycle to buy. A signal older than one
        a cycle already took for its strategy arrived out of order and is ignored. Opening the same cycle
        again returns the stored record unchanged.
        """
        existing = self.store.get_cycle(cycle_id)
        if existing is not None:
            return existing
        now = self.clock()
        ledger = self.store.load_ledger()
        # A protective stop that filled on the venue since the last cycle is that strategy's exit: booked first,
        # so the signals below are netted against the strategy as it really is now.
        stop_notes = self._stops().check(ledger) if any(p.stop for p in ledger.positions.values()) else {}
        if stop_notes:
            self.store.save_ledger(ledger)
        taken: list[SignalRecord] = []
        for record in cycle_signals(self.store.pending_signals(), urgent=urgent):
            when = record.time or record.received_at
            age = now - when
            strategy = self.config.strategies.get(record.strategy or "")
            decided = ledger.position(strategy).decided_through if strategy is not None else None
            if self.settings.max_signal_age is not None and age > self.settings.max_signal_age:
                record.status, record.cycle_id = SignalStatus.EXPIRED, cycle_id
                record.reason = f"expired: {_age(age)} old, more than the allowed {_age(self.settings.max_signal_age)}"
                self.store.put_signal(record)
                continue
            if decided is not None and when < decided:
                record.status, record.cycle_id = SignalStatus.IGNORED, cycle_id
                record.reason = (
                    f"out of order: its time {when.isoformat()} is before {decided.isoformat()}, "
                    "the time of a newer alert that already decided this strategy"
                )
                self.store.put_signal(record)
                continue
            taken.append(record)
        signals = [self._signal(r) for r in taken]
        is_long = {key: ledger.position(s).is_long for key, s in self.config.strategies.items()}
        netting = net_signals(signals, is_long)
        if self.config.guards.account_drawdown is not None or self.config.guards.strategy_drawdown is not None:
            # Marked before the entries are decided, so a fall since the last cycle holds this cycle's entries.
            # A read that fails leaves the guards as they were: it must never hold up an exit or a stop loss.
            try:
                balances: Mapping[str, Balance] | None = self._read(self.exchange.fetch_balances)
            except ExchangeError:
                balances = None
            self._check_guards(balances, at, cycle_id)
        controls = self.store.get_controls()
        netting = _hold_entries(netting, signals, controls)
        flatten = controls.flatten
        if flatten is not None:
            # The operator's flatten: every long strategy it covers exits now, with or without a signal.
            extra = [k for k, long in sorted(is_long.items()) if long and flatten.covers(k) and k not in netting.exits]
            netting = replace(netting, exits=(*netting.exits, *extra))
        for record, outcome in zip(taken, netting.outcomes, strict=True):
            record.status, record.reason, record.cycle_id = outcome.status, outcome.reason, cycle_id
            stopped = ledger.position(self.config[record.strategy]).stopped_at
            if outcome.status is SignalStatus.IGNORED and record.action == Side.SELL.value and stopped is not None:
                # The trade this sell would close was closed on the venue by its protective stop.
                record.reason = f"{STOP_FILLED} at {stopped:%Y-%m-%d %H:%M:%S} UTC, so the strategy is already flat"
            self.store.put_signal(record)
        for signal in signals:
            position = ledger.position(self.config[signal.strategy])
            if position.decided_through is None or signal.time > position.decided_through:
                ledger.positions[signal.strategy] = replace(position, decided_through=signal.time)
        if signals:
            self.store.save_ledger(ledger)
        cycle = CycleRecord(
            cycle_id=cycle_id,
            at=at,
            urgent=urgent,
            signal_keys=[r.key for r in taken],
            exits=list(netting.exits),
            entries=list(netting.entries),
            deciding={k: list(v) for k, v in netting.deciding.items()},
            stops=dict(stop_notes),
        )
        if not netting.exits and not netting.entries:
            cycle.planned_phases = [p.value for p in Phase]
        self.store.put_cycle(cycle)
        # After the cycle is stored: a crash before this line repeats a flatten (harmless, the strategies are
        # paused and hold nothing new) rather than losing it.
        stops = {s.strategy: s.time for s in signals if s.is_stop_loss}
        stops |= {key: now for key, note in stop_notes.items() if note.startswith(STOP_FILLED)}
        self._change_controls(partial(_after_open, self.config, self.settings, flatten, stops, now, cycle_id))
        return cycle

    def _change_controls(self, change: Callable[[Controls], Controls], attempts: int = 5) -> Controls:
        """Apply ``change`` to the stored controls; on a conflicting write, read them again and re-apply it."""
        return change_controls(self.store, change, attempts)

    def _signal(self, record: SignalRecord) -> Signal:
        if not isinstance(record.payload, Mapping):
            raise ValueError(f"pending signal {record.key} has no JSON payload")
        return parse_signal(record.payload, self.config, stop_loss_regex=self.settings.stop_loss_regex)

    # -- plan ------------------------------------------------------------------------

    def plan(self, cycle_id: str, phase: Phase) -> list[str]:
        """Plan one phase from fresh balances and prices; return the ids of the intents to place.

        Planning a phase that was already planned returns the same intents.
        """
        cycle = self._cycle(cycle_id)
        if phase.value in cycle.planned_phases:
            return [r.intent.intent_id for r in self.store.intents(cycle_id) if r.phase is phase and _placeable(r)]
        ledger = self.store.load_ledger()
        if phase is Phase.EXITS:
            # Every exiting strategy's protective stop is cancelled first (and what it filled booked), so the
            # exit sells only what is still held and its coins are free to sell.
            self._lift(cycle, ledger, cycle.exits)
        ctx = self._context(cycle, ledger)
        if phase is Phase.EXITS:
            plan = plan_exits(cycle.exits, ctx)
            for skipped in plan.skipped:
                strategy = self.config[skipped.strategy]
                ledger.sweep_dust(strategy, self.markets()[strategy.symbol])
            self.store.save_ledger(ledger)
        elif phase is Phase.SELL_DOWNS:
            entry_plan = plan_entries(self.settings.mode, cycle.entries, ctx)
            selling = {i.strategy for i in entry_plan.sell_downs.intents} | {
                s.strategy for s in entry_plan.sell_downs.skipped
            }
            if self._lift(cycle, ledger, selling):
                # The lifted stops' coins are free now, and what they filled is booked: plan again on that.
                ctx = self._context(cycle, ledger)
                entry_plan = plan_entries(self.settings.mode, cycle.entries, ctx)
            cycle.account_value = entry_plan.account_value
            cycle.precedence = entry_plan.precedence
            cycle.idle_share = entry_plan.idle_share
            cycle.targets = dict(entry_plan.targets)
            cycle.entry_order = list(entry_plan.entries)
            plan = entry_plan.sell_downs
        else:
            plan = size_entries(self._entry_plan(cycle), ctx)
        records = [IntentRecord(intent=i, phase=phase) for i in plan.intents]
        records += [_skipped_record(cycle_id, phase, s, ctx) for s in plan.skipped]
        for record in records:
            self.store.put_intent(record)
        cycle.planned_phases.append(phase.value)
        self.store.put_cycle(cycle)
        return [r.intent.intent_id for r in records if _placeable(r)]

    def _lift(self, cycle: CycleRecord, ledger: Ledger, keys: Iterable[str]) -> bool:
        """Cancel the protective stops of strategies about to sell; say whether any was lifted."""
        resting = [k for k in keys if k in self.config.strategies and ledger.position(self.config[k]).stop]
        if not resting:
            return False
        cycle.stops.update(self._stops().lift(ledger, resting))
        self.store.save_ledger(ledger)
        self.store.put_cycle(cycle)
        return True

    def _stops(self) -> StopKeeper:
        return StopKeeper(self.exchange, self.config, self.markets, self.clock, self._read)

    def _protect(self, cycle: CycleRecord, intents: list[IntentRecord]) -> dict[str, str]:
        """Place or resize the protective stops after the cycle's trades; return what was done, by strategy."""
        ledger = self.store.load_ledger()
        alert_stops: dict[str, Decimal] = {}
        for record in intents:
            if record.intent.purpose is not Purpose.ENTRY or not record.filled:
                continue
            for key in record.intent.signal_keys:
                signal = self.store.get_signal(key)
                payload = signal.payload if signal is not None else None
                if isinstance(payload, Mapping) and payload.get("stop_price") not in (None, ""):
                    alert_stops[record.intent.strategy] = parse_decimal(payload["stop_price"])
        wanted = (
            self._stops().wanted()
            or alert_stops
            or any(p.stop or (p.is_long and p.stop_level) for p in ledger.positions.values())
        )
        if not wanted:
            return {}
        notes = self._stops().protect(ledger, cycle.cycle_id, alert_stops)
        self.store.save_ledger(ledger)
        return notes

    def _entry_plan(self, cycle: CycleRecord) -> EntryPlan:
        return EntryPlan(
            mode=self.settings.mode,
            account_value=cycle.account_value or ZERO,
            precedence=cycle.precedence,
            idle_share=cycle.idle_share or ZERO,
            targets=cycle.targets,
            entries=tuple(cycle.entry_order),
            sell_downs=Plan((), ()),
        )

    def _context(self, cycle: CycleRecord, ledger: Ledger) -> PlanContext:
        balances: Mapping[str, Balance] = self._read(self.exchange.fetch_balances)
        keys = set(cycle.exits) | set(cycle.entries) | {p.strategy for p in ledger.long_positions()}
        symbols = sorted({self.config[k].symbol for k in keys if k in self.config.strategies})
        prices = {s: self._read(partial(self.exchange.fetch_last_price, s)) for s in symbols}
        return PlanContext(
            cycle_id=cycle.cycle_id,
            config=self.config,
            ledger=ledger,
            free={asset: b.free for asset, b in balances.items()},
            total_quote=balances.get(self.config.quote, Balance()).total,
            markets=self.markets(),
            prices=prices,
            increment=self.settings.increment,
            deciding={k: tuple(v) for k, v in cycle.deciding.items()},
        )

    def markets(self) -> Mapping[str, Market]:
        if not self._markets:
            self._markets.update(self._read(partial(self.exchange.load_markets, self.config.symbols())))
        return self._markets

    # -- place -----------------------------------------------------------------------

    def place(self, cycle_id: str, intent_id: str) -> IntentRecord:
        """Send the current attempt of an intent at most once.

        A transient error propagates (the caller retries with backoff); the intent is
        left marked ``placing`` so the retry looks the order up before sending again.
        A permanent error marks the intent failed.
        """
        record = self.store.get_intent(cycle_id, intent_id)
        if record is None:
            raise KeyError(f"cycle {cycle_id} has no intent {intent_id}")
        if record.status not in (IntentStatus.PLANNED, IntentStatus.PLACING):
            return record
        self._chase().place(record)
        return record

    def _chase(self) -> OrderChase:
        """Return the chase of this cycle's orders, booking their fills through :meth:`_book`."""
        return OrderChase(
            store=self.store,
            exchange=self.exchange,
            rules=ChaseRules(
                increment=self.settings.increment,
                fill_timeout=self.settings.fill_timeout,
                max_reprice_attempts=self.settings.max_reprice_attempts,
            ),
            markets=self.markets,
            book=self._book,
            remember=_remember,
            clock=self.clock,
            retry=self.settings.retry,
            sleep=self.sleep,
        )

    # -- reconcile -------------------------------------------------------------------

    def reconcile(self, cycle_id: str, phase: Phase, *, budget: timedelta | None = None) -> int:
        """Check every working intent of a phase: book fills, chase or give up. Return how many still work.

        Each intent is committed together with the ledger changes its fills caused, so a
        crash between two intents loses nothing and books nothing twice: the next run
        books only what the stored order states do not yet show.

        With a ``budget``, no new intent is started once it is spent; the ones left count
        as still working, so the caller's loop comes back for them well inside a Lambda's
        timeout. Intents not yet placed go first, then those open longest, so none starves.
        """
        started = time.monotonic()
        ledger = self.store.load_ledger()
        # Only a stop loss may cross the spread at any price: the exits of an urgent cycle.
        cycle = self.store.get_cycle(cycle_id) if phase is Phase.EXITS else None
        stop_loss = cycle is not None and cycle.urgent
        pending = [r for r in self.store.intents(cycle_id) if r.phase is phase and not r.status.is_done]
        pending.sort(key=lambda r: (r.placed_at is not None, r.placed_at or datetime.min.replace(tzinfo=UTC)))
        chase = self._chase()
        working = advanced = 0
        for record in pending:
            # At least one intent per round, so every round makes progress whatever the budget.
            if budget is not None and advanced and time.monotonic() - started > budget.total_seconds():
                working += 1
                continue
            advanced += 1
            chase.advance(record, ledger, stop_loss=stop_loss)
            if record.intent.purpose is Purpose.EXIT and record.status.is_done:
                strategy = self.config[record.intent.strategy]
                ledger.sweep_dust(strategy, self.markets()[strategy.symbol])
            self.store.book(record, ledger)
            working += not record.status.is_done
        return working

    def _book(self, record: IntentRecord, fresh: ExchangeOrder, ledger: Ledger) -> None:
        before = next((o for o in record.orders if o.id == fresh.id), None)
        filled = fresh.filled - (before.filled if before else ZERO)
        cost = fresh.cost - (before.cost if before else ZERO)
        fees = []
        for currency in sorted({f.currency for f in fresh.fees}):
            delta = fresh.fee_in(currency) - (before.fee_in(currency) if before else ZERO)
            if delta:
                fees.append(Fee(delta, currency))
        _remember(record, fresh)
        if filled <= 0 and not fees:
            return
        note = ""
        if filled > 0 and not fresh.fees_reported:
            # Nothing to book a fee from: say so where the trader looks, and let the drift check show it.
            note = f"{self.exchange.name} reported no fee for order {fresh.id}; booked without one"
        ledger.apply_fill(
            self.config[record.intent.strategy],
            fresh.side,
            order_id=fresh.id,
            filled=filled,
            cost=cost,
            fees=fees,
            at=self.clock(),
            note=note,
        )
        record.filled += filled
        record.cost += cost
        record.fees.extend(fees)

    # -- finalize --------------------------------------------------------------------

    def finalize(self, cycle_id: str, *, error: str = "") -> CycleRecord:
        """Give every signal of the cycle a terminal status and summarize the cycle."""
        cycle = self._cycle(cycle_id)
        intents = self.store.intents(cycle_id)
        if error:
            intents = [self._abandon(record, error) for record in intents]
        by_strategy = {r.intent.strategy: r for r in intents if r.intent.purpose is not Purpose.SELL_DOWN}
        statuses: dict[str, int] = {}
        for key in cycle.signal_keys:
            record = self.store.get_signal(key)
            if record is None:
                continue
            if not record.status.is_terminal:
                intent = by_strategy.get(record.strategy)
                record.status, record.reason = _signal_outcome(intent, error)
                self.store.put_signal(record)
            statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
        orders: dict[str, int] = {}
        for r in intents:
            orders[r.status.value] = orders.get(r.status.value, 0) + 1
        cycle.status = "failed" if error else "done"
        cycle.error = error
        cycle.stops.update(self._protect(cycle, intents))
        balances: Mapping[str, Balance] | None = None
        try:
            balances = self._read(self.exchange.fetch_balances)
        except ExchangeError as e:
            unread = f"not checked: the balances could not be read: {type(e).__name__}: {e}"
        shortfall = self._shortfall(balances) if balances is not None else {"*": unread}
        unchecked = self._check_guards(balances, cycle.at, cycle_id) if self.config.guards.any else {}
        # What this cycle changed in the controls (a guard's trip or release, a flatten done), with what it
        # could not check: the notification tells the trader.
        controls = {f"{e.scope} {e.what}": e.detail for e in self.store.get_controls().events if e.cycle == cycle_id}
        controls |= unchecked
        cycle.summary = {
            "signals": statuses,
            "orders": orders,
            # Every order not simply filled, with why: the notification lists them.
            "notes": {
                f"{r.intent.strategy} {r.intent.purpose.value}": f"{r.status.value}: {r.reason}"
                for r in intents
                if r.reason or r.status is not IntentStatus.FILLED
            }
            | {f"drift {asset}": why for asset, why in shortfall.items()}
            | {f"{key} protective stop": note for key, note in cycle.stops.items()},
            "traded": {r.intent.strategy: f"{r.intent.side.value} {plain(r.filled)}" for r in intents if r.filled},
            "slippage_bps": {
                r.intent.strategy: str(slip.quantize(Decimal("0.01")))
                for r in intents
                if (slip := r.slippage_bps) is not None
            },
        }
        if shortfall:
            cycle.summary["drift"] = shortfall
        if controls:
            cycle.summary["controls"] = controls
        self.store.put_cycle(cycle)
        return cycle

    def _check_guards(self, balances: Mapping[str, Balance] | None, at: datetime, cycle_id: str) -> dict[str, str]:
        """Mark the account to market and trip the drawdown guards beyond their limit; end past cooldowns.

        Return what could not be checked, if anything (the summary tells it).

        Equity is the quote cash (free and locked) plus every ledger position at the venue's last price; coins
        the ledger does not own (held before the bot) are not counted. Without balances or a price the
        drawdown guards are not checked this cycle, and the summary says so.
        """
        ledger = self.store.load_ledger()
        marks: Marks | None = None
        problem = ""
        if balances is None:
            problem = "the balances could not be read"
        else:
            try:
                prices = {
                    p.symbol: self._read(partial(self.exchange.fetch_last_price, p.symbol))
                    for p in ledger.long_positions()
                }
            except ExchangeError as e:
                problem = f"a price could not be read: {type(e).__name__}: {e}"
            else:
                marks = _marks(self.config, ledger, balances, prices)
        if marks is None:
            self._change_controls(lambda c: end_cooldowns(c, at, cycle=cycle_id))
        else:
            self._change_controls(lambda c: check_guards(c, self.config.guards, marks, at, cycle=cycle_id))
        if problem and (self.config.guards.account_drawdown or self.config.guards.strategy_drawdown):
            return {"drawdown guards": f"not checked: {problem}"}
        return {}

    def _shortfall(self, balances: Mapping[str, Balance]) -> dict[str, str]:
        """Check the ledger against the account: every asset the account holds less of than the strategies own.

        More coins than the ledger is normal (holdings from before the bot, deposits); fewer means a fill or a
        fee was booked wrong or coins left the account, and the next exit of that asset would fall short.
        """
        ledger = self.store.load_ledger()
        held = ledger.amounts_by_asset()
        return {
            asset: f"the account holds {plain(-difference)} {asset} less than the ledger's {plain(held[asset])}"
            for asset, difference in ledger.drift(balances).items()
            if difference < 0
        }

    def _abandon(self, record: IntentRecord, error: str) -> IntentRecord:
        """Settle an order a failed cycle leaves working: book its fills, cancel the rest, say why.

        Without this a fill that landed after the last reconcile would be missing from the
        ledger, and an open order would keep working for a cycle that no longer watches it.
        If the exchange cannot be reached the intent keeps its status (a redrive continues
        it) and the reason says so.
        """
        if record.status.is_done:
            return record
        ledger = self.store.load_ledger()
        symbol = record.intent.symbol
        try:
            markets = self.markets()
            order = record.current_order
            if order is None and record.status is IntentStatus.PLACING:
                client_order_id = record.intent.client_order_id(record.attempt)
                order = self._read(partial(self.exchange.find_order_by_client_id, client_order_id, symbol))
            if order is not None:
                fresh = self._read(partial(self.exchange.fetch_order, order.id, symbol))
                self._book(record, fresh, ledger)
                if fresh.status is OrderStatus.OPEN:
                    self._book(record, self._read(partial(self.exchange.cancel_order, order.id, symbol)), ledger)
        except ExchangeError as e:
            record.reason = (
                f"left {record.status.value} when the cycle failed ({error}); "
                f"the exchange could not be checked: {type(e).__name__}: {e}"
            )
            self.store.book(record, ledger)
            return record
        remaining = record.intent.amount - record.filled
        if remaining <= 0:
            record.status, record.reason = IntentStatus.FILLED, ""
        else:
            record.status = IntentStatus.PARTIALLY_FILLED if record.filled else IntentStatus.FAILED
            record.reason = f"abandoned when the cycle failed ({error}); the remainder was cancelled"
        if record.intent.purpose is Purpose.EXIT:
            strategy = self.config[record.intent.strategy]
            ledger.sweep_dust(strategy, markets[strategy.symbol])
        self.store.book(record, ledger)
        return record

    # -- helpers -----------------------------------------------------------------------

    def _cycle(self, cycle_id: str) -> CycleRecord:
        cycle = self.store.get_cycle(cycle_id)
        if cycle is None:
            raise KeyError(f"no cycle {cycle_id}; open it first")
        return cycle

    def _read[T](self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.settings.retry, sleep=self.sleep)


def change_controls(store: Store, change: Callable[[Controls], Controls], attempts: int = 5) -> Controls:
    """Read, change and write the controls under their version; re-read and re-apply after a conflict.

    The operator's commands and the cycles both write the one record; neither may lose the other's change.
    """
    for attempt in range(attempts):
        current = store.get_controls()
        changed = change(current)
        if changed == current:
            return current
        try:
            return store.put_controls(changed)
        except StoreConflict:
            if attempt == attempts - 1:
                raise
    raise StoreConflict("the controls kept changing")  # not reached: the last attempt re-raises


def _marks(
    config: StrategyConfig, ledger: Ledger, balances: Mapping[str, Balance], prices: Mapping[str, Decimal]
) -> Marks:
    """Mark equity and each strategy's P&L to market (realized P&L plus what its position is worth over cost)."""
    positions = {p.strategy: p for p in ledger.long_positions()}
    value = sum((p.amount * prices[p.symbol] for p in positions.values()), ZERO)
    equity = balances.get(config.quote, Balance()).total + value
    pnl = {}
    for key, strategy in config.strategies.items():
        position = ledger.position(strategy)
        unrealized = position.amount * prices[position.symbol] - position.cost_basis if position.is_long else ZERO
        pnl[key] = position.realized_pnl + unrealized
    capital = {key: strategy.percentage * equity for key, strategy in config.strategies.items()}
    return Marks(equity=equity, pnl=pnl, capital=capital, quote=config.quote)


def _hold_entries(netting: Netting, signals: list[Signal], controls: Controls) -> Netting:
    """Take the entries the kill switch or a guard holds back out of the netting; their signals are ignored."""
    by_key = {s.dedupe_key: s for s in signals}
    held: dict[str, str] = {}
    for key in netting.entries:
        times = [by_key[k].time for k in netting.deciding.get(key, ()) if k in by_key]
        reason = controls.entry_hold(key, max(times, default=datetime.min.replace(tzinfo=UTC)))
        if reason is not None:
            held[key] = reason
    if not held:
        return netting
    outcomes = tuple(
        replace(o, status=SignalStatus.IGNORED, reason=held[o.strategy])
        if o.strategy in held and o.status is SignalStatus.PLANNED
        else o
        for o in netting.outcomes
    )
    entries = tuple(k for k in netting.entries if k not in held)
    deciding = {k: v for k, v in netting.deciding.items() if k not in held}
    return replace(netting, entries=entries, outcomes=outcomes, deciding=deciding)


def _after_open(
    config: StrategyConfig,
    settings: WorkflowSettings,
    flatten: Flatten | None,
    stops: Mapping[str, datetime],
    now: datetime,
    cycle_id: str,
    controls: Controls,
) -> Controls:
    """Record what opening a cycle changed: the flatten it acted on is done, and its stop losses cool down."""
    changed = controls
    if flatten is not None and changed.flatten == flatten:
        scope = ", ".join(flatten.strategies) if flatten.strategies is not None else "every strategy"
        changed = replace(changed, flatten=None).with_events(
            Event(
                now,
                ACCOUNT if flatten.strategies is None else scope,
                "flattened",
                f"exits planned for {scope}",
                cycle_id,
            )  # fmt: skip
        )
    if config.guards.cooldown_bars is not None and stops:
        if settings.timeframe is None:
            raise ConfigError("guards.cooldown_bars counts bars of the stack's timeframe, which is not set")
        bar = timedelta(seconds=settings.timeframe.seconds)
        for key, at in sorted(stops.items()):
            changed = start_cooldown(changed, config.guards, key, at, bar, cycle=cycle_id)
    return changed


def cycle_signals(pending: list[SignalRecord], *, urgent: bool) -> list[SignalRecord]:
    """Choose the pending signals a cycle takes: all of them, or for an urgent cycle those of stopped strategies."""
    if not urgent:
        return list(pending)
    stopped = {r.strategy for r in pending if r.is_stop_loss}
    return [r for r in pending if r.strategy in stopped]


def _unencodable(payload: object) -> bool:
    """Say whether a parsed alert holds text that UTF-8 cannot encode (a lone surrogate from a JSON escape)."""
    try:
        json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):  # not ours to judge here: parse_signal refuses it with a reason
        return False
    return False


def signal_record(
    signal: Signal, received_at: datetime, message_id: str | None, queued_at: datetime | None = None
) -> SignalRecord:
    """Make the stored form of a validated signal."""
    return SignalRecord(
        key=signal.dedupe_key,
        status=SignalStatus.RECEIVED,
        received_at=received_at,
        payload=dict(signal.payload),
        strategy=signal.strategy,
        action=signal.action.value,
        time=signal.time,
        is_stop_loss=signal.is_stop_loss,
        message_id=message_id,
        queued_at=queued_at,
    )


def _when(record: SignalRecord) -> str:
    """Say when a stored signal was received: queued by the webhook, or else stored by a cycle."""
    return f"{(record.queued_at or record.received_at).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _placeable(record: IntentRecord) -> bool:
    return record.status is not IntentStatus.SKIPPED


def _remember(record: IntentRecord, order: ExchangeOrder) -> None:
    record.orders = [o for o in record.orders if o.id != order.id] + [order]


def _skipped_record(cycle_id: str, phase: Phase, skipped: Skipped, ctx: PlanContext) -> IntentRecord:
    intent = OrderIntent(
        intent_id=intent_id(cycle_id, skipped.purpose, skipped.strategy),
        cycle_id=cycle_id,
        strategy=skipped.strategy,
        symbol=skipped.symbol,
        side=skipped.side,
        purpose=skipped.purpose,
        amount=skipped.amount,
        limit_price=skipped.limit_price,
        notional=ZERO,
        signal_keys=tuple(ctx.deciding.get(skipped.strategy, ())),
    )
    return IntentRecord(intent=intent, phase=phase, status=IntentStatus.SKIPPED, reason=skipped.reason)


def _signal_outcome(intent: IntentRecord | None, error: str) -> tuple[SignalStatus, str]:
    if intent is None:
        return SignalStatus.FAILED, error or "the cycle planned no order for it"
    what = f"{intent.intent.side.value} {plain(intent.filled)} of {plain(intent.intent.amount)} {intent.intent.symbol}"
    match intent.status:
        case IntentStatus.FILLED:
            return SignalStatus.FILLED, f"{what} filled" + (f" ({intent.reason})" if intent.reason else "")
        case IntentStatus.PARTIALLY_FILLED:
            return SignalStatus.FILLED, f"{what} partially filled: {intent.reason}"
        case IntentStatus.SKIPPED:
            return SignalStatus.IGNORED, intent.reason
        case IntentStatus.UNFILLED:
            return SignalStatus.FAILED, f"nothing filled: {intent.reason}"
        case IntentStatus.FAILED:
            return SignalStatus.FAILED, intent.reason
    return SignalStatus.FAILED, error or f"the cycle ended with the order {intent.status.value}"


def _age(delta: timedelta) -> str:
    # Seconds are shown when there are any: "8h05m01s" is over a limit of "8h05m", which "8h05m" would hide.
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
    return f"{text}{seconds:02d}s" if seconds else text
