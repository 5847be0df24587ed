"""Strategy config (``strategy_config.json``) and typed settings from the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from crypto_bot.errors import MISSING, ConfigError, FieldProblem, InputError
from crypto_bot.markets import split_symbol
from crypto_bot.money import ONE, ZERO, parse_decimal
from crypto_bot.timeframe import Schedule, Timeframe

MAX_TOTAL_PERCENTAGE = Decimal("0.98")
"""The configured percentages may use at most 98% of the account; 2% stays for fees."""

_STRATEGY_FIELDS = ("exchange_symbol", "base_asset", "percentage")


@dataclass(frozen=True)
class Strategy:
    """One TradingView strategy and the share of the account it trades."""

    key: str
    symbol: str
    base: str
    quote: str
    percentage: Decimal

    @property
    def enabled(self) -> bool:
        return self.percentage > 0


@dataclass(frozen=True)
class StrategyConfig:
    """All strategies sharing one exchange account, keyed by TradingView ticker or name."""

    strategies: Mapping[str, Strategy]
    quote: str

    def __post_init__(self) -> None:
        total = self.total_percentage
        if total > MAX_TOTAL_PERCENTAGE:
            raise ConfigError(
                f"strategy percentages add up to {total}, more than the allowed {MAX_TOTAL_PERCENTAGE} "
                f"(2% of the account stays in cash for fees)"
            )

    @property
    def total_percentage(self) -> Decimal:
        return sum((s.percentage for s in self.strategies.values()), ZERO)

    def get(self, key: str) -> Strategy | None:
        return self.strategies.get(key)

    def __getitem__(self, key: str) -> Strategy:
        return self.strategies[key]

    def symbols(self) -> list[str]:
        """Every exchange symbol the config trades, sorted, without repeats."""
        return sorted({s.symbol for s in self.strategies.values()})

    @classmethod
    def from_mapping(cls, data: object, quote: str, *, source: str = "strategy config") -> StrategyConfig:
        """Validate a decoded config object; raise ConfigError listing every problem."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object of strategies, got {type(data).__name__}")
        if not data:
            raise ConfigError(f"{source}: defines no strategies")
        problems: list[FieldProblem] = []
        strategies: dict[str, Strategy] = {}
        for key, entry in data.items():
            strategy = _parse_strategy(str(key), entry, quote, problems)
            if strategy is not None:
                strategies[strategy.key] = strategy
        if problems:
            raise ConfigError(str(InputError(source, problems)))
        return cls(strategies=strategies, quote=quote)

    @classmethod
    def load(cls, path: str | Path, quote: str) -> StrategyConfig:
        """Read and validate a ``strategy_config.json`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read strategy config {path}: {e.strerror}") from e
        try:
            data = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        return cls.from_mapping(data, quote, source=str(path))


def _parse_strategy(key: str, entry: object, quote: str, problems: list[FieldProblem]) -> Strategy | None:
    where = f"[{key!r}]"
    if not key.strip():
        problems.append(FieldProblem("strategy key", key, "must not be blank"))
        return None
    if not isinstance(entry, Mapping):
        problems.append(FieldProblem(where, entry, "must be an object with " + ", ".join(_STRATEGY_FIELDS)))
        return None
    before = len(problems)
    for name in _STRATEGY_FIELDS:
        value = entry.get(name, MISSING)
        if value is MISSING or (isinstance(value, str) and not value.strip()):
            problems.append(FieldProblem(f"{where}.{name}", value, "is required"))
    for name in sorted(set(entry) - set(_STRATEGY_FIELDS)):
        problems.append(FieldProblem(f"{where}.{name}", entry[name], "is not a known field (typo?)"))
    if len(problems) > before:
        return None

    symbol, base_asset, raw_pct = entry["exchange_symbol"], entry["base_asset"], entry["percentage"]
    if not isinstance(symbol, str) or not isinstance(base_asset, str):
        problems.append(FieldProblem(f"{where}.exchange_symbol", symbol, "and base_asset must be strings"))
        return None
    try:
        base, symbol_quote = split_symbol(symbol.strip())
    except ValueError:
        problems.append(FieldProblem(f"{where}.exchange_symbol", symbol, "is not of the form BASE/QUOTE (e.g. BTC/USD)"))
        return None
    if symbol_quote != quote:
        problems.append(
            FieldProblem(f"{where}.exchange_symbol", symbol, f"quotes in {symbol_quote}, not the account's {quote}")
        )
    if base_asset.strip() != base:
        problems.append(FieldProblem(f"{where}.base_asset", base_asset, f"does not match the symbol's base {base}"))
    try:
        pct = parse_decimal(raw_pct)
    except ValueError as e:
        problems.append(FieldProblem(f"{where}.percentage", raw_pct, str(e)))
        return None
    if not ZERO <= pct <= ONE:
        problems.append(FieldProblem(f"{where}.percentage", raw_pct, "must be a fraction in [0, 1] (0.2 means 20%)"))
    if len(problems) > before:
        return None
    return Strategy(key=key, symbol=symbol.strip(), base=base, quote=quote, percentage=pct)


class ExecutionMode(StrEnum):
    """How the account is split between strategies (see docs/allocation.md)."""

    BOOST = "boost"
    MULTI = "multi"


DEFAULT_STOP_LOSS_PATTERN = r"\bstop"


@dataclass(frozen=True)
class Settings:
    """Typed runtime settings. Read once; a missing required one fails with its name."""

    exchange_name: str
    timeframe: Timeframe
    quote_currency: str = "USD"
    increment_pct: Decimal = Decimal("0.001")
    execution_mode: ExecutionMode = ExecutionMode.BOOST
    sandbox: bool = False
    paper_trading: bool = False
    exchange_options: Mapping[str, Any] = field(default_factory=dict)
    schedule_offset: timedelta = timedelta(minutes=1)
    stop_loss_pattern: str = DEFAULT_STOP_LOSS_PATTERN

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.timeframe, self.schedule_offset)

    @property
    def stop_loss_regex(self) -> re.Pattern[str]:
        return re.compile(self.stop_loss_pattern, re.IGNORECASE)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is required but not set")
            return value

        def optional(name: str, default: str) -> str:
            value = env.get(name)
            return default if value is None or not value.strip() else value.strip()

        exchange = required("EXCHANGE_NAME").lower()
        timeframe_text = required("TIMEFRAME")
        quote = optional("QUOTE_CURRENCY", "USD").upper()
        values: dict[str, Any] = {}
        if timeframe_text:
            try:
                values["timeframe"] = Timeframe.parse(timeframe_text)
            except ValueError as e:
                problems.append(f"TIMEFRAME: {e}")
        try:
            increment = parse_decimal(optional("INCREMENT_PCT", "0.001"))
            if not ZERO <= increment < Decimal("0.1"):
                raise ValueError("must be a fraction in [0, 0.1) (0.001 means 0.1%)")
            values["increment_pct"] = increment
        except ValueError as e:
            problems.append(f"INCREMENT_PCT={env.get('INCREMENT_PCT')!r}: {e}")
        mode_text = optional("EXECUTION_STRATEGY", "boost").lower()
        try:
            values["execution_mode"] = ExecutionMode(mode_text)
        except ValueError:
            problems.append(f"EXECUTION_STRATEGY={mode_text!r}: must be one of boost, multi")
        for name, key in (("SANDBOX", "sandbox"), ("PAPER_TRADING", "paper_trading")):
            try:
                values[key] = parse_bool(optional(name, "false"))
            except ValueError as e:
                problems.append(f"{name}: {e}")
        options_text = optional("EXCHANGE_OPTIONS", "{}")
        try:
            options = json.loads(options_text)
            if not isinstance(options, dict):
                raise ValueError(f"must be a JSON object, got {type(options).__name__}")
            values["exchange_options"] = options
        except (json.JSONDecodeError, ValueError) as e:
            problems.append(f"EXCHANGE_OPTIONS: {e}")
        offset_text = optional("SCHEDULE_OFFSET", "1m")
        try:
            values["schedule_offset"] = parse_duration(offset_text)
        except ValueError as e:
            problems.append(f"SCHEDULE_OFFSET: {e}")
        pattern = optional("STOP_LOSS_PATTERN", DEFAULT_STOP_LOSS_PATTERN)
        try:
            re.compile(pattern)
            values["stop_loss_pattern"] = pattern
        except re.error as e:
            problems.append(f"STOP_LOSS_PATTERN={pattern!r}: not a valid regular expression ({e})")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        settings = cls(exchange_name=exchange, quote_currency=quote, **values)
        try:
            settings.schedule  # noqa: B018 - validates offset against timeframe
        except ValueError as e:
            raise ConfigError(f"invalid settings: SCHEDULE_OFFSET: {e}") from e
        return settings


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
