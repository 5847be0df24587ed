"""``crypto-bot verify`` against a stack registered in moto, and ``verify --pre-deploy`` against samconfig.toml.

As in test_ops_cli.py, a CloudFormation stack is registered in moto whose Outputs and Parameters the
command reads; its SSM parameters, its EventBridge schedule and its REST API (``/signals``, ``POST``)
are moto's too. The exchange is the Binance (or Kraken) emulator of tests/venues on 127.0.0.1, reached
through the stack's ExchangeOptions, with the API key the stack stores in SSM.

Two calls moto does not implement are stubbed with botocore's Stubber, in the response shapes of the
API references: API Gateway's TestInvokeMethod (on a stubbed apigateway client, which also answers the
GetResources call before it with moto's own answer), and Binance's GET /sapi/v1/account/apiRestrictions,
which the emulator does not serve and this module adds to its routes. The test alert itself is then run
through the real pipeline (Collect, the cycle) under the local stack, to show it is recorded and never trades.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot_tools import verify
from crypto_bot_tools.cli import main
from crypto_bot_tools.local.stack import local_stack
from tests.conftest import ROOT, paper_environment
from tests.venues.binance import API_KEY, SECRET, Binance, ccxt_options
from tests.venues.http import Request, Response, VenueServer, serving
from tests.venues.kraken import KrakenVenue

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

REGION = "us-east-1"
STACK = "crypto-bot-verify-test"
KEY_NAME = "/crypto-bot/test/exchange-api-key"
TOKEN_NAME = "/crypto-bot/test/webhook-token"
STATE_MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:TradeCycleStateMachine-abc"
# Between two 8 h bar closes: the next firings of cron(1 0/8 * * ? *) are 16:01, 00:01, 08:01 ...
NOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
MESSAGE_ID = "5fea7756-0ea4-451a-a703-a558b933e274"
# Binance, "Get API Key Permission (USER_DATA)" (developers.binance.com/docs/wallet/account/api-key-permission),
# its response example: a key that reads and trades spot, and cannot withdraw.
RESTRICTIONS: dict[str, Any] = {
    "ipRestrict": False,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": True,
    "enableSpotAndMarginTrading": True,
    "enablePortfolioMarginTrading": False,
}


@dataclass
class World:
    """moto, the venue emulator, and the stubbed apigateway client the command is given."""

    server: VenueServer
    restrictions: dict[str, Any]
    api_id: str = ""
    resource_id: str = ""
    clients: dict[str, Any] = field(default_factory=dict)
    invoke_answer: dict[str, Any] = field(
        default_factory=lambda: {"status": 200, "body": json.dumps({"accepted": True, "id": MESSAGE_ID})}
    )

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    def register(self, *, without_output: str = "", **overrides: str) -> None:
        """Register the stack in moto's CloudFormation with template.yaml's parameters and outputs."""
        parameters = {
            "Stage": "test",
            "ExchangeName": "binance",
            "ExchangeOptions": json.dumps(ccxt_options(self.server.url)),
            "Timeframe": "8h",
            "CycleSchedule": "cron(1 0/8 * * ? *)",
            "PaperTrading": "false",
            "Sandbox": "false",
            "SecretStore": "ssm",  # pragma: allowlist secret (the store's name)
            "ApiKeyParameterName": KEY_NAME,
            "WebhookTokenParameterName": TOKEN_NAME,
            **overrides,
        }
        outputs = {
            "TableName": "crypto-bot-table",
            "TradeCycleStateMachineArn": STATE_MACHINE,
            "SignalsQueueUrl": f"https://sqs.{REGION}.amazonaws.com/123456789012/signals",
            "UrgentQueueUrl": f"https://sqs.{REGION}.amazonaws.com/123456789012/urgent",
            "NotificationsTopicArn": f"arn:aws:sns:{REGION}:123456789012:notifications",
            "WebhookUrl": f"https://{self.api_id}.execute-api.{REGION}.amazonaws.com/test/signals",
        }
        template = {
            "Parameters": {key: {"Type": "String"} for key in parameters},
            "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items() if k != without_output},
        }
        self.client("cloudformation").create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )

    def stubbed_apigateway(self, now: datetime) -> Any:
        """An apigateway client answering GetResources as moto does, then TestInvokeMethod as stubbed."""
        resources = self.client("apigateway").get_resources(restApiId=self.api_id, limit=500)
        resources.pop("ResponseMetadata", None)
        stubbed = boto3.client("apigateway", region_name=REGION)
        stubber = Stubber(stubbed)
        stubber.add_response("get_resources", resources, {"restApiId": self.api_id, "limit": 500})
        # API Gateway API reference, TestInvokeMethod: status, body, headers, log, latency.
        stubber.add_response(
            "test_invoke_method",
            {"headers": {"Content-Type": "application/json"}, "log": "Execution log for request", "latency": 42}
            | self.invoke_answer,
            {
                "restApiId": self.api_id,
                "resourceId": self.resource_id,
                "httpMethod": "POST",
                "pathWithQueryString": "/signals?token=a-long-random-token",
                "body": json.dumps(verify.test_alert(now)),
                "headers": {"Content-Type": "application/json"},
            },
        )
        stubber.activate()
        return stubbed

    def checks(self, now: datetime = NOW) -> list[verify.Check]:
        clients = dict(self.clients)
        clients["apigateway"] = self.stubbed_apigateway(now)

        def client(service: str) -> Any:
            return clients[service] if service in clients else self.client(service)

        return list(verify.stack_checks(STACK, client, now=now))


def statuses(checks: list[verify.Check]) -> list[tuple[str, str]]:
    return [(c.name, c.status) for c in checks]


def _binance_routes(venue: Binance, restrictions: dict[str, Any]) -> dict[str, Callable[[Request], Response]]:
    routes = venue.routes()
    # Signed like every USER_DATA endpoint (the emulator's own key, signature and timing checks).
    routes["GET /sapi/v1/account/apiRestrictions"] = venue._serve(lambda _params: restrictions, signed=True)
    return routes


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's fake)
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def world(aws: None) -> Iterator[World]:
    venue = Binance()
    venue.set_price("BTCUSDT", Decimal(60000))
    venue.deposit("USDT", Decimal(10000))
    restrictions = dict(RESTRICTIONS)
    with serving(_binance_routes(venue, restrictions)) as server:
        world = World(server, restrictions)
        ssm = world.client("ssm")
        ssm.put_parameter(Name=KEY_NAME, Type="SecureString", Value=json.dumps({"apiKey": API_KEY, "secret": SECRET}))
        ssm.put_parameter(Name=TOKEN_NAME, Type="SecureString", Value="a-long-random-token")
        world.client("scheduler").create_schedule(
            Name="crypto-bot-verify-test-TradeCycleStateMachineSchedule",
            ScheduleExpression="cron(1 0/8 * * ? *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": STATE_MACHINE, "RoleArn": "arn:aws:iam::123456789012:role/scheduler", "Input": "{}"},
        )
        apigateway = world.client("apigateway")
        world.api_id = apigateway.create_rest_api(name="crypto-bot-test-webhook")["id"]
        root = next(r["id"] for r in apigateway.get_resources(restApiId=world.api_id)["items"] if r["path"] == "/")
        world.resource_id = apigateway.create_resource(restApiId=world.api_id, parentId=root, pathPart="signals")["id"]
        apigateway.put_method(
            restApiId=world.api_id, resourceId=world.resource_id, httpMethod="POST", authorizationType="CUSTOM"
        )
        yield world


HEALTHY = [
    ("stack", "ok"),
    ("webhook token", "ok"),
    ("API key", "ok"),
    ("schedule", "ok"),
    ("balances", "ok"),
    ("withdrawals", "ok"),
    ("test alert", "ok"),
]


# --------------------------------------------------------------------------------------------
# A deployed stack
# --------------------------------------------------------------------------------------------


def test_a_healthy_stack_passes_every_check(world: World) -> None:
    world.register()

    checks = world.checks()

    assert statuses(checks) == HEALTHY
    by_name = {c.name: c for c in checks}
    assert "fires one minute after each 8h bar close" in by_name["schedule"].detail
    assert "(1 asset)" in by_name["balances"].detail  # the USDT deposited
    assert MESSAGE_ID in by_name["test alert"].detail


def test_the_cli_prints_one_line_per_check_and_exits_0(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.register()
    stubbed = world.stubbed_apigateway(NOW)
    monkeypatch.setattr(
        verify, "boto3_session", lambda _region: lambda s: stubbed if s == "apigateway" else world.client(s)
    )
    # The command's own clock: the stubbed TestInvokeMethod expects the body of NOW's test alert.
    monkeypatch.setattr(verify, "datetime", _FrozenDatetime)

    code = main(["verify", "--stack", STACK, "--region", REGION])

    out = capsys.readouterr().out
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ok"] * len(HEALTHY) + ["7"]
    assert out.splitlines()[-1] == "7 checks passed"
    for secret in ("a-long-random-token", SECRET, API_KEY):
        assert secret not in out


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _FrozenDatetime:
        return cls.fromtimestamp(NOW.timestamp(), tz)


def test_a_missing_webhook_token_fails_and_says_how_to_fix_it(world: World) -> None:
    world.register()
    world.client("ssm").delete_parameter(Name=TOKEN_NAME)

    checks = world.checks()

    (token,) = [c for c in checks if c.name == "webhook token"]
    assert token.status == "fail"
    assert token.detail == f"cannot read {TOKEN_NAME} in ssm: ParameterNotFound: every alert is refused 403"
    assert "create the parameter" in token.fix
    # The test alert is not sent without the token it would carry.
    assert [c.name for c in checks if c.status == "fail"] == ["webhook token", "test alert"]


def test_names_outside_the_stage_are_a_warning(world: World) -> None:
    world.register(Stage="prod")

    warnings = [c for c in world.checks() if c.status == "warn"]

    assert [c.name for c in warnings] == ["webhook token name", "API key name"]
    assert "is not under /crypto-bot/prod/ although Stage=prod" in warnings[0].detail


def test_a_schedule_out_of_step_with_the_timeframe_fails_with_the_expression_to_use(world: World) -> None:
    world.register(Timeframe="4h")

    (schedule,) = [c for c in world.checks() if c.name == "schedule"]

    assert schedule.status == "fail"
    assert schedule.detail.endswith(
        "next fires 2026-12-01 16:01, 2026-12-02 00:01, 2026-12-02 08:01 UTC; "
        "Timeframe=4h wants 2026-12-01 16:01, 2026-12-01 20:01, 2026-12-02 00:01 UTC"
    )
    assert schedule.fix == "deploy with CycleSchedule='cron(1 0/4 * * ? *)'"


def test_a_stack_without_a_schedule_fails(world: World) -> None:
    world.register()
    world.client("scheduler").delete_schedule(Name="crypto-bot-verify-test-TradeCycleStateMachineSchedule")

    (schedule,) = [c for c in world.checks() if c.name == "schedule"]

    assert (schedule.status, schedule.detail) == (
        "fail",
        f"no EventBridge schedule or rule starts {STATE_MACHINE}: no cycle runs on schedule",
    )


@pytest.mark.parametrize(
    ("timeframe", "expression"),
    [
        ("15m", "cron(1/15 * * * ? *)"),
        ("1h", "cron(1 0/1 * * ? *)"),
        ("8h", "cron(1 0/8 * * ? *)"),
        ("1d", "cron(1 0 * * ? *)"),
    ],
)
def test_the_suggested_schedule_fires_one_minute_after_each_bar_close(
    world: World, timeframe: str, expression: str
) -> None:
    assert verify.expected_schedule(verify.Timeframe.parse(timeframe)) == expression
    world.client("scheduler").update_schedule(
        Name="crypto-bot-verify-test-TradeCycleStateMachineSchedule",
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": STATE_MACHINE, "RoleArn": "arn:aws:iam::123456789012:role/scheduler", "Input": "{}"},
    )
    world.register(Timeframe=timeframe, CycleSchedule=expression)

    (schedule,) = [c for c in world.checks() if c.name == "schedule"]

    assert schedule.status == "ok", schedule.detail


def test_a_key_that_may_withdraw_fails(world: World) -> None:
    world.register()
    world.restrictions["enableWithdrawals"] = True

    (withdrawals,) = [c for c in world.checks() if c.name == "withdrawals"]

    assert withdrawals.status == "fail"
    assert withdrawals.detail.startswith("the key may withdraw (enableWithdrawals true)")
    assert "untick Enable Withdrawals" in withdrawals.fix


def test_a_key_the_venue_refuses_fails_the_balances_without_showing_the_key(world: World) -> None:
    world.register()
    wrong = json.dumps({"apiKey": "not-the-key", "secret": "not-the-secret"})  # pragma: allowlist secret
    world.client("ssm").put_parameter(Name=KEY_NAME, Type="SecureString", Value=wrong, Overwrite=True)

    checks = world.checks()

    (balances,) = [c for c in checks if c.name == "balances"]
    assert balances.status == "fail"
    assert "AuthenticationFailed" in balances.detail
    assert "not-the-key" not in balances.line()
    assert "not-the-secret" not in balances.line()
    assert "withdrawals" not in [c.name for c in checks]


def test_a_paper_stack_without_a_key_only_warns(world: World) -> None:
    world.register(PaperTrading="true")
    world.client("ssm").delete_parameter(Name=KEY_NAME)

    checks = world.checks()

    assert statuses(checks) == [
        ("stack", "ok"),
        ("webhook token", "ok"),
        ("API key", "warn"),
        ("schedule", "ok"),
        ("balances", "warn"),
        ("test alert", "ok"),
    ]


def test_a_venue_without_a_permission_endpoint_is_a_warning(world: World) -> None:
    kraken = KrakenVenue({"ZUSD": Decimal(10000)})
    with serving(kraken.routes()) as server:
        options = {"urls": {"api": {"public": server.url, "private": server.url}}, "timeout": 1500, "rateLimit": 1}
        key = json.dumps({"apiKey": kraken.api_key, "secret": kraken.secret})
        world.client("ssm").put_parameter(Name=KEY_NAME, Type="SecureString", Value=key, Overwrite=True)
        world.register(ExchangeName="kraken", ExchangeOptions=json.dumps(options))

        checks = world.checks()

    assert statuses(checks)[4:6] == [("balances", "ok"), ("withdrawals", "warn")]
    assert checks[5].detail == "not checked (kraken has no endpoint for it here)"


def test_a_webhook_whose_queue_refuses_fails_with_its_reason(world: World) -> None:
    world.register()
    reason = "the queue refused the alert; it was not stored, and TradingView resends it"
    world.invoke_answer = {"status": 502, "body": json.dumps({"accepted": False, "reason": reason})}

    (alert,) = [c for c in world.checks() if c.name == "test alert"]

    assert (alert.status, alert.detail) == ("fail", f"POST /signals answered 502: {reason}")
    assert f"--rest-api-id {world.api_id}" in alert.fix


def test_a_stack_missing_an_output_fails_and_stops(world: World) -> None:
    world.register(without_output="WebhookUrl")

    assert [c.line() for c in world.checks()] == [
        f"FAIL  stack: {STACK} lacks output WebhookUrl\n      fix: deploy the current template.yaml"
    ]


def test_a_missing_stack_fails_and_the_cli_exits_1(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", "--stack", "no-such-stack", "--region", REGION])

    out = capsys.readouterr().out
    assert code == 1
    assert (
        out.splitlines()[0] == f"FAIL  stack: stack no-such-stack not found in {REGION}: pass --stack NAME "
        "(or set CRYPTO_BOT_STACK) and --region, or --local URL for crypto-bot local"
    )


# --------------------------------------------------------------------------------------------
# The test alert through the real pipeline
# --------------------------------------------------------------------------------------------


def test_the_test_alert_is_recorded_as_an_ignored_test_and_never_trades() -> None:
    with local_stack(
        ROOT / "template.yaml",
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "2"},
        environment=paper_environment(),
        retry_interval_scale=0.01,
    ) as stack:
        from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

        body = json.dumps(verify.test_alert(datetime.now(UTC)))
        message_id = stack.client("sqs").send_message(QueueUrl=stack.resource("SignalsQueue"), MessageBody=body)[
            "MessageId"
        ]
        arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"}, name="verify")
        assert stack.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"

        store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
        (record,) = store.recent_signals()
        assert (record.status, record.message_id, record.reason) == (
            SignalStatus.IGNORED,
            message_id,
            'a test alert ("test": true): recorded, never traded',
        )
        assert record.key.startswith("test-")
        assert store.pending_signals() == []
        assert list(store.load_ledger().long_positions()) == []


@pytest.mark.parametrize(
    ("marker", "status"),
    [(True, SignalStatus.IGNORED), ("true", SignalStatus.RECEIVED), (False, SignalStatus.RECEIVED)],
)
def test_only_test_true_marks_a_well_formed_alert_as_a_test(marker: object, status: SignalStatus) -> None:
    config = StrategyConfig.from_mapping(
        {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
    )
    store = MemoryStore()
    settings = WorkflowSettings(mode=ExecutionMode.BOOST, increment=Decimal("0.001"))
    workflow = Workflow(store, PaperExchange(balances={"USD": Decimal(1000)}), config, settings, lambda: NOW)
    alert = {"time": "2026-12-01T12:59:00Z", "ticker": "BTCUSD", "order_action": "buy", "order_price": "60000",
             "order_comment": "long", "test": marker}  # fmt: skip

    record = workflow.receive(json.dumps(alert), message_id=MESSAGE_ID).record

    assert record.status is status
    # A test alert is never pending, so no cycle takes it.
    assert [r.key for r in store.pending_signals()] == ([] if status is SignalStatus.IGNORED else [record.key])


# --------------------------------------------------------------------------------------------
# Before a deploy
# --------------------------------------------------------------------------------------------


def _samconfig(tmp_path: Path, stage: str) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text(
        f"""version = 0.1
[{stage}.deploy.parameters]
region = "{REGION}"
parameter_overrides = [
    "Stage={stage}",
    "PaperTrading=false",
    "ApiKeyParameterName=/crypto-bot/{stage}/exchange-api-key",
    "WebhookTokenParameterName=/crypto-bot/{stage}/webhook-token",
]
""",
        encoding="utf-8",
    )
    return path


def test_pre_deploy_fails_when_a_parameter_the_stack_reads_is_missing(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samconfig = _samconfig(tmp_path, "prod")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/crypto-bot/prod/webhook-token", Type="SecureString", Value="a-long-random-token"
    )
    argv = ["verify", "--pre-deploy", "--config-env", "prod", "--samconfig", str(samconfig)]

    code = main([*argv, "--template", str(ROOT / "template.yaml")])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines()[:2] == [
        "ok    webhook token: /crypto-bot/prod/webhook-token exists and decrypts",
        "FAIL  API key: cannot read the API key /crypto-bot/prod/exchange-api-key from ssm: ParameterNotFound: "
        "every cycle would fail",
    ]
    assert "nothing was deployed" in captured.err


def test_pre_deploy_passes_when_every_parameter_exists(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samconfig = _samconfig(tmp_path, "prod")
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/crypto-bot/prod/webhook-token", Type="SecureString", Value="a-long-random-token")
    ssm.put_parameter(
        Name="/crypto-bot/prod/exchange-api-key",
        Type="SecureString",
        Value=json.dumps({"apiKey": "k", "secret": "s"}),  # pragma: allowlist secret
    )

    code = main(
        [
            "verify",
            "--pre-deploy",
            "--config-env",
            "prod",
            "--samconfig",
            str(samconfig),
            "--template",
            str(ROOT / "template.yaml"),
        ]
    )

    assert code == 0
    assert capsys.readouterr().out.count("ok  ") == 2


@pytest.mark.parametrize(("config_env", "stage"), [("default", "dev"), ("prod", "prod")])
def test_each_samconfig_section_reads_secrets_named_after_its_stage(config_env: str, stage: str) -> None:
    parameters, _region = verify.deploy_parameters(config_env, ROOT / "samconfig.toml", ROOT / "template.yaml")

    assert parameters["Stage"] == stage
    assert parameters["ApiKeyParameterName"] == f"/crypto-bot/{stage}/exchange-api-key"
    assert parameters["WebhookTokenParameterName"] == f"/crypto-bot/{stage}/webhook-token"


def test_the_template_defaults_are_the_default_stage_s_names() -> None:
    parameters, _region = verify.deploy_parameters("default", ROOT / "no-samconfig.toml", ROOT / "template.yaml")

    assert parameters["Stage"] == "dev"
    assert parameters["ApiKeyParameterName"] == "/crypto-bot/dev/exchange-api-key"
    assert parameters["WebhookTokenParameterName"] == "/crypto-bot/dev/webhook-token"
