"""The engine agrees with an independent reference model of the allocation rules.

Random scenarios (strategies, percentages, price paths, alerts) are replayed through the
real engine on a paper account with no fees and no price increment, and through
``tests.model.reference``; after every cycle the weights and the set of long strategies
must match. The model is checked on its own against the README worked example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from crypto_bot.config import ExecutionMode, StrategyConfig
from crypto_bot.replay import ReplayOptions, replay
from crypto_bot.timeframe import Schedule, Timeframe
from tests.model.reference import ModelAlert, Snapshot, simulate

CASH = 10000
TOLERANCE = Fraction(1, 1000)
START = datetime(2024, 8, 10, 0, 1, tzinfo=UTC)
WINDOWS = 12
"""Alerts fall into this many 8h windows (four days)."""

EXAMPLES = 300
"""Per mode; both modes together run in a few seconds."""


@dataclass(frozen=True)
class Scenario:
    percentages: dict[str, int]
    """Percent points per strategy key (20 means 0.2)."""
    alerts: list[ModelAlert]

    def config_mapping(self) -> dict[str, dict[str, str]]:
        return {
            key: {"exchange_symbol": f"{key}/USD", "base_asset": key, "percentage": str(Decimal(p) / 100)}
            for key, p in self.percentages.items()
        }

    def config(self) -> StrategyConfig:
        return StrategyConfig.from_mapping(self.config_mapping(), "USD")

    def payloads(self) -> list[dict[str, str]]:
        return [
            {
                "time": a.time.isoformat().replace("+00:00", "Z"),
                "ticker": a.key,
                "order_action": "buy" if a.buy else "sell",
                "order_price": f"{Decimal(a.price.numerator) / a.price.denominator:.2f}",
                "order_comment": "stop loss" if a.stop else ("long" if a.buy else "exit"),
            }
            for a in self.alerts
        ]

    def model(self, mode: ExecutionMode) -> list[Snapshot]:
        shares = {key: Fraction(p, 100) for key, p in self.percentages.items()}
        return simulate(shares, self.alerts, boost=mode is ExecutionMode.BOOST, cash=Fraction(CASH))


_KEYS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=3).filter(lambda k: k != "USD")


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
        price[key] = max(5, price[key] * move // 100)
        alerts.append(ModelAlert(time=time, key=key, buy=buy, price=Fraction(price[key], 100), stop=stop))
    return Scenario(percentages, alerts)


def _engine_cycles(scenario: Scenario, mode: ExecutionMode) -> list[dict[str, Any]]:
    options = ReplayOptions(
        mode=mode,
        cash=Decimal(CASH),
        fee=Decimal(0),
        increment=Decimal(0),
        schedule=Schedule(Timeframe.parse("8h")),
    )
    result = replay(scenario.payloads(), scenario.config(), options)
    assert not result.rejected, [r.reason() for r in result.rejected]
    return [cycle.to_json() for cycle in result.cycles]


def _close(engine: Any, model: Fraction) -> bool:
    return abs(Fraction(Decimal(str(engine))) - model) <= TOLERANCE


def assert_engine_matches_model(scenario: Scenario, mode: ExecutionMode) -> None:
    # On failure, print what `crypto-bot replay --fee 0 --increment 0` needs to reproduce it.
    note(f"mode: {mode.value}")
    note("strategy_config.json: " + json.dumps(scenario.config_mapping()))
    note("alerts.jsonl:\n" + "\n".join(json.dumps(p) for p in scenario.payloads()))
    engine = _engine_cycles(scenario, mode)
    model = scenario.model(mode)
    assert [c["cycle"] for c in engine] == [s.at.isoformat().replace("+00:00", "Z") for s in model]
    for rule in sorted({rule for s in model for rule in s.notes}):
        event(f"{mode.value}: {rule}")  # which rules the scenario exercises, for --hypothesis-show-statistics
    for number, (got, want) in enumerate(zip(engine, model, strict=True), start=1):
        if want.ambiguous is not None:
            # The rules do not decide this cycle (e.g. not enough cash for the buys): stop comparing.
            event(f"{mode.value}: stopped at an undecided cycle")
            return
        where = f"cycle {number} at {got['cycle']}"
        positions = got["positions"]
        longs = {key for key, p in positions.items() if Decimal(str(p["amount"])) > 0}
        assert longs == set(want.longs), f"{where}: engine long {sorted(longs)}, model long {sorted(want.longs)}"
        equity = Decimal(str(got["equity"]))
        cash_weight = Fraction(Decimal(str(got["cash"])) / equity)
        assert abs(cash_weight - want.cash_weight) <= TOLERANCE, (
            f"{where}: cash weight engine {float(cash_weight):.6f}, model {float(want.cash_weight):.6f}"
        )
        for key in scenario.percentages:
            weight = positions[key]["weight"] if key in positions else 0
            assert _close(weight, want.weight(key)), (
                f"{where}: {key} weight engine {weight}, model {float(want.weight(key)):.6f}"
            )
    event(f"{mode.value}: every cycle compared")


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(scenarios())
def test_boost_weights_match_the_reference_model_after_every_cycle(scenario: Scenario) -> None:
    assert_engine_matches_model(scenario, ExecutionMode.BOOST)


@_SETTINGS
@given(scenarios())
def test_multi_weights_match_the_reference_model_after_every_cycle(scenario: Scenario) -> None:
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
