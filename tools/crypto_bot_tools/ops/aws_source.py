"""A deployed stack as a :class:`~crypto_bot_tools.ops.sources.Source`: its table, state machine and exchange.

The reading functions take boto3 clients (:func:`deployed_signals`, :func:`recent_executions`,
:func:`deployed_holdings`...), so tests pass moto-backed ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError, ExchangeError, StoreError
from crypto_bot.domain.money import parse_decimal
from crypto_bot_tools.ops.controls import ControlsChange, apply_command, check_strategy
from crypto_bot_tools.ops.follow import follow_execution, start_cycle
from crypto_bot_tools.ops.rows import (
    CycleOutcome,
    CycleRow,
    ExecutionPath,
    ExecutionRow,
    Holdings,
    SignalRow,
    StateVisit,
    alert_field,
    console_url,
)
from crypto_bot_tools.ops.stack import (
    NOTIFICATIONS_OUTPUT,
    STATE_MACHINE_OUTPUT,
    TABLE_OUTPUT,
    StackResources,
    boto3_session,
    stack_resources,
)
from crypto_bot_tools.ops.valuation import holdings

if TYPE_CHECKING:
    from rich.console import Console

    from crypto_bot.domain.orders import Balance
    from crypto_bot.engine.records import IntentRecord

__all__ = [
    "AwsSource",
    "deployed_control",
    "deployed_cycles",
    "deployed_holdings",
    "deployed_signals",
    "execution_path",
    "live_balances",
    "paper_balances",
    "public_price_source",
    "recent_executions",
]


class AwsSource:
    """A deployed stack, read and driven through boto3."""

    def __init__(self, resources: StackResources, client: Callable[[str], Any]) -> None:
        self.resources = resources
        self.client = client
        self._ended: dict[str, list[IntentRecord]] = {}  # the intents of each cycle seen ended: they are final

    @classmethod
    def open(cls, stack: str, region: str | None) -> AwsSource:
        """Open a boto3 session in ``region`` and describe ``stack``."""
        client = boto3_session(region)
        return cls(stack_resources(client("cloudformation"), stack), client)

    def signals(self, limit: int) -> list[SignalRow]:
        return deployed_signals(self.client("dynamodb"), self.resources.output(TABLE_OUTPUT), limit=limit)

    def holdings(self, config_path: Path | None, *, with_prices: bool, with_balances: bool) -> Holdings:
        quote = self.resources.parameter("QuoteCurrency").upper()
        path = _config_path(config_path)
        # Valuing the ledger needs only the quote currency, which the stack knows.
        config = StrategyConfig(strategies={}, quote=quote) if path is None else StrategyConfig.load(path, quote)
        return deployed_holdings(
            self.resources, self.client, config, with_prices=with_prices, with_balances=with_balances
        )

    def apply_control(
        self, command: str, *, strategy: str | None, reason: str, config_path: Path | None
    ) -> ControlsChange:
        if strategy is not None:
            path = _config_path(config_path)
            if path is None:
                # The deployed config is inside the stack's layer (make build copies it there): not readable here.
                raise ConfigError(
                    f"--strategy {strategy!r}: cannot check it against stack {self.resources.name}'s strategies: "
                    "there is no strategy_config.json here; pass --config PATH (the file the stack was built with)"
                )
            config = StrategyConfig.load(path, self.resources.parameter("QuoteCurrency").upper())
            check_strategy(strategy, config.strategies, "--strategy", str(path))
        return deployed_control(self.resources, self.client, command, strategy=strategy, reason=reason)

    def executions(self, limit: int) -> list[ExecutionRow]:
        return recent_executions(self.client("stepfunctions"), self.resources.output(STATE_MACHINE_OUTPUT), limit=limit)

    def execution_path(self, name: str) -> ExecutionPath:
        machine = self.resources.output(STATE_MACHINE_OUTPUT)
        arn = f"{machine.replace(':stateMachine:', ':execution:', 1)}:{name}"
        return execution_path(self.client("stepfunctions"), arn)

    def cycles(self, limit: int) -> list[CycleRow]:
        return deployed_cycles(
            self.client("dynamodb"), self.resources.output(TABLE_OUTPUT), limit=limit, ended=self._ended
        )

    def cycle(self, console: Console, *, follow: bool, poll: float, timeout: float | None) -> CycleOutcome:
        sfn = self.client("stepfunctions")
        arn = start_cycle(sfn, self.resources.output(STATE_MACHINE_OUTPUT))
        url = console_url(self.resources.region, arn)
        console.print(f"started {arn}\n  {url}", soft_wrap=True, highlight=False)
        if not follow:
            return CycleOutcome("RUNNING", followed=False)
        try:
            description = follow_execution(sfn, arn, console, poll=poll, timeout=timeout)
        except KeyboardInterrupt:
            console.print(f"stopped following; the execution goes on: {url}", soft_wrap=True, highlight=False)
            return CycleOutcome("RUNNING", interrupted=True)
        status = str(description["status"])
        if status == "RUNNING":
            console.print(f"still RUNNING after {timeout:g}s; follow it at {url}", soft_wrap=True, highlight=False)
            return CycleOutcome(status)
        took = None
        if description.get("stopDate") and description.get("startDate"):
            took = (description["stopDate"] - description["startDate"]).total_seconds()
        summary: Any = {}
        if description.get("output"):
            try:
                summary = json.loads(description["output"])
            except json.JSONDecodeError:
                summary = {"output": description["output"]}
        return CycleOutcome(status, summary if isinstance(summary, Mapping) else {"output": summary}, took)


def deployed_control(
    resources: StackResources,
    client: Callable[[str], Any],
    command: str,
    *,
    strategy: str | None,
    reason: str,
    at: datetime | None = None,
) -> ControlsChange:
    """Apply ``command`` to a deployed stack's controls as the caller (STS), then publish it to its topic."""
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
    from crypto_bot.adapters.aws.notify import publish

    topic = resources.output(NOTIFICATIONS_OUTPUT)  # before writing: a stack without it fails with nothing done
    by = str(client("sts").get_caller_identity()["Arn"])
    store = DynamoDBStore(resources.output(TABLE_OUTPUT), client("dynamodb"))
    change = apply_command(store, command, strategy=strategy, by=by, reason=reason, at=at or datetime.now(UTC))
    if not change.changed:
        return change  # nothing happened that the trader has not been told
    subject, message = change.notification()
    try:
        publish(client("sns"), topic, subject, message)
    except StoreError as e:
        return replace(change, notification_error=f"{type(e).__name__}: {e}")
    return change


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
            time=record.time,
            ticker=alert_field(record.payload, "ticker"),
            price=alert_field(record.payload, "order_price"),
            queued_at=record.queued_at,
        )
        for record in DynamoDBStore(table, dynamodb).recent_signals(limit)
    ]


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


def execution_path(sfn: Any, arn: str) -> ExecutionPath:
    """Read an execution's history: each state entered, with when it was entered and left, and its cycle id."""
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    visits: list[StateVisit] = []
    cycle_id: str | None = None
    error = ""
    for event in events:
        kind = str(event["type"])
        if kind.endswith("StateEntered"):
            visits.append(StateVisit(str(event["stateEnteredEventDetails"]["name"]), event.get("timestamp")))
        elif kind.endswith("StateExited"):
            details = event["stateExitedEventDetails"]
            name = str(details["name"])
            # A Map's iterations enter and leave the same states: the exit closes the last open visit of its name.
            for n in range(len(visits) - 1, -1, -1):
                if visits[n].name == name and visits[n].exited is None:
                    visits[n] = replace(visits[n], exited=event.get("timestamp"))
                    break
            if name == "Collect" and cycle_id is None:
                cycle_id = _collected_cycle(details.get("output"))
        elif kind == "ExecutionFailed":
            failed = event.get("executionFailedEventDetails", {})
            error = f"{failed.get('error', '')}: {failed.get('cause', '')}".strip(": ")
    return ExecutionPath(name=arn.rsplit(":", 1)[-1], states=visits, cycle_id=cycle_id, error=error)


def _collected_cycle(output: object) -> str | None:
    """Read the cycle id from Collect's output, the state that opens the cycle."""
    try:
        data = json.loads(str(output or "{}"))
    except json.JSONDecodeError:
        return None
    cycle = data.get("cycle") if isinstance(data, dict) else None
    return str(cycle["cycle_id"]) if isinstance(cycle, dict) and "cycle_id" in cycle else None


def deployed_cycles(
    dynamodb: Any, table: str, *, limit: int = 50, ended: dict[str, list[IntentRecord]] | None = None
) -> list[CycleRow]:
    """Read the ``limit`` most recent cycle records of the table, oldest first, each with its intents.

    Cycles have no index: the table is scanned for them (its items expire, so it stays small), then each
    cycle's partition is queried for its intents, except a cycle ``ended`` already holds: an ended cycle's
    intents are final, so they are kept there and read once.
    """
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore, from_item
    from crypto_bot.engine.records import CycleRecord, Phase

    request: dict[str, Any] = {
        "TableName": table,
        # The lock item is (LOCK, CYCLE): cycles are the (CYCLE#<id>, CYCLE) items.
        "FilterExpression": "begins_with(pk, :prefix) AND sk = :cycle",
        "ExpressionAttributeValues": {":prefix": {"S": "CYCLE#"}, ":cycle": {"S": "CYCLE"}},
    }
    records: list[CycleRecord] = []
    while True:
        page = dynamodb.scan(**request)
        records += [CycleRecord.from_dict(from_item(item)) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    store = DynamoDBStore(table, dynamodb)
    newest = sorted(records, key=lambda r: (r.at, r.cycle_id))[-limit:] if limit > 0 else []
    phases = list(Phase)
    kept = {} if ended is None else ended
    rows = []
    for record in newest:
        intents = kept.get(record.cycle_id) if record.status in ("done", "failed") else None
        if intents is None:
            intents = sorted(store.intents(record.cycle_id), key=lambda i: (phases.index(i.phase), i.intent.strategy))
            if record.status in ("done", "failed"):
                kept[record.cycle_id] = intents
        rows.append(CycleRow(record, intents))
    return rows


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
    from crypto_bot.adapters.aws.secrets import read_api_key

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
    result.controls = DynamoDBStore(table, client("dynamodb")).get_controls()
    return result


def _config_path(config_path: Path | None) -> Path | None:
    """Return ``--config``, else strategy_config.json when the working directory has one, else None."""
    default = Path("strategy_config.json")
    if config_path is None and not default.is_file():
        return None
    return config_path or default


def _read_prices(symbols: Sequence[str], source: Callable[[str], Decimal], notes: list[str]) -> dict[str, Decimal]:
    prices = {}
    for symbol in symbols:
        try:
            prices[symbol] = source(symbol)
        except ExchangeError as e:
            # One unknown symbol should not hide the rest of the table.
            notes.append(f"no price for {symbol}: {type(e).__name__}: {e}")
    return prices
