"""Operator controls and guards: who may enter now, as one record the operator and the cycles both write.

The kill switch (``crypto-bot pause``, ``resume``, ``flatten``) and the guards configured under ``"guards"`` in
``strategy_config.json`` only ever hold entries back. Exits, stop losses and flattening always run: a pause that
kept a position open would be the opposite of a protection.

* A **pause** (of the account, or of one strategy) is set by the operator and lifted by ``resume``.
* The **drawdown guards** trip when equity marked to market falls more than the configured share from its
  running peak: the account's equity, or a strategy's own P&L measured against its share of the account.
  A tripped guard latches until the operator resumes, which also restarts its peak from the equity of that
  moment, so a loss the trader has accepted does not trip it again at once. A withdrawal looks like a loss.
* A **cooldown** follows a stop loss: that strategy's entries timed within the next N bars are ignored. It
  releases itself.

Everything here is a pure function of its inputs; :mod:`crypto_bot.engine.workflow` reads and writes the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from crypto_bot.domain.errors import MISSING, ConfigError, FieldProblem, InputError
from crypto_bot.domain.money import ONE, ZERO, parse_decimal, plain

PAUSED_REASON: Final = "paused by the operator"
EVENTS_KEPT: Final = 50  # the newest trips, releases, pauses and resumes the record keeps for `positions`
GUARD_FIELDS: Final = ("account_drawdown", "strategy_drawdown", "cooldown_bars")
ACCOUNT: Final = "*"  # the scope of an event about the whole account


@dataclass(frozen=True)
class Guards:
    """The guards of ``strategy_config.json``'s ``"guards"`` object; each is off when None."""

    account_drawdown: Decimal | None = None  # 0.15: entries pause when equity is 15% below its peak
    strategy_drawdown: Decimal | None = None  # the same per strategy, on its share of the account
    cooldown_bars: int | None = None  # after a stop loss, that strategy's entries are ignored for N bars

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.account_drawdown, self.strategy_drawdown, self.cooldown_bars))

    @classmethod
    def from_mapping(cls, data: object, source: str) -> Guards:
        """Validate a ``"guards"`` object; ConfigError names each bad field and its value."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: guards must be an object with any of {', '.join(GUARD_FIELDS)}")
        problems = [
            FieldProblem(f"guards.{name}", data[name], f"is not a known guard (use {', '.join(GUARD_FIELDS)})")
            for name in sorted(set(data) - set(GUARD_FIELDS))
        ]
        shares: dict[str, Decimal | None] = {}
        for name in ("account_drawdown", "strategy_drawdown"):
            raw = data.get(name, MISSING)
            shares[name] = None
            if raw is MISSING or raw is None:
                continue
            try:
                share = parse_decimal(raw)
            except ValueError as e:
                problems.append(FieldProblem(f"guards.{name}", raw, str(e)))
                continue
            if not ZERO < share < ONE:
                problems.append(FieldProblem(f"guards.{name}", raw, "must be a fraction in (0, 1) (0.15 means 15%)"))
                continue
            shares[name] = share
        bars = data.get("cooldown_bars")
        if bars is not None and (isinstance(bars, bool) or not isinstance(bars, int) or bars < 1):
            problems.append(FieldProblem("guards.cooldown_bars", bars, "must be a whole number of bars, 1 or more"))
        if problems:
            raise ConfigError(str(InputError(source, problems)))
        return cls(shares["account_drawdown"], shares["strategy_drawdown"], bars if isinstance(bars, int) else None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_drawdown": plain(self.account_drawdown) if self.account_drawdown is not None else None,
            "strategy_drawdown": plain(self.strategy_drawdown) if self.strategy_drawdown is not None else None,
            "cooldown_bars": self.cooldown_bars,
        }


@dataclass(frozen=True)
class Hold:
    """Why entries are held back: a pause by the operator, or a tripped guard."""

    reason: str  # the sentence an ignored entry's signal is given
    at: datetime
    by: str = ""  # who paused ("" for a guard)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "at": self.at.isoformat(), "by": self.by}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hold:
        return cls(str(data["reason"]), datetime.fromisoformat(str(data["at"])), str(data.get("by", "")))


@dataclass(frozen=True)
class Flatten:
    """An operator's request to sell now: every long strategy (``strategies`` None) or the ones named."""

    strategies: tuple[str, ...] | None
    by: str
    at: datetime

    def covers(self, key: str) -> bool:
        return self.strategies is None or key in self.strategies

    def to_dict(self) -> dict[str, Any]:
        return {"strategies": list(self.strategies) if self.strategies is not None else None,
                "by": self.by, "at": self.at.isoformat()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flatten:
        keys = data.get("strategies")
        return cls(tuple(str(k) for k in keys) if keys is not None else None, str(data["by"]),
                   datetime.fromisoformat(str(data["at"])))  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One change of the controls, as ``positions`` lists it: a pause, a resume, a guard's trip or release."""

    at: datetime
    scope: str  # a strategy key, or ACCOUNT
    what: str  # "paused", "resumed", "tripped", "released", "flatten requested", "flattened"
    detail: str
    cycle: str = ""  # the cycle that made the change ("" for the operator's): its summary tells the trader

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "scope": self.scope, "what": self.what, "detail": self.detail,
                "cycle": self.cycle}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(datetime.fromisoformat(str(data["at"])), str(data["scope"]), str(data["what"]),
                   str(data["detail"]), str(data.get("cycle", "")))  # fmt: skip


@dataclass(frozen=True)
class Controls:
    """The kill switch and guard state: one record, written under a version so no writer loses another's."""

    version: int = 0
    paused: Hold | None = None  # the whole account
    paused_strategies: Mapping[str, Hold] = field(default_factory=dict)
    flatten: Flatten | None = None
    peak_equity: Decimal | None = None
    account_trip: Hold | None = None
    strategy_peaks: Mapping[str, Decimal] = field(default_factory=dict)  # each strategy's peak P&L
    strategy_trips: Mapping[str, Hold] = field(default_factory=dict)
    cooldowns: Mapping[str, Hold] = field(default_factory=dict)  # reason, and `at` = the end of the cooldown
    events: tuple[Event, ...] = ()

    def entry_hold(self, key: str, signal_time: datetime) -> str | None:
        """Return why an entry of strategy ``key`` timed ``signal_time`` must be ignored, or None."""
        for hold in (self.paused, self.paused_strategies.get(key), self.account_trip, self.strategy_trips.get(key)):
            if hold is not None:
                return hold.reason
        cooldown = self.cooldowns.get(key)
        if cooldown is not None and signal_time < cooldown.at:
            return cooldown.reason
        return None

    def with_events(self, *events: Event) -> Controls:
        return replace(self, events=(*self.events, *events)[-EVENTS_KEPT:])

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "paused": self.paused.to_dict() if self.paused else None,
            "paused_strategies": {k: v.to_dict() for k, v in sorted(self.paused_strategies.items())},
            "flatten": self.flatten.to_dict() if self.flatten else None,
            "peak_equity": str(self.peak_equity) if self.peak_equity is not None else None,
            "account_trip": self.account_trip.to_dict() if self.account_trip else None,
            "strategy_peaks": {k: str(v) for k, v in sorted(self.strategy_peaks.items())},
            "strategy_trips": {k: v.to_dict() for k, v in sorted(self.strategy_trips.items())},
            "cooldowns": {k: v.to_dict() for k, v in sorted(self.cooldowns.items())},
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Controls:
        def hold(value: object) -> Hold | None:
            return Hold.from_dict(value) if isinstance(value, Mapping) else None

        def holds(value: object) -> dict[str, Hold]:
            return {str(k): Hold.from_dict(v) for k, v in value.items()} if isinstance(value, Mapping) else {}

        peaks = data.get("strategy_peaks") or {}
        peak = data.get("peak_equity")
        return cls(
            version=int(data.get("version", 0)),
            paused=hold(data.get("paused")),
            paused_strategies=holds(data.get("paused_strategies")),
            flatten=Flatten.from_dict(data["flatten"]) if isinstance(data.get("flatten"), Mapping) else None,
            peak_equity=Decimal(str(peak)) if peak is not None else None,
            account_trip=hold(data.get("account_trip")),
            strategy_peaks={str(k): Decimal(str(v)) for k, v in peaks.items()},
            strategy_trips=holds(data.get("strategy_trips")),
            cooldowns=holds(data.get("cooldowns")),
            events=tuple(Event.from_dict(e) for e in data.get("events") or ()),
        )


# -- the operator's commands -------------------------------------------------------------------------------


def pause(controls: Controls, *, by: str, reason: str, at: datetime, strategy: str | None = None) -> Controls:
    """Hold entries back: of the whole account, or of one strategy."""
    why = f"{PAUSED_REASON} ({by}" + (f": {reason})" if reason else ")")
    hold = Hold(why, at, by)
    if strategy is None:
        changed = replace(controls, paused=hold)
    else:
        changed = replace(controls, paused_strategies={**controls.paused_strategies, strategy: hold})
    return changed.with_events(Event(at, strategy or ACCOUNT, "paused", why))


def resume(controls: Controls, *, by: str, at: datetime, strategy: str | None = None) -> Controls:
    """Lift a pause and release the tripped drawdown guards of that scope, restarting their peaks.

    Resuming the account lifts the account's pause and its guard; resuming a strategy lifts that strategy's
    pause and guard. Cooldowns are not the operator's: they end by themselves.
    """
    events = []
    if strategy is None:
        if controls.account_trip is not None:
            events.append(Event(at, ACCOUNT, "released", f"by {by}: {controls.account_trip.reason}"))
        changed = replace(controls, paused=None, account_trip=None, peak_equity=None)
    else:
        trips = dict(controls.strategy_trips)
        trip = trips.pop(strategy, None)
        if trip is not None:
            events.append(Event(at, strategy, "released", f"by {by}: {trip.reason}"))
        peaks = {k: v for k, v in controls.strategy_peaks.items() if k != strategy}
        paused = {k: v for k, v in controls.paused_strategies.items() if k != strategy}
        changed = replace(controls, paused_strategies=paused, strategy_trips=trips, strategy_peaks=peaks)
    return changed.with_events(*events, Event(at, strategy or ACCOUNT, "resumed", f"by {by}"))


def request_flatten(controls: Controls, *, by: str, reason: str, at: datetime, strategy: str | None = None) -> Controls:
    """Pause (the account or the strategy) and ask the next cycle to sell what it holds."""
    paused = pause(controls, by=by, reason=reason or "flatten", at=at, strategy=strategy)
    scope: tuple[str, ...] | None = None if strategy is None else (strategy,)
    if controls.flatten is not None and strategy is not None:
        # A second request widens the first rather than replacing it.
        earlier = controls.flatten.strategies
        scope = None if earlier is None else tuple(sorted({*earlier, strategy}))
    return replace(paused, flatten=Flatten(scope, by, at)).with_events(
        Event(at, strategy or ACCOUNT, "flatten requested", f"by {by}")
    )


# -- what a cycle records ----------------------------------------------------------------------------------


def start_cooldown(
    controls: Controls, guards: Guards, key: str, stop_time: datetime, bar: timedelta, *, cycle: str = ""
) -> Controls:
    """After strategy ``key``'s stop loss timed ``stop_time``, hold its entries of the next N bars back."""
    if guards.cooldown_bars is None:
        return controls
    until = stop_time + bar * guards.cooldown_bars
    existing = controls.cooldowns.get(key)
    if existing is not None and existing.at >= until:
        return controls
    reason = (
        f"cooldown after the stop loss of {stop_time:%Y-%m-%d %H:%M} UTC: entries before "
        f"{until:%Y-%m-%d %H:%M} UTC ({guards.cooldown_bars} bars) are ignored"
    )
    changed = replace(controls, cooldowns={**controls.cooldowns, key: Hold(reason, until)})
    return changed.with_events(Event(stop_time, key, "tripped", reason, cycle))


@dataclass(frozen=True)
class Marks:
    """What the drawdown guards measure at a cycle: equity, and each strategy's P&L and share of the account."""

    equity: Decimal  # quote cash plus every position marked at the venue's last price
    pnl: Mapping[str, Decimal]  # realized plus unrealized, per strategy
    capital: Mapping[str, Decimal]  # percentage × equity, per strategy
    quote: str


def end_cooldowns(controls: Controls, at: datetime, *, cycle: str = "") -> Controls:
    """End every cooldown whose end is at or before ``at``, recording each release."""
    ended = {k: v for k, v in sorted(controls.cooldowns.items()) if v.at <= at}
    if not ended:
        return controls
    kept = {k: v for k, v in controls.cooldowns.items() if k not in ended}
    released = [Event(at, k, "released", f"cooldown ended {v.at:%Y-%m-%d %H:%M} UTC", cycle) for k, v in ended.items()]
    return replace(controls, cooldowns=kept).with_events(*released)


def check_guards(controls: Controls, guards: Guards, marks: Marks, at: datetime, *, cycle: str = "") -> Controls:
    """Raise the running peaks, trip the drawdown guards that are beyond their limit, and end past cooldowns."""
    events: list[Event] = []
    changed = end_cooldowns(controls, at, cycle=cycle)
    if guards.account_drawdown is not None and marks.equity > 0:
        peak = max(changed.peak_equity or marks.equity, marks.equity)
        changed = replace(changed, peak_equity=peak)
        fall = (peak - marks.equity) / peak
        if changed.account_trip is None and fall > guards.account_drawdown:
            reason = (
                f"account drawdown guard: equity {marks.equity:.2f} {marks.quote} is {fall * 100:.2f}% below its "
                f"peak {peak:.2f} {marks.quote} (the limit is {guards.account_drawdown * 100:.2f}%); "
                "crypto-bot resume releases it"
            )
            changed = replace(changed, account_trip=Hold(reason, at))
            events.append(Event(at, ACCOUNT, "tripped", reason, cycle))
    if guards.strategy_drawdown is not None:
        peaks = dict(changed.strategy_peaks)
        trips = dict(changed.strategy_trips)
        for key in sorted(marks.pnl):
            pnl, capital = marks.pnl[key], marks.capital.get(key, ZERO)
            peaks[key] = max(peaks.get(key, pnl), pnl)
            if capital <= 0 or key in trips:
                continue
            fall = (peaks[key] - pnl) / capital
            if fall > guards.strategy_drawdown:
                reason = (
                    f"strategy drawdown guard: {key}'s P&L {pnl:.2f} {marks.quote} is {peaks[key] - pnl:.2f} below "
                    f"its peak {peaks[key]:.2f}, {fall * 100:.2f}% of its share of the account ({capital:.2f}; the "
                    f"limit is {guards.strategy_drawdown * 100:.2f}%); crypto-bot resume --strategy {key} releases it"
                )
                trips[key] = Hold(reason, at)
                events.append(Event(at, key, "tripped", reason, cycle))
        changed = replace(changed, strategy_peaks=peaks, strategy_trips=trips)
    return changed.with_events(*events) if events else changed
