"""One bar's alerts are netted in the order they arrived, not in the order of their dedupe keys.

Found replaying a TradingView trade list (tests/unit/test_charts.py's BTCUSD export): a trade's exit and the
next trade's entry carry the same bar time. The pending signals were ordered by time, then by the time a cycle
stored them (the same for a whole batch), then by dedupe key, a hash: so the entry could come first (ignored,
already long) and the exit second, which sold the position the strategy kept. They are now ordered by the time
the webhook queued each (crypto_bot.engine.records.arrival_order).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.signals import parse_signal
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot_tools.cycle import Engine

NOW = datetime(2026, 12, 1, 8, 1, tzinfo=UTC)
BAR = "2026-12-01T08:00:00Z"
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.5"}}, "USDT"
)


def alert(action: str, comment: str) -> str:
    return (
        f'{{"time": "{BAR}", "ticker": "BTCUSDT", "order_action": "{action}", "order_price": "60000", '
        f'"order_comment": "{comment}", "market_position": "{"long" if action == "buy" else "flat"}"}}'
    )


@pytest.mark.parametrize(
    ("arrivals", "held"),
    [
        ([("sell", "Exit 3"), ("buy", "Entry 4")], True),  # exit then re-entry: still long, nothing to trade
        ([("buy", "Entry 4"), ("sell", "Exit 3")], False),  # the other way round: the sell decides
    ],
    ids=["exit-then-entry", "entry-then-exit"],
)
def test_one_bars_alerts_are_netted_in_the_order_the_webhook_queued_them(
    arrivals: list[tuple[str, str]], held: bool
) -> None:
    exchange = PaperExchange(balances={"USDT": D(10000)}, prices={"BTC/USDT": D(60000)})
    store = MemoryStore()
    settings = WorkflowSettings(mode=ExecutionMode.BOOST, increment=D("0.001"), fill_timeout=timedelta(0))
    wf = Workflow(store, exchange, CONFIG, settings, lambda: NOW)
    entry = parse_signal(json.loads(alert("buy", "Entry 3").replace(BAR, "2026-12-01T00:00:00Z")), CONFIG)
    Engine(wf, check_interval=0, sleep=lambda _s: None).run_cycle([entry], cycle_id="c1", at=NOW)
    assert store.load_ledger().position(CONFIG["BTCUSDT"]).is_long

    later = NOW + timedelta(hours=8)
    for n, (action, comment) in enumerate(arrivals):
        # Collected together (one drain stores both at the same moment), queued a second apart.
        wf.receive(alert(action, comment), message_id=f"m-{n + 1}", queued_at=later - timedelta(seconds=2 - n))
    assert [s.message_id for s in store.pending_signals()] == ["m-1", "m-2"]
    cycle = wf.open_cycle("c2", later, urgent=False)
    assert cycle.exits == ([] if held else ["BTCUSDT"])
