"""``crypto-bot dashboard``: the pages of a deployed stack or of ``crypto-bot local``, served on this machine."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Final

__all__ = ["AWS_CYCLES_EVERY", "register"]

AWS_CYCLES_EVERY: Final = 30.0  # seconds between two reads of a deployed stack's cycle records


def register(commands: Any) -> None:
    """Add the ``dashboard`` subcommand to ``crypto-bot``'s subparsers."""
    from crypto_bot_tools.ops.stack import DEFAULT_STACK, STACK_ENV

    dashboard = commands.add_parser(
        "dashboard",
        help="a local web page of a stack: equity, positions, signals, cycles, orders, and the kill switch",
        description="Serve the dashboard of a deployed stack (read with your AWS credentials, as the ops commands "
        "do) or of crypto-bot local, on this machine only unless --host says otherwise.",
    )
    dashboard.add_argument(
        "--stack", help=f"CloudFormation stack name (default ${STACK_ENV}, else {DEFAULT_STACK})", metavar="NAME"
    )
    dashboard.add_argument("--region", help="AWS region of the stack (default: the AWS CLI's)", metavar="R")
    dashboard.add_argument("--local", help="show crypto-bot local instead, e.g. http://127.0.0.1:3000", metavar="URL")
    dashboard.add_argument(
        "--config", type=Path, default=None, help="strategy config of a deployed stack (default strategy_config.json)"
    )
    dashboard.add_argument("--port", type=_port, default=8050, help="port to listen on (default 8050; 0: a free one)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument(
        "--refresh", type=_seconds, default=5.0, metavar="SECONDS", help="how often the pages update (default 5)"
    )
    dashboard.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from crypto_bot_tools.dashboard.app import Dashboard, allowed_hosts, serve
    from crypto_bot_tools.dashboard.reader import StackReader
    from crypto_bot_tools.ops.commands import open_source

    with open_source(args.stack, args.region, args.local) as source:
        errors: Callable[[], AbstractContextManager[None]] = nullcontext
        name = args.local or ""
        if args.local:
            from crypto_bot_tools.ops.local_source import DASHBOARD_AGENT, LocalSource

            if isinstance(source, LocalSource):
                source.client.agent = DASHBOARD_AGENT  # crypto-bot local does not log the polls
        if not args.local:
            from crypto_bot_tools.ops.aws_source import AwsSource
            from crypto_bot_tools.ops.stack import aws_errors

            errors = aws_errors
            if isinstance(source, AwsSource):
                name = f"{source.resources.name} ({source.resources.region})"
        # A deployed stack's cycles are a scan of its table (read units, billed): every 30 s at most.
        cycles_ttl = None if args.local else max(AWS_CYCLES_EVERY, args.refresh)
        reader = StackReader(
            source, ttl=args.refresh * 0.8, cycles_ttl=cycles_ttl, config_path=args.config, errors=errors
        )
        # Fail now, with the reason, when the stack cannot be read at all.
        reader.call(lambda: source.signals(1))
        dashboard = Dashboard(
            reader,
            stack=name,
            hosts=allowed_hosts(args.host, args.port),
            refresh=args.refresh,
            log=lambda line: print(line, flush=True),
        )
        serve(dashboard, args.host, args.port)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be in 0-65535")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0.5 and 3600 seconds")
    return value
