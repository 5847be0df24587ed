"""The ops subcommands: parse the options, ask the :class:`~crypto_bot_tools.ops.sources.Source`, print."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.ops import render
from crypto_bot_tools.ops.rows import SignalRow
from crypto_bot_tools.ops.sources import Source
from crypto_bot_tools.ops.stack import DEFAULT_STACK, STACK_ENV, aws_errors

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot_tools.ops.controls import ControlsChange
    from crypto_bot_tools.ops.rows import CycleOutcome

__all__ = ["open_source", "parse_since", "parse_statuses", "register", "select_signals"]

_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(commands: Any) -> None:
    """Add the ops subcommands (signals, positions, cycle, executions, pause, resume, flatten) to the subparsers."""
    signals = commands.add_parser(
        "signals",
        help="recent signals of a stack, with status and reason",
        description="List the signals a deployed stack (or crypto-bot local) received, oldest first.",
    )
    _target_options(signals)
    signals.add_argument("--since", default="24h", help="how far back: 30m, 24h, 7d ... or all (default 24h)")
    which = signals.add_mutually_exclusive_group()
    which.add_argument("--status", help="only these statuses, comma-separated (e.g. failed,rejected)")
    which.add_argument(
        "--refused",
        action="store_true",
        help="only the alerts refused, by the core or at the webhook (too large), each with its reason",
    )
    signals.add_argument("--limit", type=_positive_int, default=500, help="read at most N newest signals")
    signals.add_argument("--json", action="store_true", help="print one JSON object per signal")
    signals.set_defaults(run=_run_signals)

    positions = commands.add_parser(
        "positions",
        help="ledger positions, valued, with drift against balances",
        description="Show each strategy's position with cost basis, market value and weight, and the ledger "
        "against the account's balances (paper state for PaperTrading stacks, else the exchange via the API key).",
    )
    _target_options(positions)
    positions.add_argument("--config", type=Path, default=None, help="strategy config (default strategy_config.json)")
    positions.add_argument("--no-prices", action="store_true", help="do not read last prices from the exchange")
    positions.add_argument("--no-balances", action="store_true", help="do not read balances (no drift, no equity)")
    positions.add_argument("--json", action="store_true", help="print one JSON object")
    positions.set_defaults(run=_run_positions)

    cycle = commands.add_parser(
        "cycle",
        help="start a trade cycle now and follow it state by state",
        description='Start an execution of the trade-cycle state machine with {"trigger": "manual"} and follow it.',
    )
    _target_options(cycle)
    _follow_options(cycle)
    cycle.set_defaults(run=_run_cycle)

    executions = commands.add_parser(
        "executions",
        help="recent trade-cycle executions with console links",
        description="List the state machine's recent executions, newest first, with their Step Functions links.",
    )
    _target_options(executions)
    executions.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")
    executions.add_argument("--json", action="store_true", help="print one JSON object per execution")
    executions.set_defaults(run=_run_executions)
    _register_controls(commands)


def _register_controls(commands: Any) -> None:
    """Add the kill switch: pause, resume and flatten (crypto_bot.domain.controls)."""
    pause = commands.add_parser(
        "pause",
        help="hold entries back (the account or one strategy); exits and stop losses still run",
        description="Pause entries: buys are ignored with the reason 'paused by the operator' until crypto-bot "
        "resume; exits and stop losses still run. The trader is notified.",
    )
    resume = commands.add_parser(
        "resume",
        help="take entries again, and release a tripped drawdown guard (its peak restarts)",
        description="Lift a pause of the account (or of --strategy) and release its tripped drawdown guard, whose "
        "peak restarts from the next cycle's equity. Cooldowns after a stop loss end by themselves.",
    )
    flatten = commands.add_parser(
        "flatten",
        help="pause, then run a cycle now that sells every position (or one strategy's)",
        description="Pause entries and ask for every long position (or --strategy's) to be sold, start a cycle "
        "and follow it as crypto-bot cycle does, then show the positions. It stays paused: crypto-bot resume.",
    )
    for parser in (pause, resume, flatten):
        _target_options(parser)
        parser.add_argument(
            "--strategy", metavar="KEY", help="only this strategy, a key of the strategy config (default: the account)"
        )
        if parser is not resume:
            parser.add_argument("--reason", default="", metavar="TEXT", help="why: kept in the record and notified")
        parser.add_argument(
            "--config",
            type=Path,
            default=None,
            help="strategy config --strategy is checked against (default strategy_config.json; --local uses its own)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object with the controls record")
        parser.set_defaults(run=_run_control)
    _follow_options(flatten)
    flatten.set_defaults(run=_run_flatten)


@contextmanager
def open_source(stack: str | None, region: str | None, local: str | None) -> Iterator[Source]:
    """Yield the stack the options name: ``crypto-bot local`` at ``local``, else a deployed stack.

    For a deployed stack, botocore's errors raised inside the block become ConfigErrors the CLI reports.
    """
    if local and stack:
        raise ConfigError("--stack and --local exclude each other: give one")
    if local:
        from crypto_bot_tools.ops.local_source import LocalClient, LocalSource

        yield LocalSource(LocalClient(local))
        return
    from crypto_bot_tools.ops.aws_source import AwsSource

    with aws_errors():
        yield AwsSource.open(stack or os.environ.get(STACK_ENV) or DEFAULT_STACK, region)


def parse_since(text: str) -> timedelta | None:
    """Parse ``--since``: ``<n>s|m|h|d|w`` (``24h``), or ``all`` for no limit (None)."""
    if text.strip().lower() == "all":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--since {text!r}: expected <n>s, <n>m, <n>h, <n>d or <n>w (e.g. 24h, 7d), or all")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_statuses(text: str | None) -> set[str] | None:
    """Parse ``--status``: signal statuses, comma-separated; None or empty for every status."""
    from crypto_bot.domain.allocation import SignalStatus

    if not text:
        return None
    known = [s.value for s in SignalStatus]
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise ConfigError(f"--status {text!r}: not a signal status; use one or more of {', '.join(known)}")
    return wanted


def select_signals(
    rows: Sequence[SignalRow], *, since: datetime | None = None, statuses: set[str] | None = None
) -> list[SignalRow]:
    """Keep the signals received at or after ``since`` whose status is one of ``statuses``."""
    return [
        row
        for row in rows
        if (since is None or (row.queued_at or row.received_at) >= since)
        and (statuses is None or row.status in statuses)
    ]


def _run_signals(args: argparse.Namespace) -> int:
    window = parse_since(args.since)
    # Every refused delivery is stored as a rejected signal (a bad token is only counted: API Gateway's 4XXError).
    statuses = {"rejected"} if args.refused else parse_statuses(args.status)
    with open_source(args.stack, args.region, args.local) as source:
        rows = source.signals(args.limit)
    since = None if window is None else datetime.now(UTC) - window
    rows = select_signals(rows, since=since, statuses=statuses)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
    else:
        render.print_signals(rows, render.console())
    return 0


def _run_positions(args: argparse.Namespace) -> int:
    with open_source(args.stack, args.region, args.local) as source:
        result = source.holdings(args.config, with_prices=not args.no_prices, with_balances=not args.no_balances)
    if args.json:
        print(json.dumps(result.to_json()))
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        render.print_holdings(result, render.console())
    return 0


def _run_executions(args: argparse.Namespace) -> int:
    with open_source(args.stack, args.region, args.local) as source:
        rows = source.executions(args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
    else:
        render.print_executions(rows, render.console())
    return 0


def _run_cycle(args: argparse.Namespace) -> int:
    with open_source(args.stack, args.region, args.local) as source:
        return _cycle(source, args, render.console()).exit_code


def _cycle(source: Source, args: argparse.Namespace, console: Console) -> CycleOutcome:
    """Start a cycle, follow it as ``--follow/--poll/--timeout`` say, and print its summary once it ended."""
    outcome = source.cycle(console, follow=args.follow, poll=args.poll, timeout=args.timeout)
    if outcome.finished:
        render.print_summary(outcome.status, outcome.summary, console, took=outcome.took)
    return outcome


def _run_control(args: argparse.Namespace) -> int:
    with open_source(args.stack, args.region, args.local) as source:
        change = _apply_control(source, args)
    if args.json:
        print(json.dumps(change.to_json()))
    else:
        render.print_control(change, render.console())
    return _notified(change)


def _run_flatten(args: argparse.Namespace) -> int:
    # With --json, stdout holds one JSON object: the cycle is followed on stderr.
    console = render.console(stderr=args.json)
    with open_source(args.stack, args.region, args.local) as source:
        change = _apply_control(source, args)
        render.print_control(change, console)
        outcome = _cycle(source, args, console)
        result = source.holdings(args.config, with_prices=True, with_balances=True) if outcome.finished else None
    if args.json:
        execution = {"status": outcome.status, "summary": dict(outcome.summary), "took": outcome.took}
        shown = {"positions": result.to_json()} if result is not None else {}
        print(json.dumps({**change.to_json(), "execution": execution, **shown}, default=str))
    elif result is not None:
        render.print_holdings(result, console)
    return max(outcome.exit_code, _notified(change))


def _apply_control(source: Source, args: argparse.Namespace) -> ControlsChange:
    return source.apply_control(
        args.command, strategy=args.strategy, reason=getattr(args, "reason", ""), config_path=args.config
    )


def _notified(change: ControlsChange) -> int:
    """Return 1, saying so, when the change was written but the trader's notification failed; else 0."""
    if change.notification_error is None:
        return 0
    print(
        f"crypto-bot: the {change.command} is written, but the notification failed: {change.notification_error}",
        file=sys.stderr,
    )
    return 1


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the execution until it stops (default); --no-follow only starts it",
    )
    parser.add_argument("--poll", type=_positive_float, default=1.0, help="seconds between history reads")
    parser.add_argument("--timeout", type=_positive_float, help="stop following after this many seconds")


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", help=f"CloudFormation stack name (default ${STACK_ENV}, else {DEFAULT_STACK})", metavar="NAME"
    )
    parser.add_argument("--region", help="AWS region of the stack (default: the AWS CLI's)", metavar="R")
    parser.add_argument("--local", help="talk to crypto-bot local instead, e.g. http://127.0.0.1:3000", metavar="URL")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value
