"""The exchange's markets, trimmed to the configured symbols, cached in the table.

A ccxt exchange downloads the venue's whole market list before its first order: for
Binance that is several megabytes and a handful of requests, on every Lambda cold start.
The bot trades a few symbols, so the markets of those symbols are kept in one item:

* ``pk="MARKETS#<exchange>"`` (``#sandbox`` appended for the testnet, whose markets
  differ), ``sk="MARKETS"``;
* ``markets``: ccxt's own market structures (:meth:`CcxtExchange.export_markets`) of the
  configured symbols, as zlib-compressed JSON (binary);
* ``symbols``, ``fetched_at`` (ISO time) and ``expires_at`` (epoch seconds, the table's TTL).

DynamoDB deletes expired items only eventually (typically within a few days), so the
freshness is also checked on read against ``fetched_at``. A missing, stale, unreadable or
incomplete item (a symbol was added to the config) is a miss: the markets are downloaded
once, trimmed and stored for the next cold start.

The cache is an optimisation. If the table cannot be read or written, or the download
fails, the exchange is left as it was and ccxt downloads the markets when it needs them.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from crypto_bot.adapters.aws.errors import translate_errors
from crypto_bot.domain.errors import ExchangeError, StoreError

__all__ = ["DEFAULT_MAX_AGE", "CacheOutcome", "MarketsCache", "prime_from_table"]

LOG = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = timedelta(hours=24)
_ENCODING: Final = "json+zlib"
# DynamoDB's item limit is 400 KB; leave room for the other attributes.
_MAX_BLOB: Final = 350_000


class MarketSource(Protocol):
    """The part of :class:`~crypto_bot.adapters.ccxt.exchange.CcxtExchange` the cache uses."""

    @property
    def name(self) -> str: ...

    def export_markets(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    def prime_markets(self, raw_markets: Mapping[str, Mapping[str, Any]]) -> None: ...


class CacheOutcome(StrEnum):
    """What :func:`prime_from_table` did."""

    HIT = "hit"  # fed from the table, nothing downloaded
    REFRESHED = "refreshed"  # downloaded, trimmed and stored
    UNAVAILABLE = "unavailable"  # left to ccxt: the table or the exchange failed


@dataclass
class MarketsCache:
    """Read and write one exchange's trimmed markets in the table."""

    table_name: str
    client: Any
    exchange_id: str
    sandbox: bool = False
    max_age: timedelta = DEFAULT_MAX_AGE
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def key(self) -> dict[str, dict[str, str]]:
        """Return the item's primary key."""
        pk = f"MARKETS#{self.exchange_id}" + ("#sandbox" if self.sandbox else "")
        return {"pk": {"S": pk}, "sk": {"S": "MARKETS"}}

    def load(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]] | None:
        """Return the cached markets of ``symbols`` if all are there and fresh, else None."""
        wanted = sorted(set(symbols))
        with translate_errors(f"get the cached markets from {self.table_name}"):
            item = self.client.get_item(TableName=self.table_name, Key=self.key).get("Item")
        if item is None:
            return None
        try:
            fetched_at = datetime.fromisoformat(item["fetched_at"]["S"])
            if item["encoding"]["S"] != _ENCODING:
                raise ValueError(f"encoding {item['encoding']['S']!r}")
            markets: dict[str, dict[str, Any]] = json.loads(zlib.decompress(item["markets"]["B"]))
        except (KeyError, TypeError, ValueError, zlib.error) as e:
            # A malformed item is a miss: the refresh overwrites it.
            LOG.warning("cached markets of %s are unreadable (%s); downloading them", self.exchange_id, e)
            return None
        if self.clock() - fetched_at >= self.max_age:
            return None
        if any(symbol not in markets for symbol in wanted):
            return None
        return {symbol: markets[symbol] for symbol in wanted}

    def save(self, markets: Mapping[str, Mapping[str, Any]]) -> int:
        """Store the markets with the current time; return the compressed size in bytes."""
        blob = zlib.compress(json.dumps(markets, separators=(",", ":"), sort_keys=True).encode(), 9)
        if len(blob) > _MAX_BLOB:
            raise StoreError(f"the markets of {len(markets)} symbols take {len(blob)} bytes compressed; too big")
        now = self.clock()
        item = {
            **self.key,
            "markets": {"B": blob},
            "encoding": {"S": _ENCODING},
            "symbols": {"S": ",".join(sorted(markets))},
            "fetched_at": {"S": now.isoformat()},
            "expires_at": {"N": str(int((now + self.max_age).timestamp()))},
        }
        with translate_errors(f"store the markets in {self.table_name}"):
            self.client.put_item(TableName=self.table_name, Item=item)
        return len(blob)


def prime_from_table(
    exchange: MarketSource,
    table_name: str,
    client: Any,
    symbols: Iterable[str],
    *,
    sandbox: bool = False,
    max_age: timedelta = DEFAULT_MAX_AGE,
    clock: Callable[[], datetime] | None = None,
) -> CacheOutcome:
    """Feed the exchange its configured symbols' markets from the table, refreshing a missing or stale copy."""
    wanted = sorted(set(symbols))
    cache = MarketsCache(table_name, client, exchange.name, sandbox=sandbox, max_age=max_age)
    if clock is not None:
        cache.clock = clock
    try:
        cached = cache.load(wanted)
    except StoreError as e:
        LOG.warning("cannot read the cached markets of %s (%s); ccxt downloads them", exchange.name, e)
        return CacheOutcome.UNAVAILABLE
    if cached is not None:
        exchange.prime_markets(cached)
        return CacheOutcome.HIT
    try:
        # Downloads every market once; the adapter keeps them, so this cold start needs no second download.
        fresh = exchange.export_markets(wanted)
    except ExchangeError as e:
        # A step that never touches the exchange (collect, finalize) must not fail because the venue is down.
        LOG.warning("cannot download the markets of %s (%s); ccxt retries when it needs them", exchange.name, e)
        return CacheOutcome.UNAVAILABLE
    try:
        cache.save(fresh)
    except StoreError as e:
        LOG.warning("cannot store the markets of %s (%s); the next cold start downloads them again", exchange.name, e)
    return CacheOutcome.REFRESHED
