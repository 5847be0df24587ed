"""The ops CLI (``crypto-bot signals|positions|cycle|executions``) against a stack under moto.

The stack's resources come from template.yaml through ``local_stack``; a CloudFormation stack
is then registered in moto whose Outputs and Parameters point at them, so the commands find
everything the way they do on AWS. ``--local`` is tested against a small fake of
``crypto-bot local``'s HTTP endpoints. Only loopback connections are allowed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.secrets import read_api_key
from crypto_bot.domain.controls import Controls
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.orders import Balance
from crypto_bot_tools import ops
from crypto_bot_tools.cli import main
from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.ops import aws_source, rows
from tests.conftest import ROOT, AlertClock, load_event, paper_environment

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

README_ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")
STACK = "crypto-bot-ops-test"
REGION = "us-east-1"
FILLED_REASON = "buy 0.15833333 of 0.15833333 BTC/USDT filled"
API_KEY_NAME = "/crypto-bot/test/exchange-api-key"
OUTPUTS = (
    "TableName",
    "TradeCycleStateMachineArn",
    "SignalsQueueUrl",
    "UrgentQueueUrl",
    "NotificationsTopicArn",
    "WebhookUrl",
)


def stack_parameters(**overrides: str) -> dict[str, str]:
    """The deployed stack's parameters the commands read, as a dev (paper) stage would have them."""
    return {
        "Stage": "test",
        "ExchangeName": "kraken",
        "QuoteCurrency": "USDT",
        "Sandbox": "false",
        "PaperTrading": "true",
        "PaperStartingCash": "10000",
        "SecretStore": "ssm",
        "ApiKeyParameterName": API_KEY_NAME,
        **overrides,
    }


def register_stack(
    stack: LocalStack, name: str, parameters: dict[str, str], *, without: tuple[str, ...] = ()
) -> dict[str, str]:
    """Create a CloudFormation stack in moto whose Outputs name the local stack's resources."""
    values = {
        "TableName": stack.resource("Table"),
        "TradeCycleStateMachineArn": stack.resource("TradeCycleStateMachine"),
        "SignalsQueueUrl": stack.resource("SignalsQueue"),
        "UrgentQueueUrl": stack.resource("UrgentQueue"),
        "NotificationsTopicArn": stack.resource("NotificationsTopic"),
        "WebhookUrl": f"https://abc123.execute-api.{REGION}.amazonaws.com/test/signals",
    }
    outputs = {key: {"Value": value} for key, value in values.items() if key not in without}
    template = {
        "Parameters": {key: {"Type": "String"} for key in parameters},
        # CloudFormation wants a resource; the real ones were created by local_stack.
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": outputs,
    }
    stack.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    return values


@dataclass
class Deployed:
    """A stack after one README cycle: the BTCUSDT buy filled."""

    stack: LocalStack
    outputs: dict[str, str]
    message_id: str
    execution_arn: str

    def queue(self, alert: dict[str, Any]) -> str:
        answer = self.stack.client("sqs").send_message(
            QueueUrl=self.outputs["SignalsQueueUrl"], MessageBody=json.dumps(alert)
        )
        return str(answer["MessageId"])


def _local_stack() -> Any:
    return local_stack(
        ROOT / "template.yaml",
        # IncrementPct 0 keeps the bought amount round (9500 / 60000), which the CLI's output below pins;
        # the template's increment runs in test_trade_cycle.py.
        parameters={"IncrementPct": "0"},
        # ASL Wait states take whole seconds, so the deployed 15 s fill check and 20 s lock wait cannot
        # be scaled like the Retry intervals (1/100, as in the fault suite); 0 s keeps the loops' logic
        # (FILL_TIMEOUT_SECONDS=0 ends a chase attempt at its first check). MaxLockWaits 2: a held lock gives up
        # sooner.
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "2"},
        environment=paper_environment(),
        retry_interval_scale=0.01,
    )


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    monkeypatch.delenv(ops.STACK_ENV, raising=False)
    monkeypatch.chdir(ROOT)  # positions reads strategy_config.json from the working directory
    with _local_stack() as stack:
        outputs = register_stack(stack, STACK, stack_parameters())
        deployed = Deployed(stack, outputs, message_id="", execution_arn="")
        # Dated now: the template's expiry is on.
        deployed.message_id = deployed.queue(AlertClock()(README_ALERTS[0:1])[0])
        arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"}, name="first")
        assert stack.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"
        deployed.execution_arn = arn
        yield deployed


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------------------------
# A deployed stack
# --------------------------------------------------------------------------------------------


def test_stack_resources_reads_outputs_and_parameters(deployed: Deployed) -> None:
    resources = ops.stack_resources(deployed.stack.client("cloudformation"), STACK)
    assert resources.region == REGION
    assert dict(resources.outputs) == deployed.outputs
    assert resources.parameter("ExchangeName") == "kraken"
    assert resources.paper_trading is True


def test_signals_json_shows_the_filled_signal_with_its_reason(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "signals", "--stack", STACK, "--region", REGION, "--json")
    assert (code, err) == (0, "")
    (signal,) = json_lines(out)
    (stored,) = DynamoDBStore(deployed.outputs["TableName"], deployed.stack.client("dynamodb")).recent_signals()
    assert signal == {
        "id": deployed.message_id,
        "strategy": "BTCUSDT",
        "ticker": "BTCUSDT",
        "action": "buy",
        "price": str(stored.payload["order_price"]),  # type: ignore[index]
        "time": stored.time.isoformat().replace("+00:00", "Z") if stored.time else None,
        "status": "filled",
        "reason": FILLED_REASON,
        "dedupe_key": stored.key,
        "received_at": stored.received_at.isoformat().replace("+00:00", "Z"),
        "queued_at": stored.queued_at.isoformat().replace("+00:00", "Z") if stored.queued_at else None,
    }
    assert stored.queued_at is not None  # the webhook's SQS message carried its SentTimestamp


def test_signals_table_shows_status_and_reason(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(capsys, "signals", "--stack", STACK)
    assert code == 0
    assert out.splitlines()[0].strip() == "1 signal"
    row = next(line for line in out.splitlines() if "BTCUSDT" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    (stored,) = DynamoDBStore(deployed.outputs["TableName"], deployed.stack.client("dynamodb")).recent_signals()
    assert stored.time is not None
    assert isinstance(stored.payload, dict)
    alert_time = f"{stored.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    price = str(stored.payload["order_price"])
    assert cells[1:7] + cells[8:] == [alert_time, "BTCUSDT", "BTCUSDT", "buy", price, "filled", deployed.message_id[:8]]
    # The reason folds onto the next lines in a 120-column table: its start is on the row's line.
    assert FILLED_REASON.startswith(cells[7])
    assert cells[7]


def test_signals_status_filter_keeps_only_that_status(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "signals", "--stack", STACK, "--status", "failed,rejected", "--json") == (0, "", "")
    code, out, _err = run_cli(capsys, "signals", "--stack", STACK, "--status", "filled", "--json")
    assert code == 0
    assert [s["status"] for s in json_lines(out)] == ["filled"]


def test_signals_refused_lists_every_refused_delivery_with_its_reason(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = deployed.stack.client("sqs")
    queue_url = deployed.outputs["SignalsQueueUrl"]
    not_json = sqs.send_message(QueueUrl=queue_url, MessageBody="{{strategy.order.alert_message}}")["MessageId"]
    hold = deployed.queue({**README_ALERTS[0], "order_action": "hold"})
    # What the webhook's mapping template sends for an alert over its limit (answered 413).
    too_large = sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": "refused",
                "MessageBody": '{"time": "2024-08-10T10:00:00Z", "order_comment": "xxxx',
                "MessageAttributes": {
                    "refused": {"DataType": "String", "StringValue": "too_large"},
                    "characters": {"DataType": "Number", "StringValue": "70000"},
                },
            }
        ],
    )["Successful"][0]["MessageId"]
    arn = deployed.stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"}, name="second")
    assert deployed.stack.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"
    capsys.readouterr()  # the handlers' log lines

    code, out, err = run_cli(capsys, "signals", "--stack", STACK, "--refused", "--json")

    assert (code, err) == (0, "")
    assert sorted((s["id"], s["status"], s["reason"]) for s in json_lines(out)) == sorted(
        [
            (
                not_json,
                "rejected",
                "body: is not JSON (Expecting property name enclosed in double quotes) "
                "(got '{{strategy.order.alert_message}}')",
            ),
            (hold, "rejected", "order_action: must be buy or sell (got 'hold')"),
            (
                too_large,
                "rejected",
                "body: is 70000 characters; an alert may have 65536: refused at the webhook (answered 413), "
                "which kept its first 200",
            ),
        ]
    )
    with pytest.raises(SystemExit, match="2"):
        run_cli(capsys, "signals", "--stack", STACK, "--refused", "--status", "filled")
    assert "argument --status: not allowed with argument --refused" in capsys.readouterr().err


def test_signals_rejects_an_unknown_status_and_a_bad_since(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "signals", "--stack", STACK, "--status", "done") == (
        2,
        "",
        "crypto-bot: --status 'done': not a signal status; use one or more of "
        "received, planned, ordered, filled, rejected, expired, ignored, failed\n",
    )
    assert run_cli(capsys, "signals", "--stack", STACK, "--since", "yesterday") == (
        2,
        "",
        "crypto-bot: --since 'yesterday': expected <n>s, <n>m, <n>h, <n>d or <n>w (e.g. 24h, 7d), or all\n",
    )


def test_select_signals_keeps_signals_received_since_the_window() -> None:
    now = datetime(2024, 8, 10, 12, tzinfo=UTC)
    rows = [
        ops.SignalRow("a", "BTCUSDT", "buy", "filled", "", "k1", now - timedelta(days=2)),
        ops.SignalRow("b", "ETHUSDT", "buy", "rejected", "no", "k2", now - timedelta(hours=1)),
    ]
    window = ops.parse_since("24h")
    assert window == timedelta(hours=24)
    assert [r.id for r in ops.select_signals(rows, since=now - window)] == ["b"]
    assert ops.parse_since("all") is None
    assert [r.id for r in ops.select_signals(rows, since=None, statuses={"filled"})] == ["a"]


@pytest.fixture
def prices(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Stand in for the exchange's public tickers (there is no network): BTC/USDT at 61000."""
    opened: list[tuple[str, bool]] = []
    table = {"BTC/USDT": D(61000), "ETH/USDT": D(3100)}

    def source(exchange_id: str, *, sandbox: bool, options: Mapping[str, Any] | None = None) -> Callable[[str], D]:
        opened.append((exchange_id, sandbox))
        options_seen.append(dict(options or {}))
        return table.__getitem__

    monkeypatch.setattr(aws_source, "public_price_source", source)
    return opened


options_seen: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def _forget_options() -> None:
    options_seen.clear()


def test_positions_json_values_the_ledger_and_shows_zero_drift(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], prices: list[tuple[str, bool]]
) -> None:
    code, out, err = run_cli(capsys, "positions", "--stack", STACK, "--json")
    assert (code, err) == (0, "")
    cash = D(10000) - D("9499.9998")
    value = D("0.15833333") * 61000
    equity = cash + value
    assert json.loads(out) == {
        "positions": {
            "BTCUSDT": {
                "symbol": "BTC/USDT",
                "amount": 0.15833333,
                "cost_basis": 9499.9998,
                "value": float(value),
                "weight": float(value / equity),
            }
        },
        "cash": float(cash),
        "equity": float(equity),
        "balances": {"BTC": 0.15833333, "USDT": float(cash)},
        "drift": {"BTC": 0},
        "controls": Controls().to_dict(),  # nothing paused, no guard configured
    }
    assert prices == [("kraken", False)]  # the stack's ExchangeName, live tickers for a paper stack


def test_positions_table_shows_amount_cost_basis_and_zero_drift(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "positions", "--stack", STACK, "--no-prices")
    assert code == 0
    lines = out.splitlines()
    position = next(line for line in lines if "BTCUSDT" in line)
    assert [cell.strip() for cell in position.split("│")[1:-1]] == [
        "BTCUSDT",
        "BTC/USDT",
        "0.15833333",
        "9,500.00",
        "-",
        "-",
    ]
    drift = next(line for line in lines if line.startswith("│ BTC "))
    assert [cell.strip() for cell in drift.split("│")[1:-1]] == ["BTC", "0.15833333", "0.15833333", "0"]


def test_positions_of_a_live_stack_read_balances_with_the_stacks_api_key(
    capsys: pytest.CaptureFixture[str], prices: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = '{"apiKey": "live-key-1", "secret": "live-secret-1"}'
    seen: list[tuple[str, dict[str, str], bool, dict[str, Any]]] = []

    def balances(
        exchange_id: str, credentials: dict[str, str], *, sandbox: bool, options: Mapping[str, Any] | None = None
    ) -> dict[str, Balance]:
        seen.append((exchange_id, dict(credentials), sandbox, dict(options or {})))
        # 0.01 BTC more than the ledger: a manual deposit shows as drift.
        return {"USDT": Balance(free=D("500.0002")), "BTC": Balance(free=D("0.16833333"))}

    monkeypatch.setattr(aws_source, "live_balances", balances)
    monkeypatch.chdir(ROOT)
    with _local_stack() as stack:
        stack.client("ssm").put_parameter(Name=API_KEY_NAME, Value=secret, Type="SecureString")
        options = '{"options": {"recvWindow": 5000}}'
        register_stack(stack, "live", stack_parameters(PaperTrading="false", Sandbox="true", ExchangeOptions=options))
        outputs = {"SignalsQueueUrl": stack.resource("SignalsQueue")}
        stack.client("sqs").send_message(
            QueueUrl=outputs["SignalsQueueUrl"], MessageBody=json.dumps(AlertClock()(README_ALERTS[0:1])[0])
        )
        arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"})
        assert stack.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"
        capsys.readouterr()  # the handlers' logs
        code, out, err = run_cli(capsys, "positions", "--stack", "live", "--json")
    assert (code, err) == (0, "")
    # The stack's ExchangeOptions reach every ccxt client the CLI builds.
    recv_window = {"options": {"recvWindow": 5000}}
    assert seen == [("kraken", {"apiKey": "live-key-1", "secret": "live-secret-1"}, True, recv_window)]
    assert prices == [("kraken", True)]  # a Sandbox stack is priced from the testnet it trades on
    assert options_seen == [recv_window]
    report = json.loads(out)
    assert report["positions"]["BTCUSDT"]["amount"] == 0.15833333
    assert report["drift"] == {"BTC": 0.01}
    assert "live-secret-1" not in out


def test_read_api_key_never_echoes_a_malformed_secret(deployed: Deployed) -> None:
    ssm = deployed.stack.client("ssm")
    ssm.put_parameter(Name=API_KEY_NAME, Value='{"apiKey": "k", "secret": "s"}', Type="SecureString")
    assert read_api_key(ssm, None, API_KEY_NAME, "ssm") == {"apiKey": "k", "secret": "s"}
    ssm.put_parameter(Name=API_KEY_NAME, Value="hunter2-not-json", Type="SecureString", Overwrite=True)
    with pytest.raises(ConfigError) as raised:
        read_api_key(ssm, None, API_KEY_NAME, "ssm")
    assert str(raised.value) == f"{API_KEY_NAME}: the API key must be JSON with apiKey and secret"
    with pytest.raises(ConfigError) as missing:
        read_api_key(ssm, None, "/nope", "ssm")
    assert str(missing.value) == "cannot read the API key /nope from ssm: ParameterNotFound"


def test_executions_lists_the_cycle_with_its_console_url(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "executions", "--stack", STACK, "--json")
    assert code == 0
    (execution,) = json_lines(out)
    url = (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
        f"#/v2/executions/details/{deployed.execution_arn}"
    )
    assert {k: execution[k] for k in ("name", "status", "arn", "url")} == {
        "name": "first",
        "status": "SUCCEEDED",
        "arn": deployed.execution_arn,
        "url": url,
    }
    assert execution["started"] <= execution["stopped"]
    code, out, _err = run_cli(capsys, "executions", "--stack", STACK)
    assert code == 0
    assert f"first: {url}" in out.splitlines()
    assert "SUCCEEDED" in next(line for line in out.splitlines() if line.startswith("│ first"))


def test_cycle_starts_a_manual_execution_and_follows_it_to_succeeded(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.queue(AlertClock()(README_ALERTS[1:2])[0])  # ETHUSDT buy: the new cycle has something to trade
    code, out, _err = run_cli(capsys, "cycle", "--stack", STACK, "--poll", "0.02", "--timeout", "60")
    assert code == 0
    sfn = deployed.stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=deployed.outputs["TradeCycleStateMachineArn"])["executions"]
    (started,) = [e for e in executions if e["name"] != "first"]
    assert started["name"].startswith("ops-")
    assert started["status"] == "SUCCEEDED"
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert json.loads(history[0]["executionStartedEventDetails"]["input"]) == {"trigger": "manual"}
    lines = [line.strip() for line in out.splitlines()]
    assert f"started {started['executionArn']}" in lines
    followed = [line.split(None, 1)[1] for line in lines if line[:1].isdigit() and "s  " in line]
    entered = [line.removeprefix("→ ") for line in followed if line.startswith("→ ")]
    exited = [line.removeprefix("✓ ").rsplit(" (", 1)[0] for line in followed if line.startswith("✓ ")]
    assert entered[:2] == ["Collect", "HasPendingSignals"]
    assert entered[-3:] == ["Finalize", "ReleaseLock", "CycleDone"]
    assert sorted(entered) == sorted(exited)
    assert any(line.startswith("execution SUCCEEDED in ") for line in lines)
    assert any("traded" in line and "ETHUSDT buy" in line for line in lines)


def test_cycle_without_follow_only_starts_the_execution(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(capsys, "cycle", "--stack", STACK, "--no-follow")
    assert code == 0
    arn = out.split()[1]
    assert arn.startswith(deployed.outputs["TradeCycleStateMachineArn"].replace(":stateMachine:", ":execution:"))
    assert deployed.stack.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"


def test_cycle_exits_1_and_shows_the_error_when_the_execution_fails(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # A live lock held by another execution: the cycle waits MaxLockWaits times, then fails.
    deployed.stack.client("dynamodb").put_item(
        TableName=deployed.outputs["TableName"],
        Item={
            "pk": {"S": "LOCK"},
            "sk": {"S": "CYCLE"},
            "owner": {"S": "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:running"},
            "lease_until": {"S": "2999-01-01T00:00:00.000000Z"},
        },
    )
    deployed.queue(AlertClock()(README_ALERTS[1:2])[0])
    code, out, _err = run_cli(capsys, "cycle", "--stack", STACK, "--poll", "0.02", "--timeout", "60")
    assert code == 1
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("execution FAILED in ") for line in lines)
    assert any("✗ ExecutionFailed: LockBusy: Another cycle held the lock for too long." in line for line in lines)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_an_unknown_stack_is_named_with_how_to_choose_one(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "signals", "--stack", "nope", "--region", REGION) == (
        2,
        "",
        "crypto-bot: stack nope not found in us-east-1: pass --stack NAME (or set CRYPTO_BOT_STACK) and --region, "
        "or --local URL for crypto-bot local\n",
    )


def test_the_stack_name_defaults_to_the_environment_then_samconfigs(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = run_cli(capsys, "executions")
    assert (code, err.split(":")[1].strip()) == (2, "stack crypto-bot-dev not found in us-east-1")
    monkeypatch.setenv(ops.STACK_ENV, STACK)
    code, out, _err = run_cli(capsys, "executions", "--json")
    assert code == 0
    assert [e["name"] for e in json_lines(out)] == ["first"]


def test_a_missing_output_is_named(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    register_stack(deployed.stack, "partial", stack_parameters(), without=("TradeCycleStateMachineArn",))
    assert run_cli(capsys, "executions", "--stack", "partial") == (
        2,
        "",
        "crypto-bot: stack partial has no output TradeCycleStateMachineArn: deploy the current template.yaml "
        "(sam deploy) so that its Outputs include TradeCycleStateMachineArn\n",
    )


def test_no_credentials_says_how_to_configure_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe
    assert run_cli(capsys, "signals", "--region", REGION) == (
        2,
        "",
        "crypto-bot: no usable AWS credentials (Unable to locate credentials): "
        "configure AWS credentials (aws configure) or pass --local URL\n",
    )


# --------------------------------------------------------------------------------------------
# --local: crypto-bot local's endpoints
# --------------------------------------------------------------------------------------------


def local_state(now: datetime) -> dict[str, Any]:
    """A /_local/state answer after the README's first cycle, plus an old rejected alert."""
    return {
        "signals": [
            {
                "id": "m-old",
                "strategy": "ETHUSDT",
                "action": "hold",
                "status": "rejected",
                "reason": "invalid alert: order_action: must be buy or sell (got 'hold')",
                "dedupe_key": "k-old",
                "received_at": (now - timedelta(days=2)).isoformat(),
            },
            {
                "id": "m-1",
                "strategy": "BTCUSDT",
                "action": "buy",
                "status": "filled",
                "reason": FILLED_REASON,
                "dedupe_key": "k-1",
                "received_at": (now - timedelta(minutes=5)).isoformat(),
            },
        ],
        "orders": [
            {
                "intent_id": "i-1",
                "client_order_id": "c-1",
                "strategy": "BTCUSDT",
                "symbol": "BTC/USDT",
                "side": "buy",
                "status": "filled",
                "amount": "0.15833333",
                "filled": "0.15833333",
                "price": "60000",
                "cost": "9499.9998",
            }
        ],
        # Money as crypto-bot local writes it: exact decimal strings.
        "positions": {
            "BTCUSDT": {
                "symbol": "BTC/USDT",
                "amount": "0.15833333",
                "cost_basis": "9499.9998",
                "value": "9499.9998",
                "weight": "0.94999998",
            }
        },
        "balances": {
            "USDT": {"free": "500.0002", "used": "0", "total": "500.0002"},
            "BTC": {"free": "0.15833333", "used": "0", "total": "0.15833333"},
        },
        "cash": "500.0002",
        "equity": "10000",
        # Oldest first, as crypto-bot local lists them.
        "executions": [
            {
                "id": "local-1",
                "status": "SUCCEEDED",
                "transitions": ["Collect", "Finalize"],
                "started_at": (now - timedelta(hours=2)).isoformat(),
            },
            {
                "id": "local-2",
                "status": "SUCCEEDED",
                "transitions": ["Collect", "HasPendingSignals", "NothingToDo"],
                "started_at": (now - timedelta(hours=1)).isoformat(),
            },
        ],
    }


@dataclass
class FakeLocal:
    url: str
    requests: list[tuple[str, str]]
    cycle_answer: dict[str, Any]
    state: dict[str, Any]
    # GET /_local/executions/ID's answers, in turn (the last one repeats), by execution id.
    executions: dict[str, list[dict[str, Any]]]


@pytest.fixture
def fake_local() -> Iterator[FakeLocal]:
    now = datetime.now(UTC)
    fake = FakeLocal(url="", requests=[], cycle_answer={}, state=local_state(now), executions={})
    for n, item in enumerate(fake.state["executions"]):
        stopped = datetime.fromisoformat(item["started_at"]) + timedelta(seconds=3 + n)
        fake.executions[item["id"]] = [{**item, "stopped_at": stopped.isoformat()}]

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            fake.requests.append(("GET", self.path))
            if self.path == "/_local/state":
                self._answer(200, json.dumps(fake.state).encode())
            elif (name := self.path.removeprefix("/_local/executions/")) in fake.executions:
                answers = fake.executions[name]
                self._answer(200, json.dumps(answers.pop(0) if len(answers) > 1 else answers[0]).encode())
            else:
                self._answer(404, b'{"message": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            fake.requests.append(("POST", self.path))
            self._answer(202 if self.path.endswith("?wait=false") else 200, json.dumps(fake.cycle_answer).encode())

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            return  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_local_signals_default_to_the_last_24_hours(fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(capsys, "signals", "--local", fake_local.url, "--json")
    assert code == 0
    assert [(s["id"], s["status"], s["reason"]) for s in json_lines(out)] == [("m-1", "filled", FILLED_REASON)]
    code, out, _err = run_cli(capsys, "signals", "--local", fake_local.url, "--since", "all", "--status", "rejected")
    assert code == 0
    row = next(line for line in out.splitlines() if "ETHUSDT" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert (cells[3], cells[4], cells[6]) == ("ETHUSDT", "hold", "rejected")
    assert fake_local.requests == [("GET", "/_local/state"), ("GET", "/_local/state")]


def test_local_positions_show_the_ledger_and_zero_drift(
    fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "positions", "--local", fake_local.url, "--json")
    assert code == 0
    assert json.loads(out) == {
        "positions": {
            "BTCUSDT": {
                "symbol": "BTC/USDT",
                "amount": 0.15833333,
                "cost_basis": 9499.9998,
                "value": 9499.9998,
                "weight": 0.94999998,
            }
        },
        "cash": 500.0002,
        "equity": 10000,
        "balances": {"BTC": 0.15833333, "USDT": 500.0002},
        "drift": {"BTC": 0},
    }
    code, out, _err = run_cli(capsys, "positions", "--local", fake_local.url)
    assert code == 0
    position = next(line for line in out.splitlines() if "BTCUSDT" in line)
    assert [cell.strip() for cell in position.split("│")[1:-1]] == [
        "BTCUSDT",
        "BTC/USDT",
        "0.15833333",
        "9,500.00",
        "9,500.00",
        "95.00%",
    ]


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [
        ("cash", 500.0002, 'cash: expected a decimal string such as "0.15833333", got 500.0002'),
        (
            "positions",
            {"BTCUSDT": {"symbol": "BTC/USDT", "amount": 0.15833333, "cost_basis": "9499.9998"}},
            'positions.BTCUSDT.amount: expected a decimal string such as "0.15833333", got 0.15833333',
        ),
        (
            "balances",
            {"BTC": {"free": "0.1", "used": "0", "total": 0.1}},
            'balances.BTC.total: expected a decimal string such as "0.15833333", got 0.1',
        ),
    ],
)
def test_local_positions_refuse_money_sent_as_a_json_number(
    fake_local: FakeLocal, capsys: pytest.CaptureFixture[str], key: str, value: Any, refused: str
) -> None:
    # A float cannot hold every amount exactly: /_local/state sends money as strings, and a number breaks that.
    fake_local.state[key] = value
    assert run_cli(capsys, "positions", "--local", fake_local.url, "--json") == (
        2,
        "",
        f"crypto-bot: /_local/state {refused}\n",
    )


def test_local_executions_list_newest_first_with_their_times(
    fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "executions", "--local", fake_local.url, "--json")
    assert code == 0
    listed = json_lines(out)
    assert [(e["name"], e["status"], e["transitions"]) for e in listed] == [
        ("local-2", "SUCCEEDED", 3),
        ("local-1", "SUCCEEDED", 2),
    ]
    for execution in listed:
        (answer,) = fake_local.executions[execution["name"]]
        started, stopped = datetime.fromisoformat(answer["started_at"]), datetime.fromisoformat(answer["stopped_at"])
        assert (execution["started"], execution["stopped"]) == (rows.iso(started), rows.iso(stopped))
    code, out, _err = run_cli(capsys, "executions", "--local", fake_local.url, "--limit", "1")
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("│ local")]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert (cells[0], cells[4], cells[5]) == ("local-2", "4.0s", "3")


def test_local_cycle_prints_each_state_as_entered_then_the_summary(
    fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    running = {"id": "local-3", "status": "RUNNING", "started_at": start.isoformat()}
    fake_local.cycle_answer = {**running, "transitions": ["Collect"]}
    fake_local.executions["local-3"] = [
        {**running, "transitions": ["Collect", "HasPendingSignals", "AcquireLock"]},
        {
            **running,
            "status": "SUCCEEDED",
            "stopped_at": (start + timedelta(seconds=2)).isoformat(),
            "transitions": ["Collect", "HasPendingSignals", "AcquireLock", "Finalize", "CycleDone"],
            "summary": {"signals": {"filled": 1}, "traded": {"ETHUSDT": "buy 0.8"}},
        },
    ]
    code, out, _err = run_cli(capsys, "cycle", "--local", fake_local.url, "--poll", "0.01")
    assert code == 0
    assert fake_local.requests == [
        ("POST", "/_local/cycle?wait=false"),
        ("GET", "/_local/executions/local-3"),
        ("GET", "/_local/executions/local-3"),
    ]
    lines = [line.strip() for line in out.splitlines()]
    entered = [line.split("→ ", 1)[1] for line in lines if "s  → " in line]
    assert entered == ["Collect", "HasPendingSignals", "AcquireLock", "Finalize", "CycleDone"]
    assert "execution SUCCEEDED in 2.0s" in lines
    assert any("traded" in line and "ETHUSDT buy 0.8" in line for line in lines)


def test_local_cycle_exits_1_when_the_execution_failed(
    fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_local.cycle_answer = {"id": "local-3", "status": "FAILED", "transitions": ["Collect"]}
    exit_code, out, _err = run_cli(capsys, "cycle", "--local", fake_local.url)
    assert exit_code == 1
    assert "execution FAILED" in [line.strip() for line in out.splitlines()]


def test_an_empty_cycle_says_so_in_a_sentence(fake_local: FakeLocal, capsys: pytest.CaptureFixture[str]) -> None:
    # NothingToDo's output is Collect's state: the cycle's id, pending 0 and a lease it never took.
    collected = {
        "cycle_id": "manual-local-4",
        "at": "2026-12-01T12:00:00+00:00",
        "urgent": False,
        "pending": 0,
        "phase": "exits",
        "now": "2026-12-01T12:00:00.000000Z",
        "lease_until": "2026-12-01T12:15:00.000000Z",
        "lock_waits": 0,
    }
    fake_local.cycle_answer = {
        "id": "local-4",
        "status": "SUCCEEDED",
        "transitions": ["Collect", "HasPendingSignals", "NothingToDo"],
        "summary": {"cycle": collected, "waits": {"lock_wait_seconds": 1}},
    }
    code, out, _err = run_cli(capsys, "cycle", "--local", fake_local.url)
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert lines[-2:] == [
        "execution SUCCEEDED",
        "nothing to do: no signal was pending, so cycle manual-local-4 traded nothing",
    ]
    assert "lease_until" not in out


def test_an_unreachable_local_stack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # A port that was free a moment ago: nothing listens there.
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    code, out, err = run_cli(capsys, "executions", "--local", f"http://127.0.0.1:{port}")
    assert (code, out) == (2, "")
    assert err.startswith(f"crypto-bot: cannot reach crypto-bot local at http://127.0.0.1:{port} (")
    assert err.endswith("): is it running?\n")


def test_stack_and_local_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "signals", "--stack", STACK, "--local", "http://127.0.0.1:1") == (
        2,
        "",
        "crypto-bot: --stack and --local exclude each other: give one\n",
    )
