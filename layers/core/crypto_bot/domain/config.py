"""Strategy config (``strategy_config.json``) and typed settings from the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from crypto_bot.domain.errors import MISSING, ConfigError, FieldProblem, InputError
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ONE, ZERO, parse_decimal, plain
from crypto_bot.domain.price_band import DEFAULT_MAX_PRICE_JUMP, parse_price_jump
from crypto_bot.domain.timeframe import Schedule, Timeframe

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
        _check_total(self.strategies, "strategy config")

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
        _check_total(strategies, source)
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


def _check_total(strategies: Mapping[str, Strategy], source: str) -> None:
    """Refuse percentages above the allowed total, naming the file, each strategy's share and the sum."""
    total = sum((s.percentage for s in strategies.values()), ZERO)
    if total > MAX_TOTAL_PERCENTAGE:
        shares = " + ".join(f"{key} {plain(s.percentage)}" for key, s in strategies.items())
        raise ConfigError(
            f"{source}: strategy percentages add up to {plain(total)} ({shares}), more than the allowed "
            f"{MAX_TOTAL_PERCENTAGE} (2% of the account stays in cash for fees)"
        )


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
        problems.append(
            FieldProblem(f"{where}.exchange_symbol", symbol, "is not of the form BASE/QUOTE (e.g. BTC/USD)")
        )
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
    # How far an alert's order_price may be from its symbol's last price where alert prices price the paper
    # exchange (PAPER_PRICES=alerts); see crypto_bot.domain.price_band.
    max_price_jump: Decimal = DEFAULT_MAX_PRICE_JUMP

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.timeframe, self.schedule_offset)

    @property
    def stop_loss_regex(self) -> re.Pattern[str]:
        return re.compile(self.stop_loss_pattern, re.IGNORECASE)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default).

        Every problem is collected and reported at once, each with the variable's name.
        """
        reader = _EnvReader(os.environ if env is None else env)
        exchange = reader.required("EXCHANGE_NAME").lower()
        timeframe = reader.parse("TIMEFRAME", None, Timeframe.parse)
        quote = reader.optional("QUOTE_CURRENCY", "USD").upper()
        increment = reader.parse("INCREMENT_PCT", "0.001", _increment)
        mode = reader.parse("EXECUTION_STRATEGY", "boost", _mode)
        sandbox = reader.parse("SANDBOX", "false", parse_bool)
        paper = reader.parse("PAPER_TRADING", "false", parse_bool)
        options = reader.parse("EXCHANGE_OPTIONS", "{}", _json_object)
        offset = reader.parse("SCHEDULE_OFFSET", "1m", parse_duration)
        pattern = reader.parse("STOP_LOSS_PATTERN", DEFAULT_STOP_LOSS_PATTERN, _regex)
        price_jump = reader.parse("MAX_PRICE_JUMP", str(DEFAULT_MAX_PRICE_JUMP), parse_price_jump)
        if timeframe is not None and offset is not None:
            try:
                Schedule(timeframe, offset)
            except ValueError as e:
                reader.problems.append(f"SCHEDULE_OFFSET: {e}")
        if reader.problems:
            raise ConfigError("invalid settings: " + "; ".join(reader.problems))
        return cls(
            exchange_name=exchange,
            timeframe=_parsed(timeframe),
            quote_currency=quote,
            increment_pct=_parsed(increment),
            execution_mode=_parsed(mode),
            sandbox=_parsed(sandbox),
            paper_trading=_parsed(paper),
            exchange_options=_parsed(options),
            schedule_offset=_parsed(offset),
            stop_loss_pattern=_parsed(pattern),
            max_price_jump=_parsed(price_jump),
        )


def _parsed[T](value: T | None) -> T:
    """Narrow a setting that parsed without a problem (None only ever comes with one)."""
    if value is None:
        raise ConfigError("invalid settings: a value failed to parse without a reported problem")
    return value


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is required but not set")
        return value

    def optional(self, name: str, default: str) -> str:
        value = self.env.get(name)
        return default if value is None or not value.strip() else value.strip()

    def parse[T](self, name: str, default: str | None, parser: Callable[[str], T]) -> T | None:
        text = self.required(name) if default is None else self.optional(name, default)
        if not text:
            return None
        try:
            return parser(text)
        except ValueError as e:
            self.problems.append(f"{name}={text!r}: {e}")
            return None


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


def parse_exchange_options(text: str, what: str) -> dict[str, Any]:
    """Parse ccxt constructor options given as JSON text; ConfigError names ``what`` and the problem."""
    try:
        return _json_object(text)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    return value


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"not a valid regular expression ({e})") from None
    return text


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
