"""Strategy config (``strategy_config.json``): the strategies sharing one account, validated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from crypto_bot.domain.controls import Guards
from crypto_bot.domain.errors import MISSING, ConfigError, FieldProblem, InputError
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ONE, ZERO, parse_decimal, plain

MAX_TOTAL_PERCENTAGE = Decimal("0.98")
"""The configured percentages may use at most 98% of the account; 2% stays for fees."""

_STRATEGY_FIELDS = ("exchange_symbol", "base_asset", "percentage")
_OPTIONAL_FIELDS = ("protective_stop",)
GUARDS_KEY = "guards"
"""The one top-level key that is not a strategy: the optional guards (crypto_bot.domain.controls)."""


@dataclass(frozen=True)
class Strategy:
    """One TradingView strategy and the share of the account it trades."""

    key: str
    symbol: str
    base: str
    quote: str
    percentage: Decimal
    # A stop resting on the venue after each entry, this fraction below the position's average cost
    # (``"protective_stop": {"percent": "0.05"}``); None: no stop on the venue unless an alert gives stop_price.
    protective_stop: Decimal | None = None

    @property
    def enabled(self) -> bool:
        return self.percentage > 0


@dataclass(frozen=True)
class StrategyConfig:
    """All strategies sharing one exchange account, keyed by TradingView ticker or name."""

    strategies: Mapping[str, Strategy]
    quote: str
    guards: Guards = Guards()

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
        guards = Guards.from_mapping(data[GUARDS_KEY], source) if GUARDS_KEY in data else Guards()
        for key, entry in data.items():
            if key == GUARDS_KEY:
                continue
            strategy = _parse_strategy(str(key), entry, quote, problems)
            if strategy is not None:
                strategies[strategy.key] = strategy
        if problems:
            raise ConfigError(str(InputError(source, problems)))
        if not strategies:
            raise ConfigError(f"{source}: defines no strategies")
        _check_total(strategies, source)
        return cls(strategies=strategies, quote=quote, guards=guards)

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
    for name in sorted(set(entry) - set(_STRATEGY_FIELDS) - set(_OPTIONAL_FIELDS)):
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
    stop = _protective_stop(where, entry.get("protective_stop"), problems)
    if len(problems) > before:
        return None
    return Strategy(key=key, symbol=symbol.strip(), base=base, quote=quote, percentage=pct, protective_stop=stop)


def _protective_stop(where: str, value: object, problems: list[FieldProblem]) -> Decimal | None:
    """Read ``"protective_stop": {"percent": "0.05"}``: the stop's distance below the average cost."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"percent"}:
        problems.append(FieldProblem(f"{where}.protective_stop", value, 'must be {"percent": FRACTION}, e.g. 0.05'))
        return None
    try:
        share = parse_decimal(value["percent"])
    except ValueError as e:
        problems.append(FieldProblem(f"{where}.protective_stop.percent", value["percent"], str(e)))
        return None
    if not ZERO < share < ONE:
        problems.append(
            FieldProblem(f"{where}.protective_stop.percent", value["percent"], "must be in (0, 1) (0.05 means 5%)")
        )
        return None
    return share


class ExecutionMode(StrEnum):
    """How the account is split between strategies (see docs/allocation.md)."""

    BOOST = "boost"
    MULTI = "multi"


DEFAULT_STOP_LOSS_PATTERN = r"\bstop"


def parse_exchange_options(text: str, what: str) -> dict[str, Any]:
    """Parse ccxt constructor options given as JSON text; ConfigError names ``what`` and the problem."""
    try:
        return parse_json_object(text)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse JSON text that must be an object; ValueError says what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    return value
