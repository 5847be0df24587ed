"""Property tests: invariants that hold for any alert sequence, fee, increment and lot size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange, default_market
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import ExchangeOrder
from crypto_bot.domain.signals import parse_signal
from crypto_bot.engine.records import IntentStatus
from crypto_bot.engine.retry import NO_RETRY
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot_tools.cycle import Engine

KEYS = ["AAA", "BBB", "CCC", "DDD"]
START = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)


class CheckedPaper(PaperExchange):
    """A paper account that records, for every order, the free balance it was sent against."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.placed: list[tuple[ExchangeOrder | None, D, D]] = []

    def create_limit_order(self, symbol: str, side: Side, amount: D, price: D, client_order_id: str) -> ExchangeOrder:
        market = self.markets[symbol]
        asset = market.quote if side is Side.BUY else market.base
        need = amount * price * (1 + market.taker_fee) if side is Side.BUY else amount
        free = self.balances.get(asset, D(0))
        order = super().create_limit_order(symbol, side, amount, price, client_order_id)
        self.placed.append((order, need, free))
        return order


@dataclass
class Scenario:
    percentages: dict[str, D]
    fee: D
    increment: D
    amount_step: D
    cycles: list[list[tuple[str, str]]]  # per cycle: (key, action)
    prices: list[dict[str, D]]  # per cycle: price per key


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(2, 4))
    keys = KEYS[:count]
    raw = draw(st.lists(st.integers(1, 60), min_size=count, max_size=count))
    scale = min(D(1), D(98) / sum(raw))
    percentages = {
        k: (D(r) * scale / 100).quantize(D("0.01"), rounding="ROUND_DOWN") for k, r in zip(keys, raw, strict=True)
    }
    percentages = {k: p if p > 0 else D("0.01") for k, p in percentages.items()}
    n_cycles = draw(st.integers(1, 8))
    cycles = [
        draw(st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(["buy", "sell"])), min_size=1, max_size=5))
        for _ in range(n_cycles)
    ]
    prices = [{k: D(draw(st.integers(50, 200))) * 10 for k in keys} for _ in range(n_cycles)]
    return Scenario(
        percentages=percentages,
        fee=draw(st.sampled_from([D(0), D("0.001"), D("0.0026")])),
        increment=draw(st.sampled_from([D(0), D("0.001"), D("0.005")])),
        amount_step=draw(st.sampled_from([D("0.00000001"), D("0.001"), D("0.1")])),
        cycles=cycles,
        prices=prices,
    )


def run_checked(scenario: Scenario, mode: ExecutionMode) -> None:  # noqa: C901 - one loop of checks
    config = StrategyConfig.from_mapping(
        {k: {"exchange_symbol": f"{k}/USD", "base_asset": k, "percentage": p} for k, p in scenario.percentages.items()},
        "USD",
    )
    markets = {
        f"{k}/USD": default_market(f"{k}/USD", scenario.fee).__class__(
            symbol=f"{k}/USD",
            base=k,
            quote="USD",
            amount_step=scenario.amount_step,
            price_step=D("0.01"),
            min_amount=scenario.amount_step,
            min_cost=D(1),
            maker_fee=scenario.fee,
            taker_fee=scenario.fee,
        )
        for k in scenario.percentages
    }
    paper = CheckedPaper(balances={"USD": D(10000)}, markets=markets)
    store = MemoryStore()
    clock = [START]
    settings = WorkflowSettings(mode=mode, increment=scenario.increment, fill_timeout=timedelta(0))
    workflow = Workflow(store=store, exchange=paper, config=config, settings=settings, clock=lambda: clock[0])
    engine = Engine(workflow, check_interval=0, place_retry=NO_RETRY, sleep=lambda _s: None)
    sigma_p = config.total_percentage
    for number, (batch, prices) in enumerate(zip(scenario.cycles, scenario.prices, strict=True)):
        at = START + timedelta(hours=8 * number)
        for key, price in prices.items():
            paper.set_price(f"{key}/USD", price)
        signals = [
            parse_signal(
                {
                    "time": (at - timedelta(minutes=30, seconds=i)).isoformat(),
                    "ticker": key,
                    "order_action": action,
                    "order_price": str(prices[key]),
                    "order_comment": "x",
                },
                config,
            )
            for i, (key, action) in enumerate(batch)
        ]
        clock[0] = at
        long_before = {p.strategy: p.cost_basis for p in store.load_ledger().long_positions()}
        report = engine.run_cycle(signals, cycle_id=f"c{number}", at=at)
        ledger = store.load_ledger()

        # 1. Cash never goes negative, free or locked.
        for asset, balance in paper.fetch_balances().items():
            assert balance.free >= 0, (asset, balance)
            assert balance.used >= 0, (asset, balance)
        # 2. No order was ever sent that the free balance could not cover.
        for _order, need, free in paper.placed:
            assert need <= free, (need, free)
        assert not [r for r in report.results if r.status is IntentStatus.FAILED], report.results
        # 3. What the cycle's buys invest stays within their share of V at planning time.
        cycle = report.cycle
        if cycle.entry_order:
            assert cycle.account_value is not None
            entered = {r.strategy for r in report.results if r.side is Side.BUY and r.filled > 0}
            invested = sum((ledger.positions[k].cost_basis for k in entered), D(0))
            assert invested <= sum((cycle.targets[k] for k in entered), D(0))
            assert sum(cycle.targets.values(), D(0)) <= sigma_p * cycle.account_value
        # 4. Boost never buys more for a strategy that was already active.
        buys = {r.strategy for r in report.results if r.side is Side.BUY}
        assert not buys & set(long_before), (buys, long_before)
        for key, basis in long_before.items():
            assert ledger.position(config[key]).cost_basis <= basis
        # The ledger and the account always agree, asset by asset.
        assert all(v == 0 for v in ledger.drift(paper.fetch_balances()).values()), ledger.drift(paper.fetch_balances())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_boost_invariants_hold_for_any_alert_sequence(scenario: Scenario) -> None:
    run_checked(scenario, ExecutionMode.BOOST)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_multi_invariants_hold_for_any_alert_sequence(scenario: Scenario) -> None:
    run_checked(scenario, ExecutionMode.MULTI)
