"""The deployed dry run: PaperTrading=true trades on the venue's markets and fee schedule.

A real ``ccxt.binance`` parses Binance's recorded ``exchangeInfo`` (tests/fixtures/ccxt/binance.json) through a
stubbed transport, or the Binance emulator's over HTTP (tests/venues/binance.py); the table is the template's,
under moto.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.adapters.ccxt.exchange import CcxtExchange, load_exchange_class
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import ConfigError, ExchangeUnavailable, InvalidOrder
from crypto_bot.domain.markets import Market, Side
from crypto_bot.entrypoints.bootstrap import App, bootstrap
from crypto_bot.entrypoints.settings import Settings
from crypto_bot_tools.local.stack import LocalStack
from tests.integration.conftest import emptied_table
from tests.support.environment import template_environment
from tests.unit.test_ccxt_exchange import ccxt_errors, make_venue, venue_data
from tests.venues.binance import Binance
from tests.venues.binance import ccxt_options as binance_ccxt_options
from tests.venues.http import serving

MARKET_DOWNLOAD = "/api/v3/exchangeInfo"
# BTCUSDT's filters in the recorded exchangeInfo (LOT_SIZE, PRICE_FILTER, NOTIONAL) and ccxt's Binance spot fee.
BTC_USDT = Market(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    amount_step=D("0.00001"),
    price_step=D("0.01"),
    min_amount=D("0.00001"),
    min_cost=D("5"),
    maker_fee=D("0.001"),
    taker_fee=D("0.001"),
)


@pytest.fixture
def table(request: pytest.FixtureRequest) -> str:
    """Return the template stack's table name, emptied after the test."""
    return emptied_table(request, "moto").name


@pytest.fixture
def binance_http(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Answer every ccxt.binance instance's public market requests with the recorded data; return the paths asked."""
    sent: list[str] = []
    answers: dict[str, Any] = {
        MARKET_DOWNLOAD: venue_data("binance")["exchange_info"],
        "/sapi/v1/capital/config/getall": [],
        "/sapi/v1/margin/allPairs": [],
        "/sapi/v1/margin/isolated/allPairs": [],
    }

    def fetch(self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        path = urlsplit(url).path
        sent.append(path)
        if path not in answers:
            raise AssertionError(f"unexpected request {method} {url}")
        return answers[path]

    monkeypatch.setattr(load_exchange_class("binance"), "fetch", fetch)
    return sent


def environment(table: str, config: Path, **extra: str) -> dict[str, str]:
    """The template's Globals at their defaults, for a paper stage on Binance quoted in USDT."""
    stage = {
        "EXCHANGE_OPTIONS": json.dumps({"enableRateLimit": False}),
        "QUOTE_CURRENCY": "USDT",
        "TABLE_NAME": table,
        "STRATEGY_CONFIG_PATH": str(config),
        "PAPER_TRADING": "true",
        "PAPER_PRICES": "alerts",  # the venue's ticker is not what these tests are about
    }
    return template_environment(**{**stage, **extra})


@pytest.fixture
def btc_usdt_config(tmp_path: Path) -> Path:
    path = tmp_path / "strategy_config.json"
    path.write_text(
        json.dumps({"BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": 0.5}}),
        encoding="utf-8",
    )
    return path


def paper_app(env: dict[str, str], stack: LocalStack) -> App:
    return bootstrap(Settings.from_env(env), stack.client)


def open_paper(app: App) -> PaperExchange:
    with app.session() as session:
        paper = session.workflow.exchange
    assert isinstance(paper, PaperExchange)
    return paper


def test_paper_trading_takes_the_venues_lot_tick_minimum_and_fees(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, binance_http: list[str]
) -> None:
    app = paper_app(environment(table, btc_usdt_config), template_stack)

    paper = open_paper(app)

    assert paper.load_markets(["BTC/USDT"]) == {"BTC/USDT": BTC_USDT}
    # ccxt's Binance spot fees are charged in the asset received (feeSide "get").
    assert paper.fee_mode == "received"
    assert binance_http.count(MARKET_DOWNLOAD) == 1


def test_the_paper_account_keeps_the_venues_markets_and_the_next_cold_start_reads_them_from_the_cache(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, binance_http: list[str]
) -> None:
    open_paper(paper_app(environment(table, btc_usdt_config), template_stack))

    state, _version = PaperStateStore(table, template_stack.client("dynamodb")).load()
    assert state is not None
    assert PaperExchange.from_state(state).markets == {"BTC/USDT": BTC_USDT}
    again = open_paper(paper_app(environment(table, btc_usdt_config), template_stack))
    assert again.markets == {"BTC/USDT": BTC_USDT}
    assert again.fee_mode == "received"
    assert binance_http.count(MARKET_DOWNLOAD) == 1  # the second container read the markets cache


def test_the_dry_run_refuses_and_charges_what_binance_would(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, binance_http: list[str]
) -> None:
    paper = open_paper(paper_app(environment(table, btc_usdt_config), template_stack))
    paper.set_price("BTC/USDT", D("60000"))

    with pytest.raises(InvalidOrder, match="lot size 0.00001"):
        paper.create_limit_order("BTC/USDT", Side.BUY, D("0.000015"), D("60000"), "cid-lot")
    with pytest.raises(InvalidOrder):
        paper.create_limit_order("BTC/USDT", Side.BUY, D("0.00008"), D("60000"), "cid-notional")  # 4.80 < 5 USDT
    with pytest.raises(InvalidOrder, match="tick grid 0.01"):
        paper.create_limit_order("BTC/USDT", Side.BUY, D("0.001"), D("60000.005"), "cid-tick")
    bought = paper.create_limit_order("BTC/USDT", Side.BUY, D("0.001"), D("60000"), "cid-buy")

    assert [(fee.cost, fee.currency) for fee in bought.fees] == [(D("0.000001"), "BTC")]
    assert paper.balances["BTC"] == D("0.000999")
    assert paper.balances["USDT"] == D("9940")
    sold = paper.create_limit_order("BTC/USDT", Side.SELL, D("0.00099"), D("60000"), "cid-sell")
    assert [(fee.cost, fee.currency) for fee in sold.fees] == [(D("0.0594"), "USDT")]
    assert paper.balances["USDT"] == D("9940") + D("59.4") - D("0.0594")


def test_recorded_markets_feed_an_offline_paper_stage(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = tmp_path / "binance_markets.json"
    recorded.write_text(json.dumps(make_venue("binance").exchange.export_markets(["BTC/USDT"])), encoding="utf-8")

    def offline(self: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a recorded paper stage made a request: {url}")

    monkeypatch.setattr(load_exchange_class("binance"), "fetch", offline)
    env = environment(table, btc_usdt_config, PAPER_MARKETS=f"recorded:{recorded}")

    paper = open_paper(paper_app(env, template_stack))

    assert paper.markets == {"BTC/USDT": BTC_USDT}
    assert paper.fee_mode == "received"


def test_permissive_markets_are_the_paper_defaults(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(self: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a permissive paper stage made a request: {url}")

    monkeypatch.setattr(load_exchange_class("binance"), "fetch", offline)
    env = environment(table, btc_usdt_config, PAPER_MARKETS="permissive")

    paper = open_paper(paper_app(env, template_stack))

    market = paper.load_markets(["BTC/USDT"])["BTC/USDT"]
    assert (market.amount_step, market.price_step, market.min_cost, market.taker_fee) == (
        D("0.00000001"),
        D("0.01"),
        D("1"),
        D("0"),
    )
    assert paper.fee_mode == "quote"


def test_a_symbol_the_venue_does_not_list_fails_the_step_naming_it(
    template_stack: LocalStack, table: str, tmp_path: Path, binance_http: list[str]
) -> None:
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps({"SOLUSDT": {"exchange_symbol": "SOL/USDT", "base_asset": "SOL", "percentage": 0.5}}),
        encoding="utf-8",
    )
    app = paper_app(environment(table, config), template_stack)

    with pytest.raises(ConfigError, match=r"^PAPER_MARKETS=venue: cannot load binance's markets of SOL/USDT: "):
        open_paper(app)


def test_an_unreachable_venue_fails_the_step_as_transient(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(self: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        raise ccxt_errors().NetworkError("connection reset")

    monkeypatch.setattr(load_exchange_class("binance"), "fetch", down)
    app = paper_app(environment(table, btc_usdt_config), template_stack)

    with pytest.raises(ExchangeUnavailable, match=r"^PAPER_MARKETS=venue: cannot load binance's markets of BTC/USDT"):
        open_paper(app)


@pytest.mark.parametrize("value", ["", "exchange", "recorded"])
def test_paper_markets_must_say_where_the_markets_come_from(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, value: str
) -> None:
    env = environment(table, btc_usdt_config, PAPER_MARKETS=value)

    with pytest.raises(ConfigError, match="PAPER_MARKETS"):
        open_paper(paper_app(env, template_stack))


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_paper_stage_on_the_binance_emulator_takes_the_markets_the_live_adapter_trades_on(
    template_stack: LocalStack, table: str, tmp_path: Path
) -> None:
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps(
            {
                "BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": 0.4},
                "ETHUSDT": {"exchange_symbol": "ETH/USDT", "base_asset": "ETH", "percentage": 0.4},
            }
        ),
        encoding="utf-8",
    )
    with serving(Binance().routes()) as server:
        options = binance_ccxt_options(server.url)
        env = environment(table, config, EXCHANGE_OPTIONS=json.dumps(options))
        paper = open_paper(paper_app(env, template_stack))
        live = CcxtExchange("binance", options=options).load_markets(["BTC/USDT", "ETH/USDT"])

    assert paper.markets == live
    # ETHUSDT carries the older MIN_NOTIONAL filter, BTCUSDT NOTIONAL (tests/venues/binance.py).
    assert (paper.markets["ETH/USDT"].amount_step, paper.markets["ETH/USDT"].min_cost) == (D("0.0001"), D("5"))
    assert paper.markets["BTC/USDT"] == BTC_USDT
    assert paper.fee_mode == "received"  # the emulator's commission is in the asset received, as Binance's


def test_a_missing_recorded_markets_file_is_named(
    template_stack: LocalStack, table: str, btc_usdt_config: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.json"
    env = environment(table, btc_usdt_config, PAPER_MARKETS=f"recorded:{missing}")

    with pytest.raises(ConfigError, match=f"^PAPER_MARKETS=recorded:{missing}: cannot read it: "):
        open_paper(paper_app(env, template_stack))
