"""The kill switch on ``crypto-bot local``: ``crypto-bot pause|resume|flatten --local URL`` over HTTP.

The stack is a subprocess (test_local_stack.py's); the commands run in this process, as an operator runs
them, and everything the test reads comes from ``GET /_local/state``, the commands' output and the stack's log.
"""

from __future__ import annotations

import getpass
import json

import httpx
import pytest

from crypto_bot_tools.cli import main
from tests.conftest import ROOT, AlertClock
from tests.e2e import test_local_stack
from tests.e2e.test_local_stack import README_ALERTS, Local

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

BY = f"{getpass.getuser()}@local"
local = test_local_stack.local  # a fresh `crypto-bot local` subprocess per test


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pause_ignores_a_buy_and_flatten_sells_and_stays_paused(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(local.http.base_url).rstrip("/")
    dated = AlertClock()
    btc_buy, eth_buy = dated(README_ALERTS[0:1])[0], dated(README_ALERTS[1:2])[0]
    assert local.post_alert(btc_buy).status_code == 200
    local.cycle()
    assert set(local.state()["positions"]) == {"BTCUSDT"}

    code, out, err = run_cli(capsys, "pause", "--local", url, "--reason", "e2e check")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith("Paused the whole account: entries are ignored")
    paused = local.state()["controls"]["paused"]
    assert (paused["by"], paused["reason"]) == (BY, f"paused by the operator ({BY}: e2e check)")

    assert local.post_alert(eth_buy).status_code == 200
    local.cycle()
    state = local.state()
    eth = [s for s in state["signals"] if s["strategy"] == "ETHUSDT"]
    assert [(s["status"], s["reason"]) for s in eth] == [("ignored", f"paused by the operator ({BY}: e2e check)")]
    assert set(state["positions"]) == {"BTCUSDT"}

    code, out, err = run_cli(capsys, "flatten", "--local", url, "--poll", "0.1", "--timeout", "120")
    assert (code, err) == (0, "")
    assert "already paused" not in out
    assert any(line.startswith("execution SUCCEEDED") for line in out.splitlines())
    state = local.state()
    assert state["positions"] == {}
    sells = [o for o in state["orders"] if o["side"] == "sell"]
    assert [(o["strategy"], o["status"]) for o in sells] == [("BTCUSDT", "filled")]
    controls = state["controls"]
    assert controls["flatten"] is None
    assert controls["paused"]["by"] == BY  # flatten leaves the account paused
    assert [e["what"] for e in controls["events"]] == ["paused", "paused", "flatten requested", "flattened"]
    # Each change was published to the stack's topic, and the stack logged it.
    log = local.log.read_text(errors="replace")
    assert f"controls: crypto-bot paused by {BY}" in log
    assert f"controls: crypto-bot flatten requested by {BY}" in log
    # positions reads the record from /_local/state and shows what holds entries back.
    code, out, _err = run_cli(capsys, "positions", "--local", url)
    assert code == 0
    assert "controls: entries held back" in out
    assert any(line.startswith("│ account │ paused ") for line in out.splitlines())
    code, out, _err = run_cli(capsys, "positions", "--local", url, "--json")
    assert json.loads(out)["controls"] == controls


def test_the_local_stack_refuses_an_unknown_strategy_naming_it(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(local.http.base_url).rstrip("/")
    assert run_cli(capsys, "pause", "--local", url, "--strategy", "DOGEUSDT") == (
        2,
        "",
        f"crypto-bot: POST {url}/_local/controls: HTTP 400: strategy 'DOGEUSDT': not a strategy of "
        f"{ROOT / 'strategy_config.json'} (its strategies: BTCUSDT, ETHUSDT, SOLUSDT)\n",
    )
    answer = httpx.post(f"{url}/_local/controls", content=json.dumps({"command": "halt", "by": "x"}))
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "command 'halt': must be one of pause, resume, flatten"},
    )
    assert local.state()["controls"]["version"] == 0
