"""What ``crypto-bot local`` was asked for, and the stack plan derived from it and template.yaml.

:class:`StackPlan` is read once, before anything starts, and fails with the option at fault: the
template parameters (its defaults, paper trading, the asked mode, cash and venue), the functions'
environment, the strategies and the cycle schedule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.check_config import resolve_quote
from crypto_bot_tools.local.schedule import RateSchedule, Schedule, parse_schedule

__all__ = ["NO_SCHEDULE", "LocalSettings", "StackPlan", "default_template"]

NO_SCHEDULE: Final = ("none", "off", "manual")


def default_template() -> Path:
    """Find template.yaml: in the working directory, else in the checkout this package lives in."""
    here = Path("template.yaml")
    if here.is_file():
        return here.resolve()
    return Path(__file__).resolve().parents[3] / "template.yaml"


@dataclass(frozen=True)
class LocalSettings:
    """What ``crypto-bot local`` was asked for."""

    config: Path = Path("strategy_config.json")
    quote: str | None = None  # the account's QuoteCurrency; None: the config's symbols', else the template's
    host: str = "127.0.0.1"
    port: int = 3000
    token: str | None = None
    cycle_every: float | None = None
    schedule: str | None = None  # an expression, "none" for manual cycles only, None for the template's
    prices: str | None = None  # None: alert prices; "live:EXCHANGE"; or a CSV path
    cash: Decimal = Decimal(10000)
    mode: str = "boost"
    allow: tuple[str, ...] = ()
    max_signal_age: int | None = None  # minutes; 0 never expires; None: the template's
    stop_loss_pattern: str | None = None  # the StopLossPattern parameter; None: the template's
    max_price_jump: Decimal | None = None  # MAX_PRICE_JUMP for the alert-priced paper exchange; None: the core's
    template: Path = field(default_factory=default_template)
    # A ccxt venue (a testnet, or an emulator) instead of the paper exchange; None: paper trading.
    exchange: str | None = None
    sandbox: bool = False
    exchange_options: Mapping[str, Any] = field(default_factory=dict)
    api_key: Mapping[str, str] | None = field(default=None, repr=False)  # {"apiKey", "secret"[, "password"]}
    # Telegram and Discord (cli.CHAT_FIELDS): the stack's chat forwarder posts every notification there.
    chat: Mapping[str, str] | None = field(default=None, repr=False)

    def chat_secrets(self, stage: str) -> dict[str, str]:
        """Return the chat parameters' SSM names (named after the stage, as deployed) and their values."""
        chat = self.chat or {}
        names = {
            "telegram_bot_token": f"/crypto-bot/{stage}/telegram-bot-token",
            "telegram_chat_id": f"/crypto-bot/{stage}/telegram-chat-id",
            "discord_webhook_url": f"/crypto-bot/{stage}/discord-webhook-url",
        }
        return {name: chat[key] for key, name in names.items() if chat.get(key)}

    @property
    def live(self) -> bool:
        """Say whether prices move on their own (live prices, or a venue), so fills take real waits."""
        return self.exchange is not None or bool(self.prices and self.prices.startswith("live:"))


@dataclass(frozen=True)
class StackPlan:
    """The local stack as it will be built: template, parameters, strategies, environment and schedule."""

    settings: LocalSettings
    template: Mapping[str, Any]
    parameters: dict[str, str]
    config: StrategyConfig
    environment: dict[str, str]
    schedule_description: str
    schedule: Schedule | None
    csv_prices: Any  # crypto_bot.adapters.paper.exchange.CsvPrices, or None

    @classmethod
    def build(cls, settings: LocalSettings) -> StackPlan:
        """Read the template and the strategy config, and derive everything else from the settings."""
        from crypto_bot_tools.local.template import TemplateError, load_template

        try:
            template = load_template(settings.template)
        except TemplateError as e:
            raise ConfigError(str(e)) from e
        parameters = _parameters(settings, template)
        config = StrategyConfig.load(settings.config, parameters["QuoteCurrency"])
        csv_prices = _csv_prices(settings.prices)
        description, schedule = _cycle_schedule(settings, parameters["CycleSchedule"])
        return cls(
            settings=settings,
            template=template,
            parameters=parameters,
            config=config,
            environment=_environment(settings),
            schedule_description=description,
            schedule=schedule,
            csv_prices=csv_prices,
        )

    @property
    def increment(self) -> Decimal:
        """Return the IncrementPct the cycles size with."""
        return Decimal(self.parameters["IncrementPct"])


def _declared_default(template: Mapping[str, Any], source: Path, name: str) -> str:
    spec = (template.get("Parameters") or {}).get(name)
    if not spec or "Default" not in spec:
        raise ConfigError(f"{source}: parameter {name} with a Default is needed")
    return str(spec["Default"])


def _parameters(s: LocalSettings, template: Mapping[str, Any]) -> dict[str, str]:
    """Template parameters: the template's defaults, with paper trading and the asked mode and cash."""
    if s.mode not in ("boost", "multi"):
        raise ConfigError(f"--mode {s.mode!r}: must be boost or multi")
    if s.cash < 0:
        raise ConfigError(f"--cash {s.cash}: must not be negative")

    def default(name: str) -> str:
        return _declared_default(template, s.template, name)

    parameters = {
        "PaperTrading": "true",
        "ExecutionStrategy": s.mode,
        "PaperStartingCash": str(s.cash),
        "QuoteCurrency": resolve_quote(s.quote, s.config, default("QuoteCurrency")),
        "IncrementPct": default("IncrementPct"),
        "CycleSchedule": default("CycleSchedule"),
        "WebhookTokenParameterName": default("WebhookTokenParameterName"),
        "Stage": default("Stage"),
    }
    if s.prices and s.prices.startswith("live:"):
        exchange = s.prices.removeprefix("live:").strip().lower()
        if not exchange:
            raise ConfigError("--prices live:EXCHANGE: name the ccxt exchange, e.g. live:binance")
        parameters["ExchangeName"] = exchange
    parameters["ExchangeOptions"] = json.dumps(dict(s.exchange_options), sort_keys=True)
    if s.exchange is not None:
        if s.prices:
            raise ConfigError("--prices is for the paper exchange; a venue (--exchange) prices its own orders")
        if not s.api_key:
            raise ConfigError(f"--exchange {s.exchange}: give the venue's API key with --api-key-file")
        parameters.update(
            PaperTrading="false",
            ExchangeName=s.exchange,
            Sandbox="true" if s.sandbox else "false",
            ApiKeyParameterName=default("ApiKeyParameterName"),
            SecretStore="ssm",  # pragma: allowlist secret (a parameter name)
        )
    if s.schedule and s.schedule.lower() not in NO_SCHEDULE:
        parameters["CycleSchedule"] = s.schedule
    template_names = {
        "telegram-bot-token": "TelegramBotTokenParameterName",
        "telegram-chat-id": "TelegramChatIdParameterName",
        "discord-webhook-url": "DiscordWebhookParameterName",
    }
    for name in s.chat_secrets(parameters["Stage"]):
        parameters[template_names[name.rsplit("/", 1)[-1]]] = name
    if s.max_signal_age is not None and s.max_signal_age < 0:
        raise ConfigError(f"--max-signal-age {s.max_signal_age}: must be 0 (never expire) or more")
    if s.max_signal_age:
        parameters["MaxSignalAgeMinutes"] = str(s.max_signal_age)
    if s.stop_loss_pattern is not None:
        parameters["StopLossPattern"] = _allowed(
            template, "StopLossPattern", s.stop_loss_pattern, "--stop-loss-pattern"
        )
    return parameters


def _allowed(template: Mapping[str, Any], name: str, value: str, option: str) -> str:
    """Refuse a value the parameter's AllowedPattern refuses, as CloudFormation does at deploy."""
    spec = (template.get("Parameters") or {}).get(name) or {}
    pattern = spec.get("AllowedPattern")
    # CloudFormation matches AllowedPattern against the whole value; this one reads alike in Java and Python.
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        described = spec.get("ConstraintDescription", f"must match {pattern}")
        raise ConfigError(f"{option} {value!r}: {' '.join(str(described).split())}")
    return value


def _csv_prices(prices: str | None) -> Any:
    if not prices or prices.startswith("live:"):
        return None
    from crypto_bot.adapters.paper.exchange import CsvPrices

    return CsvPrices(Path(prices))


def _cycle_schedule(s: LocalSettings, expression: str) -> tuple[str, Schedule | None]:
    now = datetime.now(UTC)
    if s.cycle_every is not None:
        if s.cycle_every <= 0:
            raise ConfigError(f"--cycle-every {s.cycle_every}: must be a positive number of seconds")
        return f"every {s.cycle_every:g} s", RateSchedule(timedelta(seconds=s.cycle_every), now)
    if s.schedule and s.schedule.lower() in NO_SCHEDULE:
        return "manual only (POST /_local/cycle)", None
    try:
        return f"{expression} (UTC)", parse_schedule(expression, anchor=now)
    except ValueError as e:
        raise ConfigError(f"schedule {expression!r}: {e}") from e


def _environment(s: LocalSettings) -> dict[str, str]:
    level = os.environ.get("LOG_LEVEL", "WARNING")
    environment = {
        "PAPER_PRICES": "live" if s.live else "alerts",
        # Offline (alert or CSV prices), the paper account keeps the paper exchange's permissive markets
        # and no fee, so the stack runs without a network and agrees with replay; with live prices it
        # reads the venue's markets and fees, as the deployed dry run does.
        "PAPER_MARKETS": "venue" if s.live else "permissive",
        "STRATEGY_CONFIG_PATH": str(s.config.resolve()),
        # No X-Ray daemon, no CloudWatch: traces off, metrics off, handler logs quiet unless asked.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "LOG_LEVEL": level,
        "POWERTOOLS_LOG_LEVEL": level,
    }
    if s.max_signal_age == 0:
        # The template's parameter has MinValue 1; the handlers read 0 as "never expire".
        environment["MAX_SIGNAL_AGE_MINUTES"] = "0"
    if s.max_price_jump is not None:
        # Not a template parameter: only alert prices (never deployed, PAPER_PRICES=live) are checked with it.
        environment["MAX_PRICE_JUMP"] = str(s.max_price_jump)
    if not s.live:
        environment["FILL_TIMEOUT_SECONDS"] = "0"  # a market that cannot move: chase at once, as replay does
    chat = s.chat or {}
    for key, variable in (("telegram_api_url", "TELEGRAM_API_URL"), ("discord_api_url", "DISCORD_API_URL")):
        if chat.get(key):
            environment[variable] = chat[key]
    return environment
