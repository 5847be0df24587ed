"""The engine agrees with an independent reference model of the allocation rules, to the lot.

Random scenarios (strategies, percentages, markets with lot and tick sizes and fees, a price
increment, price paths, alerts) are replayed through the real engine on a paper account, with
fees charged in the quote or in the asset received, and through ``tests.model.reference``. After
every cycle the set of long strategies, the cash, each position's amount and cost basis, and the
weights must match: amounts exactly, money to 1e-12 (the engine's 28-digit pro-rata division is the
only inexact step). A cycle the rules do not decide is counted (hypothesis events, shown with
``--hypothesis-show-statistics``), and the model goes on from the engine's state after it.
The model is checked on its own against the README worked example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Literal
from unittest.mock import patch

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import crypto_bot_tools.replay
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.markets import Market
from crypto_bot.domain.timeframe import Schedule, Timeframe
from crypto_bot_tools.replay import CycleResult, ReplayOptions, replay
from tests.model.reference import ModelAlert, ModelMarket, Snapshot, simulate

CASH = 10000
MONEY_TOLERANCE = Fraction(1, 10**12)
"""Far below a cent and far above the engine's Decimal noise: a 0.05% under-investment is 5 USD."""
START = datetime(2024, 8, 10, 0, 1, tzinfo=UTC)
WINDOWS = 12
"""Alerts fall into this many 8h windows (four days)."""

EXAMPLES = 300
"""Per mode; both modes together run in a few seconds."""


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


@dataclass(frozen=True)
class Scenario:
    percentages: dict[str, int]
    """Percent points per strategy key (20 means 0.2)."""
    alerts: list[ModelAlert]
    markets: dict[str, ModelMarket]
    increment: Fraction
    fee_in_base: bool
    """Fees in the asset received (base on buys, quote on sells), as Binance charges them; else in the quote."""

    def config_mapping(self) -> dict[str, dict[str, str]]:
        return {
            key: {"exchange_symbol": f"{key}/USD", "base_asset": key, "percentage": str(Decimal(p) / 100)}
            for key, p in self.percentages.items()
        }

    def config(self) -> StrategyConfig:
        return StrategyConfig.from_mapping(self.config_mapping(), "USD")

    def engine_markets(self) -> dict[str, Market]:
        markets = {}
        for key, m in self.markets.items():
            assert m.lot is not None
            markets[f"{key}/USD"] = Market(
                symbol=f"{key}/USD",
                base=key,
                quote="USD",
                amount_step=_decimal(m.lot),
                price_step=_decimal(m.tick),
                min_amount=_decimal(m.lot),
                min_cost=_decimal(m.min_cost),
                maker_fee=_decimal(m.fee),
                taker_fee=_decimal(m.fee),
            )
        return markets

    def payloads(self) -> list[dict[str, str]]:
        return [
            {
                "time": a.time.isoformat().replace("+00:00", "Z"),
                "ticker": a.key,
                "order_action": "buy" if a.buy else "sell",
                "order_price": f"{_decimal(a.price):.2f}",
                "order_comment": "stop loss" if a.stop else ("long" if a.buy else "exit"),
            }
            for a in self.alerts
        ]


_KEYS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=3).filter(lambda k: k != "USD")
_LOTS = st.sampled_from([Fraction(1, 10**8), Fraction(1, 10**4), Fraction(1, 1000), Fraction(1, 10)])
_TICKS = st.sampled_from([Fraction(1, 100), Fraction(5, 100), Fraction(1, 2)])
_FEES = st.sampled_from([Fraction(0), Fraction(1, 1000), Fraction(25, 10000), Fraction(1, 100)])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    keys = draw(st.lists(_KEYS, min_size=2, max_size=6, unique=True))
    # Percent points, capped so that the total stays at most 98 and every strategy keeps at least 1.
    wanted = draw(
        st.lists(st.one_of(st.integers(1, 60), st.sampled_from([10, 20, 25])), min_size=len(keys), max_size=len(keys))
    )
    percentages: dict[str, int] = {}
    left = 98
    for i, (key, p) in enumerate(zip(keys, wanted, strict=True)):
        percentages[key] = min(p, left - (len(keys) - i - 1))
        left -= percentages[key]
    fee = draw(_FEES)
    markets = {key: ModelMarket(lot=draw(_LOTS), tick=draw(_TICKS), min_cost=Fraction(1), fee=fee) for key in keys}
    # Sometimes the last strategy never gets an alert.
    traded = keys[:-1] if draw(st.booleans()) else keys
    count = draw(st.integers(1, 25))
    moments = draw(
        st.lists(
            st.tuples(st.integers(0, WINDOWS - 1), st.integers(1, 8 * 3600 - 1)),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    times = sorted(START + timedelta(hours=8 * w, seconds=s) for w, s in moments)
    # One price path per market, in cents: a starting price, then a move at every alert.
    price = {key: draw(st.integers(100, 5_000_000)) for key in traded}
    alerts: list[ModelAlert] = []
    for time in times:
        key = draw(st.sampled_from(traded))
        buy = draw(st.booleans())
        stop = not buy and draw(st.integers(0, 5)) == 0
        move = draw(st.integers(85, 118))
        # A venue's last price is on its tick grid, and 20 ticks or more keep each move within the price band.
        tick = int(markets[key].tick * 100)
        price[key] = max(20 * tick, price[key] * move // 100 // tick * tick)
        on_grid = Fraction(price[key], 100)
        alerts.append(ModelAlert(time=time, key=key, buy=buy, price=on_grid, stop=stop))
    increment = draw(st.sampled_from([Fraction(0), Fraction(1, 1000), Fraction(2, 1000)]))
    return Scenario(percentages, alerts, markets, increment, draw(st.booleans()))


def _engine_cycles(scenario: Scenario, mode: ExecutionMode) -> list[CycleResult]:
    options = ReplayOptions(
        mode=mode,
        cash=Decimal(CASH),
        increment=_decimal(scenario.increment),
        schedule=Schedule(Timeframe.parse("8h")),
        markets=scenario.engine_markets(),
    )
    # ReplayOptions has no fee mode: the replay's paper venue is built with the one asked for.
    fee_mode: Literal["received", "quote"] = "received" if scenario.fee_in_base else "quote"
    with patch.object(crypto_bot_tools.replay, "PaperExchange", partial(PaperExchange, fee_mode=fee_mode)):
        result = replay(scenario.payloads(), scenario.config(), options)
    assert not result.rejected, [r.reason() for r in result.rejected]
    return result.cycles


def _engine_state(cycle: CycleResult) -> tuple[Fraction, dict[str, Fraction], dict[str, Fraction]]:
    amounts = {key: Fraction(p.amount) for key, p in cycle.positions.items()}
    return Fraction(cycle.cash), amounts, {key: Fraction(p.cost_basis) for key, p in cycle.positions.items()}


def _money(label: str, engine: Decimal, model: Fraction) -> None:
    assert abs(Fraction(engine) - model) <= MONEY_TOLERANCE, f"{label}: engine {engine}, model {float(model)!r}"


def assert_engine_matches_model(scenario: Scenario, mode: ExecutionMode) -> None:
    # On failure, print what `crypto-bot replay` needs to reproduce it.
    note(f"mode: {mode.value}, increment {scenario.increment}, fees in {'base' if scenario.fee_in_base else 'quote'}")
    note("markets: " + json.dumps({k: {f: str(v) for f, v in vars(m).items()} for k, m in scenario.markets.items()}))
    note("strategy_config.json: " + json.dumps(scenario.config_mapping()))
    note("alerts.jsonl:\n" + "\n".join(json.dumps(p) for p in scenario.payloads()))
    engine = _engine_cycles(scenario, mode)
    shares = {key: Fraction(p, 100) for key, p in scenario.percentages.items()}
    model = simulate(
        shares,
        scenario.alerts,
        boost=mode is ExecutionMode.BOOST,
        cash=Fraction(CASH),
        markets=scenario.markets,
        increment=scenario.increment,
        fee_in_base=scenario.fee_in_base,
        adopt=lambda index, _snapshot: _engine_state(engine[index]) if index < len(engine) else None,
    )
    assert [c.report.at for c in engine] == [s.at for s in model]
    for rule in sorted({rule for s in model for rule in s.notes}):
        event(f"{mode.value}: {rule}")  # which rules the scenario exercises, for --hypothesis-show-statistics
    ambiguous = 0
    for number, (got, want) in enumerate(zip(engine, model, strict=True), start=1):
        if want.ambiguous is not None:
            # The rules do not decide this cycle: count it, and the model goes on from the engine's state.
            ambiguous += 1
            event(f"{mode.value}: undecided cycle: {want.ambiguous.split(' of ')[0].split(' is ')[0]}")
            note(f"cycle {number} not compared: {want.ambiguous}")
            continue
        where = f"cycle {number} at {got.report.at.isoformat()}"
        longs = set(got.positions)
        assert longs == set(want.longs), f"{where}: engine long {sorted(longs)}, model long {sorted(want.longs)}"
        _money(f"{where}: cash", got.cash, want.cash)
        # Dust (under one lot per market) is the engine's own after an undecided cycle: equity agrees to one lot.
        lots = sum(
            (m.lot * price for k, m in scenario.markets.items() if m.lot and (price := want.prices.get(k))), Fraction(0)
        )
        assert abs(Fraction(got.equity) - want.equity) <= lots + MONEY_TOLERANCE, (
            f"{where}: equity engine {got.equity}, model {float(want.equity)!r}"
        )
        for key, position in got.positions.items():
            assert Fraction(position.amount) == want.amounts[key], (
                f"{where}: {key} amount engine {position.amount}, model {_decimal(want.amounts[key])}"
            )
            _money(f"{where}: {key} cost basis", position.cost_basis, want.cost_basis[key])
            weight = Fraction(position.weight) - want.weight(key)
            assert abs(weight) <= (lots + MONEY_TOLERANCE) / want.equity, (
                f"{where}: {key} weight engine {position.weight}"
            )
    event(f"{mode.value}: {'every cycle compared' if not ambiguous else 'some cycles undecided'}")


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(scenarios())
def test_boost_matches_the_reference_model_after_every_cycle(scenario: Scenario) -> None:
    assert_engine_matches_model(scenario, ExecutionMode.BOOST)


@_SETTINGS
@given(scenarios())
def test_multi_matches_the_reference_model_after_every_cycle(scenario: Scenario) -> None:
    assert_engine_matches_model(scenario, ExecutionMode.MULTI)


# The README worked example, run through the model alone.
_README_PERCENTAGES = {"BTCUSD": Fraction(20, 100), "ETHUSD": Fraction(25, 100), "SOLUSD": Fraction(50, 100)}
_README_PRICES = {"BTCUSD": Fraction(60000), "ETHUSD": Fraction(3000), "SOLUSD": Fraction(150)}
_README_STEPS: list[list[tuple[str, bool]]] = [
    [("BTCUSD", True)],
    [("ETHUSD", True)],
    [("BTCUSD", False), ("ETHUSD", False)],
    [("BTCUSD", True), ("SOLUSD", True)],
    [("BTCUSD", False), ("SOLUSD", False)],
]


def _readme_alerts() -> list[ModelAlert]:
    return [
        ModelAlert(
            time=START + timedelta(hours=8 * step, minutes=30, seconds=i),
            key=key,
            buy=buy,
            price=_README_PRICES[key],
        )
        for step, signals in enumerate(_README_STEPS)
        for i, (key, buy) in enumerate(signals)
    ]


def _percent_weights(snapshot: Snapshot) -> dict[str, Fraction]:
    weights = {key: w * 100 for key, w in snapshot.weights.items()}
    weights["cash"] = snapshot.cash_weight * 100
    return weights


def test_model_reproduces_the_readme_boost_example() -> None:
    snapshots = simulate(_README_PERCENTAGES, _readme_alerts(), boost=True, cash=Fraction(CASH))
    assert [_percent_weights(s) for s in snapshots] == [
        {"BTCUSD": 95, "cash": 5},
        {"BTCUSD": 20, "ETHUSD": 75, "cash": 5},
        {"cash": 100},
        {"BTCUSD": 20, "SOLUSD": 75, "cash": 5},
        {"cash": 100},
    ]
    assert all(s.ambiguous is None for s in snapshots)


def test_model_reproduces_the_readme_multi_example() -> None:
    snapshots = simulate(_README_PERCENTAGES, _readme_alerts(), boost=False, cash=Fraction(CASH))
    assert [_percent_weights(s) for s in snapshots] == [
        {"BTCUSD": 20, "cash": 80},
        {"BTCUSD": 20, "ETHUSD": 25, "cash": 55},
        {"cash": 100},
        {"BTCUSD": 20, "SOLUSD": 50, "cash": 30},
        {"cash": 100},
    ]
    assert all(s.ambiguous is None for s in snapshots)
