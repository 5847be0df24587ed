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
from typing import Any

from crypto_bot.config import Settings, StrategyConfig
from crypto_bot.errors import ConfigError
from crypto_bot.exchanges.paper import PaperExchange
from crypto_bot.money import parse_decimal
from crypto_bot.ports import Exchange
from crypto_bot.retry import RetryPolicy
from crypto_bot.workflow import Workflow, WorkflowSettings


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, clients: Callable[[str], Any] | None = None) -> Runtime:
        """Read settings and the strategy config; fail fast naming whatever is missing."""
        env = dict(os.environ if env is None else env)
        settings = Settings.from_env(env)
        config = StrategyConfig.load(_required(env, "STRATEGY_CONFIG_PATH"), settings.quote_currency)
        max_age = _int(env, "MAX_SIGNAL_AGE_MINUTES", 0)
        workflow_settings = WorkflowSettings(
            mode=settings.execution_mode,
            increment=settings.increment_pct,
            fill_timeout=timedelta(seconds=_int(env, "FILL_TIMEOUT_SECONDS", 60)),
            max_reprice_attempts=_int(env, "MAX_REPRICE_ATTEMPTS", 2),
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
            lock_lease=timedelta(seconds=_int(env, "LOCK_LEASE_SECONDS", 900)),
            reconcile_budget=timedelta(seconds=_int(env, "RECONCILE_BUDGET_SECONDS", 60)),
        )

    def store(self) -> Any:
        from crypto_bot.aws.dynamodb_store import DynamoDBStore

        return DynamoDBStore(self.table_name, self.clients("dynamodb"))

    @contextmanager
    def workflow(self, clock: Callable[[], datetime] | None = None) -> Iterator[Workflow]:
        """Open a workflow over the table and the exchange (a paper session when paper trading)."""
        now = clock or (lambda: datetime.now(UTC))
        store = self.store()
        if self.settings.paper_trading:
            from crypto_bot.aws.paper_state import PaperStateStore, paper_session

            states = PaperStateStore(self.table_name, self.clients("dynamodb"))
            with paper_session(states, self._new_paper_account) as paper:
                paper.price_feed = self._price_feed()
                yield Workflow(store, paper, self.config, self.workflow_settings, now)
            return
        yield Workflow(store, self._live_exchange(), self.config, self.workflow_settings, now)

    def _new_paper_account(self) -> PaperExchange:
        cash = parse_decimal(self.env.get("PAPER_STARTING_CASH", "10000"))
        return PaperExchange(balances={self.config.quote: Decimal(cash)})

    def _price_feed(self) -> Callable[[str], Decimal] | None:
        # "alerts": prices are the alerts' own, set at intake (local stack, tests);
        # "live": the real exchange's public ticker, so a paper stage is a true dry run.
        source = self.env.get("PAPER_PRICES", "live")
        if source == "alerts":
            return None
        if source != "live":
            raise ConfigError(f"PAPER_PRICES={source!r}: must be live or alerts")
        from crypto_bot.exchanges.ccxt_exchange import CcxtExchange

        public = CcxtExchange(self.settings.exchange_name, options=self.settings.exchange_options)
        return public.fetch_last_price

    def _live_exchange(self) -> Exchange:
        if self._exchange is None:
            from crypto_bot.exchanges.ccxt_exchange import CcxtExchange

            credentials = self._credentials()
            exchange = CcxtExchange(
                self.settings.exchange_name,
                api_key=credentials.get("apiKey"),
                secret=credentials.get("secret"),
                password=credentials.get("password"),
                sandbox=self.settings.sandbox,
                options=self.settings.exchange_options,
            )
            from crypto_bot.aws.markets_cache import prime_from_table

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


def _boto3_clients() -> Callable[[str], Any]:
    import boto3

    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = boto3.client(service)
        return cache[service]

    return client
