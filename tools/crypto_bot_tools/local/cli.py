"""The ``crypto-bot local`` and ``crypto-bot demo`` commands.

Registered into ``crypto-bot``'s subcommands by :func:`register`. Nothing heavy is imported
here at module level: ``crypto-bot replay`` must not pay for moto and boto3.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import Any, Final

from crypto_bot.domain.config import parse_exchange_options
from crypto_bot.domain.errors import ConfigError

__all__ = ["DEMO_EXTRA_ALERTS", "DemoStep", "demo_steps", "redate_alerts", "register", "serve_until_stopped"]

# The README example has no stop loss. The demo adds one at the end, after buying BTC back, so the
# README's five cycles stay exactly as documented and the urgent path still shows: the stop loss
# starts its own execution the moment it is queued, with no cycle asked for.
DEMO_EXTRA_ALERTS: Final[tuple[dict[str, str], ...]] = (
    {
        "time": "2024-08-11T18:30:02Z",
        "ticker": "BTCUSDT",
        "order_action": "buy",
        "order_price": "60000",
        "order_comment": "long",
    },
    {
        "time": "2024-08-12T03:00:02Z",
        "ticker": "BTCUSDT",
        "order_action": "sell",
        "order_price": "57000",
        "order_comment": "Stop loss",
    },
)


def register(commands: Any) -> None:
    """Add the ``local`` and ``demo`` subcommands to ``crypto-bot``'s subparsers."""
    local = commands.add_parser(
        "local",
        help="run the whole AWS pipeline on this machine (moto, paper exchange, a local webhook)",
        description=(
            "Run the deployed pipeline locally: template.yaml's queues, table, state machine and Lambda handlers "
            "under moto, the paper exchange, and the webhook's API Gateway rules on a local HTTP server."
        ),
    )
    local.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000; 0 picks a free one)")
    local.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    local.add_argument("--token", help="the webhook token (default: a new random one, printed at start)")
    local.add_argument("--config", type=Path, default=Path("strategy_config.json"), help="strategy config JSON")
    local.add_argument(
        "--quote",
        help="the account's quote currency, e.g. USDT (default: the one every symbol of --config quotes in)",
    )
    when = local.add_mutually_exclusive_group()
    when.add_argument("--cycle-every", type=float, metavar="SECONDS", help="run a scheduled cycle every SECONDS")
    when.add_argument(
        "--schedule",
        metavar="CRON",
        help="cycle schedule, e.g. 'cron(1 0/8 * * ? *)' (default: the template's CycleSchedule); 'none' for manual",
    )
    local.add_argument(
        "--prices",
        metavar="live:EXCHANGE|FILE.csv",
        help="where prices come from (default: the last alert price per symbol)",
    )
    local.add_argument("--cash", default="10000", help="starting cash of the paper account (default 10000)")
    local.add_argument("--mode", choices=["boost", "multi"], default="boost")
    local.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="turn the webhook's source-IP allowlist on, admitting CIDR (repeatable); off by default",
    )
    local.add_argument(
        "--max-signal-age",
        type=int,
        metavar="MINUTES",
        help="alerts older than this expire (default: the template's MaxSignalAgeMinutes; 0: never)",
    )
    local.add_argument(
        "--stop-loss-pattern",
        metavar="REGEX",
        help="the StopLossPattern parameter: which sell comments are stop losses, for the webhook and the core "
        r"(default: the template's, \bstop)",
    )
    local.add_argument(
        "--max-price-jump",
        metavar="FRACTION",
        help="refuse an alert whose price is more than this fraction from its symbol's last price (default 0.5)",
    )
    local.add_argument("--template", type=Path, help="the SAM template (default: template.yaml)")
    venue = local.add_argument_group(
        "a real or emulated venue instead of the paper exchange",
        "Trade a ccxt venue (a testnet before going live, or an emulator) through the same local pipeline.",
    )
    venue.add_argument("--exchange", metavar="ID", help="ccxt exchange id, e.g. binance (default: the paper exchange)")
    venue.add_argument("--sandbox", action="store_true", help="use the venue's testnet (ccxt sandbox mode)")
    venue.add_argument(
        "--exchange-options",
        metavar="JSON",
        default="{}",
        help='JSON deep-merged into the ccxt constructor config, e.g. \'{"urls": {"api": {...}}}\'; also used by '
        "--prices live:",
    )
    venue.add_argument(
        "--api-key-file",
        type=Path,
        metavar="PATH",
        help='JSON file with the venue\'s key: {"apiKey": ..., "secret": ...}; needed with --exchange',
    )
    local.add_argument(
        "--chat-file",
        type=Path,
        metavar="PATH",
        help='JSON file with Telegram and/or Discord settings: {"telegram_bot_token", "telegram_chat_id", '
        '"discord_webhook_url"} (and "telegram_api_url", "discord_api_url" for emulators); every '
        "notification is posted there too, as a deployed stack does",
    )
    local.set_defaults(run=_local)

    demo = commands.add_parser(
        "demo",
        help="run the README example through the local stack over real HTTP",
        description=(
            "Start the local stack on a free port, POST the README example alerts and a stop loss to its webhook, "
            "run the cycles, and print each cycle's orders and portfolio."
        ),
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object per cycle, as replay --json does")
    demo.add_argument(
        "--quote", help="the account's quote currency (default: the one strategy_config.json's symbols quote in)"
    )
    demo.set_defaults(run=_demo)


# ------------------------------------------------------------------------------------------ local


def _api_key(path: Path) -> dict[str, str]:
    """Read a venue API key file; errors name the file and the problem, never the key."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--api-key-file {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f'--api-key-file {path}: not JSON; expected {{"apiKey": ..., "secret": ...}}') from None
    if not isinstance(data, dict) or not data.get("apiKey") or not data.get("secret"):
        raise ConfigError(f"--api-key-file {path}: expected a JSON object with apiKey and secret")
    unknown = sorted(set(data) - {"apiKey", "secret", "password"})
    if unknown:
        raise ConfigError(f"--api-key-file {path}: unknown fields {unknown}; expected apiKey, secret, password")
    return {str(k): str(v) for k, v in data.items()}


CHAT_FIELDS = ("telegram_bot_token", "telegram_chat_id", "discord_webhook_url", "telegram_api_url", "discord_api_url")


def _chat(path: Path) -> dict[str, str]:
    """Read a chat settings file; errors name the file and the field, never a token or a webhook URL."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--chat-file {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"--chat-file {path}: not JSON; expected an object with {', '.join(CHAT_FIELDS)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--chat-file {path}: expected a JSON object with {', '.join(CHAT_FIELDS)}")
    unknown = sorted(set(data) - set(CHAT_FIELDS))
    if unknown:
        raise ConfigError(f"--chat-file {path}: unknown fields {unknown}; expected {', '.join(CHAT_FIELDS)}")
    chat = {str(k): str(v).strip() for k, v in data.items() if isinstance(v, str) and v.strip()}
    if bool(chat.get("telegram_bot_token")) != bool(chat.get("telegram_chat_id")):
        raise ConfigError(f"--chat-file {path}: telegram_bot_token and telegram_chat_id go together")
    if not chat.get("telegram_bot_token") and not chat.get("discord_webhook_url"):
        raise ConfigError(f"--chat-file {path}: neither telegram_bot_token nor discord_webhook_url is set")
    return chat


def _price_jump(text: str) -> Decimal:
    from crypto_bot.domain.price_band import parse_price_jump

    try:
        return parse_price_jump(text)
    except ValueError as e:
        raise ConfigError(f"--max-price-jump {text!r}: {e}") from None


def _settings(args: argparse.Namespace) -> Any:
    from crypto_bot_tools.local.server import LocalSettings, default_template

    try:
        cash = Decimal(str(args.cash))
    except InvalidOperation:
        raise ConfigError(f"--cash {args.cash!r}: not a number") from None
    if not cash.is_finite() or cash < 0:
        raise ConfigError(f"--cash {args.cash!r}: must be a number of at least 0")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be in 0-65535")
    for cidr in args.allow:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as e:
            raise ConfigError(f"--allow {cidr!r}: {e}") from None
    prices = args.prices
    if prices and not prices.startswith("live:") and not Path(prices).is_file():
        raise ConfigError(f"--prices {prices!r}: expected live:EXCHANGE or an existing CSV file (time,symbol,price)")
    template = args.template or default_template()
    if not template.is_file():
        raise ConfigError(f"template {template} not found: run from the project directory or pass --template")
    options = parse_exchange_options(args.exchange_options, "--exchange-options")
    if args.exchange is None and (args.sandbox or args.api_key_file):
        raise ConfigError("--sandbox and --api-key-file choose how to reach a venue: give --exchange ID too")
    api_key = _api_key(args.api_key_file) if args.api_key_file else None
    return LocalSettings(
        exchange=args.exchange.strip().lower() if args.exchange else None,
        sandbox=args.sandbox,
        exchange_options=options,
        api_key=api_key,
        chat=_chat(args.chat_file) if args.chat_file else None,
        config=args.config,
        quote=args.quote,
        host=args.host,
        port=args.port,
        token=args.token,
        cycle_every=args.cycle_every,
        schedule=args.schedule,
        prices=prices,
        cash=cash,
        mode=args.mode,
        allow=tuple(args.allow),
        max_signal_age=args.max_signal_age,
        stop_loss_pattern=args.stop_loss_pattern,
        max_price_jump=_price_jump(args.max_price_jump) if args.max_price_jump is not None else None,
        template=template,
    )


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # `kill` (and a test's terminate()) shut down as cleanly as Ctrl-C.
    raise KeyboardInterrupt


def _local(args: argparse.Namespace) -> int:
    from crypto_bot_tools.local.server import LocalServer

    server = LocalServer(_settings(args))
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return serve_until_stopped(server)


def serve_until_stopped(server: Any) -> int:
    """Start ``server``, serve until Ctrl-C (or SIGTERM), then close it; return the exit code.

    Closing waits for the pipe, the scheduler and running executions. A second Ctrl-C meanwhile ends that
    wait: the process exits at once (130, as a shell reports an interrupted command) with one line, no
    traceback; state is in memory only, so nothing is left half-written.
    """
    from crypto_bot_tools.local.server import print_banner

    try:
        try:
            server.start()
            print_banner(server)
            server.serve_forever()
        except KeyboardInterrupt:
            print("crypto-bot local: stopping (Ctrl-C again to exit at once)", flush=True)
        finally:
            server.close()
    except KeyboardInterrupt:
        print("crypto-bot local: interrupted while stopping; exiting now", flush=True)
        return 130
    print("crypto-bot local: stopped", flush=True)
    return 0


# ------------------------------------------------------------------------------------------ demo


@dataclass(frozen=True)
class DemoStep:
    """Alerts POSTed together, then one cycle: a scheduled one, or the stop loss's own (urgent)."""

    alerts: tuple[dict[str, Any], ...]
    urgent: bool


def redate_alerts(
    alerts: Sequence[dict[str, Any]], last: datetime, *, after: datetime | None = None
) -> list[dict[str, Any]]:
    """Return copies of ``alerts`` moved in time so the latest is at ``last``, their spacing kept.

    With ``after``, the batch moves later if needed so its earliest alert is a second past ``after``
    (an alert older than one that decided its strategy is ignored as out of order). The README example
    is dated 2024: sent as it is, the deployed expiry (MaxSignalAgeMinutes) expires every alert.
    """
    times = [datetime.fromisoformat(str(alert["time"])) for alert in alerts]
    if not times:
        return []
    # Alert times have whole seconds (TradingView's {{timenow}}).
    shift = last.replace(microsecond=0) - max(times)
    if after is not None and min(times) + shift <= after:
        shift = after + timedelta(seconds=1) - min(times)
    return [
        {**alert, "time": (moment + shift).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for alert, moment in zip(alerts, times, strict=True)
    ]


def demo_steps(readme_alerts: Sequence[dict[str, Any]], timeframe: str = "8h") -> list[DemoStep]:
    """Group the README alerts by the cycle they belong to, then add the demo's buy and stop loss."""
    from crypto_bot.domain.signals import is_stop_loss_comment
    from crypto_bot.domain.timeframe import Schedule, Timeframe

    schedule = Schedule(Timeframe.parse(timeframe))
    steps: list[DemoStep] = []
    batch: list[dict[str, Any]] = []
    tick: datetime | None = None
    for alert in [*readme_alerts, *DEMO_EXTRA_ALERTS]:
        urgent = str(alert["order_action"]).strip().lower() == "sell" and is_stop_loss_comment(
            str(alert["order_comment"])
        )
        at = schedule.tick_at_or_after(datetime.fromisoformat(str(alert["time"])))
        if batch and (urgent or at != tick):
            steps.append(DemoStep(tuple(batch), urgent=False))
            batch = []
        if urgent:
            steps.append(DemoStep((alert,), urgent=True))
            continue
        batch.append(alert)
        tick = at
    if batch:
        steps.append(DemoStep(tuple(batch), urgent=False))
    return steps


class _Client:
    """A small HTTP client (the standard library's): the demo talks to the server over real HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 (always our own http://127.0.0.1 server)
            self.base + path, data=body, method=method, headers={"Content-Type": content_type} if body else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 (see above)
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read() or b"null")


def _demo(args: argparse.Namespace) -> int:
    from crypto_bot.domain.config import ExecutionMode, StrategyConfig
    from crypto_bot_tools.local.server import LocalServer, LocalSettings, default_template
    from crypto_bot_tools.replay import ReplayOptions, replay
    from crypto_bot_tools.report import console_for_output

    template = default_template()
    root = template.parent
    alerts_file = root / "events" / "alerts" / "readme_example.jsonl"
    if not template.is_file() or not alerts_file.is_file():
        raise ConfigError(f"the demo needs the project checkout ({template} and {alerts_file}); run it from there")
    readme = [json.loads(line) for line in alerts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = demo_steps(readme)
    # The template's expiry (MaxSignalAgeMinutes) stays on: each step's alerts are sent dated now.
    settings = LocalSettings(
        config=root / "strategy_config.json", quote=args.quote, port=0, schedule="none", template=template
    )
    console = console_for_output()
    say: Callable[[str], None] = (lambda _text: None) if args.json else console.print
    started = time.monotonic()
    cycles: list[dict[str, Any]] = []
    previous: datetime | None = None
    with LocalServer(settings, log=lambda _line: None) as server:
        server.serve_in_background()
        client = _Client(server.url)
        say(f"[bold]crypto-bot demo[/bold]: the local stack listens on {server.url} (moto + the paper exchange)")
        say("Each alert goes over HTTP through the webhook's rules to SQS; each cycle is a Step Functions execution.")
        for number, step in enumerate(steps, start=1):
            say("")
            say(f"[bold]step {number}[/bold]" + (": a stop loss, which runs at once" if step.urgent else ""))
            known = {e["id"] for e in client.request("GET", "/_local/state")[1]["executions"]}
            # Dated now, as TradingView would send them, so none expires; replay below keeps the README's
            # own dates, which put each step in its own 8h bar.
            sent = redate_alerts(step.alerts, datetime.now(UTC), after=previous)
            previous = max(datetime.fromisoformat(alert["time"]) for alert in sent)
            for alert in sent:
                # A stop loss goes as text/plain, as TradingView sends a message it does not take for JSON.
                content_type = "text/plain" if step.urgent else "application/json"
                status, answer = client.request(
                    "POST", f"/signals?token={server.token}", json.dumps(alert).encode(), content_type
                )
                say(
                    f"  POST /signals  {alert['ticker']} {alert['order_action']} @ {alert['order_price']} "
                    f"({alert['order_comment']})  → {status} {json.dumps(answer)}"
                )
                if status != 200:
                    raise ConfigError(f"the webhook refused a README alert: {status} {answer}")
            detail = _urgent_execution(client, known) if step.urgent else client.request("POST", "/_local/cycle")[1]
            if detail.get("status") != "SUCCEEDED" or not detail.get("cycle"):
                raise ConfigError(f"step {number}: the execution did not succeed: {json.dumps(detail)[:2000]}")
            cycles.append(detail["cycle"])
            if args.json:
                print(json.dumps(detail["cycle"]), flush=True)
            else:
                _print_cycle(console, detail, server.config.quote)
        increment, quote = server.increment, server.config.quote
        final = client.request("GET", "/_local/state")[1]
    config = StrategyConfig.load(settings.config, quote)
    alerts = [alert for step in steps for alert in step.alerts]
    expected = replay(alerts, config, ReplayOptions(mode=ExecutionMode.BOOST, fee=Decimal(0), increment=increment))
    mismatches = _compare(cycles, [c.to_json() for c in expected.cycles])
    if not args.json:
        _print_summary(console, final, cycles, steps, time.monotonic() - started, quote, mismatches)
    for problem in mismatches:
        print(f"crypto-bot demo: differs from crypto-bot replay: {problem}", file=sys.stderr)
    return 1 if mismatches else 0


def _urgent_execution(client: _Client, known: set[str]) -> dict[str, Any]:
    """Find the execution the stop loss started by itself (the emulated pipe), and wait for its end."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        executions = client.request("GET", "/_local/state")[1]["executions"]
        new = [e for e in executions if e["id"] not in known and e.get("trigger") == "urgent"]
        if new:
            detail: dict[str, Any] = client.request("GET", f"/_local/executions/{new[0]['id']}?wait=true")[1]
            return detail
        time.sleep(0.05)
    raise ConfigError("the stop loss started no execution within 60 s")


def _compare(local: list[dict[str, Any]], replayed: list[dict[str, Any]]) -> list[str]:
    """Compare each cycle's orders, cash, equity and positions with replay's; return the differences."""
    if len(local) != len(replayed):
        return [f"{len(local)} cycles ran locally, replay has {len(replayed)}"]
    problems = []
    for number, (mine, theirs) in enumerate(zip(local, replayed, strict=True), start=1):
        for key in ("orders", "cash", "equity", "positions"):
            if mine[key] != theirs[key]:
                problems.append(f"cycle {number} {key}: local {mine[key]} vs replay {theirs[key]}")
    return problems


def _fmt(value: Decimal | float | int, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _print_cycle(console: Any, detail: dict[str, Any], quote: str) -> None:
    """Print a cycle's orders and the portfolio after it, in the style of ``crypto-bot replay``."""
    from rich.table import Table

    cycle = detail["cycle"]
    kind = "stop-loss cycle" if detail.get("trigger") == "urgent" else "cycle"
    console.print(
        f"[bold]{kind}[/bold] {cycle['cycle']} · execution {detail['id']} {detail['status']} "
        f"after {len(detail['transitions'])} states"
    )
    orders = Table()
    for column in ("strategy", "order", "filled", "limit", "cost", "status"):
        orders.add_column(column, justify="left" if column in ("strategy", "order", "status") else "right")
    for order in cycle["orders"]:
        filled = (
            f"{order['filled']}" if order["filled"] == order["amount"] else f"{order['filled']} of {order['amount']}"
        )
        orders.add_row(
            order["strategy"],
            f"{order['side']} {order['symbol']}",
            filled,
            _fmt(order["price"]),
            _fmt(order["cost"]),
            order["status"],
        )
    if not cycle["orders"]:
        orders.add_row("-", "no orders", "", "", "", "")
    console.print(orders)
    portfolio = Table(show_header=True)
    for column in ("holding", "amount", "cost basis", "value", "weight"):
        portfolio.add_column(column, justify="left" if column == "holding" else "right")
    for key, p in cycle["positions"].items():
        portfolio.add_row(
            f"{key} ({p['symbol']})", f"{p['amount']}", _fmt(p["cost_basis"]), _fmt(p["value"]), f"{p['weight']:.2%}"
        )
    equity = cycle["equity"]
    portfolio.add_row(f"cash ({quote})", "", "", _fmt(cycle["cash"]), f"{cycle['cash'] / equity if equity else 0:.2%}")
    portfolio.add_row("[bold]equity", "", "", f"[bold]{_fmt(equity)}", "100.00%")
    console.print(portfolio)


def _print_summary(
    console: Any,
    state: dict[str, Any],
    cycles: list[dict[str, Any]],
    steps: list[DemoStep],
    elapsed: float,
    quote: str,
    mismatches: list[str],
) -> None:
    from rich.table import Table

    table = Table(title="demo summary", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    filled = [o for c in cycles for o in c["orders"] if o["filled"]]
    statuses: dict[str, int] = {}
    for s in state["signals"]:
        statuses[s["status"]] = statuses.get(s["status"], 0) + 1
    rows = [
        ("alerts POSTed", str(sum(len(step.alerts) for step in steps))),
        ("signals by status", ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))),
        ("executions", f"{len(state['executions'])} ({sum(step.urgent for step in steps)} started by a stop loss)"),
        ("orders filled", str(len(filled))),
        (f"final equity ({quote})", _fmt(Decimal(state["equity"]))),  # /_local/state sends money as strings
        ("same as crypto-bot replay", "yes" if not mismatches else f"NO ({len(mismatches)} differences)"),
        ("time", f"{elapsed:.1f} s"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
