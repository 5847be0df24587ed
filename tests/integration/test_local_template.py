"""The local stack's resources are template.yaml's: read back from moto, compared with the template."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]


def of_type(kind: str) -> list[str]:
    return [logical_id for logical_id, resource in RESOURCES.items() if resource["Type"] == kind]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(ROOT / "template.yaml") as created:
        yield created


def function_arn(stack: LocalStack, logical_id: str) -> str:
    configuration = stack.client("lambda").get_function(FunctionName=stack.resource(logical_id))["Configuration"]
    return str(configuration["FunctionArn"])


def resolve(stack: LocalStack, value: Any) -> str:
    """Resolve the few intrinsics the template's substitutions and variables use, independently of the stack code."""
    if isinstance(value, str | int | float):
        return str(value)
    if "Ref" in value:
        name = value["Ref"]
        return str(PARAMETERS[name]["Default"]) if name in PARAMETERS else stack.resource(name)
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn"
        return function_arn(stack, logical_id)
    raise AssertionError(f"unexpected intrinsic {value!r}")


def test_table_key_schema_index_and_ttl_are_the_templates(stack: LocalStack) -> None:
    table = RESOURCES["Table"]["Properties"]
    dynamodb = stack.client("dynamodb")

    description = dynamodb.describe_table(TableName=stack.resource("Table"))["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.resource("Table"))["TimeToLiveDescription"]

    assert description["KeySchema"] == table["KeySchema"]
    assert sorted(description["AttributeDefinitions"], key=str) == sorted(table["AttributeDefinitions"], key=str)
    assert description["BillingModeSummary"]["BillingMode"] == PARAMETERS["TableBillingMode"]["Default"]
    [index] = description["GlobalSecondaryIndexes"]
    [expected] = table["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"], index["Projection"]) == (
        expected["IndexName"],
        expected["KeySchema"],
        expected["Projection"],
    )
    assert ttl == {"AttributeName": table["TimeToLiveSpecification"]["AttributeName"], "TimeToLiveStatus": "ENABLED"}


@pytest.mark.parametrize("logical_id", of_type("AWS::SQS::Queue"))
def test_queue_attributes_and_redrive_policy_are_the_templates(stack: LocalStack, logical_id: str) -> None:
    queue = RESOURCES[logical_id]["Properties"]
    sqs = stack.client("sqs")

    attributes = sqs.get_queue_attributes(QueueUrl=stack.resource(logical_id), AttributeNames=["All"])["Attributes"]

    assert attributes["MessageRetentionPeriod"] == str(queue["MessageRetentionPeriod"])
    assert attributes["VisibilityTimeout"] == str(queue.get("VisibilityTimeout", 30))
    if "RedrivePolicy" not in queue:
        assert "RedrivePolicy" not in attributes
        return
    redrive = json.loads(attributes["RedrivePolicy"])
    dead_letter = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=stack.resource(dead_letter), AttributeNames=["QueueArn"])
    assert redrive["deadLetterTargetArn"] == dead_letter_arn["Attributes"]["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == queue["RedrivePolicy"]["maxReceiveCount"]


def test_state_machine_definition_is_the_file_with_the_templates_substitutions(stack: LocalStack) -> None:
    machine = RESOURCES["TradeCycleStateMachine"]["Properties"]
    text = (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")
    values = {name: resolve(stack, value) for name, value in machine["DefinitionSubstitutions"].items()}

    expected = json.loads(re.sub(r"\$\{([^}]*)\}", lambda m: values[m.group(1)], text))
    described = stack.client("stepfunctions").describe_state_machine(
        stateMachineArn=stack.resource("TradeCycleStateMachine")
    )

    assert json.loads(described["definition"]) == expected
    assert described["type"] == machine["Type"]


# The parameter defaults create no conditional function (the chat forwarder: tests/integration/test_chat_cycle.py).
@pytest.mark.parametrize(
    "logical_id", [f for f in of_type("AWS::Serverless::Function") if "Condition" not in RESOURCES[f]]
)
def test_function_handler_settings_and_environment_are_the_templates(stack: LocalStack, logical_id: str) -> None:
    function = RESOURCES[logical_id]["Properties"]
    configuration = stack.client("lambda").get_function(FunctionName=stack.resource(logical_id))["Configuration"]
    variables = {**GLOBALS["Environment"]["Variables"], **(function.get("Environment") or {}).get("Variables", {})}

    assert configuration["Handler"] == function["Handler"]
    assert configuration["Runtime"] == GLOBALS["Runtime"]
    assert configuration["Timeout"] == function.get("Timeout", GLOBALS["Timeout"])
    assert configuration["MemorySize"] == function.get("MemorySize", GLOBALS["MemorySize"])
    configured = configuration["Environment"]["Variables"]
    # The local stack may add settings of its own (e.g. no SQS long-poll wait), never change the template's.
    assert {name: configured.get(name) for name in variables} == {
        name: resolve(stack, value) for name, value in variables.items()
    }


def test_every_resource_the_pipeline_needs_is_emulated_and_the_rest_is_named(stack: LocalStack) -> None:
    skipped = {kind for _logical_id, kind in stack.skipped}

    assert set(of_type("AWS::SQS::Queue")) | {"Table", "TradeCycleStateMachine", "NotificationsTopic"} <= set(
        stack.outputs
    )
    # API Gateway, the pipe and the schedule are what `crypto-bot local` emulates itself.
    assert {"AWS::Serverless::Api", "AWS::Pipes::Pipe"} <= skipped
