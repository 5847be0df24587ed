"""The step functions' settings: read once from the environment, typed, and refused whole when one is wrong.

template.yaml is the source of truth: every variable its ``Globals`` set is required here, with no default of
its own, so a stack and this module cannot drift apart silently. A few tunables the template leaves unset
have a default, each said where it is read. Every problem is reported at once, each with the variable's
name and the value it had.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from crypto_bot.adapters.chat import discord, telegram
from crypto_bot.domain.config import ExecutionMode, parse_json_object
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.money import ZERO, parse_decimal
from crypto_bot.domain.price_band import DEFAULT_MAX_PRICE_JUMP, parse_price_jump
from crypto_bot.domain.timeframe import Schedule, Timeframe

SecretStore = Literal["ssm", "secretsmanager"]
PaperPrices = Literal["live", "alerts"]

# The long poll of a drain (crypto_bot.adapters.aws.sqs_intake.WAIT_SECONDS); the local stack sets 0, as moto
# never answers a false empty.
DEFAULT_SQS_WAIT_SECONDS: Final = 1
# Half the reconcile function's 120 s timeout (template.yaml): the slowest exchange call still fits after it.
DEFAULT_RECONCILE_BUDGET: Final = timedelta(seconds=60)
# The scheduler's cron (CycleSchedule) fires one minute after each bar closes.
DEFAULT_SCHEDULE_OFFSET: Final = timedelta(minutes=1)


@dataclass(frozen=True)
class PaperSettings:
    """How the paper account is made and priced (PAPER_TRADING=true)."""

    starting_cash: Decimal
    prices: PaperPrices
    """``live``: the venue's public ticker; ``alerts``: each alert's own order_price (local stack, tests)."""
    markets: str
    """``venue``, ``recorded:PATH`` or ``permissive`` (see crypto_bot.entrypoints.bootstrap)."""


@dataclass(frozen=True)
class ChatSettings:
    """The SSM parameters naming the chat channels' secrets (None: the channel is off), and their base URLs."""

    telegram_token_parameter: str | None
    telegram_chat_parameter: str | None
    discord_webhook_parameter: str | None
    telegram_api_url: str
    """Telegram's Bot API; tests point it at an emulator on 127.0.0.1."""
    discord_api_url: str
    """What every Discord webhook URL starts with; a URL that does not is refused (a typo, or a foreign host)."""

    @property
    def any(self) -> bool:
        return bool(self.telegram_token_parameter or self.discord_webhook_parameter)


@dataclass(frozen=True)
class Settings:
    """Everything the step functions are configured with."""

    table_name: str
    strategy_config_path: Path
    exchange_name: str
    exchange_options: Mapping[str, Any]
    sandbox: bool
    quote_currency: str
    timeframe: Timeframe
    schedule_offset: timedelta
    increment_pct: Decimal
    execution_mode: ExecutionMode
    stop_loss_pattern: str
    max_price_jump: Decimal
    max_signal_age: timedelta | None
    """None: signals never expire (MAX_SIGNAL_AGE_MINUTES=0, which only the local stack sends)."""
    fill_timeout: timedelta
    max_reprice_attempts: int
    lock_lease: timedelta
    reconcile_budget: timedelta
    secret_store: SecretStore
    api_key_parameter: str
    paper: PaperSettings | None
    """None: live trading with the API key."""
    signals_queue_url: str | None
    """Set on the collect function only."""
    sqs_wait_seconds: int
    notifications_topic_arn: str | None
    """Set on the finalize function only."""
    chat: ChatSettings
    """The chat channels the forwarder posts to (template.yaml's ChannelForwarderFunction); none elsewhere."""

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.timeframe, self.schedule_offset)

    @property
    def stop_loss_regex(self) -> re.Pattern[str]:
        return re.compile(self.stop_loss_pattern, re.IGNORECASE)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings from environment variables; raise ConfigError naming every missing or bad one."""
        read = _Reader(env)
        timeframe = read.required("TIMEFRAME", Timeframe.parse)
        offset = read.optional("SCHEDULE_OFFSET", parse_duration, DEFAULT_SCHEDULE_OFFSET)
        if timeframe is not None and offset is not None:
            try:
                Schedule(timeframe, offset)
            except ValueError as e:
                read.problems.append(f"SCHEDULE_OFFSET: {e}")
        paper = read.required("PAPER_TRADING", parse_bool)
        settings = cls(
            table_name=read.required("TABLE_NAME", str),
            strategy_config_path=read.required("STRATEGY_CONFIG_PATH", Path),
            exchange_name=read.required("EXCHANGE_NAME", str.lower),
            exchange_options=read.required("EXCHANGE_OPTIONS", parse_json_object),
            sandbox=read.required("SANDBOX", parse_bool),
            quote_currency=read.required("QUOTE_CURRENCY", str.upper),
            timeframe=timeframe,
            schedule_offset=offset,
            increment_pct=read.required("INCREMENT_PCT", _increment),
            execution_mode=read.required("EXECUTION_STRATEGY", _mode),
            stop_loss_pattern=read.required("STOP_LOSS_PATTERN", _regex),
            max_price_jump=read.optional("MAX_PRICE_JUMP", parse_price_jump, DEFAULT_MAX_PRICE_JUMP),
            max_signal_age=read.required("MAX_SIGNAL_AGE_MINUTES", _max_age),
            fill_timeout=read.required("FILL_TIMEOUT_SECONDS", _seconds),
            max_reprice_attempts=read.required("MAX_REPRICE_ATTEMPTS", _count),
            lock_lease=read.required("LOCK_LEASE_SECONDS", _seconds),
            reconcile_budget=read.optional("RECONCILE_BUDGET_SECONDS", _seconds, DEFAULT_RECONCILE_BUDGET),
            secret_store=read.required("SECRET_STORE", _secret_store),
            api_key_parameter=read.required("API_KEY_PARAMETER", str),
            paper=(
                PaperSettings(
                    starting_cash=read.required("PAPER_STARTING_CASH", _cash),
                    prices=read.required("PAPER_PRICES", _paper_prices),
                    markets=read.required("PAPER_MARKETS", _paper_markets),
                )
                if paper
                else None
            ),
            signals_queue_url=read.optional("SIGNALS_QUEUE_URL", str, None),
            sqs_wait_seconds=read.optional("SQS_WAIT_SECONDS", _count, DEFAULT_SQS_WAIT_SECONDS),
            notifications_topic_arn=read.optional("NOTIFICATIONS_TOPIC_ARN", str, None),
            chat=_chat(read),
        )
        if read.problems:
            raise ConfigError("invalid settings: " + "; ".join(read.problems))
        return settings


def _chat(read: _Reader) -> ChatSettings:
    # Empty is off: the template passes its parameters' "" defaults through.
    token = read.optional("TELEGRAM_BOT_TOKEN_PARAMETER", str, None)
    chat = read.optional("TELEGRAM_CHAT_ID_PARAMETER", str, None)
    if bool(token) != bool(chat):
        read.problems.append(
            f"TELEGRAM_BOT_TOKEN_PARAMETER={token or ''!r} and TELEGRAM_CHAT_ID_PARAMETER={chat or ''!r}: "
            "Telegram needs both (or neither)"
        )
    # The vendors' own URLs, the same for every stack; tests and the local stack point them at emulators.
    return ChatSettings(
        telegram_token_parameter=token,
        telegram_chat_parameter=chat,
        discord_webhook_parameter=read.optional("DISCORD_WEBHOOK_PARAMETER", str, None),
        telegram_api_url=read.optional("TELEGRAM_API_URL", _base_url, telegram.DEFAULT_API_URL),
        discord_api_url=read.optional("DISCORD_API_URL", _base_url, discord.DEFAULT_API_URL),
    )


def _base_url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return text


class _Reader:
    """Parse variables, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def required[T](self, name: str, parse: Callable[[str], T]) -> T:
        text = self.env.get(name, "").strip()
        if not text:
            self.problems.append(f"{name} is required but not set")
            return None  # type: ignore[return-value]  # from_env raises before the value is used
        return self._parse(name, text, parse)

    def optional[T, D](self, name: str, parse: Callable[[str], T], default: D) -> T | D:
        text = self.env.get(name, "").strip()
        return default if not text else self._parse(name, text, parse)

    def _parse[T](self, name: str, text: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(text)
        except ValueError as e:
            self.problems.append(f"{name}={text!r}: {e}")
            return None  # type: ignore[return-value]  # from_env raises before the value is used


def _increment(text: str) -> Decimal:
    value = parse_decimal(text)
    if not ZERO <= value < Decimal("0.1"):
        raise ValueError("must be a fraction in [0, 0.1) (0.001 means 0.1%)")
    return value


def _mode(text: str) -> ExecutionMode:
    try:
        return ExecutionMode(text.lower())
    except ValueError:
        raise ValueError("must be one of boost, multi") from None


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"not a valid regular expression ({e})") from None
    return text


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _seconds(text: str) -> timedelta:
    return timedelta(seconds=_count(text))


def _max_age(text: str) -> timedelta | None:
    # 0 means never: the parameter's MinValue is 1, so only the local stack's --max-signal-age 0 sends it.
    minutes = _count(text)
    return timedelta(minutes=minutes) if minutes else None


def _cash(text: str) -> Decimal:
    value = parse_decimal(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _secret_store(text: str) -> SecretStore:
    if text == "ssm":
        return "ssm"
    if text == "secretsmanager":
        return "secretsmanager"
    raise ValueError("must be ssm or secretsmanager")


def _paper_prices(text: str) -> PaperPrices:
    if text == "live":
        return "live"
    if text == "alerts":
        return "alerts"
    raise ValueError("must be live or alerts")


def _paper_markets(text: str) -> str:
    if text in ("venue", "permissive") or (text.startswith("recorded:") and text != "recorded:"):
        return text
    raise ValueError("must be venue, recorded:PATH or permissive")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    """Parse a boolean setting strictly; ``"Flase"`` is an error, not False."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


_DURATION = re.compile(r"^\s*(\d+)\s*([smh])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``1m`` or ``2h`` into a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m or 2h")
    count, unit = int(match.group(1)), match.group(2)
    return timedelta(seconds=count * {"s": 1, "m": 60, "h": 3600}[unit])
