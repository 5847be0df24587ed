"""The kill switch (``crypto-bot pause|resume|flatten``) and ``positions``' controls, against a stack under moto.

The stack is test_ops_cli.py's: template.yaml's resources registered as a CloudFormation stack after one
README cycle (BTCUSDT bought). The caller is moto's STS identity; the trader's messages are read from
moto's SNS backend. ``POST /_local/controls`` is checked here on the same stack (the local server's handler,
called directly); tests/e2e/test_local_controls.py drives it over HTTP.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.controls import Controls, Hold, pause
from crypto_bot_tools.local.controls import apply_request
from crypto_bot_tools.local.stack import LocalStack
from tests.conftest import ROOT
from tests.integration import test_ops_cli
from tests.integration.test_ops_cli import REGION, STACK, Deployed, run_cli

# test_ops_cli.py's fixtures: its stack after one README cycle, and the exchange's tickers stood in for.
deployed = test_ops_cli.deployed
prices = test_ops_cli.prices

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CALLER = "arn:aws:sts::123456789012:user/moto"  # moto's get_caller_identity
CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def store(deployed: Deployed) -> DynamoDBStore:
    return DynamoDBStore(deployed.outputs["TableName"], deployed.stack.client("dynamodb"))


def notifications(stack: LocalStack) -> list[tuple[str, str]]:
    """Every (subject, message) published to the stack's NotificationsTopic, from moto's backend."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    topic = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[stack.resource("NotificationsTopic")]
    return [(subject or "", message) for _id, message, subject, _attrs, _group in topic.sent_notifications]


def cycle_free(sent: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The operator's messages only (a cycle that traded sends its own summary)."""
    return [(s, m) for s, m in sent if not s.startswith(("crypto-bot cycle", "crypto-bot stop-loss cycle"))]


# ------------------------------------------------------------------------------------------ pause


def test_pause_writes_the_record_and_tells_the_trader_who_and_why(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    before = cycle_free(notifications(deployed.stack))
    code, out, err = run_cli(capsys, "pause", "--stack", STACK, "--region", REGION, "--reason", "FOMC at 14:00")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "Paused the whole account: entries are ignored; exits and stop losses still run; crypto-bot resume lifts it."
    )
    controls = store(deployed).get_controls()
    assert controls.paused is not None
    assert (controls.paused.by, controls.paused.reason) == (CALLER, f"paused by the operator ({CALLER}: FOMC at 14:00)")
    assert controls.version == 1
    assert controls.entry_hold("ETHUSDT", datetime.now(UTC)) == controls.paused.reason
    ((subject, message),) = cycle_free(notifications(deployed.stack))[len(before) :]
    assert subject == f"crypto-bot paused by {CALLER}"
    body = message.splitlines()
    assert "scope: the whole account" in body
    assert f"who:   {CALLER}" in body
    assert "why:   FOMC at 14:00" in body
    assert "entries are ignored; exits and stop losses still run" in message


def test_pausing_twice_says_it_was_already_paused_and_writes_and_sends_nothing(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "pause", "--stack", STACK, "--reason", "first")[0] == 0
    sent = len(notifications(deployed.stack))
    code, out, err = run_cli(capsys, "pause", "--stack", STACK, "--reason", "second", "--json")
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert answer["changed"] is False
    assert re.fullmatch(
        r"The whole account was already paused since \d{4}-\d\d-\d\d \d\d:\d\d UTC: "
        rf"paused by the operator \({re.escape(CALLER)}: first\); nothing changed\.",
        answer["message"],
    ), answer["message"]
    assert answer["controls"] == store(deployed).get_controls().to_dict()
    assert answer["controls"]["version"] == 1
    assert len(notifications(deployed.stack)) == sent


def test_pause_of_one_strategy_holds_only_it(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(capsys, "pause", "--stack", STACK, "--strategy", "ETHUSDT", "--json")
    assert code == 0
    answer = json.loads(out)
    assert (answer["changed"], answer["strategy"], answer["by"]) == (True, "ETHUSDT", CALLER)
    assert answer["controls"]["paused"] is None
    assert answer["controls"]["paused_strategies"]["ETHUSDT"]["by"] == CALLER
    controls = store(deployed).get_controls()
    assert controls.entry_hold("ETHUSDT", AT) == f"paused by the operator ({CALLER})"
    assert controls.entry_hold("BTCUSDT", AT) is None
    assert notifications(deployed.stack)[-1][0] == f"crypto-bot ETHUSDT paused by {CALLER}"


@pytest.mark.parametrize("command", ["pause", "resume", "flatten"])
def test_an_unknown_strategy_is_refused_naming_it_and_the_known_keys(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    sent = len(notifications(deployed.stack))
    assert run_cli(capsys, command, "--stack", STACK, "--strategy", "DOGEUSDT") == (
        2,
        "",
        "crypto-bot: --strategy 'DOGEUSDT': not a strategy of strategy_config.json "
        "(its strategies: BTCUSDT, ETHUSDT, SOLUSDT)\n",
    )
    assert store(deployed).get_controls() == Controls()
    assert len(notifications(deployed.stack)) == sent


def test_without_a_strategy_config_the_strategy_cannot_be_checked_and_says_so(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, "pause", "--stack", STACK, "--strategy", "BTCUSDT")
    assert code == 2
    assert err == (
        f"crypto-bot: --strategy 'BTCUSDT': cannot check it against stack {STACK}'s strategies: there is no "
        "strategy_config.json here; pass --config PATH (the file the stack was built with)\n"
    )
    assert store(deployed).get_controls() == Controls()
    # The whole account needs no config.
    assert run_cli(capsys, "pause", "--stack", STACK)[0] == 0
    assert (
        run_cli(
            capsys, "pause", "--stack", STACK, "--strategy", "BTCUSDT", "--config", str(ROOT / "strategy_config.json")
        )[0]
        == 0
    )


def test_a_failed_notification_exits_1_and_says_the_pause_is_written(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.stack.client("sns").delete_topic(TopicArn=deployed.outputs["NotificationsTopicArn"])
    code, out, err = run_cli(capsys, "pause", "--stack", STACK)
    assert code == 1
    assert out.startswith("Paused the whole account")
    assert err.startswith("crypto-bot: the pause is written, but the notification failed: StoreError: ")
    assert store(deployed).get_controls().paused is not None


# ------------------------------------------------------------------------------------------ resume


def test_resume_lifts_the_pause_releases_the_tripped_guard_and_restarts_its_peak(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    tripped = Controls(
        peak_equity=D("10500"),
        account_trip=Hold("account drawdown guard: equity 8900.00 USDT is 15.24% below its peak", AT),
    )
    store(deployed).put_controls(pause(tripped, by="alice", reason="news", at=AT))
    code, out, err = run_cli(capsys, "resume", "--stack", STACK)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "Resumed the whole account: its entries are taken again; released its tripped drawdown guard, whose peak "
        "restarts from the next cycle's equity."
    )
    controls = store(deployed).get_controls()
    assert (controls.paused, controls.account_trip, controls.peak_equity) == (None, None, None)
    assert [e.what for e in controls.events[-3:]] == ["paused", "released", "resumed"]
    subject, message = notifications(deployed.stack)[-1]
    assert subject == f"crypto-bot resumed by {CALLER}"
    assert "released its tripped drawdown guard" in message
    # Resuming what runs changes nothing.
    code, out, _err = run_cli(capsys, "resume", "--stack", STACK)
    assert code == 0
    assert out.strip() == "The whole account was not paused and no drawdown guard of it had tripped: nothing changed."
    assert store(deployed).get_controls().version == controls.version


def test_resume_names_what_still_holds_the_entries_back(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    held = pause(Controls(), by="alice", reason="", at=AT)
    held = pause(held, by="bob", reason="", at=AT, strategy="SOLUSDT")
    store(deployed).put_controls(pause(held, by="carol", reason="", at=AT, strategy="ETHUSDT"))
    code, out, _err = run_cli(capsys, "resume", "--stack", STACK, "--strategy", "ETHUSDT", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["message"] == (
        "Resumed strategy ETHUSDT: its entries are taken again; still held: the account: paused by the operator "
        "(alice)."
    )
    assert set(answer["controls"]["paused_strategies"]) == {"SOLUSDT"}
    code, out, _err = run_cli(capsys, "resume", "--stack", STACK, "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["message"] == (
        "Resumed the whole account: its entries are taken again; still held: SOLUSDT: paused by the operator (bob)."
    )
    assert answer["controls"]["paused"] is None
    assert set(answer["controls"]["paused_strategies"]) == {"SOLUSDT"}


# ------------------------------------------------------------------------------------------ flatten


def test_flatten_sells_the_position_follows_the_cycle_and_leaves_the_account_paused(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], prices: list[tuple[str, bool]]
) -> None:
    assert [p.strategy for p in store(deployed).load_ledger().long_positions()] == ["BTCUSDT"]
    code, out, err = run_cli(
        capsys, "flatten", "--stack", STACK, "--reason", "exchange incident", "--poll", "0.02", "--timeout", "60"
    )
    assert (code, err) == (0, "")
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0].startswith("Asked the next cycle to sell every long position and paused the whole account")
    assert any(line.startswith("started arn:aws:states:") for line in lines)
    assert any(line.startswith("execution SUCCEEDED in ") for line in lines)
    assert any("traded" in line and "BTCUSDT sell" in line for line in lines)
    assert store(deployed).load_ledger().long_positions() == []
    controls = store(deployed).get_controls()
    assert controls.flatten is None
    assert controls.paused is not None
    assert controls.paused.reason == f"paused by the operator ({CALLER}: exchange incident)"
    assert [e.what for e in controls.events] == ["paused", "flatten requested", "flattened"]
    # The positions printed after the cycle: no position, and the pause that stays.
    assert "positions (ledger)" in out
    assert not any(line.startswith("│ BTCUSDT") for line in out.splitlines())
    assert "controls: entries held back" in out
    subjects = [s for s, _m in notifications(deployed.stack)]
    assert f"crypto-bot flatten requested by {CALLER}" in subjects


def test_flatten_exits_1_when_the_cycle_fails(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    # A live lock held by another execution: the cycle waits MaxLockWaits times, then fails (as test_ops_cli).
    deployed.stack.client("dynamodb").put_item(
        TableName=deployed.outputs["TableName"],
        Item={"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}, "owner": {"S": "someone-else"},
              "lease_until": {"S": "2999-01-01T00:00:00Z"}},
    )  # fmt: skip
    code, out, _err = run_cli(capsys, "flatten", "--stack", STACK, "--poll", "0.02", "--timeout", "60", "--json")
    assert code == 1
    # The handlers run in this process and log their metrics on stdout: the command's object is the last line.
    answer = json.loads(out.splitlines()[-1])
    assert answer["execution"]["status"] == "FAILED"
    assert answer["controls"]["flatten"]["by"] == CALLER  # written; the next cycle that runs sells
    assert store(deployed).get_controls().flatten is not None


# ------------------------------------------------------------------------------------------ positions


def test_positions_show_the_pause_the_tripped_guard_and_the_last_events(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "positions", "--stack", STACK, "--no-prices")
    assert code == 0
    assert "controls" not in out  # nothing held: the table is as it was
    trip = "strategy drawdown guard: BTCUSDT's P&L -400.00 USDT is 400.00 below its peak 0.00"
    controls = pause(Controls(strategy_trips={"BTCUSDT": Hold(trip, AT)}), by="alice", reason="news", at=AT)
    store(deployed).put_controls(controls)
    code, out, _err = run_cli(capsys, "positions", "--stack", STACK, "--no-prices")
    assert code == 0
    rows = {
        tuple(cell.strip() for cell in line.split("│")[1:3])
        for line in out.splitlines()
        if line.startswith("│ ") and ("paused" in line or "tripped" in line)
    }
    assert ("account", "paused") in rows
    assert ("BTCUSDT", "guard tripped") in rows
    assert "paused by the operator (alice: news)" in out
    assert "strategy drawdown guard: BTCUSDT's P&L" in out
    assert "last 1 control event" in out
    code, out, _err = run_cli(capsys, "positions", "--stack", STACK, "--no-prices", "--json")
    shown = json.loads(out)["controls"]
    assert shown["paused"] == {"reason": "paused by the operator (alice: news)", "at": AT.isoformat(), "by": "alice"}
    assert shown["strategy_trips"] == {"BTCUSDT": {"reason": trip, "at": AT.isoformat(), "by": ""}}


# ------------------------------------------------------------------------------------------ POST /_local/controls


def local_request(deployed: Deployed, request: object) -> tuple[int, dict[str, Any], list[str]]:
    logged: list[str] = []
    status, answer = apply_request(
        request, stack=deployed.stack, config=CONFIG, config_source="strategy_config.json", log=logged.append
    )
    return status, answer, logged


def test_local_controls_apply_the_command_and_notify(deployed: Deployed) -> None:
    status, answer, logged = local_request(
        deployed, {"command": "pause", "strategy": "BTCUSDT", "reason": "test", "by": "ann@local"}
    )
    assert status == 200
    assert answer["changed"] is True
    assert answer["controls"]["paused_strategies"]["BTCUSDT"]["reason"] == "paused by the operator (ann@local: test)"
    assert store(deployed).get_controls().to_dict() == answer["controls"]
    subject, message = notifications(deployed.stack)[-1]
    assert subject == "crypto-bot BTCUSDT paused by ann@local"
    assert "why:   test" in message.splitlines()
    assert [line.partition(" controls: ")[2] for line in logged] == ["crypto-bot BTCUSDT paused by ann@local"]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ([], "the body must be a JSON object with command, strategy, reason, by, got []"),
        ({"command": "halt", "by": "a"}, "command 'halt': must be one of pause, resume, flatten"),
        ({"command": "pause", "by": "a", "strategy": "NOPE"},
         "strategy 'NOPE': not a strategy of strategy_config.json (its strategies: BTCUSDT, ETHUSDT, SOLUSDT)"),
        ({"command": "pause", "by": "a", "strategy": 7},
         "strategy 7: must be a strategy key (a string) or null for the whole account"),
        ({"command": "pause", "by": "a", "reason": 3}, "reason 3: must be a string"),
        ({"command": "resume", "by": "a", "reason": "why"},
         "reason 'why': resume takes no reason (the record keeps who resumed and when)"),
        ({"command": "pause"}, "by None: say who gives the command (crypto-bot sends user@local)"),
        ({"command": "pause", "by": "a", "scope": "all"},
         "scope 'all': not a field (use command, strategy, reason, by)"),
    ],
)  # fmt: skip
def test_local_controls_refuse_bad_input_naming_the_field_and_value(
    deployed: Deployed, request_: object, error: str
) -> None:
    sent = len(notifications(deployed.stack))
    assert local_request(deployed, request_) == (400, {"error": error}, [])
    assert store(deployed).get_controls() == Controls()
    assert len(notifications(deployed.stack)) == sent
