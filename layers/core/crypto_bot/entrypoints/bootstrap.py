"""The composition root: settings and clients in, the steps' adapters and workflow out.

:func:`bootstrap` is the one place that knows the concrete adapters: the exchange (ccxt, or the paper account
of a dry run), the DynamoDB store and lease, the signals queue, the notifications topic and the key's secret
store. The handlers call it once per container with boto3's clients; tests call it with moto-backed clients
or pass fakes for the adapters. The steps see ports only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.lock import renew_lease
from crypto_bot.adapters.aws.notify import publish
from crypto_bot.adapters.aws.secrets import AwsSecrets, CachedParameter
from crypto_bot.adapters.aws.sqs_intake import drain_queue
from crypto_bot.adapters.chat.delivery import Sleep
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.engine.ports import (
    AlertPricedMarket,
    AlertQueue,
    Channel,
    Exchange,
    LeaseRenewal,
    Notifier,
    Secrets,
    Store,
)
from crypto_bot.engine.retry import RetryPolicy
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot.entrypoints.paper_account import PaperAccount
from crypto_bot.entrypoints.settings import Settings

Clients = Callable[[str], Any]
"""A boto3 client by service name (``"dynamodb"``, ``"sqs"``...), created once and shared."""
ExchangeSessions = Callable[[], AbstractContextManager[tuple[Exchange, AlertPricedMarket | None]]]
"""Open the exchange for one invocation, with the market the alerts price (the paper account, or None)."""

# One quick retry inside a step; Step Functions' own Retry does the long backoff.
STEP_RETRY = RetryPolicy(attempts=2, base_delay=0.5)


@dataclass(frozen=True)
class Session:
    """One invocation's workflow, and the market its alerts price where they price one."""

    workflow: Workflow
    alert_prices: AlertPricedMarket | None


@dataclass(frozen=True)
class App:
    """Everything a step needs that outlives one invocation, built by :func:`bootstrap`."""

    settings: Settings
    config: StrategyConfig
    workflow_settings: WorkflowSettings
    store: Store
    renew_lease: LeaseRenewal
    alert_queue: AlertQueue | None
    """None where SIGNALS_QUEUE_URL is not set (every function but collect)."""
    notifier: Notifier | None
    """None where NOTIFICATIONS_TOPIC_ARN is not set (every function but finalize)."""
    exchange: ExchangeSessions

    @contextmanager
    def session(self, clock: Callable[[], datetime] | None = None) -> Iterator[Session]:
        """Open a workflow over the store and the exchange; a paper account is saved when the block succeeds."""
        now = clock or (lambda: datetime.now(UTC))
        with self.exchange() as (exchange, alert_prices):
            yield Session(Workflow(self.store, exchange, self.config, self.workflow_settings, now), alert_prices)


def bootstrap(
    settings: Settings,
    clients: Clients,
    *,
    store: Store | None = None,
    secrets: Secrets | None = None,
    notifier: Notifier | None = None,
    exchange: ExchangeSessions | None = None,
) -> App:
    """Build the steps' adapters from ``settings``; an adapter passed in replaces the one built here."""
    config = StrategyConfig.load(settings.strategy_config_path, settings.quote_currency)
    workflow_settings = WorkflowSettings(
        mode=settings.execution_mode,
        increment=settings.increment_pct,
        fill_timeout=settings.fill_timeout,
        max_reprice_attempts=settings.max_reprice_attempts,
        max_signal_age=settings.max_signal_age,
        stop_loss_regex=settings.stop_loss_regex,
        timeframe=settings.timeframe,
        retry=STEP_RETRY,
    )
    dynamodb = clients("dynamodb")
    if exchange is None:
        if settings.paper is not None:
            exchange = PaperAccount(settings, settings.paper, config, dynamodb, STEP_RETRY)
        else:
            key = secrets or AwsSecrets(clients, settings.api_key_parameter, settings.secret_store)
            exchange = _LiveExchange(settings, config, key, dynamodb)
    queue: AlertQueue | None = None
    if settings.signals_queue_url:
        queue = partial(drain_queue, clients("sqs"), settings.signals_queue_url, wait_seconds=settings.sqs_wait_seconds)
    if notifier is None and settings.notifications_topic_arn:
        notifier = partial(publish, clients("sns"), settings.notifications_topic_arn)
    return App(
        settings=settings,
        config=config,
        workflow_settings=workflow_settings,
        store=store or DynamoDBStore(settings.table_name, dynamodb),
        renew_lease=partial(renew_lease, dynamodb, settings.table_name, lease=settings.lock_lease),
        alert_queue=queue,
        notifier=notifier,
        exchange=exchange,
    )


def chat_channels(settings: Settings, clients: Clients, *, sleep: Sleep) -> list[Channel]:
    """Build the configured chat channels (Telegram, Discord), each reading its secrets from SSM, cached."""
    from crypto_bot.adapters.chat.discord import DiscordChannel
    from crypto_bot.adapters.chat.telegram import TelegramChannel

    chat = settings.chat
    channels: list[Channel] = []
    if chat.telegram_token_parameter and chat.telegram_chat_parameter:
        token = CachedParameter(clients, chat.telegram_token_parameter)
        chat_id = CachedParameter(clients, chat.telegram_chat_parameter)
        channels.append(TelegramChannel(token, chat_id, api_url=chat.telegram_api_url, sleep=sleep))
    if chat.discord_webhook_parameter:
        webhook = CachedParameter(clients, chat.discord_webhook_parameter)
        channels.append(DiscordChannel(webhook, api_url=chat.discord_api_url, sleep=sleep))
    return channels


class _LiveExchange:
    """The venue through ccxt with the stack's key, connected on first use and kept for the container's life."""

    def __init__(self, settings: Settings, config: StrategyConfig, secrets: Secrets, dynamodb: Any) -> None:
        self.settings = settings
        self.config = config
        self.secrets = secrets
        self.dynamodb = dynamodb
        self._exchange: Exchange | None = None

    @contextmanager
    def __call__(self) -> Iterator[tuple[Exchange, AlertPricedMarket | None]]:
        yield self.connect(), None

    def connect(self) -> Exchange:
        """Return the exchange, reading the key and the markets cache the first time."""
        if self._exchange is None:
            from crypto_bot.adapters.aws.markets_cache import prime_from_table
            from crypto_bot.adapters.ccxt.exchange import CcxtExchange

            key = self.secrets.api_key()
            exchange = CcxtExchange(
                self.settings.exchange_name,
                api_key=key.get("apiKey"),
                secret=key.get("secret"),
                password=key.get("password"),
                sandbox=self.settings.sandbox,
                options=self.settings.exchange_options,
            )
            # A cold start reads the configured symbols' markets from the table instead of downloading them all.
            prime_from_table(
                exchange, self.settings.table_name, self.dynamodb, self.config.symbols(), sandbox=self.settings.sandbox
            )
            self._exchange = exchange
        return self._exchange


def boto3_clients() -> Clients:
    """Return boto3's clients, each created on first use and then shared (a client is thread-safe)."""
    import boto3

    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = boto3.client(service)
        return cache[service]

    return client
