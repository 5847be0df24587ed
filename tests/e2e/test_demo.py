"""`make demo`'s command, run as CI runs it: `crypto-bot demo --json` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot_tools.local.cli import DEMO_EXTRA_ALERTS
from crypto_bot_tools.replay import ReplayOptions, replay
from tests.conftest import ROOT, load_event


def test_demo_prints_one_replay_shaped_object_per_cycle_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "crypto_bot_tools.cli", "demo", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    cycles = [json.loads(line) for line in done.stdout.splitlines()]
    alerts = [*load_event("alerts/readme_example.jsonl"), *DEMO_EXTRA_ALERTS]
    config = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
    options = ReplayOptions(mode=ExecutionMode.BOOST, fee=Decimal(0), increment=Decimal("0.001"))
    expected = [cycle.to_json() for cycle in replay(alerts, config, options).cycles]
    assert len(cycles) == len(expected) == 7
    assert [set(cycle) for cycle in cycles] == [set(cycle) for cycle in expected]
    assert [{k: v for k, v in c.items() if k != "cycle"} for c in cycles] == [
        {k: v for k, v in c.items() if k != "cycle"} for c in expected
    ]
    # The last cycle is the stop loss's: BTC sold at the stop price, nothing held.
    assert cycles[-1]["positions"] == {}
    assert [o["side"] for o in cycles[-1]["orders"]] == ["sell"]
