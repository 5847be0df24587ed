"""The local stack (crypto_bot_tools.local.stack and the modules it builds on): the template's resources
emulated by moto, the ASL run with the real handlers.

Everything runs in-process with the network disabled. The fixture stack is
tests/fixtures/local/template.yaml; its state machine is statemachine/demo.asl.json and its
two functions are functions/flaky/app.py and functions/worker/app.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
import urllib3  # noqa: F401 (see below)

from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.local.template import TemplateError

# urllib3 (under botocore) opens a socket to probe IPv6 support when first imported; import it
# at collection so the probe does not trip the socket guard below.

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "local"
TEMPLATE = FIXTURE / "template.yaml"
SECRET_NAME = "/local/secret/exchange-api-key"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module", autouse=True)
def _no_network() -> Iterator[None]:
    # moto is in-process: any socket would be a leak to a real endpoint.
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


def _flaky_calls(stack: LocalStack, since: int) -> list[str]:
    return [logical_id for logical_id, _ in stack.invocations()[since:] if logical_id == "FlakyFunction"]


def _run(stack: LocalStack, execution_input: dict[str, Any]) -> dict[str, Any]:
    return stack.wait_for_execution(stack.start_execution("DemoStateMachine", execution_input), timeout=30)


def _queue_arn(stack: LocalStack, logical_id: str) -> str:
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=stack.resource(logical_id), AttributeNames=["All"])
    return str(attributes["Attributes"]["QueueArn"])


@pytest.fixture(scope="class")
def stack() -> Iterator[LocalStack]:
    """The fixture stack, with no waiting: Wait states last 0 s and Retry intervals are scaled to 0."""
    with local_stack(
        TEMPLATE,
        substitution_overrides={"WaitSeconds": "0"},
        environment={"LOCAL_EXTRA": "from-the-kwarg"},
        ssm_values={SECRET_NAME: "s3cr3t"},
        retry_interval_scale=0,
    ) as stack:
        yield stack


class TestFixtureStack:
    """One stack for these tests (building it is the slow part); each test uses its own order ids."""

    def test_resources_get_cloudformation_like_physical_names(self, stack: LocalStack) -> None:
        assert re.fullmatch(r"local-OrdersTable-[0-9A-F]{12}", stack.resource("OrdersTable"))
        assert re.fullmatch(rf"https://.*/{ACCOUNT}/local-WorkQueue-[0-9A-F]{{12}}", stack.resource("WorkQueue"))
        assert re.fullmatch(rf"arn:aws:sns:us-east-1:{ACCOUNT}:local-AlertsTopic-\w+", stack.resource("AlertsTopic"))
        assert stack.resource("SettingsParameter") == "/local/test/settings"  # its Name is given: !Sub
        assert re.fullmatch(r"local-FlakyFunction-[0-9A-F]{12}", stack.resource("FlakyFunction"))
        assert re.fullmatch(
            rf"arn:aws:states:.*:{ACCOUNT}:stateMachine:local-DemoStateMachine-\w+", stack.resource("DemoStateMachine")
        )

    def test_unsupported_types_are_skipped_and_false_conditions_not_created(self, stack: LocalStack) -> None:
        assert sorted(stack.skipped) == [
            ("FunctionRole", "AWS::IAM::Role"),
            ("QueueDepthAlarm", "AWS::CloudWatch::Alarm"),
            ("WebhookApi", "AWS::Serverless::Api"),
        ]
        with pytest.raises(KeyError, match="ProdOnlyQueue.*no such resource"):
            stack.resource("ProdOnlyQueue")
        with pytest.raises(KeyError, match=r"WebhookApi.*AWS::Serverless::Api is not emulated"):
            stack.resource("WebhookApi")

    def test_table_matches_the_template(self, stack: LocalStack) -> None:
        dynamodb = stack.client("dynamodb")
        table = dynamodb.describe_table(TableName=stack.resource("OrdersTable"))["Table"]
        assert table["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["ByStatus"]
        assert table["GlobalSecondaryIndexes"][0]["KeySchema"][0] == {"AttributeName": "status", "KeyType": "HASH"}
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSEDescription"]["Status"] == "ENABLED"
        ttl = dynamodb.describe_time_to_live(TableName=stack.resource("OrdersTable"))["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}

    def test_queues_match_the_template(self, stack: LocalStack) -> None:
        sqs = stack.client("sqs")
        work = sqs.get_queue_attributes(QueueUrl=stack.resource("WorkQueue"), AttributeNames=["All"])["Attributes"]
        redrive = json.loads(work["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 3
        assert redrive["deadLetterTargetArn"] == _queue_arn(stack, "DeadLetterQueue")
        assert work["VisibilityTimeout"] == "60"
        assert work["SqsManagedSseEnabled"] == "true"
        dlq = sqs.get_queue_attributes(QueueUrl=stack.resource("DeadLetterQueue"), AttributeNames=["All"])
        assert dlq["Attributes"]["MessageRetentionPeriod"] == "1209600"

    def test_topic_and_parameters_match_the_template(self, stack: LocalStack) -> None:
        topic = stack.client("sns").get_topic_attributes(TopicArn=stack.resource("AlertsTopic"))["Attributes"]
        assert topic["DisplayName"] == "local alerts"
        ssm = stack.client("ssm")
        settings = ssm.get_parameter(Name="/local/test/settings")["Parameter"]
        assert (settings["Type"], settings["Value"]) == ("String", "paper")  # !FindInMap on the Stage
        secret = ssm.get_parameter(Name=SECRET_NAME, WithDecryption=True)["Parameter"]
        assert (secret["Type"], secret["Value"]) == ("SecureString", "s3cr3t")

    def test_function_environment_is_resolved_to_physical_names(self, stack: LocalStack) -> None:
        configuration = stack.client("lambda").get_function_configuration(FunctionName=stack.resource("FlakyFunction"))
        variables = configuration["Environment"]["Variables"]
        api_url = variables.pop("API_URL")
        assert variables == {
            "STAGE": "test",  # from Globals
            "TABLE_NAME": stack.resource("OrdersTable"),
            "QUEUE_URL": stack.resource("WorkQueue"),
            "QUEUE_NAME": stack.resource("WorkQueue").rsplit("/", 1)[1],
            "DLQ_ARN": _queue_arn(stack, "DeadLetterQueue"),
            "TOPIC_ARN": stack.resource("AlertsTopic"),
            "SETTINGS_PARAMETER": "/local/test/settings",
            "WHERE": f"us-east-1:{ACCOUNT}:aws",
            "QUEUE_ARN_VIA_SUB": _queue_arn(stack, "WorkQueue"),
            "MODE": "paper",  # !If on a false condition; EXTRA is AWS::NoValue, so absent
            "LOCAL_EXTRA": "from-the-kwarg",
            "SQS_WAIT_SECONDS": "0",  # the harness's own default: moto cannot answer a false empty
        }
        # A skipped resource still has a Ref, so URLs built from it resolve.
        assert re.fullmatch(r"https://local-WebhookApi-\w+\.execute-api\.us-east-1\.amazonaws\.com/Prod", api_url)
        assert (configuration["Timeout"], configuration["MemorySize"], configuration["Handler"]) == (
            10,
            256,
            "app.lambda_handler",
        )

    def test_state_machine_definition_is_substituted(self, stack: LocalStack) -> None:
        described = stack.client("stepfunctions").describe_state_machine(
            stateMachineArn=stack.resource("DemoStateMachine")
        )
        states = json.loads(described["definition"])["States"]
        assert states["Pause"]["Seconds"] == 0  # substitution_overrides beat the template's ${WaitSeconds}
        assert states["Claim"]["Parameters"]["TableName"] == stack.resource("OrdersTable")
        work = states["Fanout"]["ItemProcessor"]["States"]["Work"]
        assert work["Resource"].endswith(f":function:{stack.resource('WorkerFunction')}")

    def test_retry_on_the_handlers_exception_class_then_success(self, stack: LocalStack) -> None:
        since = len(stack.invocations())
        result = _run(stack, {"orderId": "retried", "failures": 2})

        assert result["status"] == "SUCCEEDED"
        output = json.loads(result["output"])["result"]
        assert output["source"] == "flaky"
        assert output["attempts"] == 3
        assert output["function"] == stack.resource("FlakyFunction")
        assert 0 < output["remainingMs"] <= 10_000
        # The handler saw its resolved environment while it ran...
        assert output["env"] == {
            "TABLE_NAME": stack.resource("OrdersTable"),
            "QUEUE_URL": stack.resource("WorkQueue"),
            "STAGE": "test",
            "MODE": "paper",
            "LOCAL_EXTRA": "from-the-kwarg",
        }
        # ...which is not left behind in this process.
        assert "TABLE_NAME" not in os.environ
        assert _flaky_calls(stack, since) == ["FlakyFunction"] * 3
        failures = [e["taskFailedEventDetails"] for e in result["history"] if e["type"] == "TaskFailed"]
        assert [f["error"] for f in failures] == ["FlakyError", "FlakyError"]
        assert json.loads(failures[0]["cause"])["errorMessage"] == "attempt 1 of order retried failed"

        # The direct SDK integrations ran too: the claim is in the table, the result in the queue.
        claimed = stack.client("dynamodb").query(
            TableName=stack.resource("OrdersTable"),
            IndexName="ByStatus",
            KeyConditionExpression="#s = :s AND pk = :pk",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "claimed"}, ":pk": {"S": "retried"}},
        )
        assert claimed["Count"] == 1
        messages = stack.client("sqs").receive_message(QueueUrl=stack.resource("WorkQueue"), MaxNumberOfMessages=10)
        assert [json.loads(m["Body"]) for m in messages["Messages"]] == [output]

    def test_retries_exhausted_fail_the_execution_with_the_error_name(self, stack: LocalStack) -> None:
        since = len(stack.invocations())
        result = _run(stack, {"orderId": "hopeless", "failures": 5})

        assert result["status"] == "FAILED"
        assert result["error"] == "FlakyError"
        assert json.loads(result["cause"])["errorType"] == "FlakyError"
        assert _flaky_calls(stack, since) == ["FlakyFunction"] * 3  # the first try and MaxAttempts 2

    def test_catch_on_a_custom_error_routes_to_the_fail_safe_branch(self, stack: LocalStack) -> None:
        since = len(stack.invocations())
        result = _run(stack, {"orderId": "rejected", "permanent": True})

        assert result["status"] == "FAILED"
        assert (result["error"], result["cause"]) == ("OrderAbandoned", "the handler reported a permanent error")
        entered = [e["stateEnteredEventDetails"]["name"] for e in result["history"] if e["type"] == "FailStateEntered"]
        assert entered == ["FailSafe"]
        assert _flaky_calls(stack, since) == ["FlakyFunction"]  # PermanentError is not retried

    def test_condition_check_failure_is_caught_by_its_dynamodb_error_name(self, stack: LocalStack) -> None:
        first = _run(stack, {"orderId": "twice"})
        since = len(stack.invocations())
        second = _run(stack, {"orderId": "twice"})

        assert first["status"] == second["status"] == "SUCCEEDED"
        assert json.loads(second["output"]) == {"orderId": "twice", "status": "duplicate"}
        assert _flaky_calls(stack, since) == []

    def test_map_calls_a_function_per_item_and_the_two_app_modules_do_not_collide(self, stack: LocalStack) -> None:
        _run(stack, {"orderId": "before-map"})  # the flaky app.py is loaded by now
        since = len(stack.invocations())
        result = _run(stack, {"kind": "fanout", "items": [1, 2, 3]})

        assert result["status"] == "SUCCEEDED"
        assert json.loads(result["output"])["results"] == [
            {"source": "worker", "item": item, "doubled": 2 * item} for item in (1, 2, 3)
        ]
        assert [logical_id for logical_id, _ in stack.invocations()[since:]] == ["WorkerFunction"] * 3
        # Both handlers are app.py; each is loaded under its own module name, neither shadows the other.
        loaded: dict[str, str] = {}
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).is_relative_to(FIXTURE / "functions"):
                loaded[name] = f"{Path(file).parent.name}/{Path(file).name}: {module.SOURCE}"
        assert sorted(loaded.values()) == ["flaky/app.py: flaky", "worker/app.py: worker"]

    def test_direct_invoke_reports_a_function_error_like_lambda(self, stack: LocalStack) -> None:
        response = stack.client("lambda").invoke(
            FunctionName=stack.resource("FlakyFunction"), Payload=json.dumps({"orderId": "direct", "permanent": True})
        )
        assert response["FunctionError"] == "Unhandled"
        payload = json.loads(response["Payload"].read())
        assert (payload["errorType"], payload["errorMessage"]) == ("PermanentError", "order direct is rejected")
        assert "app.py" in payload["stackTrace"][0]

        durations = [seconds for logical_id, seconds in stack.invocations() if logical_id == "FlakyFunction"]
        assert all(seconds >= 0 for seconds in durations)

    def test_a_second_stack_cannot_start_while_one_runs(self, stack: LocalStack) -> None:
        with pytest.raises(RuntimeError, match="already running"), local_stack(TEMPLATE):
            pass


def test_parameters_conditions_and_real_retry_waits() -> None:
    before = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION")}
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original_invoke = LambdaSimpleBackend.invoke

    with local_stack(TEMPLATE, parameters={"Stage": "prod", "WaitSeconds": "0"}, region="eu-west-1") as stack:
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert os.environ["AWS_ACCESS_KEY_ID"] in ("testing", "FOOBARKEY")  # ours, or moto's own fake
        assert stack.resource("ProdOnlyQueue").startswith("https://")  # its condition holds now
        assert stack.client("ssm").get_parameter(Name="/local/prod/settings")["Parameter"]["Value"] == "live"
        function = stack.client("lambda").get_function_configuration(FunctionName=stack.resource("FlakyFunction"))
        assert function["Environment"]["Variables"]["MODE"] == "live"
        assert function["Environment"]["Variables"]["EXTRA"] == "set"
        assert ":eu-west-1:" in function["FunctionArn"]

        started = time.monotonic()
        result = _run(stack, {"orderId": "slow", "failures": 1})
        assert result["status"] == "SUCCEEDED"
        assert time.monotonic() - started >= 1  # one retry after IntervalSeconds 1, unscaled

    assert {name: os.environ.get(name) for name in before} == before
    assert LambdaSimpleBackend.invoke is original_invoke
    assert not [name for name in sys.modules if name.startswith("_crypto_bot_local_")]


def test_exit_stops_executions_still_running() -> None:
    started = time.monotonic()
    with local_stack(TEMPLATE) as stack:  # the template's Wait is 30 s
        execution_arn = stack.start_execution("DemoStateMachine", {"orderId": "abandoned"}, name="left-running")
        assert execution_arn.endswith(":left-running")
        time.sleep(0.2)
        status = stack.client("stepfunctions").describe_execution(executionArn=execution_arn)["status"]
        assert status == "RUNNING"
    assert time.monotonic() - started < 10


def _write_template(tmp_path: Path, environment_value: str) -> Path:
    template = tmp_path / "template.yaml"
    template.write_text(
        f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue:
    Type: AWS::SQS::Queue
  BadFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {FIXTURE / "functions" / "worker"}
      Handler: app.lambda_handler
      Environment:
        Variables:
          QUEUE: {environment_value}
""",
        encoding="utf-8",
    )
    return template


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "!GetAtt Queue.Nope",
            r"BadFunction, property Environment\.Variables\.QUEUE: Fn::GetAtt Queue\.Nope: .*"
            r"has no attribute 'Nope'.*known attributes: Arn, QueueName, QueueUrl",
        ),
        ("!Ref Missing", r"BadFunction, property Environment\.Variables\.QUEUE: Ref Missing: no parameter or resource"),
        ("!ImportValue shared-queue", r"BadFunction, property Environment\.Variables\.QUEUE: Fn::ImportValue cannot"),
    ],
)
def test_unresolvable_references_name_the_resource_and_property(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message), local_stack(_write_template(tmp_path, value)):
        pass


def test_template_errors_leave_nothing_patched(tmp_path: Path) -> None:
    with (
        pytest.raises(TemplateError, match="parameters \\['Nope'\\] are not declared"),
        local_stack(TEMPLATE, parameters={"Nope": "x"}),
    ):
        pass
    # The lock and the environment are released: a good stack starts right after.
    with local_stack(_write_template(tmp_path, "!GetAtt Queue.QueueName")) as stack:
        variables = stack.client("lambda").get_function_configuration(FunctionName=stack.resource("BadFunction"))
        assert variables["Environment"]["Variables"]["QUEUE"].startswith("local-Queue-")
