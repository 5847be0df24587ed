"""Operate a running stack from a laptop: ``crypto-bot signals|positions|cycle|executions``.

A deployed stack is found by its CloudFormation name: every resource (table, state
machine, queues, topic) comes from the stack's Outputs and every setting from its
Parameters, so there are no physical names to type. ``--local URL`` talks to
``crypto-bot local`` over its ``/_local/*`` endpoints instead.

The AWS-reading logic lives in small functions that take boto3 clients
(:func:`stack_resources`, :func:`deployed_signals`, :func:`recent_executions`,
:func:`follow_execution`...), so tests pass moto-backed clients. boto3 is imported only
when a command talks to AWS: it is not a runtime dependency of the package.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.config import StrategyConfig, parse_exchange_options
from crypto_bot.domain.errors import ConfigError, ExchangeError, StoreError
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ZERO, parse_decimal, plain, to_json_number

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot.domain.ledger import Ledger
    from crypto_bot.domain.orders import Balance

__all__ = [
    "DEFAULT_STACK",
    "NO_CREDENTIALS",
    "STACK_ENV",
    "ExecutionRow",
    "Holdings",
    "LocalClient",
    "PositionRow",
    "SignalRow",
    "StackResources",
    "console_url",
    "deployed_holdings",
    "deployed_signals",
    "follow_execution",
    "holdings",
    "live_balances",
    "local_executions",
    "local_holdings",
    "local_signals",
    "paper_balances",
    "parse_since",
    "public_price_source",
    "read_api_key",
    "recent_executions",
    "register",
    "select_signals",
    "stack_resources",
    "start_cycle",
]

DEFAULT_STACK: Final = "crypto-bot-dev"  # samconfig.toml's default stack_name
STACK_ENV: Final = "CRYPTO_BOT_STACK"
NO_CREDENTIALS: Final = "configure AWS credentials (aws configure) or pass --local URL"
# Outputs of template.yaml the commands read.
TABLE_OUTPUT: Final = "TableName"
STATE_MACHINE_OUTPUT: Final = "TradeCycleStateMachineArn"

_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackResources:
    """A deployed stack as the commands need it: its Outputs and Parameters by key."""

    name: str
    region: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]

    def output(self, key: str) -> str:
        """Return one output's value; raise ConfigError naming the output when the stack lacks it."""
        value = self.outputs.get(key)
        if not value:
            raise ConfigError(
                f"stack {self.name} has no output {key}: deploy the current template.yaml (sam deploy) "
                f"so that its Outputs include {key}"
            )
        return value

    def parameter(self, key: str) -> str:
        """Return one parameter's value; raise ConfigError naming the parameter when the stack lacks it."""
        if key not in self.parameters:
            raise ConfigError(
                f"stack {self.name} has no parameter {key}: is it a crypto-bot stack deployed from template.yaml?"
            )
        return self.parameters[key]

    @property
    def paper_trading(self) -> bool:
        return self.parameter("PaperTrading").lower() == "true"

    @property
    def exchange_options(self) -> dict[str, Any]:
        """Return the stack's ccxt options (its ExchangeOptions parameter), as every ccxt client it builds uses."""
        if "ExchangeOptions" not in self.parameters:
            return {}  # a stack deployed before the parameter existed: its functions ran without options
        return parse_exchange_options(self.parameters["ExchangeOptions"], f"stack {self.name} ExchangeOptions")


def stack_resources(cfn: Any, stack: str) -> StackResources:
    """Describe ``stack`` with a CloudFormation client; raise ConfigError if it does not exist."""
    from botocore.exceptions import ClientError

    region = str(cfn.meta.region_name)
    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as e:
        error = e.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise ConfigError(
                f"stack {stack} not found in {region}: pass --stack NAME (or set {STACK_ENV}) and --region, "
                "or --local URL for crypto-bot local"
            ) from None
        raise
    if not found:
        raise ConfigError(f"stack {stack} not found in {region}")
    description = found[0]
    return StackResources(
        name=stack,
        region=region,
        outputs={o["OutputKey"]: str(o.get("OutputValue", "")) for o in description.get("Outputs", [])},
        parameters={
            p["ParameterKey"]: str(p.get("ResolvedValue", p.get("ParameterValue", "")))
            for p in description.get("Parameters", [])
        },
    )


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalRow:
    """One signal as the ``signals`` command shows it (the shape of ``/_local/state``'s signals)."""

    id: str
    strategy: str
    action: str
    status: str
    reason: str
    dedupe_key: str
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy,
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
            "dedupe_key": self.dedupe_key,
            "received_at": _iso(self.received_at),
        }


def deployed_signals(dynamodb: Any, table: str, *, limit: int = 500) -> list[SignalRow]:
    """Read the ``limit`` most recent signals of the stack's table, oldest first."""
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

    return [
        SignalRow(
            # The webhook answers with the SQS message id, so that is the id an operator has.
            id=record.message_id or record.key,
            strategy=record.strategy,
            action=record.action,
            status=record.status.value,
            reason=record.reason,
            dedupe_key=record.key,
            received_at=record.received_at,
        )
        for record in DynamoDBStore(table, dynamodb).recent_signals(limit)
    ]


def local_signals(state: Mapping[str, Any]) -> list[SignalRow]:
    """Read the signals of a ``/_local/state`` answer."""
    rows = []
    for n, item in enumerate(_list(state, "signals")):
        where = f"/_local/state signals[{n}]"
        rows.append(
            SignalRow(
                id=str(item.get("id") or ""),
                strategy=str(item.get("strategy") or ""),
                action=str(item.get("action") or ""),
                status=str(item.get("status") or ""),
                reason=str(item.get("reason") or ""),
                dedupe_key=str(item.get("dedupe_key") or ""),
                received_at=_parse_time(item.get("received_at"), f"{where}.received_at"),
            )
        )
    return rows


def parse_since(text: str) -> timedelta | None:
    """Parse ``--since``: ``<n>s|m|h|d|w`` (``24h``), or ``all`` for no limit (None)."""
    if text.strip().lower() == "all":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--since {text!r}: expected <n>s, <n>m, <n>h, <n>d or <n>w (e.g. 24h, 7d), or all")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _statuses(text: str | None) -> set[str] | None:
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
        if (since is None or row.received_at >= since) and (statuses is None or row.status in statuses)
    ]


_STATUS_STYLE: Final = {
    "filled": "green",
    "rejected": "red",
    "failed": "bold red",
    "expired": "yellow",
    "ignored": "dim",
}


def print_signals(rows: Sequence[SignalRow], console: Console) -> None:
    """Print signals as a table, oldest first."""
    from rich.table import Table

    table = Table(title=f"{len(rows)} signal{'s' if len(rows) != 1 else ''}", title_justify="left")
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("strategy", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("reason", overflow="fold")
    # Ids are UUIDs: eight characters tell them apart and leave the reason room; --json has them whole.
    table.add_column("id", no_wrap=True)
    for row in rows:
        style = _STATUS_STYLE.get(row.status, "")
        status = f"[{style}]{_escape(row.status)}[/]" if style else _escape(row.status)
        table.add_row(
            f"{row.received_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            _escape(row.strategy),
            _escape(row.action),
            status,
            _escape(row.reason),
            _escape(row.id[:8]),
        )
    console.print(table)


# --------------------------------------------------------------------------------------------
# Positions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionRow:
    """One strategy's holding; value and weight are None when prices or balances were not read."""

    strategy: str
    symbol: str
    amount: Decimal
    cost_basis: Decimal
    value: Decimal | None
    weight: Decimal | None


@dataclass
class Holdings:
    """The ledger valued and checked against the account; None marks what was not read."""

    quote: str
    positions: list[PositionRow]
    cash: Decimal | None
    equity: Decimal | None
    balances: dict[str, Decimal] | None  # total per asset
    ledger: dict[str, Decimal]  # ledger amount per base asset, dust included
    drift: dict[str, Decimal] | None  # balance minus ledger, per asset the ledger knows
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "positions": {
                p.strategy: {
                    "symbol": p.symbol,
                    "amount": to_json_number(p.amount),
                    "cost_basis": to_json_number(p.cost_basis),
                    "value": _json_or_none(p.value),
                    "weight": _json_or_none(p.weight),
                }
                for p in self.positions
            },
            "cash": _json_or_none(self.cash),
            "equity": _json_or_none(self.equity),
            "balances": None if self.balances is None else {k: to_json_number(v) for k, v in self.balances.items()},
            "drift": None if self.drift is None else {k: to_json_number(v) for k, v in self.drift.items()},
        }


def holdings(
    config: StrategyConfig,
    ledger: Ledger,
    balances: Mapping[str, Balance] | None,
    prices: Mapping[str, Decimal] | None,
) -> Holdings:
    """Value the ledger's long positions and compare the ledger with the balances.

    ``balances`` None skips cash, equity, weights and drift; ``prices`` None skips
    values. A symbol missing from ``prices`` leaves that position's value unknown.
    """
    from crypto_bot.domain.orders import Balance
    from crypto_bot_tools.cycle import PositionView, equity_and_positions

    notes: list[str] = []
    longs = ledger.long_positions()
    missing = sorted({p.symbol for p in longs} - set(prices or {})) if prices is not None else []
    cash = equity = None
    views: dict[str, PositionView] = {}
    if balances is not None and prices is not None and not missing:
        cash, equity, views = equity_and_positions(config, ledger, balances, prices)
    elif balances is not None:
        cash = balances.get(config.quote, Balance()).total
    rows = []
    for position in longs:
        view = views.get(position.strategy)
        value = None
        if view is not None:
            value = view.value
        elif prices is not None and position.symbol in prices:
            value = position.amount * prices[position.symbol]
        rows.append(
            PositionRow(
                strategy=position.strategy,
                symbol=position.symbol,
                amount=position.amount,
                cost_basis=position.cost_basis,
                value=value,
                weight=view.weight if view is not None else None,
            )
        )
    if missing:
        notes.append(f"equity and weights need the price of {', '.join(missing)}: not shown")
    if config.strategies:
        unknown = sorted(p.strategy for p in longs if config.get(p.strategy) is None)
        if unknown:
            notes.append(f"{', '.join(unknown)} hold a position but are not in the strategy config")
    return Holdings(
        quote=config.quote,
        positions=rows,
        cash=cash,
        equity=equity,
        balances=None if balances is None else {a: b.total for a, b in sorted(balances.items()) if b.total},
        ledger=ledger.amounts_by_asset(),
        drift=None if balances is None else ledger.drift(balances),
        notes=notes,
    )


def paper_balances(dynamodb: Any, table: str, starting_cash: Decimal, quote: str) -> Mapping[str, Balance]:
    """Read a PaperTrading stack's balances from its paper state item (the starting cash before any cycle)."""
    from crypto_bot.adapters.aws.paper_state import PaperStateStore
    from crypto_bot.adapters.paper.exchange import PaperExchange
    from crypto_bot.domain.orders import Balance

    state, _version = PaperStateStore(table, dynamodb).load()
    if state is None:
        # What Runtime._new_paper_account creates on the first cycle.
        return {quote: Balance(free=starting_cash)}
    return PaperExchange.from_state(state).fetch_balances()


def read_api_key(ssm: Any, secretsmanager: Any, name: str, store: str) -> dict[str, str]:
    """Read the exchange API key JSON the stack uses, from SSM or Secrets Manager; never echo it."""
    from botocore.exceptions import ClientError

    try:
        if store == "ssm":
            raw: Any = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        elif store == "secretsmanager":
            raw = secretsmanager.get_secret_value(SecretId=name)["SecretString"]
        else:
            raise ConfigError(f"stack parameter SecretStore={store!r}: must be ssm or secretsmanager")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise ConfigError(f"cannot read the API key {name} from {store}: {code}") from None
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        # The message must not carry the value: it is a secret.
        raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret") from None
    if not isinstance(data, dict) or not data.get("apiKey") or not data.get("secret"):
        raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret")
    return {str(k): str(v) for k, v in data.items()}


def live_balances(
    exchange_id: str,
    credentials: Mapping[str, str],
    *,
    sandbox: bool,
    options: Mapping[str, Any] | None = None,
) -> Mapping[str, Balance]:
    """Fetch the account's balances from the exchange with the stack's API key and ccxt options."""
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    exchange = CcxtExchange(
        exchange_id,
        api_key=credentials.get("apiKey"),
        secret=credentials.get("secret"),
        password=credentials.get("password"),
        sandbox=sandbox,
        options=options,
    )
    return exchange.fetch_balances()


def public_price_source(
    exchange_id: str, *, sandbox: bool, options: Mapping[str, Any] | None = None
) -> Callable[[str], Decimal]:
    """Return a function giving a symbol's last price from the exchange's public ticker."""
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    return CcxtExchange(exchange_id, sandbox=sandbox, options=options).fetch_last_price


def _read_prices(symbols: Sequence[str], source: Callable[[str], Decimal], notes: list[str]) -> dict[str, Decimal]:
    prices = {}
    for symbol in symbols:
        try:
            prices[symbol] = source(symbol)
        except ExchangeError as e:
            # One unknown symbol should not hide the rest of the table.
            notes.append(f"no price for {symbol}: {type(e).__name__}: {e}")
    return prices


def deployed_holdings(
    resources: StackResources,
    client: Callable[[str], Any],
    config: StrategyConfig,
    *,
    with_prices: bool = True,
    with_balances: bool = True,
) -> Holdings:
    """Read a deployed stack's ledger, balances (paper state or the exchange) and prices."""
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

    table = resources.output(TABLE_OUTPUT)
    exchange_id = resources.parameter("ExchangeName")
    paper = resources.paper_trading
    # A paper stack prices from the real exchange (PAPER_PRICES=live), never its testnet.
    sandbox = not paper and resources.parameter("Sandbox").lower() == "true"
    ledger = DynamoDBStore(table, client("dynamodb")).load_ledger()
    balances: Mapping[str, Balance] | None = None
    if with_balances:
        if paper:
            try:
                cash = parse_decimal(resources.parameter("PaperStartingCash"))
            except ValueError as e:
                raise ConfigError(f"stack {resources.name} parameter PaperStartingCash: {e}") from None
            balances = paper_balances(client("dynamodb"), table, cash, config.quote)
        else:
            name = resources.parameter("ApiKeyParameterName")
            store = resources.parameter("SecretStore")
            credentials = read_api_key(
                client("ssm") if store == "ssm" else None,
                client("secretsmanager") if store == "secretsmanager" else None,
                name,
                store,
            )
            balances = live_balances(exchange_id, credentials, sandbox=sandbox, options=resources.exchange_options)
    notes: list[str] = []
    prices: dict[str, Decimal] | None = None
    if with_prices:
        symbols = {p.symbol for p in ledger.long_positions()}
        for asset, balance in (balances or {}).items():
            if asset != config.quote and balance.total:
                symbols.add(f"{asset}/{config.quote}")
        source = public_price_source(exchange_id, sandbox=sandbox, options=resources.exchange_options)
        prices = _read_prices(sorted(symbols), source, notes)
    result = holdings(config, ledger, balances, prices)
    result.notes[:0] = notes
    return result


def local_holdings(state: Mapping[str, Any], *, with_prices: bool = True, with_balances: bool = True) -> Holdings:
    """Read the positions, balances, cash and equity of a ``/_local/state`` answer."""
    positions = state.get("positions") or {}
    if not isinstance(positions, Mapping):
        raise ConfigError("/_local/state: positions is not an object")
    rows = []
    held: dict[str, Decimal] = {}
    for strategy, item in sorted(positions.items()):
        where = f"/_local/state positions.{strategy}"
        symbol = str(item.get("symbol") or "")
        amount = _number(item.get("amount"), f"{where}.amount")
        rows.append(
            PositionRow(
                strategy=str(strategy),
                symbol=symbol,
                amount=amount,
                cost_basis=_number(item.get("cost_basis"), f"{where}.cost_basis"),
                value=_optional_number(item.get("value"), f"{where}.value") if with_prices else None,
                weight=_optional_number(item.get("weight"), f"{where}.weight")
                if with_prices and with_balances
                else None,
            )
        )
        base = split_symbol(symbol)[0] if "/" in symbol else symbol
        held[base] = held.get(base, ZERO) + amount
    balances = None
    drift = None
    if with_balances:
        raw = state.get("balances") or {}
        if not isinstance(raw, Mapping):
            raise ConfigError("/_local/state: balances is not an object")
        balances = {str(a): _balance_total(v, f"/_local/state balances.{a}") for a, v in sorted(raw.items())}
        drift = {asset: balances.get(asset, ZERO) - amount for asset, amount in sorted(held.items())}
    quote = _quote_of(positions)
    return Holdings(
        quote=quote,
        positions=rows,
        cash=_optional_number(state.get("cash"), "/_local/state cash") if with_balances else None,
        equity=_optional_number(state.get("equity"), "/_local/state equity") if with_balances and with_prices else None,
        balances=balances,
        ledger=held,
        drift=drift,
    )


def _quote_of(positions: Mapping[str, Any]) -> str:
    for item in positions.values():
        symbol = str(item.get("symbol") or "")
        if "/" in symbol:
            return split_symbol(symbol)[1]
    return ""


def _balance_total(value: Any, where: str) -> Decimal:
    # The local contract only says "keyed by asset": accept a number or a {free, used, total} object.
    if isinstance(value, Mapping):
        if "total" in value:
            return _number(value["total"], f"{where}.total")
        return _number(value.get("free") or 0, f"{where}.free") + _number(value.get("used") or 0, f"{where}.used")
    return _number(value, where)


def print_holdings(result: Holdings, console: Console) -> None:
    """Print the positions table, the ledger-against-balances table and any notes."""
    from rich.table import Table

    quote = f" ({result.quote})" if result.quote else ""
    table = Table(title="positions (ledger)", title_justify="left")
    for column in ("strategy", "symbol", "amount", f"cost basis{quote}", f"value{quote}", "weight"):
        table.add_column(column, justify="left" if column in ("strategy", "symbol") else "right", no_wrap=True)
    for p in result.positions:
        table.add_row(
            _escape(p.strategy),
            _escape(p.symbol),
            plain(p.amount),
            _money(p.cost_basis),
            "-" if p.value is None else _money(p.value),
            "-" if p.weight is None else f"{p.weight * 100:.2f}%",
        )
    if result.cash is not None:
        weight = f"{result.cash / result.equity * 100:.2f}%" if result.equity else "-"
        table.add_row(f"cash{quote}", "", "", "", _money(result.cash), weight)
    if result.equity is not None:
        table.add_row("[bold]equity", "", "", "", f"[bold]{_money(result.equity)}", "100.00%")
    console.print(table)
    if result.drift is not None:
        drift = Table(title="ledger against exchange balances", title_justify="left")
        for column in ("asset", "ledger", "balance", "drift"):
            drift.add_column(column, justify="left" if column == "asset" else "right", no_wrap=True)
        balances = result.balances or {}
        for asset, difference in result.drift.items():
            shown = "[green]0[/]" if difference == 0 else f"[bold red]{plain(difference)}[/]"
            drift.add_row(
                _escape(asset),
                plain(result.ledger.get(asset, ZERO)),
                plain(balances.get(asset, ZERO)),
                shown,
            )
        console.print(drift)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {_escape(note)}")


# --------------------------------------------------------------------------------------------
# Executions
# --------------------------------------------------------------------------------------------


def console_url(region: str, execution_arn: str) -> str:
    """Return the Step Functions console page of an execution."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


@dataclass(frozen=True)
class ExecutionRow:
    """One execution of the trade-cycle state machine."""

    name: str
    status: str
    started: datetime | None
    stopped: datetime | None
    arn: str
    url: str
    transitions: int | None = None  # local executions only

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started": _iso(self.started) if self.started else None,
            "stopped": _iso(self.stopped) if self.stopped else None,
            "arn": self.arn,
            "url": self.url,
            "transitions": self.transitions,
        }


def recent_executions(sfn: Any, state_machine_arn: str, *, limit: int = 20) -> list[ExecutionRow]:
    """List the ``limit`` most recent executions, newest first."""
    region = str(sfn.meta.region_name)
    rows: list[ExecutionRow] = []
    token = None
    while len(rows) < limit:
        request: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": min(limit - len(rows), 1000)}
        if token:
            request["nextToken"] = token
        page = sfn.list_executions(**request)
        for item in page["executions"]:
            arn = str(item["executionArn"])
            rows.append(
                ExecutionRow(
                    name=str(item["name"]),
                    status=str(item["status"]),
                    started=item.get("startDate"),
                    stopped=item.get("stopDate"),
                    arn=arn,
                    url=console_url(region, arn),
                )
            )
        token = page.get("nextToken")
        if not token:
            break
    # The API lists newest first; say so rather than trust it blindly.
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(rows[:limit], key=lambda r: r.started or epoch, reverse=True)


def local_executions(state: Mapping[str, Any]) -> list[ExecutionRow]:
    """Read the executions of a ``/_local/state`` answer, as listed."""
    rows = []
    for item in _list(state, "executions"):
        transitions = item.get("transitions")
        count = len(transitions) if isinstance(transitions, list) else transitions
        rows.append(
            ExecutionRow(
                name=str(item.get("id") or ""),
                status=str(item.get("status") or ""),
                started=None,
                stopped=None,
                arn=str(item.get("id") or ""),
                url="",
                transitions=int(count) if isinstance(count, int | float | Decimal) else None,
            )
        )
    return rows


_EXECUTION_STYLE: Final = {"SUCCEEDED": "green", "FAILED": "bold red", "TIMED_OUT": "red", "ABORTED": "yellow"}


def print_executions(rows: Sequence[ExecutionRow], console: Console) -> None:
    """Print executions as a table, then each one's console link (long: kept out of the table)."""
    from rich.table import Table

    local = all(not r.url for r in rows) and bool(rows)
    table = Table(title=f"{len(rows)} execution{'s' if len(rows) != 1 else ''}", title_justify="left")
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    if local:
        table.add_column("transitions", justify="right")
    else:
        table.add_column("started (UTC)", no_wrap=True)
        table.add_column("stopped (UTC)", no_wrap=True)
        table.add_column("took", justify="right", no_wrap=True)
    for row in rows:
        style = _EXECUTION_STYLE.get(row.status)
        status = f"[{style}]{_escape(row.status)}[/]" if style else _escape(row.status)
        if local:
            table.add_row(_escape(row.name), status, "" if row.transitions is None else str(row.transitions))
            continue
        took = f"{(row.stopped - row.started).total_seconds():.1f}s" if row.started and row.stopped else ""
        table.add_row(_escape(row.name), status, _clock(row.started), _clock(row.stopped), took)
    console.print(table)
    for row in rows:
        if row.url:
            # soft_wrap: a URL broken over lines cannot be clicked or copied.
            console.print(f"{_escape(row.name)}: {row.url}\n  {row.arn}", soft_wrap=True, highlight=False)


# --------------------------------------------------------------------------------------------
# Cycles
# --------------------------------------------------------------------------------------------


def start_cycle(sfn: Any, state_machine_arn: str, *, now: datetime | None = None) -> str:
    """Start a manual trade cycle now (input ``{"trigger": "manual"}``) and return the execution ARN."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    # Unique per call and readable in the console; Collect names the cycle manual-<this>.
    name = f"ops-{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    answer = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps({"trigger": "manual"}))
    return str(answer["executionArn"])


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        request: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            request["nextToken"] = token
        page = sfn.get_execution_history(**request)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def _failure_text(event: Mapping[str, Any]) -> str | None:
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, Mapping) and "error" in details:
            cause = str(details.get("cause") or "")
            try:
                parsed = json.loads(cause) if cause.startswith("{") else None
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, Mapping) and "errorMessage" in parsed:
                cause = str(parsed["errorMessage"])
            text = f"{details['error']}: {cause}" if cause else str(details["error"])
            return text if len(text) <= 300 else text[:297] + "..."
    return None


def follow_execution(
    sfn: Any,
    execution_arn: str,
    console: Console,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Print each state the execution enters and leaves, with timing, until it stops.

    Return describe_execution's answer (status "RUNNING" if ``timeout`` seconds passed first).
    """
    seen = 0
    entered: dict[str, list[datetime]] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    with console.status("starting…") as progress:
        while True:
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            started: datetime = description["startDate"]
            # Read the history after the status, so a finished execution's last events are printed.
            for event in _history(sfn, execution_arn):
                if int(event["id"]) <= seen:
                    continue
                seen = int(event["id"])
                at: datetime = event["timestamp"]
                elapsed = (at - started).total_seconds()
                kind = str(event["type"])
                if kind.endswith("StateEntered"):
                    name = str(event["stateEnteredEventDetails"]["name"])
                    entered.setdefault(name, []).append(at)
                    console.print(f"{elapsed:7.2f}s  → {_escape(name)}", highlight=False)
                    progress.update(f"{name}…")
                elif kind.endswith("StateExited"):
                    name = str(event["stateExitedEventDetails"]["name"])
                    # Map iterations enter the same state several times: pair them first in, first out.
                    starts = entered.get(name) or [at]
                    took = (at - starts.pop(0)).total_seconds()
                    console.print(f"{elapsed:7.2f}s  ✓ {_escape(name)} ({took:.2f}s)", highlight=False)
                else:
                    failure = _failure_text(event)
                    if failure is not None:
                        console.print(
                            f"{elapsed:7.2f}s  [red]✗ {_escape(kind)}: {_escape(failure)}[/]", highlight=False
                        )
            if description["status"] != "RUNNING":
                return description
            if deadline is not None and time.monotonic() > deadline:
                return description
            sleep(poll)


def print_summary(status: str, summary: Mapping[str, Any], console: Console, *, took: float | None = None) -> None:
    """Print an execution's final status and its cycle summary, one line per key."""
    from rich.table import Table

    style = _EXECUTION_STYLE.get(status.upper(), "")
    shown = f"[{style}]{_escape(status)}[/]" if style else _escape(status)
    console.print(f"execution {shown}" + (f" in {took:.1f}s" if took is not None else ""), highlight=False)
    if not summary:
        return
    table = Table(show_header=False, title="summary", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if isinstance(value, Mapping):
            text = ", ".join(f"{k} {_scalar(v)}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            text = ", ".join(_scalar(v) for v in value) or "-"
        else:
            text = _scalar(value)
        table.add_row(_escape(str(key)), _escape(text))
    console.print(table)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    return str(value)


# --------------------------------------------------------------------------------------------
# crypto-bot local
# --------------------------------------------------------------------------------------------


class LocalClient:
    """Talk to ``crypto-bot local``'s ``/_local/*`` endpoints."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        if not re.match(r"^https?://[^/]+", url):
            raise ConfigError(f"--local {url!r}: expected a URL such as http://127.0.0.1:3000")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def state(self) -> dict[str, Any]:
        """GET /_local/state."""
        return self._call("GET", "/_local/state", self.timeout)

    def cycle(self, timeout: float = 600.0) -> dict[str, Any]:
        """POST /_local/cycle: run a cycle now and return its ``{"status", "summary"}`` when it finished."""
        return self._call("POST", "/_local/cycle", timeout)

    def _call(self, method: str, path: str, timeout: float) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        url = self.url + path
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked above)
                body = response.read()
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")[:300]
            raise ConfigError(f"{method} {url}: HTTP {e.code}: {text}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(f"cannot reach crypto-bot local at {self.url} ({reason}): is it running?") from None
        try:
            # Exact decimals: amounts such as 0.15833333 must not pass through a float.
            data = json.loads(body, parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{method} {url}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{method} {url}: expected a JSON object, got {type(data).__name__}")
        return data


# --------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add the ops subcommands (signals, positions, cycle, executions) to the CLI's subparsers."""
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
    cycle.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the execution until it stops (default); --no-follow only starts it",
    )
    cycle.add_argument("--poll", type=_positive_float, default=1.0, help="seconds between history reads")
    cycle.add_argument("--timeout", type=_positive_float, help="stop following after this many seconds")
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


def _aws_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn botocore's credential, region and service errors into ConfigErrors the CLI reports."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        if args.local and args.stack:
            raise ConfigError("--stack and --local exclude each other: give one")
        if args.local:
            return run(args)
        with _aws_errors():
            return run(args)

    return wrapper


@contextmanager
def _aws_errors() -> Iterator[None]:
    try:
        import botocore.exceptions as boto
    except ImportError:
        raise ConfigError(
            "the ops commands need boto3 to talk to AWS: uv sync (dev group) or pip install boto3"
        ) from None
    try:
        yield
    except (boto.NoCredentialsError, boto.PartialCredentialsError) as e:
        raise ConfigError(f"no usable AWS credentials ({e}): {NO_CREDENTIALS}") from None
    except boto.ProfileNotFound as e:
        raise ConfigError(f"{e}: {NO_CREDENTIALS}") from None
    except boto.NoRegionError:
        raise ConfigError("no AWS region: pass --region or set AWS_REGION (aws configure)") from None
    except boto.EndpointConnectionError as e:
        raise ConfigError(f"cannot reach AWS: {e}") from None
    except boto.ClientError as e:
        error = e.response.get("Error", {})
        raise ConfigError(f"AWS {e.operation_name}: {error.get('Code', 'error')}: {error.get('Message', '')}") from None
    except StoreError as e:
        # The DynamoDB adapter wraps every botocore error; a missing credential is still the user's to fix.
        if isinstance(e.__cause__, boto.NoCredentialsError | boto.PartialCredentialsError):
            raise ConfigError(f"no usable AWS credentials: {NO_CREDENTIALS}") from None
        raise


def _aws(args: argparse.Namespace) -> tuple[StackResources, Callable[[str], Any]]:
    """Open a boto3 session in ``--region`` and describe the stack."""
    try:
        import boto3
    except ImportError:
        raise ConfigError(
            "the ops commands need boto3 to talk to AWS: uv sync (dev group) or pip install boto3"
        ) from None
    session = boto3.session.Session(region_name=args.region)
    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(service)
        return cache[service]

    stack = args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK
    return stack_resources(client("cloudformation"), stack), client


def _console() -> Console:
    from rich.console import Console

    # Wide enough for the tables when output goes to a pipe or a file.
    return Console() if sys.stdout.isatty() else Console(width=120)


@_aws_command
def _run_signals(args: argparse.Namespace) -> int:
    window = parse_since(args.since)
    # Every refused delivery is stored as a rejected signal (a bad token is only counted: API Gateway's 4XXError).
    statuses = {"rejected"} if args.refused else _statuses(args.status)
    if args.local:
        rows = local_signals(LocalClient(args.local).state())[-args.limit :]
    else:
        resources, client = _aws(args)
        rows = deployed_signals(client("dynamodb"), resources.output(TABLE_OUTPUT), limit=args.limit)
    since = None if window is None else datetime.now(UTC) - window
    rows = select_signals(rows, since=since, statuses=statuses)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
    else:
        print_signals(rows, _console())
    return 0


@_aws_command
def _run_positions(args: argparse.Namespace) -> int:
    if args.local:
        result = local_holdings(
            LocalClient(args.local).state(), with_prices=not args.no_prices, with_balances=not args.no_balances
        )
    else:
        resources, client = _aws(args)
        quote = resources.parameter("QuoteCurrency").upper()
        if args.config is None and not Path("strategy_config.json").is_file():
            # Valuing the ledger needs only the quote currency, which the stack knows.
            config = StrategyConfig(strategies={}, quote=quote)
        else:
            config = StrategyConfig.load(args.config or Path("strategy_config.json"), quote)
        result = deployed_holdings(
            resources, client, config, with_prices=not args.no_prices, with_balances=not args.no_balances
        )
    if args.json:
        print(json.dumps(result.to_json()))
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        print_holdings(result, _console())
    return 0


@_aws_command
def _run_executions(args: argparse.Namespace) -> int:
    if args.local:
        rows = local_executions(LocalClient(args.local).state())[-args.limit :]
    else:
        resources, client = _aws(args)
        rows = recent_executions(client("stepfunctions"), resources.output(STATE_MACHINE_OUTPUT), limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
    else:
        print_executions(rows, _console())
    return 0


@_aws_command
def _run_cycle(args: argparse.Namespace) -> int:
    console = _console()
    if args.local:
        # /_local/cycle answers when the cycle has finished, so there is nothing to follow.
        with console.status("running a cycle on crypto-bot local…"):
            answer = LocalClient(args.local).cycle(timeout=args.timeout or 600.0)
        status = str(answer.get("status", ""))
        shown = answer.get("summary")
        print_summary(status, shown if isinstance(shown, Mapping) else {"summary": shown}, console)
        return 0 if status.upper() == "SUCCEEDED" else 1
    resources, client = _aws(args)
    sfn = client("stepfunctions")
    arn = start_cycle(sfn, resources.output(STATE_MACHINE_OUTPUT))
    url = console_url(resources.region, arn)
    console.print(f"started {arn}\n  {url}", soft_wrap=True, highlight=False)
    if not args.follow:
        return 0
    try:
        description = follow_execution(sfn, arn, console, poll=args.poll, timeout=args.timeout)
    except KeyboardInterrupt:
        console.print(f"stopped following; the execution goes on: {url}", soft_wrap=True, highlight=False)
        return 130
    status = str(description["status"])
    if status == "RUNNING":
        console.print(f"still RUNNING after {args.timeout:g}s; follow it at {url}", soft_wrap=True, highlight=False)
        return 1
    took = None
    if description.get("stopDate") and description.get("startDate"):
        took = (description["stopDate"] - description["startDate"]).total_seconds()
    summary: Any = {}
    if description.get("output"):
        try:
            summary = json.loads(description["output"])
        except json.JSONDecodeError:
            summary = {"output": description["output"]}
    print_summary(status, summary if isinstance(summary, Mapping) else {"output": summary}, console, took=took)
    return 0 if status == "SUCCEEDED" else 1


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Escape rich markup in text that comes from data (reasons, names); rich loads only when printing."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else ""


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _json_or_none(value: Decimal | None) -> int | float | None:
    return None if value is None else to_json_number(value)


def _list(state: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = state.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"/_local/state: {key} is not a list of objects")
    return items


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        try:
            return Decimal(str(value))
        except ArithmeticError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _optional_number(value: Any, where: str) -> Decimal | None:
    return None if value is None else _number(value, where)


def _parse_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: not an ISO time: {value!r}") from None
    # A time without offset is taken as UTC, which every part of the project writes.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
