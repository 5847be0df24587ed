"""The paper account of a dry-run stack (PAPER_TRADING=true): kept in the table, priced and ruled as configured.

Each invocation opens the stored account (a new one with PAPER_STARTING_CASH on the first), gives it its price
feed and its venue's rules, and saves it when the step succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from crypto_bot.adapters.aws.paper_state import PaperStateStore, paper_session
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError, ExchangeError, ExchangeUnavailable, PermanentExchangeError
from crypto_bot.domain.markets import Market
from crypto_bot.engine.ports import AlertPricedMarket, PriceFeed
from crypto_bot.engine.retry import RetryPolicy
from crypto_bot.entrypoints.settings import PaperSettings, Settings


@dataclass(frozen=True)
class PaperRules:
    """What the paper account trades on: the venue's markets (None: the paper defaults) and fee mode."""

    markets: Mapping[str, Market] | None
    fee_mode: Literal["quote", "received"]

    def apply(self, paper: PaperExchange) -> None:
        """Give the paper account these markets and fee mode."""
        if self.markets is not None:
            paper.markets.update(self.markets)
        paper.fee_mode = self.fee_mode


class PaperAccount:
    """Open the stored paper account for one invocation; the rules and the price feed are read once per container."""

    def __init__(
        self, settings: Settings, paper: PaperSettings, config: StrategyConfig, dynamodb: Any, retry: RetryPolicy
    ) -> None:
        self.settings = settings
        self.paper = paper
        self.config = config
        self.dynamodb = dynamodb
        self.retry = retry
        self.states = PaperStateStore(settings.table_name, dynamodb)
        self._rules: PaperRules | None = None
        self._feed: PriceFeed | None = None

    @contextmanager
    def __call__(self) -> Iterator[tuple[PaperExchange, AlertPricedMarket | None]]:
        """Yield the account, and itself again as the alert-priced market when no price feed prices it."""
        with paper_session(self.states, self._new_account) as account:
            account.price_feed = self.price_feed()
            # Re-applied to a restored account too, so it trades on the rules configured now;
            # unchanged rules leave the state as it was, and paper_session writes nothing.
            self.rules().apply(account)
            yield account, account if account.price_feed is None else None

    def _new_account(self) -> PaperExchange:
        return PaperExchange(balances={self.config.quote: self.paper.starting_cash})

    def price_feed(self) -> PriceFeed | None:
        """Return the venue's public ticker (PAPER_PRICES=live), or None: the alerts price the account."""
        if self.paper.prices == "alerts":
            return None
        if self._feed is None:
            from crypto_bot.adapters.ccxt.exchange import CcxtExchange

            public = CcxtExchange(self.settings.exchange_name, options=self.settings.exchange_options)
            self._feed = public.fetch_last_price
        return self._feed

    def rules(self) -> PaperRules:
        """Return the markets and fee mode the paper account trades on, as PAPER_MARKETS says.

        * ``venue`` (the template's): the exchange's own lot sizes, ticks, minimums and fee
          rates, read through ccxt's public API (no key) and cached in the table like the
          live markets, so a paper stage is a dry run of the live one;
        * ``recorded:PATH``: the same from a file of ccxt market structures keyed by symbol
          (what the markets cache stores), for a stack that runs offline;
        * ``permissive``: the paper exchange's defaults (1e-8 lots, 0.01 ticks, 1 quote minimum, no fee).
        """
        if self._rules is None:
            self._rules = self._load_rules(self.paper.markets)
        return self._rules

    def _load_rules(self, source: str) -> PaperRules:
        if source == "permissive":
            return PaperRules(markets=None, fee_mode="quote")
        from crypto_bot.adapters.ccxt.exchange import CcxtExchange

        symbols = sorted(self.config.symbols())
        name = self.settings.exchange_name
        # The real venue's markets, never its testnet's, as the paper prices are its tickers (price_feed).
        # The step's quick retry: a venue that stays unreachable fails the step, which Step Functions retries.
        public = CcxtExchange(name, options=self.settings.exchange_options, retry=self.retry)
        if source == "venue":
            from crypto_bot.adapters.aws.markets_cache import prime_from_table

            prime_from_table(public, self.settings.table_name, self.dynamodb, symbols)
        else:
            public.prime_markets(_recorded_markets(source.removeprefix("recorded:")))
        try:
            raw = public.export_markets(symbols)
            markets = dict(public.load_markets(symbols))
        except PermanentExchangeError as e:
            raise ConfigError(
                f"PAPER_MARKETS={source}: cannot load {name}'s markets of {', '.join(symbols)}: {e}"
            ) from e
        except ExchangeError as e:
            # Transient (the venue is unreachable): the step fails and Step Functions retries it.
            raise ExchangeUnavailable(
                f"PAPER_MARKETS={source}: cannot load {name}'s markets of {', '.join(symbols)}: {e}"
            ) from e
        return PaperRules(markets=markets, fee_mode=_paper_fee_mode(name, raw))


def _recorded_markets(path: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"PAPER_MARKETS=recorded:{path}: cannot read it: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"PAPER_MARKETS=recorded:{path}: not valid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"PAPER_MARKETS=recorded:{path}: expected ccxt market structures keyed by symbol")
    return data


def _paper_fee_mode(exchange: str, raw_markets: Mapping[str, Mapping[str, Any]]) -> Literal["quote", "received"]:
    """Map ccxt's ``feeSide`` of the markets to the paper exchange's fee mode; raise on one it cannot model.

    ccxt's ``calculate_fee_with_rate`` (ccxt/base/exchange.py) reads a missing feeSide as "quote";
    "get" is the asset received (Binance spot: base on a buy, quote on a sell).
    """
    sides = {str(market.get("feeSide") or "quote") for market in raw_markets.values()}
    modes: dict[str, Literal["quote", "received"]] = {"quote": "quote", "get": "received"}
    unknown = sides - set(modes)
    if unknown or len(sides) > 1:
        raise ConfigError(
            f"{exchange} charges fees on the {' and '.join(sorted(sides))} side; "
            "the paper exchange models one fee side for all markets, quote or get (the asset received)"
        )
    return modes[sides.pop()] if sides else "quote"
