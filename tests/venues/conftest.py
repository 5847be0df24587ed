"""Fixtures of the emulated-venue lane: a controlled clock and the bot as production runs it.

Each venue adds its own emulator fixture below its section banner. The bot is the
production stack minus AWS: ``CcxtExchange`` (the real ccxt class, pointed at the
emulator through ccxt's ``urls``), ``Workflow`` and ``Engine`` over an in-memory store.
Sockets on 127.0.0.1 are allowed here (the unit lane disables them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

# The invariants helper asserts with plain `assert`; let pytest explain its failures.
pytest.register_assert_rewrite("tests.venues.invariants")

from crypto_bot.config import ExecutionMode, StrategyConfig  # noqa: E402
from crypto_bot.cycle import CycleReport, Engine  # noqa: E402
from crypto_bot.exchanges.ccxt_exchange import CcxtExchange  # noqa: E402
from crypto_bot.ports import Exchange  # noqa: E402
from crypto_bot.retry import RetryPolicy  # noqa: E402
from crypto_bot.signals import parse_signal  # noqa: E402
from crypto_bot.store import MemoryStore  # noqa: E402
from crypto_bot.workflow import Workflow, WorkflowSettings  # noqa: E402
from tests.venues.binance import API_KEY as BINANCE_KEY  # noqa: E402
from tests.venues.binance import SECRET as BINANCE_SECRET  # noqa: E402
from tests.venues.binance import Binance  # noqa: E402
from tests.venues.binance import ccxt_options as binance_ccxt_options  # noqa: E402
from tests.venues.http import VenueServer, serving  # noqa: E402
from tests.venues.kraken import KrakenVenue  # noqa: E402
from tests.venues.kraken import connect as connect_kraken  # noqa: E402

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)


@dataclass
class Clock:
    """The workflow's clock and sleep: sleeping moves time forward at once."""

    now: datetime = T0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@dataclass
class Bot:
    """The production cycle (Workflow + Engine) over one exchange adapter and a memory store."""

    exchange: Exchange
    config: StrategyConfig
    clock: Clock
    store: MemoryStore = field(default_factory=MemoryStore)
    mode: ExecutionMode = ExecutionMode.BOOST
    fill_timeout: timedelta = timedelta(seconds=0)
    max_reprice_attempts: int = 2
    cycles: list[CycleReport] = field(default_factory=list)

    @property
    def workflow(self) -> Workflow:
        settings = WorkflowSettings(
            mode=self.mode,
            increment=Decimal("0.001"),
            fill_timeout=self.fill_timeout,
            max_reprice_attempts=self.max_reprice_attempts,
        )
        return Workflow(self.store, self.exchange, self.config, settings, self.clock, sleep=self.clock.sleep)

    def cycle(self, alerts: Sequence[Mapping[str, Any]], *, urgent: bool = False) -> CycleReport:
        """Run one whole cycle on ``alerts`` as the deployed state machine would, one minute after the last."""
        signals = [parse_signal(a, self.config) for a in alerts]
        # Step Functions' Retry of transient errors around Place, with the clock's sleep instead of a real wait.
        engine = Engine(self.workflow, check_interval=0, place_retry=RetryPolicy(), sleep=self.clock.sleep)
        self.clock.now += timedelta(minutes=1)  # not a sleep: `sleeps` records only what the bot waited
        report = engine.run_cycle(signals, cycle_id=f"cycle-{len(self.cycles) + 1}", at=self.clock(), urgent=urgent)
        self.cycles.append(report)
        return report


def alert(ticker: str, action: str, price: str, *, at: datetime, comment: str = "") -> dict[str, str]:
    """Build a TradingView alert as the README's template sends it (``market_position`` from the action)."""
    return {
        "time": at.isoformat().replace("+00:00", "Z"),
        "ticker": ticker,
        "order_action": action,
        "order_price": price,
        "order_comment": comment or ("Long entry" if action == "buy" else "Long exit"),
        "market_position": "long" if action == "buy" else "flat",
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --------------------------------------------------------------------------- Binance


@pytest.fixture
def binance_venue() -> Binance:
    """A Binance spot account with nothing in it; BTCUSDT trades at 60000 and ETHUSDT at 3000."""
    venue = Binance()
    venue.set_price("BTCUSDT", Decimal(60000))
    venue.set_price("ETHUSDT", Decimal(3000))
    return venue


@pytest.fixture
def binance_server(binance_venue: Binance) -> Iterator[VenueServer]:
    with serving(binance_venue.routes()) as server:
        yield server


@pytest.fixture
def binance(binance_server: VenueServer, clock: Clock) -> CcxtExchange:
    """The production adapter over ccxt's real binance class, pointed at the emulator."""
    return CcxtExchange(
        "binance",
        api_key=BINANCE_KEY,
        secret=BINANCE_SECRET,
        options=binance_ccxt_options(binance_server.url),
        sleep=clock.sleep,  # the adapter's read retries wait on the test's clock, not for real
    )


# --------------------------------------------------------------------------- Kraken


@pytest.fixture
def kraken_venue() -> KrakenVenue:
    """A Kraken account holding 10,000 USD; XBT/USD trades at 60,000."""
    return KrakenVenue({"ZUSD": Decimal(10000)})


@pytest.fixture
def kraken_server(kraken_venue: KrakenVenue) -> Iterator[VenueServer]:
    with serving(kraken_venue.routes()) as server:
        yield server


@pytest.fixture
def kraken(kraken_server: VenueServer, kraken_venue: KrakenVenue, clock: Clock) -> CcxtExchange:
    """The production adapter over ccxt's real kraken class, pointed at the emulator."""
    return connect_kraken(kraken_server, kraken_venue, sleep=clock.sleep)
