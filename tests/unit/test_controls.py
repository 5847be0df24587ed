"""The controls record and its pure operations (crypto_bot.domain.controls), one by one.

The whole-cycle behaviour is in tests/unit/test_kill_switch_and_guards.py; here each operation's exact result:
what holds an entry and in which order, the sentences the trader reads, the record's dict form, the bound on
its events, and the guards' limits at and just past their edge.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from crypto_bot.domain.controls import (
    ACCOUNT,
    EVENTS_KEPT,
    Controls,
    Event,
    Flatten,
    Guards,
    Hold,
    Marks,
    check_guards,
    pause,
    request_flatten,
    resume,
    start_cooldown,
)
from crypto_bot.domain.errors import ConfigError

AT = datetime(2026, 12, 1, 8, 1, tzinfo=UTC)
BAR = timedelta(hours=8)


def marks(equity: str, **pnl: str) -> Marks:
    capital = {key: D(equity) * D("0.5") for key in pnl}
    return Marks(equity=D(equity), pnl={k: D(v) for k, v in pnl.items()}, capital=capital, quote="USDT")


def test_nothing_holds_an_entry_of_an_empty_record() -> None:
    assert Controls().entry_hold("BTCUSDT", AT) is None


def test_the_account_pause_wins_over_a_strategys_and_both_over_the_guards() -> None:
    controls = Controls(
        paused=Hold("account paused", AT),
        paused_strategies={"BTCUSDT": Hold("strategy paused", AT)},
        account_trip=Hold("account tripped", AT),
        strategy_trips={"BTCUSDT": Hold("strategy tripped", AT)},
        cooldowns={"BTCUSDT": Hold("cooling", AT + BAR)},
    )
    assert controls.entry_hold("BTCUSDT", AT) == "account paused"
    assert replace(controls, paused=None).entry_hold("BTCUSDT", AT) == "strategy paused"
    assert replace(controls, paused=None, paused_strategies={}).entry_hold("BTCUSDT", AT) == "account tripped"
    fewer = replace(controls, paused=None, paused_strategies={}, account_trip=None)
    assert fewer.entry_hold("BTCUSDT", AT) == "strategy tripped"
    assert replace(fewer, strategy_trips={}).entry_hold("BTCUSDT", AT) == "cooling"
    # Another strategy is held only by the account's holds.
    assert fewer.entry_hold("ETHUSDT", AT) is None


def test_a_cooldown_holds_entries_timed_before_its_end_only() -> None:
    controls = Controls(cooldowns={"BTCUSDT": Hold("cooling", AT + BAR)})
    assert controls.entry_hold("BTCUSDT", AT + BAR - timedelta(seconds=1)) == "cooling"
    assert controls.entry_hold("BTCUSDT", AT + BAR) is None


def test_pause_and_resume_say_who_and_why_and_leave_the_other_scope_alone() -> None:
    paused = pause(Controls(), by="alice", reason="news", at=AT)
    assert paused.paused == Hold("paused by the operator (alice: news)", AT, "alice")
    both = pause(paused, by="bob", reason="", at=AT, strategy="ETHUSDT")
    assert both.paused_strategies == {"ETHUSDT": Hold("paused by the operator (bob)", AT, "bob")}
    assert [(e.scope, e.what, e.detail) for e in both.events] == [
        (ACCOUNT, "paused", "paused by the operator (alice: news)"),
        ("ETHUSDT", "paused", "paused by the operator (bob)"),
    ]
    strategy_resumed = resume(both, by="carol", at=AT, strategy="ETHUSDT")
    assert (strategy_resumed.paused, strategy_resumed.paused_strategies) == (paused.paused, {})
    assert strategy_resumed.events[-1] == Event(AT, "ETHUSDT", "resumed", "by carol")
    account_resumed = resume(both, by="carol", at=AT)
    assert (account_resumed.paused, account_resumed.paused_strategies) == (None, both.paused_strategies)
    assert account_resumed.events[-1] == Event(AT, ACCOUNT, "resumed", "by carol")


def test_resume_releases_the_tripped_guard_of_its_scope_and_restarts_its_peak() -> None:
    tripped = Controls(
        peak_equity=D(10000),
        account_trip=Hold("account drawdown", AT),
        strategy_peaks={"BTCUSDT": D(50), "ETHUSDT": D(7)},
        strategy_trips={"BTCUSDT": Hold("strategy drawdown", AT)},
        cooldowns={"BTCUSDT": Hold("cooling", AT + BAR)},
    )
    account = resume(tripped, by="alice", at=AT)
    assert (account.account_trip, account.peak_equity) == (None, None)
    assert account.strategy_trips == tripped.strategy_trips
    assert [e.what for e in account.events] == ["released", "resumed"]
    assert account.events[0].detail == "by alice: account drawdown"
    strategy = resume(tripped, by="alice", at=AT, strategy="BTCUSDT")
    assert (strategy.strategy_trips, strategy.strategy_peaks) == ({}, {"ETHUSDT": D(7)})
    assert (strategy.account_trip, strategy.peak_equity) == (tripped.account_trip, D(10000))
    assert strategy.cooldowns == tripped.cooldowns  # a cooldown is not the operator's to lift
    assert strategy.events[0] == Event(AT, "BTCUSDT", "released", "by alice: strategy drawdown")
    # Nothing tripped: a resume records no release.
    assert [e.what for e in resume(Controls(), by="alice", at=AT).events] == ["resumed"]


def test_flatten_pauses_its_scope_and_a_second_request_widens_the_first() -> None:
    one = request_flatten(Controls(), by="alice", reason="", at=AT, strategy="ETHUSDT")
    assert one.flatten == Flatten(("ETHUSDT",), "alice", AT)
    assert one.paused_strategies["ETHUSDT"].reason == "paused by the operator (alice: flatten)"
    two = request_flatten(one, by="bob", reason="", at=AT, strategy="BTCUSDT")
    assert two.flatten == Flatten(("BTCUSDT", "ETHUSDT"), "bob", AT)
    everything = request_flatten(two, by="bob", reason="holiday", at=AT)
    assert everything.flatten == Flatten(None, "bob", AT)
    assert everything.flatten.covers("ANY")
    assert two.flatten is not None
    assert not two.flatten.covers("SOLUSDT")
    # Asked for the account after the account: still everything.
    assert request_flatten(everything, by="bob", reason="", at=AT, strategy="BTCUSDT").flatten == Flatten(
        None, "bob", AT
    )


def test_a_cooldown_runs_n_bars_from_the_stop_and_a_later_stop_extends_it_but_an_earlier_one_does_not() -> None:
    guards = Guards(cooldown_bars=2)
    cooled = start_cooldown(Controls(), guards, "BTCUSDT", AT, BAR, cycle="c1")
    hold = cooled.cooldowns["BTCUSDT"]
    assert hold.at == AT + 2 * BAR
    assert hold.reason == (
        "cooldown after the stop loss of 2026-12-01 08:01 UTC: entries before 2026-12-02 00:01 UTC (2 bars) are ignored"
    )
    assert cooled.events == (Event(AT, "BTCUSDT", "tripped", hold.reason, "c1"),)
    assert start_cooldown(cooled, guards, "BTCUSDT", AT - BAR, BAR) == cooled
    assert start_cooldown(cooled, guards, "BTCUSDT", AT, BAR) == cooled
    later = start_cooldown(cooled, guards, "BTCUSDT", AT + BAR, BAR)
    assert later.cooldowns["BTCUSDT"].at == AT + 3 * BAR
    assert start_cooldown(Controls(), Guards(), "BTCUSDT", AT, BAR) == Controls()


def test_the_account_guard_trips_just_past_its_limit_with_the_figures_and_raises_its_peak_otherwise() -> None:
    guards = Guards(account_drawdown=D("0.1"))
    first = check_guards(Controls(), guards, marks("10000"), AT, cycle="c1")
    assert (first.peak_equity, first.account_trip, first.events) == (D(10000), None, ())
    higher = check_guards(first, guards, marks("12000"), AT)
    assert higher.peak_equity == D(12000)
    at_the_limit = check_guards(higher, guards, marks("10800"), AT)
    assert (at_the_limit.peak_equity, at_the_limit.account_trip) == (D(12000), None)
    past = check_guards(higher, guards, marks("10799.99"), AT, cycle="c2")
    assert past.account_trip == Hold(
        "account drawdown guard: equity 10799.99 USDT is 10.00% below its peak 12000.00 USDT (the limit is "
        "10.00%); crypto-bot resume releases it",
        AT,
    )
    assert past.events == (Event(AT, ACCOUNT, "tripped", past.account_trip.reason, "c2"),)
    # Tripped once: a deeper fall records nothing more.
    assert check_guards(past, guards, marks("9000"), AT).events == past.events
    # No equity to measure (an empty account): nothing is marked.
    assert check_guards(Controls(), guards, marks("0"), AT) == Controls()


def test_the_strategy_guard_measures_the_fall_from_its_peak_pnl_against_its_share_of_the_account() -> None:
    guards = Guards(strategy_drawdown=D("0.2"))
    # BTCUSDT's share: half of 10,000. Its P&L peaked at +500 and falls to -500: 1,000, 20% of 5,000.
    peaked = check_guards(Controls(), guards, marks("10000", BTCUSDT="500", ETHUSDT="0"), AT)
    assert peaked.strategy_peaks == {"BTCUSDT": D(500), "ETHUSDT": D(0)}
    at_the_limit = check_guards(peaked, guards, marks("10000", BTCUSDT="-500", ETHUSDT="0"), AT)
    assert at_the_limit.strategy_trips == {}
    assert at_the_limit.strategy_peaks["BTCUSDT"] == D(500)
    past = check_guards(peaked, guards, marks("10000", BTCUSDT="-500.01", ETHUSDT="-999"), AT, cycle="c3")
    assert set(past.strategy_trips) == {"BTCUSDT"}
    assert past.strategy_trips["BTCUSDT"].reason == (
        "strategy drawdown guard: BTCUSDT's P&L -500.01 USDT is 1000.01 below its peak 500.00, 20.00% of its share "
        "of the account (5000.00; the limit is 20.00%); crypto-bot resume --strategy BTCUSDT releases it"
    )
    assert [(e.scope, e.what, e.cycle) for e in past.events] == [("BTCUSDT", "tripped", "c3")]
    # A strategy with no capital (no share) is marked but never trips.
    none = Marks(equity=D(0), pnl={"BTCUSDT": D(-100)}, capital={"BTCUSDT": D(0)}, quote="USDT")
    assert check_guards(Controls(), guards, none, AT).strategy_trips == {}


def test_a_past_cooldown_ends_at_the_check_and_says_so() -> None:
    controls = Controls(cooldowns={"BTCUSDT": Hold("cooling", AT), "ETHUSDT": Hold("cooling", AT + BAR)})
    checked = check_guards(controls, Guards(cooldown_bars=1), marks("10000"), AT, cycle="c4")
    assert set(checked.cooldowns) == {"ETHUSDT"}
    assert checked.events == (Event(AT, "BTCUSDT", "released", "cooldown ended 2026-12-01 08:01 UTC", "c4"),)


def test_the_record_keeps_its_newest_events_only() -> None:
    controls = Controls()
    for n in range(EVENTS_KEPT + 5):
        controls = controls.with_events(Event(AT + timedelta(minutes=n), ACCOUNT, "paused", str(n)))
    assert len(controls.events) == EVENTS_KEPT
    assert [e.detail for e in controls.events[:2]] == ["5", "6"]


def test_the_record_round_trips_through_its_dict_form_exactly() -> None:
    controls = Controls(
        version=7,
        paused=Hold("account paused", AT, "alice"),
        paused_strategies={"ETHUSDT": Hold("eth paused", AT, "bob")},
        flatten=Flatten(("BTCUSDT",), "bob", AT),
        peak_equity=D("10234.5678"),
        account_trip=Hold("tripped", AT),
        strategy_peaks={"BTCUSDT": D("-12.5")},
        strategy_trips={"BTCUSDT": Hold("strategy tripped", AT)},
        cooldowns={"SOLUSDT": Hold("cooling", AT + BAR)},
        events=(Event(AT, ACCOUNT, "paused", "why", "c9"), Event(AT, "ETHUSDT", "resumed", "by bob")),
    )
    data = controls.to_dict()
    assert Controls.from_dict(data) == controls
    assert data["peak_equity"] == "10234.5678"
    assert data["flatten"] == {"strategies": ["BTCUSDT"], "by": "bob", "at": AT.isoformat()}
    assert data["events"][0] == {
        "at": AT.isoformat(),
        "scope": ACCOUNT,
        "what": "paused",
        "detail": "why",
        "cycle": "c9",
    }
    everything = Controls.from_dict({**data, "flatten": {"strategies": None, "by": "x", "at": AT.isoformat()}})
    assert everything.flatten == Flatten(None, "x", AT)
    assert Controls.from_dict({}) == Controls()
    # An event written before events knew their cycle reads with none.
    assert Event.from_dict({"at": AT.isoformat(), "scope": "*", "what": "paused", "detail": "d"}).cycle == ""


def test_guards_parse_their_fields_and_refuse_each_bad_one_by_name() -> None:
    guards = Guards.from_mapping({"account_drawdown": "0.15", "strategy_drawdown": 0.25, "cooldown_bars": 2}, "f")
    assert guards == Guards(D("0.15"), D("0.25"), 2)
    assert guards.any
    assert not Guards().any
    assert Guards(cooldown_bars=1).any
    assert guards.to_dict() == {"account_drawdown": "0.15", "strategy_drawdown": "0.25", "cooldown_bars": 2}
    assert Guards().to_dict() == {"account_drawdown": None, "strategy_drawdown": None, "cooldown_bars": None}
    assert Guards.from_mapping({"account_drawdown": None}, "f") == Guards()
    with pytest.raises(ConfigError, match=r"f: guards must be an object with any of account_drawdown"):
        Guards.from_mapping(["account_drawdown"], "f")
    with pytest.raises(ConfigError) as bad:
        Guards.from_mapping({"account_drawdown": "0", "strategy_drawdown": "x", "cooldown_bars": True}, "f")
    text = str(bad.value)
    assert "guards.account_drawdown: must be a fraction in (0, 1) (0.15 means 15%) (got '0')" in text
    assert "guards.strategy_drawdown: " in text
    assert "guards.cooldown_bars: must be a whole number of bars, 1 or more (got true)" in text
    for edge in ("1", "-0.1"):
        with pytest.raises(ConfigError, match="must be a fraction in"):
            Guards.from_mapping({"strategy_drawdown": edge}, "f")
    assert Guards.from_mapping({"cooldown_bars": 1}, "f").cooldown_bars == 1


def test_a_fall_of_more_than_half_trips_the_account_guard() -> None:
    guards = Guards(account_drawdown=D("0.5"))
    peaked = check_guards(Controls(), guards, marks("10000"), AT)
    assert check_guards(peaked, guards, marks("4000"), AT).account_trip is not None


def test_resuming_one_strategy_keeps_every_other_strategys_pause_and_peak_whatever_their_names() -> None:
    controls = Controls(
        paused_strategies={k: Hold(f"{k} paused", AT) for k in ("AAAUSDT", "ETHUSDT", "ZZZUSDT")},
        strategy_peaks={k: D(1) for k in ("AAAUSDT", "ETHUSDT", "ZZZUSDT")},
    )
    resumed = resume(controls, by="alice", at=AT, strategy="ETHUSDT")
    assert set(resumed.paused_strategies) == {"AAAUSDT", "ZZZUSDT"}
    assert set(resumed.strategy_peaks) == {"AAAUSDT", "ZZZUSDT"}


def test_a_cooldown_holds_no_entry_timed_after_its_end_and_ends_at_any_later_check() -> None:
    controls = Controls(cooldowns={"BTCUSDT": Hold("cooling", AT)})
    assert controls.entry_hold("BTCUSDT", AT + timedelta(hours=1)) is None
    assert check_guards(controls, Guards(cooldown_bars=1), marks("10000"), AT + timedelta(hours=3)).cooldowns == {}


def test_a_strategy_flatten_is_recorded_under_its_strategy_and_the_accounts_under_the_account() -> None:
    one = request_flatten(Controls(), by="alice", reason="", at=AT, strategy="ETHUSDT")
    assert [(e.scope, e.what) for e in one.events] == [("ETHUSDT", "paused"), ("ETHUSDT", "flatten requested")]
    every = request_flatten(Controls(), by="alice", reason="", at=AT)
    assert [(e.scope, e.what) for e in every.events] == [(ACCOUNT, "paused"), (ACCOUNT, "flatten requested")]


def test_a_strategy_drawdown_alone_is_read_and_a_later_strategy_trips_past_an_earlier_tripped_one() -> None:
    assert Guards.from_mapping({"strategy_drawdown": "0.2"}, "f") == Guards(strategy_drawdown=D("0.2"))
    guards = Guards(strategy_drawdown=D("0.2"))
    tripped = Controls(strategy_trips={"AAAUSDT": Hold("tripped before", AT)}, strategy_peaks={"BTCUSDT": D(500)})
    checked = check_guards(tripped, guards, marks("10000", AAAUSDT="-900", BTCUSDT="-600"), AT)
    assert set(checked.strategy_trips) == {"AAAUSDT", "BTCUSDT"}
    assert checked.strategy_trips["AAAUSDT"].reason == "tripped before"


def test_every_bad_guard_is_reported_even_after_one_that_is_not_a_number() -> None:
    with pytest.raises(ConfigError) as bad:
        Guards.from_mapping({"account_drawdown": "lots", "strategy_drawdown": "2"}, "f")
    assert "guards.account_drawdown: " in str(bad.value)
    assert "guards.strategy_drawdown: must be a fraction in (0, 1)" in str(bad.value)


def test_resume_matches_a_strategy_key_by_value_not_by_identity() -> None:
    # A key read from a CLI argument is an equal string, not the record's own object.
    key = "".join(["ETH", "USDT"])
    controls = Controls(paused_strategies={"ETHUSDT": Hold("paused", AT)}, strategy_peaks={"ETHUSDT": D(1)})
    resumed = resume(controls, by="alice", at=AT, strategy=key)
    assert (resumed.paused_strategies, resumed.strategy_peaks) == ({}, {})
