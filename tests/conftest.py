"""Fixtures shared by every test kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.config import StrategyConfig

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> Any:
    """Load a file from events/ (the same files `sam local invoke` uses)."""
    path = EVENTS / name
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def paper_environment(**overrides: str) -> dict[str, str]:
    """Return the functions' settings for emulated cycles: paper trading priced by the alerts, no waiting."""
    values = {
        "PAPER_TRADING": "true",
        "PAPER_PRICES": "alerts",
        "STRATEGY_CONFIG_PATH": str(ROOT / "strategy_config.json"),
        "MAX_SIGNAL_AGE_MINUTES": "0",  # the README alerts are from 2024
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
    return StrategyConfig.load(ROOT / "strategy_config.json", "USD")
