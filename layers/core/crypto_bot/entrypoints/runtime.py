"""The Lambda runtime: settings, clients and the exchange, built once per container.

Handlers create one :class:`Runtime` at module scope and open a workflow per
invocation with :meth:`Runtime.workflow`. Tests build a Runtime from a dict of
environment variables and moto-backed clients.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import Settings, StrategyConfig
from crypto_bot.domain.errors import ConfigError, ExchangeError, ExchangeUnavailable, PermanentExchangeError
from crypto_bot.domain.markets import Market
from crypto_bot.domain.money import parse_decimal
from crypto_bot.engine.ports import Exchange
from crypto_bot.engine.retry import RetryPolicy
from crypto_bot.engine.workflow import Workflow, WorkflowSettings


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    """Read a whole number; without ``default`` the setting is required (the template always sets it)."""
    text = env.get(name, "").strip()
    if not text:
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: not a whole number") from None


@dataclass
class Runtime:
    """Everything a step needs that outlives one invocation."""

    env: Mapping[str, str]
    settings: Settings
    config: StrategyConfig
    workflow_settings: WorkflowSettings
    table_name: str
    clients: Callable[[str], Any]
    lock_lease: timedelta = timedelta(minutes=15)
    # Half the reconcile function's 120 s timeout: the slowest exchange call still fits after it.
    reconcile_budget: timedelta = timedelta(seconds=60)
    _exchange: Exchange | None = field(default=None, repr=False)
    # The venue's rules for the paper account (PAPER_MARKETS), read once per container; None: not read yet.
    _paper_rules: PaperRules | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, clients: Callable[[str], Any] | None = None) -> Runtime:
        """Read settings and the strategy config; fail fast naming whatever is missing."""
        env = dict(os.environ if env is None else env)
        settings = Settings.from_env(env)
        config = StrategyConfig.load(_required(env, "STRATEGY_CONFIG_PATH"), settings.quote_currency)
        # Required: the template always sets it (MaxSignalAgeMinutes); 0, which only the local stack's
        # --max-signal-age 0 sends (the parameter's MinValue is 1), means signals never expire.
        max_age = _int(env, "MAX_SIGNAL_AGE_MINUTES")
        if max_age < 0:
            raise ConfigError(f"MAX_SIGNAL_AGE_MINUTES={max_age}: must be 0 (never expire) or more")
        workflow_settings = WorkflowSettings(
            mode=settings.execution_mode,
            increment=settings.increment_pct,
            fill_timeout=timedelta(seconds=_int(env, "FILL_TIMEOUT_SECONDS")),
            max_reprice_attempts=_int(env, "MAX_REPRICE_ATTEMPTS"),
            max_signal_age=timedelta(minutes=max_age) if max_age else None,
            stop_loss_regex=settings.stop_loss_regex,
            timeframe=settings.timeframe,
            # One quick retry inside the step; Step Functions' own Retry does the long backoff.
            retry=RetryPolicy(attempts=2, base_delay=0.5),
        )
        return cls(
            env=env,
            settings=settings,
            config=config,
            workflow_settings=workflow_settings,
            table_name=_required(env, "TABLE_NAME"),
            clients=clients or _boto3_clients(),
            lock_lease=timedelta(seconds=_int(env, "LOCK_LEASE_SECONDS")),
            # The template does not set it: the default is tied to the reconcile function's timeout (above).
            reconcile_budget=timedelta(seconds=_int(env, "RECONCILE_BUDGET_SECONDS", 60)),
        )

    def store(self) -> Any:
        from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

        return DynamoDBStore(self.table_name, self.clients("dynamodb"))

    @contextmanager
    def workflow(self, clock: Callable[[], datetime] | None = None) -> Iterator[Workflow]:
        """Open a workflow over the table and the exchange (a paper session when paper trading)."""
        now = clock or (lambda: datetime.now(UTC))
        store = self.store()
        if self.settings.paper_trading:
            from crypto_bot.adapters.aws.paper_state import PaperStateStore, paper_session

            states = PaperStateStore(self.table_name, self.clients("dynamodb"))
            with paper_session(states, self._new_paper_account) as paper:
                paper.price_feed = self._price_feed()
                # Re-applied to a restored account too, so it trades on the rules configured now;
                # unchanged rules leave the state as it was, and paper_session writes nothing.
                self.paper_rules().apply(paper)
                yield Workflow(store, paper, self.config, self.workflow_settings, now)
            return
        yield Workflow(store, self._live_exchange(), self.config, self.workflow_settings, now)

    def _new_paper_account(self) -> PaperExchange:
        cash = parse_decimal(_required(self.env, "PAPER_STARTING_CASH"))
        return PaperExchange(balances={self.config.quote: Decimal(cash)})

    def paper_rules(self) -> PaperRules:
        """Return the markets and fee mode the paper account trades on, as PAPER_MARKETS says.

        * ``venue`` (the template's): the exchange's own lot sizes, ticks, minimums and fee
          rates, read through ccxt's public API (no key) and cached in the table like the
          live markets, so a paper stage is a dry run of the live one;
        * ``recorded:PATH``: the same from a file of ccxt market structures keyed by symbol
          (what the markets cache stores), for a stack that runs offline;
        * ``permissive``: the paper exchange's defaults (1e-8 lots, 0.01 ticks, 1 quote minimum, no fee).
        """
        if self._paper_rules is None:
            self._paper_rules = self._load_paper_rules(_required(self.env, "PAPER_MARKETS"))
        return self._paper_rules

    def _load_paper_rules(self, source: str) -> PaperRules:
        if source == "permissive":
            return PaperRules(markets=None, fee_mode="quote")
        if source != "venue" and not source.startswith("recorded:"):
            raise ConfigError(f"PAPER_MARKETS={source!r}: must be venue, recorded:PATH or permissive")
        from crypto_bot.adapters.ccxt.exchange import CcxtExchange

        symbols = sorted(self.config.symbols())
        name = self.settings.exchange_name
        # The real venue's markets, never its testnet's, as the paper prices are its tickers (_price_feed).
        # The step's quick retry: a venue that stays unreachable fails the step, which Step Functions retries.
        public = CcxtExchange(name, options=self.settings.exchange_options, retry=self.workflow_settings.retry)
        if source == "venue":
            from crypto_bot.adapters.aws.markets_cache import prime_from_table

            prime_from_table(public, self.table_name, self.clients("dynamodb"), symbols)
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

    def _price_feed(self) -> Callable[[str], Decimal] | None:
        # "alerts": prices are the alerts' own, set at intake (local stack, tests);
        # "live": the real exchange's public ticker, so a paper stage is a true dry run.
        source = _required(self.env, "PAPER_PRICES")
        if source == "alerts":
            return None
        if source != "live":
            raise ConfigError(f"PAPER_PRICES={source!r}: must be live or alerts")
        from crypto_bot.adapters.ccxt.exchange import CcxtExchange

        public = CcxtExchange(self.settings.exchange_name, options=self.settings.exchange_options)
        return public.fetch_last_price

    def _live_exchange(self) -> Exchange:
        if self._exchange is None:
            from crypto_bot.adapters.ccxt.exchange import CcxtExchange

            credentials = self._credentials()
            exchange = CcxtExchange(
                self.settings.exchange_name,
                api_key=credentials.get("apiKey"),
                secret=credentials.get("secret"),
                password=credentials.get("password"),
                sandbox=self.settings.sandbox,
                options=self.settings.exchange_options,
            )
            from crypto_bot.adapters.aws.markets_cache import prime_from_table

            # A cold start reads the configured symbols' markets from the table instead of downloading them all.
            symbols = self.config.symbols()
            prime_from_table(
                exchange, self.table_name, self.clients("dynamodb"), symbols, sandbox=self.settings.sandbox
            )
            self._exchange = exchange
        return self._exchange

    def _credentials(self) -> dict[str, str]:
        from aws_lambda_powertools.utilities import parameters

        name = _required(self.env, "API_KEY_PARAMETER")
        store = self.env.get("SECRET_STORE", "ssm")
        if store == "ssm":
            raw = parameters.get_parameter(name, decrypt=True, max_age=300)
        elif store == "secretsmanager":
            raw = parameters.get_secret(name, max_age=300)
        else:
            raise ConfigError(f"SECRET_STORE={store!r}: must be ssm or secretsmanager")
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            # Never echo the value: it is a secret.
            raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret") from None
        if not isinstance(data, dict) or not data.get("apiKey") or not data.get("secret"):
            raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret")
        return {str(k): str(v) for k, v in data.items()}


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


def _boto3_clients() -> Callable[[str], Any]:
    import boto3

    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = boto3.client(service)
        return cache[service]

    return client
