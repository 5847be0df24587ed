"""Fixtures of the emulated-venue lane: a controlled clock and the bot as production runs it.

Each venue adds its own emulator fixture below its section banner. The bot is the
production stack minus AWS: ``CcxtExchange`` (the real ccxt class, pointed at the
emulator through ccxt's ``urls``), ``Workflow`` and ``Engine`` over an in-memory store.
Sockets on 127.0.0.1 are allowed here (the unit lane disables them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

# The invariants helper asserts with plain `assert`; let pytest explain its failures.
pytest.register_assert_rewrite("tests.venues.invariants")

from crypto_bot.adapters.ccxt.exchange import CcxtExchange  # noqa: E402
from crypto_bot.adapters.memory import MemoryStore  # noqa: E402
from crypto_bot.domain.config import ExecutionMode, StrategyConfig  # noqa: E402
from crypto_bot.domain.signals import parse_signal  # noqa: E402
from crypto_bot.engine.ports import Exchange  # noqa: E402
from crypto_bot.engine.retry import RetryPolicy  # noqa: E402
from crypto_bot.engine.workflow import Workflow, WorkflowSettings  # noqa: E402
from crypto_bot_tools.cycle import CycleReport, Engine  # noqa: E402
from tests.faults.report import measured_line, write_section  # noqa: E402
from tests.support.clock import Clock  # noqa: E402
from tests.venues.binance import API_KEY as BINANCE_KEY  # noqa: E402
from tests.venues.binance import SECRET as BINANCE_SECRET  # noqa: E402
from tests.venues.binance import Binance  # noqa: E402
from tests.venues.binance import ccxt_options as binance_ccxt_options  # noqa: E402
from tests.venues.http import VenueServer, serving  # noqa: E402
from tests.venues.invariants import VenueAccount, check_ledger_equals_account  # noqa: E402
from tests.venues.kraken import KrakenVenue  # noqa: E402
from tests.venues.kraken import connect as connect_kraken  # noqa: E402

VENUES_DIR = Path(__file__).resolve().parent


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

    def __post_init__(self) -> None:
        _bots.append(self)  # the scenario report reads each test's bots after it ran

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


# --------------------------------------------------------------------------- the scenario report


@dataclass(frozen=True)
class Scenario:
    """What one whole-cycle test left on its venue, read from the emulator after the test ran."""

    venue: str
    result: str
    orders: int
    duplicates: int
    ledger_equals_account: bool
    signals_terminal: tuple[int, int]  # (terminal with a reason, stored)


_bots: list[Bot] = []
_scenarios: dict[str, Scenario] = {}
_collected: set[str] = set()
_reported: set[str] = set()
_deselected: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _collected.update(item.nodeid for item in items if item.path.resolve().is_relative_to(VENUES_DIR))


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items if item.path.resolve().is_relative_to(VENUES_DIR))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _bots.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when != "call" or item.nodeid not in _collected:
        return
    _reported.add(item.nodeid)
    bots = [b for b in _bots if b.cycles]
    venues = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Binance | KrakenVenue)]
    if len(bots) != 1 or len(venues) != 1:
        return  # not a whole-cycle scenario: a test of the emulator or of the adapter alone
    result = "passed" if report.passed else "failed"
    if hasattr(report, "wasxfail"):
        result = f"failed, a known defect (strict xfail: {report.wasxfail})"
    _scenarios[item.nodeid] = _scenario(type(venues[0]).__name__.removesuffix("Venue"), result, bots[0], venues[0])


def _scenario(name: str, result: str, bot: Bot, venue: VenueAccount) -> Scenario:
    """Read the scenario's figures from the venue's own records and the bot's store."""
    placed = list(venue.placed_client_order_ids())
    duplicates = sum(n - 1 for n in Counter(placed).values())
    records = [r for report in bot.cycles for r in bot.store.intents(report.cycle.cycle_id)]
    # An alert traded by intents of two cycles is a duplicate whatever client ids its orders carry.
    traded: dict[str, set[str]] = {}
    placed_set = set(placed)
    for record in records:
        ids = {record.intent.client_order_id(n) for n in range(record.attempt + 1)}
        if ids & placed_set and record.filled > 0:
            for key in record.intent.signal_keys:
                traded.setdefault(f"{key}|{record.intent.side.value}", set()).add(record.intent.cycle_id)
    duplicates += sum(len(cycles) - 1 for cycles in traded.values())
    try:
        check_ledger_equals_account(bot.store, venue, bot.config)
        ledger_equals_account = True
    except AssertionError:
        ledger_equals_account = False
    signals = bot.store.recent_signals(limit=10_000)
    settled = sum(1 for s in signals if s.status.is_terminal and s.reason)
    return Scenario(name, result, len(placed), duplicates, ledger_equals_account, (settled, len(signals)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Only a run of the whole lane speaks for it: not a -k selection, not one file.
    if _deselected or not _scenarios or _reported != _collected:
        return
    lines = [
        "## Venue lane: whole cycles on the Binance and Kraken emulators (tests/venues)",
        "",
        measured_line(),
        "",
        "The real ccxt clients over HTTP against emulators of each venue's documented REST API, through the",
        "production adapter and workflow. Each row is one test that ran whole cycles, read afterwards from the",
        "emulator's own records: the orders it accepted, duplicates among them (a client id or an intent",
        "attempt twice, or an alert traded in two cycles), whether the ledger equals the account asset by",
        "asset, and how many stored signals ended in a terminal status with a reason.",
        "",
        "| venue | scenario | result | orders placed on the venue | duplicates | ledger = account | signals terminal |",
        "|---|---|---|---|---|---|---|",
    ]
    for nodeid, s in sorted(_scenarios.items(), key=lambda kv: (kv[1].venue, kv[0])):
        name = nodeid.split("::", 1)[1].removeprefix("test_")
        terminal, stored = s.signals_terminal
        lines.append(
            f"| {s.venue} | `{name}` | {s.result} | {s.orders} | {s.duplicates} "
            f"| {'yes' if s.ledger_equals_account else 'no'} | {terminal} of {stored} |"
        )
    lines += [
        "",
        f"{len(_scenarios)} scenarios, {sum(s.result == 'passed' for s in _scenarios.values())} passed;"
        f" {sum(s.orders for s in _scenarios.values())} orders placed on the venues,"
        f" {sum(s.duplicates for s in _scenarios.values())} duplicates.",
    ]
    write_section("venues", lines)
