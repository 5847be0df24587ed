"""Offline checks of the trade-cycle definition against the template and the code."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from crypto_bot.domain import errors
from crypto_bot.entrypoints.handler import TransientError, wire_error
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
MACHINE = TEMPLATE["Resources"]["TradeCycleStateMachine"]["Properties"]
DEFINITION_TEXT = (ROOT / MACHINE["DefinitionUri"]).read_text(encoding="utf-8")
SUBSTITUTIONS: dict[str, Any] = MACHINE["DefinitionSubstitutions"]


def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DEFINITION_TEXT)
    return loaded


def all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(states)
    for state in states.values():
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(all_states(processor["States"]))
        for branch in state.get("Branches", []):
            found.update(all_states(branch["States"]))
    return found


STATES = all_states(definition()["States"])

# Error names Step Functions itself raises, and the service-integration prefixes in use.
STATES_ERRORS = {
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Runtime",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ParameterPathFailure",
    "States.BranchFailed",
    "States.NoChoiceMatched",
    "States.IntrinsicFailure",
    "States.ExceedToleratedFailureThreshold",
    "States.ItemReaderFailed",
    "States.ResultWriterFailed",
}
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
}
PROJECT_ERRORS = {
    name for name, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.CryptoBotError)
} | {TransientError.__name__}
TRANSIENT = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if (issubclass(cls, errors.ExchangeError) and cls.transient)
    or issubclass(cls, errors.StoreUnavailable | errors.StoreConflict)
]
PERMANENT = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.CryptoBotError) and cls not in TRANSIENT
]


def make(cls: type[Exception]) -> Exception:
    if issubclass(cls, errors.InputError):
        problem = errors.FieldProblem("side", "hold", "is not buy or sell")
        return cls([problem]) if cls is errors.SignalRejected else cls("alert", [problem])
    return cls("the venue said no")


@pytest.mark.parametrize("cls", TRANSIENT, ids=lambda cls: cls.__name__)
def test_handlers_raise_every_transient_error_under_the_one_name_the_retries_list(cls: type[Exception]) -> None:
    wired = wire_error(make(cls))
    assert type(wired) is TransientError
    assert str(wired) == f"{cls.__name__}: the venue said no"


@pytest.mark.parametrize("cls", PERMANENT, ids=lambda cls: cls.__name__)
def test_handlers_raise_permanent_errors_as_they_are(cls: type[Exception]) -> None:
    error = make(cls)
    assert wire_error(error) is error


def test_the_definition_is_json_before_substitution() -> None:
    # Editors and Workflow Studio open the file as it is, so a placeholder may only sit inside a string.
    json.loads(DEFINITION_TEXT)
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', DEFINITION_TEXT)
    assert "${" not in outside_strings


def test_every_wait_and_lock_limit_is_a_number_from_a_substitution() -> None:
    waits = definition()["States"]["Collect"]["ResultSelector"]["waits"]
    for key, intrinsic in waits.items():
        name = re.fullmatch(r"States\.StringToJson\('\$\{(\w+)\}'\)", intrinsic)
        assert name, f"{key}: {intrinsic}"
        assert key.removesuffix(".$") == re.sub(r"(?<!^)(?=[A-Z])", "_", name.group(1)).lower()
        value = SUBSTITUTIONS[name.group(1)]
        # StringToJson of anything else than digits fails the execution when it reaches Collect, not at deploy.
        is_number = isinstance(value, dict) and TEMPLATE["Parameters"][value["Ref"]]["Type"] == "Number"
        assert is_number or str(value).isdigit(), f"{name.group(1)}: {value!r} is not a whole number"
    paths = {state.get("SecondsPath") for state in STATES.values()}
    paths |= {c.get("NumericGreaterThanEqualsPath") for s in STATES.values() for c in s.get("Choices", [])}
    assert {f"$.waits.{key.removesuffix('.$')}" for key in waits} == paths - {None}


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", DEFINITION_TEXT))
    assert used == set(SUBSTITUTIONS)


def test_every_next_and_default_names_an_existing_state() -> None:
    targets = []
    for state in STATES.values():
        targets += [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Choices", []) + state.get("Catch", [])]
    assert {t for t in targets if t} <= set(STATES)


def test_every_state_is_reachable_from_the_start() -> None:
    top = definition()
    seen, todo = set(), [top["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = STATES[name]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [c.get("Next") for c in state.get("Choices", []) + state.get("Catch", [])]
        processor = state.get("ItemProcessor")
        if processor:
            nexts.append(processor["StartAt"])
        todo += [n for n in nexts if n]
    assert seen == set(STATES)


def service_errors(service: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    return {shape.name for shape in model.error_shapes}


# The optimized DynamoDB integration names errors DynamoDB.<service error code>;
# AWS SDK integrations name them <Service>.<code>, with "Exception" appended if missing.
DYNAMODB_ERRORS = {f"DynamoDB.{code}" for code in service_errors("dynamodb") | {"ThrottlingException"}} | {
    "DynamoDB.AmazonDynamoDBException"
}
SFN_SDK_ERRORS = {
    f"Sfn.{code}" if code.endswith("Exception") else f"Sfn.{code}Exception" for code in service_errors("stepfunctions")
}


@pytest.mark.parametrize("name", sorted(STATES))
def test_every_error_name_is_real(name: str) -> None:
    state = STATES[name]
    known = STATES_ERRORS | LAMBDA_ERRORS | PROJECT_ERRORS | DYNAMODB_ERRORS | SFN_SDK_ERRORS
    for rule in state.get("Retry", []) + state.get("Catch", []):
        for error in rule["ErrorEquals"]:
            assert error in known, f"{name}: {error} is not an error Step Functions can raise here"


def lambda_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in STATES.items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"]


@pytest.mark.parametrize(("name", "state"), lambda_tasks())
def test_lambda_tasks_retry_the_one_transient_error_name(name: str, state: dict[str, Any]) -> None:
    retried = {e for rule in state.get("Retry", []) for e in rule["ErrorEquals"]}
    # The handlers raise every transient error as TransientError (crypto_bot.entrypoints.handler.wire_error).
    assert TransientError.__name__ in retried, f"{name} does not retry transient errors"
    assert not retried & {cls.__name__ for cls in TRANSIENT}, f"{name}: the handlers never raise these names"
    assert not retried & {"States.ALL", "States.TaskFailed"}, f"{name} retries permanent errors too"


@pytest.mark.parametrize(("name", "state"), lambda_tasks())
def test_every_lambda_task_invokes_a_function_of_the_template(name: str, state: dict[str, Any]) -> None:
    placeholder = re.fullmatch(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"])
    assert placeholder, f"{name}: FunctionName must be a substitution"
    value = SUBSTITUTIONS[placeholder.group(1)]
    logical_id = value["Fn::GetAtt"][0] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".")[0]
    assert TEMPLATE["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"


def test_every_function_of_the_template_has_a_handler_file() -> None:
    for logical_id, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            code = ROOT / resource["Properties"]["CodeUri"] / "app.py"
            assert code.is_file(), f"{logical_id}: {code} is missing"
            assert resource["Properties"]["Handler"] == "app.lambda_handler"


def test_every_task_outside_a_failure_path_is_caught() -> None:
    for name, state in STATES.items():
        if state["Type"] != "Task" or name in ("PlaceOrder",):
            continue
        assert state.get("Catch"), f"{name} has no Catch: a failure would leave the lock held"


def test_the_schedule_and_the_core_agree_on_the_definition_path() -> None:
    assert Path(MACHINE["DefinitionUri"]) == Path("statemachine/trade_cycle.asl.json")
