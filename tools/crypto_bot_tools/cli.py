"""The ``crypto-bot`` command line."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import ConfigError, CryptoBotError, InputError
from crypto_bot.domain.money import parse_decimal
from crypto_bot.domain.price_band import DEFAULT_MAX_PRICE_JUMP, parse_price_jump
from crypto_bot.domain.timeframe import Schedule, Timeframe


def _decimal(name: str, *, minimum: Decimal | None = None, below: Decimal | None = None) -> Any:
    def parse(text: str) -> Decimal:
        try:
            value = parse_decimal(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: {e}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be at least {minimum}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be below {below}")
        return value

    return parse


def _price_jump(text: str) -> Decimal:
    try:
        return parse_price_jump(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--max-price-jump {text!r}: {e}") from None


def _timeframe(text: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _zone(text: str) -> tzinfo:
    from crypto_bot_tools.tradingview import parse_chart_zone

    try:
        return parse_chart_zone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--trades-tz {e}") from None


def _trades(text: str) -> tuple[str, Path]:
    key, sep, path = text.partition("=")
    if not sep or not key.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"--trades {text!r}: expected KEY=TRADES.csv")
    return key.strip(), Path(path.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crypto-bot", description="Run TradingView strategies on a crypto exchange, or replay them offline."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay = commands.add_parser(
        "replay",
        help="replay alerts through the engine and a paper exchange",
        description="Replay TradingView alerts cycle by cycle through the real engine and a paper account.",
    )
    replay.add_argument("alerts", nargs="?", type=Path, help="ALERTS.jsonl: one webhook payload per line")
    replay.add_argument(
        "--config",
        type=Path,
        default=Path("strategy_config.json"),
        help="strategy config JSON (default strategy_config.json)",
    )
    replay.add_argument(
        "--mode",
        choices=[m.value for m in ExecutionMode],
        default="boost",
        help="how signals are netted into orders (default boost)",
    )
    replay.add_argument(
        "--quote",
        help="the account's quote currency, e.g. USDT (default: the one every symbol of --config quotes in)",
    )
    replay.add_argument(
        "--cash",
        type=_decimal("--cash", minimum=Decimal(0)),
        default=Decimal(10000),
        help="starting cash in the quote currency (default 10000)",
    )
    replay.add_argument(
        "--fee",
        type=_decimal("--fee", minimum=Decimal(0), below=Decimal("0.1")),
        default=Decimal("0.001"),
        help="the paper exchange's fee rate, 0.001 being 0.1%% (default 0.001)",
    )
    replay.add_argument(
        "--increment",
        type=_decimal("--increment", minimum=Decimal(0), below=Decimal("0.1")),
        default=Decimal("0.001"),
        help="how far beyond the last price a limit is set, as a fraction: IncrementPct (default 0.001)",
    )
    replay.add_argument(
        "--timeframe", type=_timeframe, default=Timeframe.parse("8h"), help="the bar cycles run after (default 8h)"
    )
    replay.add_argument(
        "--offset-minutes", type=int, default=1, help="minutes after each bar close a cycle runs (default 1)"
    )
    replay.add_argument("--prices", type=Path, help="CSV of time,symbol,price")
    replay.add_argument("--markets", type=Path, help="JSON of paper market rules by symbol")
    replay.add_argument(
        "--max-price-jump",
        type=_price_jump,
        default=DEFAULT_MAX_PRICE_JUMP,
        metavar="FRACTION",
        help="report and skip an alert whose price is more than this fraction away from its symbol's last known "
        f"price (default {DEFAULT_MAX_PRICE_JUMP}: 50%%)",
    )
    replay.add_argument(
        "--trades",
        type=_trades,
        action="append",
        default=[],
        metavar="KEY=TRADES.csv",
        help="a TradingView strategy-tester list-of-trades export for strategy KEY (repeatable)",
    )
    replay.add_argument(
        "--trades-tz",
        type=_zone,
        default=UTC,
        metavar="ZONE",
        help="timezone of the times in --trades exports (TradingView uses the chart's; default UTC)",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object per cycle")
    replay.add_argument("--compare", action="store_true", help="run both modes and compare them")
    replay.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="write the equity chart to a PNG: both modes marked to market, trades, drawdown",
    )
    replay.set_defaults(run=_replay)
    # Other command groups live in their own modules and add their subcommands here; each
    # sets `run` to a function taking the parsed arguments and returning an exit code.
    for register in _command_groups():
        register(commands)
    return parser


def _command_groups() -> list[Callable[[Any], None]]:
    groups: list[Callable[[Any], None]] = []
    for module in (
        "crypto_bot_tools.local.cli",
        "crypto_bot_tools.ops",
        "crypto_bot_tools.costs",
        "crypto_bot_tools.check_config",
        "crypto_bot_tools.alert_message",
        "crypto_bot_tools.verify",
        "crypto_bot_tools.dashboard",
    ):
        if importlib.util.find_spec(module) is not None:
            groups.append(importlib.import_module(module).register)
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    try:
        args = build_parser().parse_args(argv)
        try:
            result: int = args.run(args)
            sys.stdout.flush()  # a reader gone before the end is found here, not at interpreter exit
            return result
        except (ConfigError, InputError) as e:
            print(f"crypto-bot: {e}", file=sys.stderr)
            return 2
        except CryptoBotError as e:
            print(f"crypto-bot: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """End quietly when stdout's reader has closed the pipe (``| head``), as Unix tools killed by SIGPIPE do."""
    # What is still buffered cannot be written: point stdout at /dev/null so that Python's own flush at exit
    # does not raise again (the recipe of Python's signal module documentation).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is no file (a test's capture): nothing will flush it at exit
    return 128 + signal.SIGPIPE


def _trade_lists(
    args: argparse.Namespace, config: StrategyConfig
) -> tuple[list[tuple[str, object]], dict[str, tuple[Decimal, datetime | None]]]:
    """Read the ``--trades`` exports: their alerts, and each symbol's last close where a trade is still open."""
    from crypto_bot_tools.tradingview import read_trade_list

    alerts: list[tuple[str, object]] = []
    closes: dict[str, tuple[Decimal, datetime | None]] = {}
    for key, path in args.trades:
        if config.get(key) is None:
            raise ConfigError(f"--trades {key}={path}: {key} is not a strategy in {args.config}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read trades file {path}: {e.strerror}") from e
        trades = read_trade_list(text, strategy=key, source=str(path), tz=args.trades_tz)
        alerts += [(f"{path.name}:{i + 1}", p) for i, p in enumerate(trades.alerts)]
        if trades.last_close is not None:
            closes[config[key].symbol] = (parse_decimal(trades.last_close.price), trades.last_close.time)
    return alerts, closes


def _without_protections(
    alerts: list[Any], config: StrategyConfig, options: Any, modes: list[ExecutionMode], closes: Any
) -> tuple[list[Any], list[Any]]:
    """Replay each mode again on the same alerts without the protective stops and guards: their effect.

    Return the summaries and the runs (for the chart).
    """
    from crypto_bot_tools import replay as replay_mod
    from crypto_bot_tools import report

    bare = replay_mod.unprotected(config)
    summaries, runs = [], []
    for mode in modes:
        run = replay_mod.replay(alerts, bare, replay_mod.ReplayOptions(**{**options.__dict__, "mode": mode}))
        summary = report.with_closing(replay_mod.summarize(run), run, report.value_at_last_close(run, bare, closes))
        summaries.append(replace(summary, variant="without protections"))
        runs.append(run)
    return summaries, runs


def _plot(args: argparse.Namespace, curves: list[tuple[str, Any]], prices: Any, quote: str) -> None:
    """Draw the --plot chart: each run marked to market, and TradingView's own P&L from the --trades exports."""
    from crypto_bot_tools import charts, report

    profits = []
    for _key, path in args.trades:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read trades file {path}: {e.strerror}") from e
        profits.append(charts.tradingview_profits(text, source=str(path), tz=args.trades_tz))
    keys = ", ".join(key for key, _ in args.trades)
    backtest = charts.tradingview_series(profits, args.cash, name=f"TradingView {keys}") if profits else None
    series = [charts.equity_series(run, prices, name=name) for name, run in curves]
    report.plot_equity(series, args.plot, quote, backtest=backtest)


def _replay(args: argparse.Namespace) -> int:
    from crypto_bot.adapters.paper.exchange import CsvPrices, load_markets_file
    from crypto_bot_tools import replay as replay_mod

    if args.alerts is None and not args.trades:
        raise ConfigError("give an ALERTS.jsonl file, one or more --trades KEY=TRADES.csv, or both")
    from crypto_bot_tools.check_config import resolve_quote

    config = StrategyConfig.load(args.config, resolve_quote(args.quote, args.config, "USDT"))
    alerts: list[tuple[str, object]] = []
    if args.alerts is not None:
        alerts += replay_mod.read_alerts(args.alerts)
    trade_alerts, closes = _trade_lists(args, config)
    alerts += trade_alerts
    try:
        schedule = Schedule(args.timeframe, timedelta(minutes=args.offset_minutes))
    except ValueError as e:
        raise ConfigError(f"--offset-minutes: {e}") from e
    options = replay_mod.ReplayOptions(
        mode=ExecutionMode(args.mode),
        cash=args.cash,
        fee=args.fee,
        increment=args.increment,
        schedule=schedule,
        prices=CsvPrices(args.prices) if args.prices else None,
        markets=load_markets_file(args.markets, args.fee) if args.markets else None,
        max_price_jump=args.max_price_jump,
    )
    modes = [ExecutionMode.BOOST, ExecutionMode.MULTI] if (args.compare or args.plot) else [options.mode]
    if options.mode in modes:
        modes.remove(options.mode)
    modes.insert(0, options.mode)
    results = []
    for mode in modes:
        opts = replay_mod.ReplayOptions(**{**options.__dict__, "mode": mode})
        results.append(replay_mod.replay(alerts, config, opts))

    from crypto_bot_tools import report

    # An open trade of a --trades export is valued at the export's last close, not at its entry.
    closings = [report.value_at_last_close(r, config, closes) for r in results]
    summaries = [report.with_closing(replay_mod.summarize(r), r, c) for r, c in zip(results, closings, strict=True)]
    bare_runs: list[Any] = []
    if args.compare and replay_mod.protected(config):
        bare_summaries, bare_runs = _without_protections(alerts, config, options, modes, closes)
        summaries += bare_summaries
    if args.json:
        for cycle in results[0].cycles:
            print(json.dumps(cycle.to_json()))
        if closings[0] is not None:
            print(json.dumps(closings[0].to_json()))
        if args.compare:
            print(json.dumps(report.comparison_json(summaries)))
        report.print_rejections_json(results[0])
    else:
        for result, closing in list(zip(results, closings, strict=True))[: None if args.compare else 1]:
            report.print_replay(result, config)
            if closing is not None:
                report.print_closing(closing, config.quote)
        if args.compare:
            report.print_comparison(summaries, config.quote)
    if args.plot:
        curves = [(r.mode.value, r) for r in results] + [(f"{r.mode.value} without protections", r) for r in bare_runs]
        _plot(args, curves, options.prices, config.quote)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
