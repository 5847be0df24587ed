"""``crypto-bot local`` as a :class:`~crypto_bot_tools.ops.sources.Source`, over its ``/_local/*`` endpoints."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.controls import Controls
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ZERO, parse_decimal
from crypto_bot_tools.ops.controls import ControlsChange
from crypto_bot_tools.ops.render import escape
from crypto_bot_tools.ops.rows import (
    CycleOutcome,
    CycleRow,
    ExecutionPath,
    ExecutionRow,
    Holdings,
    PositionRow,
    SignalRow,
    StateVisit,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DASHBOARD_AGENT",
    "LocalClient",
    "LocalSource",
    "follow_local_execution",
    "local_cycles",
    "local_executions",
    "local_holdings",
    "local_signals",
]


# The User-Agent of the dashboard's reads, which crypto-bot local does not log (one page polls every few seconds).
DASHBOARD_AGENT: Final = "crypto-bot-dashboard"


class LocalClient:
    """Talk to ``crypto-bot local``'s ``/_local/*`` endpoints; ``agent`` is the User-Agent sent, if any."""

    def __init__(self, url: str, *, timeout: float = 30.0, agent: str | None = None) -> None:
        if not re.match(r"^https?://[^/]+", url):
            raise ConfigError(f"--local {url!r}: expected a URL such as http://127.0.0.1:3000")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.agent = agent

    def state(self) -> dict[str, Any]:
        """GET /_local/state."""
        return self._call("GET", "/_local/state", self.timeout)

    def cycles(self, limit: int) -> dict[str, Any]:
        """GET /_local/cycles?limit=N: the newest cycle records with their intents, as the table stores them."""
        return self._call("GET", f"/_local/cycles?limit={int(limit)}", self.timeout)

    def start_cycle(self) -> dict[str, Any]:
        """POST /_local/cycle?wait=false: start a cycle and return its execution as it is now."""
        return self._call("POST", "/_local/cycle?wait=false", self.timeout)

    def controls(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_local/controls: apply a pause, resume or flatten on the local stack and notify."""
        return self._call("POST", "/_local/controls", self.timeout, json.dumps(request).encode("utf-8"))

    def execution(self, name: str) -> dict[str, Any]:
        """GET /_local/executions/NAME: one execution, its transitions so far and, once ended, its times."""
        import urllib.parse

        return self._call("GET", f"/_local/executions/{urllib.parse.quote(name, safe='')}", self.timeout)

    def _call(self, method: str, path: str, timeout: float, data: bytes | None = None) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        url = self.url + path
        if data is None and method == "POST":
            data = b""
        headers = {"Content-Type": "application/json"} if data else {}
        if self.agent:
            headers["User-Agent"] = self.agent
        request = urllib.request.Request(url, method=method, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked above)
                body = response.read()
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")[:300]
            raise ConfigError(f"{method} {url}: HTTP {e.code}: {_error_text(text)}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(f"cannot reach crypto-bot local at {self.url} ({reason}): is it running?") from None
        try:
            # Money comes as decimal strings; a JSON number, read here as a float, is refused where money is read.
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{method} {url}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{method} {url}: expected a JSON object, got {type(data).__name__}")
        return data


class LocalSource:
    """``crypto-bot local``, read through ``GET /_local/state`` and driven through ``POST /_local/cycle``."""

    def __init__(self, client: LocalClient) -> None:
        self.client = client

    def signals(self, limit: int) -> list[SignalRow]:
        return local_signals(self.client.state())[-limit:]

    def holdings(self, config_path: Path | None, *, with_prices: bool, with_balances: bool) -> Holdings:
        # The local stack values its own ledger with its own config: config_path is not needed.
        return local_holdings(self.client.state(), with_prices=with_prices, with_balances=with_balances)

    def executions(self, limit: int) -> list[ExecutionRow]:
        # /_local/state lists them oldest first, without their end: each one's own answer has it.
        newest = list(reversed(local_executions(self.client.state())))[:limit]
        return [_with_times(row, self.client.execution(row.name)) for row in newest]

    def execution_path(self, name: str) -> ExecutionPath:
        # /_local/executions/NAME lists the states entered, without their times.
        detail = self.client.execution(name)
        transitions = detail.get("transitions")
        if not isinstance(transitions, list):
            raise ConfigError(f"/_local/executions/{name} transitions: expected a list, got {transitions!r}")
        error = f"{detail.get('error') or ''}: {detail.get('cause') or ''}".strip(": ")
        cycle_id = detail.get("cycle_id")
        return ExecutionPath(
            name=name,
            states=[StateVisit(str(state)) for state in transitions],
            cycle_id=None if cycle_id is None else str(cycle_id),
            error=error,
        )

    def cycles(self, limit: int) -> list[CycleRow]:
        return local_cycles(self.client.cycles(limit))

    def apply_control(
        self, command: str, *, strategy: str | None, reason: str, config_path: Path | None
    ) -> ControlsChange:
        import getpass

        # The local stack checks the strategy against its own config (config_path is not needed) and notifies.
        by = f"{getpass.getuser()}@local"
        answer = self.client.controls({"command": command, "strategy": strategy, "reason": reason, "by": by})
        return ControlsChange.from_json(answer, f"POST {self.client.url}/_local/controls")

    def cycle(self, console: Console, *, follow: bool, poll: float, timeout: float | None) -> CycleOutcome:
        started = self.client.start_cycle()
        name = str(started.get("id") or "")
        console.print(f"started {escape(name)} on crypto-bot local ({self.client.url})", highlight=False)
        if not follow:
            return CycleOutcome("RUNNING", followed=False)
        try:
            detail = follow_local_execution(self.client, started, console, poll=poll, timeout=timeout)
        except KeyboardInterrupt:
            console.print(f"stopped following; the execution goes on: {self.client.url}/_local/executions/{name}")
            return CycleOutcome("RUNNING", interrupted=True)
        status = str(detail.get("status", ""))
        if status == "RUNNING":
            console.print(f"still RUNNING after {timeout:g}s: {self.client.url}/_local/executions/{name}")
            return CycleOutcome(status)
        took = None
        if detail.get("started_at") and detail.get("stopped_at"):
            begun = _parse_time(detail["started_at"], f"/_local/executions/{name} started_at")
            ended = _parse_time(detail["stopped_at"], f"/_local/executions/{name} stopped_at")
            took = (ended - begun).total_seconds()
        shown = detail.get("summary")
        summary = shown if isinstance(shown, Mapping) else ({} if shown is None else {"summary": shown})
        return CycleOutcome(status, summary, took)


def _error_text(text: str) -> str:
    """The ``error`` of a local endpoint's JSON answer ({"error": ...}), else the answer as it came."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    return str(data["error"]) if isinstance(data, dict) and isinstance(data.get("error"), str) else text


def follow_local_execution(
    client: LocalClient,
    detail: Mapping[str, Any],
    console: Console,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """Print each state a local execution enters, as its transitions grow, until it stops or ``timeout`` passes.

    ``/_local/executions/ID`` lists the states entered, not their exits or times: each line's time is when
    it was first seen here, so a state shown is one that has been entered; the one before it may still run
    in a Map. Return the execution's last answer.
    """
    name = str(detail.get("id") or "")
    begun = time.monotonic()
    deadline = None if timeout is None else begun + timeout
    seen = 0
    with console.status("starting…") as progress:
        while True:
            transitions = detail.get("transitions")
            entered = [str(t) for t in transitions] if isinstance(transitions, list) else []
            for state in entered[seen:]:
                console.print(f"{time.monotonic() - begun:7.2f}s  → {escape(state)}", highlight=False)
                progress.update(f"{state}…")
            seen = max(seen, len(entered))
            if str(detail.get("status", "")) != "RUNNING":
                return detail
            if deadline is not None and time.monotonic() > deadline:
                return detail
            sleep(poll)
            detail = client.execution(name)


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
                time=_parse_time(item["time"], f"{where}.time") if item.get("time") else None,
                ticker=str(item.get("ticker") or ""),
                price=str(item.get("price") or ""),
                queued_at=_parse_time(item["queued_at"], f"{where}.queued_at") if item.get("queued_at") else None,
            )
        )
    return rows


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
    return Holdings(
        controls=_controls(state.get("controls")),
        quote=_quote_of(positions),
        positions=rows,
        cash=_optional_number(state.get("cash"), "/_local/state cash") if with_balances else None,
        equity=_optional_number(state.get("equity"), "/_local/state equity") if with_balances and with_prices else None,
        balances=balances,
        ledger=held,
        drift=drift,
    )


def local_cycles(answer: Mapping[str, Any]) -> list[CycleRow]:
    """Read a ``/_local/cycles`` answer: each cycle record and its intents, in the shapes the table stores."""
    from crypto_bot.engine.records import CycleRecord, IntentRecord

    rows = []
    for n, item in enumerate(_list(answer, "cycles", "/_local/cycles")):
        where = f"/_local/cycles cycles[{n}]"
        intents = item.get("intents")
        if not isinstance(intents, list):
            raise ConfigError(f"{where}.intents: expected a list, got {intents!r}")
        try:
            record = CycleRecord.from_dict(item["cycle"])
            rows.append(CycleRow(record, [IntentRecord.from_dict(i) for i in intents]))
        except (KeyError, TypeError, ValueError, ArithmeticError) as e:
            raise ConfigError(f"{where}: not a cycle record with its intents ({type(e).__name__}: {e})") from None
    return rows


def local_executions(state: Mapping[str, Any]) -> list[ExecutionRow]:
    """Read the executions of a ``/_local/state`` answer, as listed."""
    rows = []
    for item in _list(state, "executions"):
        transitions = item.get("transitions")
        count = len(transitions) if isinstance(transitions, list) else transitions
        started = item.get("started_at")
        rows.append(
            ExecutionRow(
                name=str(item.get("id") or ""),
                status=str(item.get("status") or ""),
                started=_parse_time(started, "/_local/state executions[].started_at") if started else None,
                stopped=None,
                arn=str(item.get("id") or ""),
                url="",
                transitions=int(count) if isinstance(count, int | float | Decimal) else None,
            )
        )
    return rows


def _with_times(row: ExecutionRow, detail: Mapping[str, Any]) -> ExecutionRow:
    where = f"/_local/executions/{row.name}"
    started = detail.get("started_at")
    stopped = detail.get("stopped_at")
    return replace(
        row,
        started=_parse_time(started, f"{where} started_at") if started else row.started,
        stopped=_parse_time(stopped, f"{where} stopped_at") if stopped else None,
    )


def _controls(value: Any) -> Controls | None:
    # A local stack older than the kill switch sends none.
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"/_local/state controls: expected an object, got {value!r}")
    try:
        return Controls.from_dict(value)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"/_local/state controls: not a controls record ({type(e).__name__}: {e})") from None


def _quote_of(positions: Mapping[str, Any]) -> str:
    for item in positions.values():
        symbol = str(item.get("symbol") or "")
        if "/" in symbol:
            return split_symbol(symbol)[1]
    return ""


def _balance_total(value: Any, where: str) -> Decimal:
    # A {free, used, total} object, as the local stack writes it, or just the total.
    if isinstance(value, Mapping):
        if "total" in value:
            return _number(value["total"], f"{where}.total")
        return _number(value.get("free", "0"), f"{where}.free") + _number(value.get("used", "0"), f"{where}.used")
    return _number(value, where)


def _list(state: Mapping[str, Any], key: str, where: str = "/_local/state") -> list[Mapping[str, Any]]:
    items = state.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"{where}: {key} is not a list of objects")
    return items


def _number(value: Any, where: str) -> Decimal:
    """Read one amount, price or sum of /_local/state: an exact decimal string, as the local stack writes them."""
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected a decimal string such as "0.15833333", got {value!r}')
    try:
        return parse_decimal(value)
    except ValueError:
        raise ConfigError(f"{where}: expected a decimal string, got {value!r}") from None


def _optional_number(value: Any, where: str) -> Decimal | None:
    return None if value is None else _number(value, where)


def _parse_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: not an ISO time: {value!r}") from None
    # A time without offset is taken as UTC, which every part of the project writes.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
