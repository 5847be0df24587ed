"""The markets cache on the template's table (moto), with the real ccxt adapter behind a fake HTTP layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.adapters.aws.markets_cache import CacheOutcome, MarketsCache, prime_from_table
from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.entrypoints.bootstrap import bootstrap
from crypto_bot.entrypoints.settings import Settings
from crypto_bot_tools.local.stack import LocalStack
from tests.integration.conftest import emptied_table
from tests.support.environment import template_environment
from tests.unit.test_ccxt_exchange import FakeVenue, ccxt_errors, make_venue

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SYMBOLS = ["BTC/USDT", "ETH/BTC"]
MARKET_DOWNLOAD = "/api/v3/exchangeInfo"


@pytest.fixture
def table(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """Return the template stack's table (its name and client), emptied after the test."""
    moto = emptied_table(request, "moto")
    return moto.name, moto.client


def at(moment: datetime) -> Any:
    return lambda: moment


def offline_binance() -> tuple[CcxtExchange, FakeVenue]:
    """A binance adapter whose HTTP layer refuses every request: only a cache can feed it markets."""
    exchange = CcxtExchange("binance", options={"enableRateLimit": False})
    return exchange, FakeVenue(exchange.client)


def test_a_cold_start_with_an_empty_cache_downloads_once_and_stores_the_trimmed_markets(
    table: tuple[str, Any],
) -> None:
    name, client = table
    venue = make_venue("binance")

    outcome = prime_from_table(venue.exchange, name, client, SYMBOLS, clock=at(NOW))

    assert outcome is CacheOutcome.REFRESHED
    assert venue.http.count("GET", MARKET_DOWNLOAD) == 1
    item = client.get_item(TableName=name, Key={"pk": {"S": "MARKETS#binance"}, "sk": {"S": "MARKETS"}})["Item"]
    assert item["symbols"]["S"] == "BTC/USDT,ETH/BTC"
    assert item["fetched_at"]["S"] == NOW.isoformat()
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(hours=24)).timestamp())


def test_a_cold_start_with_a_fresh_cache_downloads_nothing_and_trades_on_the_cached_markets(
    table: tuple[str, Any],
) -> None:
    name, client = table
    prime_from_table(make_venue("binance").exchange, name, client, SYMBOLS, clock=at(NOW))
    exchange, http = offline_binance()

    outcome = prime_from_table(exchange, name, client, SYMBOLS, clock=at(NOW + timedelta(hours=23)))

    assert outcome is CacheOutcome.HIT
    assert exchange.load_markets(SYMBOLS) == make_venue("binance").exchange.load_markets(SYMBOLS)
    assert http.sent == []


def test_a_stale_cache_is_refreshed_even_before_the_ttl_deletes_it(table: tuple[str, Any]) -> None:
    name, client = table
    prime_from_table(make_venue("binance").exchange, name, client, SYMBOLS, clock=at(NOW))
    later = NOW + timedelta(hours=24)
    venue = make_venue("binance")

    assert prime_from_table(venue.exchange, name, client, SYMBOLS, clock=at(later)) is CacheOutcome.REFRESHED
    assert venue.http.count("GET", MARKET_DOWNLOAD) == 1
    assert MarketsCache(name, client, "binance", clock=at(later)).load(SYMBOLS) is not None


def test_a_symbol_added_to_the_config_misses_the_cache(table: tuple[str, Any]) -> None:
    name, client = table
    prime_from_table(make_venue("binance").exchange, name, client, ["BTC/USDT"], clock=at(NOW))

    assert MarketsCache(name, client, "binance", clock=at(NOW)).load(SYMBOLS) is None
    venue = make_venue("binance")
    assert prime_from_table(venue.exchange, name, client, SYMBOLS, clock=at(NOW)) is CacheOutcome.REFRESHED
    assert venue.http.count("GET", MARKET_DOWNLOAD) == 1


def test_a_cache_returns_only_the_symbols_asked_for(table: tuple[str, Any]) -> None:
    name, client = table
    prime_from_table(make_venue("binance").exchange, name, client, SYMBOLS, clock=at(NOW))

    assert list(MarketsCache(name, client, "binance", clock=at(NOW)).load(["ETH/BTC"]) or {}) == ["ETH/BTC"]


def test_sandbox_markets_are_cached_apart_from_the_real_venue(table: tuple[str, Any]) -> None:
    name, client = table
    MarketsCache(name, client, "binance", clock=at(NOW)).save(make_venue("binance").exchange.export_markets(SYMBOLS))

    assert MarketsCache(name, client, "binance", sandbox=True, clock=at(NOW)).load(SYMBOLS) is None


def test_an_unreadable_cache_item_is_a_miss_and_is_overwritten(table: tuple[str, Any]) -> None:
    name, client = table
    key = {"pk": {"S": "MARKETS#binance"}, "sk": {"S": "MARKETS"}}
    client.put_item(
        TableName=name,
        Item={
            **key,
            "markets": {"B": b"not zlib"},
            "encoding": {"S": "json+zlib"},
            "fetched_at": {"S": NOW.isoformat()},
        },
    )
    venue = make_venue("binance")

    assert prime_from_table(venue.exchange, name, client, SYMBOLS, clock=at(NOW)) is CacheOutcome.REFRESHED
    assert MarketsCache(name, client, "binance", clock=at(NOW)).load(SYMBOLS) is not None


def test_a_venue_outage_during_the_refresh_leaves_the_download_to_ccxt(table: tuple[str, Any]) -> None:
    name, client = table
    venue = make_venue("binance")
    venue.http.on("GET", MARKET_DOWNLOAD, ccxt_errors().ExchangeNotAvailable("maintenance"))

    assert prime_from_table(venue.exchange, name, client, SYMBOLS, clock=at(NOW)) is CacheOutcome.UNAVAILABLE
    assert MarketsCache(name, client, "binance", clock=at(NOW)).load(SYMBOLS) is None


def test_a_table_outage_leaves_the_download_to_ccxt(template_stack: LocalStack) -> None:
    exchange, http = offline_binance()

    outcome = prime_from_table(exchange, "no-such-table", template_stack.client("dynamodb"), SYMBOLS, clock=at(NOW))

    assert outcome is CacheOutcome.UNAVAILABLE
    assert http.sent == []


def test_the_live_runtime_feeds_its_exchange_from_the_cache(
    table: tuple[str, Any], template_stack: LocalStack, tmp_path: Path
) -> None:
    name, client = table
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps({"BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": 0.5}}),
        encoding="utf-8",
    )
    MarketsCache(name, client, "binance").save(make_venue("binance").exchange.export_markets(["BTC/USDT"]))
    template_stack.client("ssm").put_parameter(
        Name="/bench/key", Type="SecureString", Value=json.dumps({"apiKey": "k", "secret": "s"}), Overwrite=True
    )
    env = template_environment(
        QUOTE_CURRENCY="USDT",
        EXCHANGE_OPTIONS=json.dumps({"enableRateLimit": False}),
        STRATEGY_CONFIG_PATH=str(config),
        TABLE_NAME=name,
        API_KEY_PARAMETER="/bench/key",
    )
    app = bootstrap(Settings.from_env(env), template_stack.client)

    with app.session() as session:
        exchange = session.workflow.exchange

    assert isinstance(exchange, CcxtExchange)
    http = FakeVenue(exchange.client)  # no routes: a market download would fail the test
    assert exchange.load_markets(["BTC/USDT"])["BTC/USDT"].price_step > 0
    assert http.sent == []
