"""Fixtures shared by every test kind."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.domain.config import StrategyConfig
from crypto_bot_tools.local.cli import redate_alerts

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> Any:
    """Load a file from events/ (the same files `sam local invoke` uses)."""
    path = EVENTS / name
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


class AlertClock:
    """Date alerts as TradingView sends them: each batch ends now, after the batch before it.

    The template's expiry (MaxSignalAgeMinutes 485) stays on in the emulated tests; the README
    example's 2024 dates would expire every alert.
    """

    def __init__(self) -> None:
        self.last: datetime | None = None

    def __call__(self, alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        dated = redate_alerts(alerts, datetime.now(UTC), after=self.last)
        self.last = max(datetime.fromisoformat(str(alert["time"])) for alert in dated)
        return dated


def paper_environment(**overrides: str) -> dict[str, str]:
    """Return the functions' settings for emulated cycles: paper trading priced by the alerts.

    Everything else is the template's (local_stack reads its Globals), expiry included.
    """
    values = {
        "PAPER_TRADING": "true",
        "PAPER_PRICES": "alerts",
        # The recorded venues list only some of the README strategies' markets (binance.json: BTC/USDT); the
        # paper defaults (no fee) keep the cycles equal to replay's model. Venue markets:
        # tests/integration/test_paper_markets.py.
        "PAPER_MARKETS": "permissive",
        "STRATEGY_CONFIG_PATH": str(ROOT / "strategy_config.json"),
        # Alert prices never move, so a resting order fills only by being chased: the template's 60 s would be
        # waited in real time. 0 chases at once, as replay does.
        "FILL_TIMEOUT_SECONDS": "0",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CryptoBotTest",
    }
    values.update(overrides)
    return values


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-live", action="store_true", help="run tests that need a real exchange or AWS account")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-live"):
        return
    skip = pytest.mark.skip(reason="needs a real exchange or AWS account: pass --run-live")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def readme_config() -> StrategyConfig:
    """The seed README's three strategies: BTC 20%, ETH 25%, SOL 50%."""
    return StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
