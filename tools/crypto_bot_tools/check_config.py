"""The account's quote currency, and ``crypto-bot check-config``: a strategy config against its venue.

One rule picks the quote for every command (:func:`resolve_quote`): ``--quote`` when given, else the
currency every symbol of the config quotes in. ``check-config`` (run by ``make build`` before ``sam
build``) takes the deploy's own ``ExchangeName`` and ``QuoteCurrency`` instead: samconfig.toml's
``parameter_overrides`` of the ``--config-env`` section, else template.yaml's defaults, as ``sam
deploy`` reads them. It validates the config for that quote, then checks that the venue lists
every symbol as a spot market: in the committed snapshot ``venue_markets/<exchange>.json``, or in
the venue's live list read through ccxt's public API with ``--online``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.config import StrategyConfig, parse_exchange_options
from crypto_bot.domain.errors import ConfigError, CryptoBotError
from crypto_bot.domain.markets import split_symbol

__all__ = [
    "CachedMarkets",
    "DeployParameters",
    "check_symbols",
    "config_quote",
    "deploy_parameters",
    "online_markets",
    "register",
    "resolve_quote",
    "run_check",
    "spot_symbols",
]

SNAPSHOTS: Final = Path(__file__).with_name("venue_markets")


# ------------------------------------------------------------------------------------ the quote


def config_quote(path: Path) -> str | None:
    """Return the currency every symbol of the config at ``path`` quotes in.

    None when the file cannot be read as a config (StrategyConfig.load then says why). A config whose
    symbols quote in several currencies is a ConfigError naming them, since the account has one cash.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping):
        return None
    quotes: dict[str, list[str]] = {}
    for entry in data.values():
        symbol = entry.get("exchange_symbol") if isinstance(entry, Mapping) else None
        if not isinstance(symbol, str):
            continue
        try:
            quote = split_symbol(symbol.strip())[1]
        except ValueError:
            continue
        quotes.setdefault(quote, []).append(symbol.strip())
    if len(quotes) > 1:
        listed = "; ".join(f"{quote}: {', '.join(sorted(symbols))}" for quote, symbols in sorted(quotes.items()))
        raise ConfigError(
            f"{path}: the symbols quote in {len(quotes)} currencies ({listed}); the account has one quote "
            "currency: give it with --quote, and the other symbols are refused"
        )
    return next(iter(quotes), None)


def resolve_quote(explicit: str | None, config: Path, fallback: str) -> str:
    """Return the account's quote: ``explicit`` (``--quote``), else the config's symbols', else ``fallback``."""
    if explicit is not None and explicit.strip():
        return explicit.strip().upper()
    return config_quote(config) or fallback.upper()


# ------------------------------------------------------------------------------ the deploy's parameters


@dataclass(frozen=True)
class DeployParameters:
    """The exchange and quote a ``sam deploy`` would deploy, each with where it was read."""

    exchange: str
    exchange_source: str
    quote: str
    quote_source: str
    options: Mapping[str, Any]


def _overrides(value: str | Sequence[str] | None) -> dict[str, str]:
    # samconfig.toml takes parameter_overrides as a list of "Key=Value" or as one string of them
    # (the same reading as layers/build_layer.py's, which picks the exchange the layer ships).
    items = shlex.split(value) if isinstance(value, str) else [str(item) for item in value or ()]
    return dict(item.split("=", 1) for item in items if "=" in item)


def deploy_parameters(root: Path, config_env: str = "default") -> DeployParameters:
    """Read ExchangeName, QuoteCurrency and ExchangeOptions as ``sam deploy --config-env`` would deploy them."""
    from crypto_bot_tools.local.template import TemplateError, load_template

    overrides: dict[str, str] = {}
    samconfig = root / "samconfig.toml"
    if samconfig.is_file():
        try:
            document = tomllib.loads(samconfig.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{samconfig}: not valid TOML: {e}") from None
        section = document.get(config_env, {})
        overrides = _overrides(section.get("deploy", {}).get("parameters", {}).get("parameter_overrides"))
    try:
        parameters = load_template(root / "template.yaml").get("Parameters") or {}
    except TemplateError as e:
        raise ConfigError(str(e)) from e

    def read(name: str) -> tuple[str, str]:
        if name in overrides:
            return overrides[name], f"samconfig.toml [{config_env}.deploy.parameters]"
        spec = parameters.get(name) or {}
        if "Default" not in spec:
            raise ConfigError(f"{root / 'template.yaml'}: parameter {name} with a Default is needed")
        return str(spec["Default"]), f"template.yaml's {name} default"

    exchange, exchange_source = read("ExchangeName")
    quote, quote_source = read("QuoteCurrency")
    options_text, options_source = read("ExchangeOptions")
    return DeployParameters(
        exchange=exchange.strip().lower(),
        exchange_source=exchange_source,
        quote=quote.strip().upper(),
        quote_source=quote_source,
        options=parse_exchange_options(options_text, f"ExchangeOptions ({options_source})"),
    )


# ------------------------------------------------------------------------------------ the markets


@dataclass(frozen=True)
class CachedMarkets:
    """A committed snapshot of part of a venue's spot markets (``venue_markets/<exchange>.json``)."""

    exchange: str
    symbols: frozenset[str]
    source: str
    as_of: str
    path: Path

    @classmethod
    def load(cls, exchange: str, folder: Path = SNAPSHOTS) -> CachedMarkets | None:
        """Read the snapshot of ``exchange``, or None when none is committed."""
        path = folder / f"{exchange}.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(exchange, frozenset(data["symbols"]), str(data["source"]), str(data["as_of"]), path)


def online_markets(exchange: str, options: Mapping[str, Any]) -> frozenset[str]:
    """Return the spot symbols the venue lists now, read through ccxt's public API (no key)."""
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    try:
        venue = CcxtExchange(exchange, options=options)
        markets = venue.client.load_markets()
    except CryptoBotError as e:
        raise ConfigError(f"cannot read {exchange}'s markets: {e}") from e
    except Exception as e:  # ccxt's own errors, which the adapter translates only inside its calls
        raise ConfigError(f"cannot read {exchange}'s markets: {type(e).__name__}: {e}") from e
    return spot_symbols(markets)


def venue_has_stops(exchange: str, options: Mapping[str, Any]) -> bool:
    """Say whether the adapter places resting stop orders on ``exchange`` (no key and no network needed)."""
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    try:
        return CcxtExchange(exchange, options=options).supports_stop_orders
    except CryptoBotError as e:
        raise ConfigError(f"cannot tell whether {exchange} has stop orders: {e}") from e


def spot_symbols(markets: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """Return the symbols of ccxt's ``load_markets()`` answer that are active spot markets."""
    # ccxt lists a venue's derivatives beside its spot pairs (BTC/USDT:USDT is Binance's perpetual), and keeps
    # delisted pairs with active False; the account trades spot only.
    return frozenset(
        symbol for symbol, market in markets.items() if market.get("spot", True) and market.get("active") is not False
    )


def check_symbols(config: StrategyConfig, listed: Iterable[str]) -> list[str]:
    """Return the config's symbols (with their strategies) that ``listed`` does not hold, as sentences."""
    known = frozenset(listed)
    missing: dict[str, list[str]] = {}
    for key, strategy in config.strategies.items():
        if strategy.symbol not in known:
            missing.setdefault(strategy.symbol, []).append(key)
    return [f"{symbol} (strategy {', '.join(keys)})" for symbol, keys in sorted(missing.items())]


# ------------------------------------------------------------------------------------ the command


def register(commands: Any) -> None:
    """Add ``check-config`` to ``crypto-bot``'s subcommands."""
    check = commands.add_parser(
        "check-config",
        help="check strategy_config.json against the deploy's quote currency and the venue's markets",
        description=(
            "Validate the strategy config for the quote currency the stack deploys, and check that the exchange "
            "lists every symbol as a spot market (a committed snapshot, or the venue's live list with --online). "
            "make build runs it before sam build."
        ),
    )
    check.add_argument("--config", type=Path, default=Path("strategy_config.json"), help="strategy config JSON")
    check.add_argument("--exchange", help="ccxt exchange id (default: the deploy's ExchangeName)")
    check.add_argument("--quote", help="the account's quote currency (default: the deploy's QuoteCurrency)")
    check.add_argument(
        "--config-env", default="default", help="samconfig.toml section whose parameters are read (default: default)"
    )
    check.add_argument(
        "--online", action="store_true", help="read the venue's current markets through ccxt's public API"
    )
    check.set_defaults(run=run_check)


def run_check(
    args: argparse.Namespace,
    fetch: Callable[[str, Mapping[str, Any]], frozenset[str]] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run ``check-config``: exit 0 when the config fits the deploy, else a ConfigError naming the fault."""
    deploy = deploy_parameters(Path.cwd(), args.config_env)
    exchange = args.exchange.strip().lower() if args.exchange else deploy.exchange
    if args.quote:
        quote, quote_source = args.quote.strip().upper(), "--quote"
    else:
        quote, quote_source = deploy.quote, deploy.quote_source
    try:
        config = StrategyConfig.load(args.config, quote)
    except ConfigError as e:
        hint = ""
        found = _quiet_config_quote(args.config)
        if found and found != quote:
            fix = (
                f"give --quote {found}"
                if args.quote
                else f"set QuoteCurrency={found} in samconfig.toml's [{args.config_env}.deploy.parameters] "
                "parameter_overrides"
            )
            hint = f" (the account's quote {quote} is {quote_source}; for a {found} account, {fix})"
        raise ConfigError(f"{e}{hint}") from e
    stops = sorted(k for k, s in config.strategies.items() if s.protective_stop is not None)
    if stops and not venue_has_stops(exchange, deploy.options):
        raise ConfigError(
            f"{args.config}: protective_stop is set for {', '.join(stops)}, but {exchange} has no spot stop orders "
            "this bot can place (crypto_bot.adapters.ccxt.exchange, supports_stop_orders): remove it, or trade on "
            "a venue that has them"
        )
    if args.online:
        listed, where = (fetch or online_markets)(exchange, deploy.options), f"{exchange}'s markets, read now"
    else:
        snapshot = CachedMarkets.load(exchange)
        if snapshot is None:
            out(
                f"{args.config}: {len(config.strategies)} strategies quote in {quote}; symbols not checked: no "
                f"snapshot of {exchange}'s markets is committed (crypto-bot check-config --online reads them)"
            )
            return 0
        listed, where = (
            snapshot.symbols,
            f"{exchange}'s hand-kept markets list ({snapshot.as_of}, venue_markets/{snapshot.path.name})",
        )
    missing = check_symbols(config, listed)
    if missing:
        advice = "" if args.online else "; if the venue lists it now, crypto-bot check-config --online confirms it"
        raise ConfigError(
            f"{args.config}: not a spot market of {exchange}: {'; '.join(missing)} (checked in {where}){advice}"
        )
    out(
        f"{args.config}: {len(config.strategies)} strategies, every symbol quoted in {quote} ({quote_source}) "
        f"and listed in {where}"
    )
    return 0


def _quiet_config_quote(path: Path) -> str | None:
    try:
        return config_quote(path)
    except ConfigError:
        return None


if __name__ == "__main__":  # pragma: no cover
    from crypto_bot_tools.cli import main

    sys.exit(main(["check-config", *sys.argv[1:]]))
