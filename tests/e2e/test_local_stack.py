"""`crypto-bot local` as a user runs it: a subprocess on a free port, driven only over HTTP.

Every state the tests read comes from ``GET /_local/state``; every cycle is either asked for
with ``POST /_local/cycle`` or, for a stop loss, started by the stack itself. The expected
portfolio after each cycle is what ``crypto-bot replay`` computes from the same alerts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot_tools.local.cli import demo_steps
from crypto_bot_tools.replay import CycleResult, ReplayOptions, replay
from tests.conftest import ROOT, AlertClock, load_event

README_ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")
CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
TOKEN: Final = "e2e-webhook-token"
# The template's IncrementPct default; the local paper account charges no fee.
INCREMENT: Final = Decimal("0.001")
STOP_LOSS: Final = {
    "time": "2024-08-10T09:00:00Z",  # after the buy's 08:01 cycle, as in replay
    "ticker": "BTCUSDT",
    "order_action": "sell",
    "order_price": "57000",
    "order_comment": "Stop loss",
}


@dataclass
class Local:
    """A running `crypto-bot local` and an HTTP client on it."""

    process: subprocess.Popen[bytes]
    http: httpx.Client
    log: Path

    def post_alert(self, alert: dict[str, Any] | str, *, token: str | None = TOKEN, **headers: str) -> httpx.Response:
        body = alert if isinstance(alert, str) else json.dumps(alert)
        query = f"?token={token}" if token is not None else ""
        content_type = headers.pop("content_type", "application/json")
        return self.http.post(f"/signals{query}", content=body.encode(), headers={"Content-Type": content_type})

    def state(self) -> dict[str, Any]:
        """``GET /_local/state`` with its money read as Decimals (see :func:`parse_state`)."""
        response = self.http.get("/_local/state")
        assert response.status_code == 200, response.text
        return parse_state(response.text)

    def cycle(self) -> dict[str, Any]:
        response = self.http.post("/_local/cycle")
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        assert detail["status"] == "SUCCEEDED", detail
        return detail


def _money(value: Any, where: str) -> Decimal:
    assert isinstance(value, str), f"/_local/state {where}: money must be a decimal string, got {value!r}"
    return Decimal(value)


def parse_state(text: str) -> dict[str, Any]:
    """Read a ``/_local/state`` answer, its amounts, prices and sums of money as exact Decimals.

    Each must come as a decimal string: a JSON number fails the test, as it would round through a float.
    """
    state: dict[str, Any] = json.loads(text)
    for key in ("cash", "equity"):
        state[key] = _money(state[key], key)
    for key in ("prices", "ledger"):
        state[key] = {name: _money(v, f"{key}.{name}") for name, v in state[key].items()}
    for asset, balance in state["balances"].items():
        state["balances"][asset] = {k: _money(v, f"balances.{asset}.{k}") for k, v in balance.items()}
    for strategy, position in state["positions"].items():
        for k in ("amount", "cost_basis", "value", "weight"):
            position[k] = _money(position[k], f"positions.{strategy}.{k}")
    for n, order in enumerate(state["orders"]):
        for k in ("amount", "filled", "price", "cost"):
            order[k] = _money(order[k], f"orders[{n}].{k}")
    return state


def start_local(log: Path, extra: Sequence[str] = ()) -> Local:
    """Start `crypto-bot local` on a free port (it picks one), with ``extra`` arguments, and wait until it serves."""
    command = [
        sys.executable,
        "-m",
        "crypto_bot_tools.cli",
        "local",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--schedule",
        "none",
        "--config",
        str(ROOT / "strategy_config.json"),
        "--template",
        str(ROOT / "template.yaml"),
        *extra,  # argparse takes the last of a repeated option, so --config may be given again
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"webhook\s+POST (http://127\.0\.0\.1:\d+)/signals", log.read_text(errors="replace"))
        if found:
            http = httpx.Client(base_url=found.group(1), timeout=120)
            if http.get("/_local/health").status_code == 200:
                return Local(process, http, log)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(f"crypto-bot local did not start:\n{log.read_text(errors='replace')}")


def stop_local(local: Local) -> None:
    """Stop it as Ctrl-C or kill would (SIGTERM), and make sure it is gone."""
    local.http.close()
    local.process.terminate()
    try:
        local.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        local.process.kill()
        local.process.wait()
        raise AssertionError(f"crypto-bot local ignored SIGTERM:\n{local.log.read_text(errors='replace')}") from None


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    started = start_local(tmp_path / "local.log")
    try:
        yield started
    finally:
        stop_local(started)
    assert "crypto-bot local: stopped" in started.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def shared_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    # For the refusal tests only: nothing they send may ever trade, so they can share one stack.
    started = start_local(tmp_path_factory.mktemp("shared") / "local.log")
    try:
        yield started
    finally:
        stop_local(started)


def expected_cycles(alerts: list[dict[str, Any]]) -> list[CycleResult]:
    options = ReplayOptions(mode=ExecutionMode.BOOST, fee=Decimal(0), increment=INCREMENT)
    cycles: list[CycleResult] = replay(alerts, CONFIG, options).cycles
    return cycles


def portfolio(state: dict[str, Any]) -> dict[str, Any]:
    """The cash, equity and positions of a parsed ``/_local/state``, exact."""
    return {key: state[key] for key in ("positions", "cash", "equity")}


def replayed_portfolio(cycle: CycleResult) -> dict[str, Any]:
    """The same, from what replay computed: compared as Decimals, nothing rounds through a float."""
    positions = {
        key: {"symbol": p.symbol, "amount": p.amount, "cost_basis": p.cost_basis, "value": p.value, "weight": p.weight}
        for key, p in cycle.positions.items()
    }
    return {"positions": positions, "cash": cycle.cash, "equity": cycle.equity}


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def assert_nothing_queued(state: dict[str, Any]) -> None:
    assert {name: depth for name, depth in state["queues"].items() if depth != {"visible": 0, "in_flight": 0}} == {}


# ------------------------------------------------------------------------------------------ the pipeline


def test_readme_scenario_matches_replay_after_every_cycle(local: Local) -> None:
    steps = [step for step in demo_steps(README_ALERTS) if not step.urgent][:5]
    expected = expected_cycles(README_ALERTS)

    # Each step dated now (the template's expiry is on); replay keeps the README's dates, one 8h bar a step.
    dated = AlertClock()
    for number, (step, replayed) in enumerate(zip(steps, expected, strict=True), start=1):
        for alert in dated(step.alerts):
            response = local.post_alert(alert)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] is True
        detail = local.cycle()
        state = local.state()
        assert portfolio(state) == replayed_portfolio(replayed), f"after step {number}"
        assert detail["cycle"]["orders"] == replayed.to_json()["orders"], f"orders of step {number}"

    state = local.state()
    assert [s["status"] for s in state["signals"]] == ["filled"] * len(README_ALERTS)
    assert len(state["orders"]) == sum(len(c.report.results) for c in expected)
    assert {o["status"] for o in state["orders"]} == {"filled"}
    assert [e["trigger"] for e in state["executions"]] == ["manual"] * 5


def test_stop_loss_between_cycles_executes_at_once_without_asking_for_a_cycle(local: Local) -> None:
    dated = AlertClock()
    local.post_alert(dated(README_ALERTS[0:1])[0])
    local.cycle()
    assert set(local.state()["positions"]) == {"BTCUSDT"}

    # TradingView sends a message it does not take for JSON as text/plain.
    response = local.post_alert(json.dumps(dated([STOP_LOSS])[0]), content_type="text/plain")
    assert response.status_code == 200

    def stopped() -> dict[str, Any] | None:
        state = local.state()
        urgent = [e for e in state["executions"] if e["trigger"] == "urgent" and e["status"] != "RUNNING"]
        return state if urgent else None

    state = wait_until(stopped, "the stop loss's own execution")
    [urgent] = [e for e in state["executions"] if e["trigger"] == "urgent"]
    assert urgent["status"] == "SUCCEEDED"
    assert "PlaceOrders" in urgent["transitions"]
    assert portfolio(state) == replayed_portfolio(expected_cycles([README_ALERTS[0], STOP_LOSS])[-1])
    assert state["positions"] == {}
    stop = [s for s in state["signals"] if s["action"] == "sell"]
    assert [(s["status"], s["id"]) for s in stop] == [("filled", response.json()["id"])]
    assert state["queues"]["UrgentQueue"] == {"visible": 0, "in_flight": 0}


def test_duplicate_alert_is_stored_once_and_traded_once(local: Local) -> None:
    (alert,) = AlertClock()(README_ALERTS[0:1])
    first = local.post_alert(alert)
    again = local.post_alert(alert)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["id"] != again.json()["id"]  # two SQS messages, one signal

    local.cycle()
    late = local.post_alert(alert)  # resent after its cycle ran
    local.cycle()

    state = local.state()
    # The alert trades once. Each POST's answered id can be looked up: the copies are recorded ignored under
    # their own ids, naming the signal they copy (issue 13: a duplicate's id appeared nowhere).
    shown = {s["id"]: (s["strategy"], s["status"], s["reason"]) for s in state["signals"]}
    original = first.json()["id"]
    assert shown.pop(original)[:2] == ("BTCUSDT", "filled")
    assert sorted(shown) == sorted([again.json()["id"], late.json()["id"]])
    for strategy, status, reason in shown.values():
        assert (strategy, status) == ("BTCUSDT", "ignored")
        assert reason.startswith(f"a duplicate of signal {original} ")
        assert reason.endswith("not traded twice")
    assert len(state["orders"]) == 1
    assert portfolio(state) == replayed_portfolio(expected_cycles([README_ALERTS[0]])[-1])
    # Received is when the webhook queued each POST (SQS's SentTimestamp), before a cycle collected it.
    for s in state["signals"]:
        assert s["queued_at"] is not None, s
        assert s["queued_at"] <= s["received_at"], s


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("not-the-token", 403), ("", 401)])
def test_bad_token_is_refused_and_nothing_is_queued(shared_local: Local, token: str | None, status: int) -> None:
    before = shared_local.state()["signals"]

    response = shared_local.post_alert(README_ALERTS[0], token=token)

    assert response.status_code == status
    assert response.json()["accepted"] is False
    assert TOKEN not in response.text
    state = shared_local.state()
    assert_nothing_queued(state)
    # Failed authentication is only counted (API Gateway's 4XXError), never recorded.
    assert state["signals"] == before


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ("buy BTCUSDT at 60000", "text/plain", "body: is not JSON (Expecting value) (got 'buy BTCUSDT at 60000')"),
        (
            "",
            "application/json",
            "ticker: is required; order_action: is required; order_comment: is required; time: is required; "
            "order_price: is required",
        ),
        (
            '{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSDT", "order_action": "buy"}',
            "application/json",
            "order_comment: is required; order_price: is required",
        ),
        (
            '{"time": 1723257002, "ticker": "BTCUSDT", "order_action": "buy", "order_price": "1", '
            '"order_comment": "x"}',
            "application/json",
            "time: must be an ISO-8601 string such as 2024-08-10T02:30:02Z (got 1723257002)",
        ),
        (
            '{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSDT", "order_action": "hold", "order_price": "1", '
            '"order_comment": "x"}',
            "text/plain",
            "order_action: must be buy or sell (got 'hold')",
        ),
        ('[{"ticker": "BTCUSDT"}]', "application/json", "body: must be a JSON object (got [{'ticker': 'BTCUSDT'}])"),
    ],
    ids=["not-json", "empty", "missing-fields", "number-time", "bad-action", "array"],
)
def test_a_malformed_body_is_recorded_as_rejected_with_the_field_and_the_value(
    shared_local: Local, body: str, content_type: str, reason: str
) -> None:
    response = shared_local.post_alert(body, content_type=content_type)

    assert response.status_code == 200
    message_id = response.json()["id"]
    shared_local.cycle()
    state = shared_local.state()
    [record] = [s for s in state["signals"] if s["id"] == message_id]
    assert record["status"] == "rejected"
    assert reason in record["reason"]
    assert record["received_at"]
    assert_nothing_queued(state)
    assert state["orders"] == []


def test_an_alert_over_the_size_limit_is_answered_413_and_recorded(shared_local: Local) -> None:
    body = json.dumps({**README_ALERTS[0], "order_comment": "x" * 70_000})

    response = shared_local.post_alert(body)

    assert response.status_code == 413
    answer = response.json()
    assert answer["accepted"] is False
    shared_local.cycle()
    [record] = [s for s in shared_local.state()["signals"] if s["id"] == answer["id"]]
    assert record["status"] == "rejected"
    assert record["reason"] == (
        f"body: is {len(body)} characters; an alert may have 65536: refused at the webhook (answered 413), "
        "which kept its first 200"
    )


def test_another_content_type_is_415_and_nothing_is_queued(shared_local: Local) -> None:
    response = shared_local.post_alert("<alert>buy</alert>", content_type="application/xml")

    assert response.status_code == 415
    assert response.json() == {
        "accepted": False,
        "reason": "send the alert as application/json or text/plain, as TradingView does; it was not stored",
    }
    assert_nothing_queued(shared_local.state())


def test_a_cycle_after_only_refusals_has_nothing_to_do(shared_local: Local) -> None:
    shared_local.post_alert(README_ALERTS[0], token="not-the-token")
    shared_local.post_alert("not json", content_type="text/plain")

    detail = shared_local.cycle()

    assert detail["transitions"] == ["Collect", "HasPendingSignals", "NothingToDo"]
    assert detail["cycle"] is None
    assert_nothing_queued(shared_local.state())
