"""The state machine and the steps agree on names: every key the ASL sends a step or reads from its result.

Offline: the definition is read as it is in the repository (its ``${...}`` placeholders unresolved), each Lambda
Task is traced to its step through template.yaml's DefinitionSubstitutions and the function's CodeUri, and every
``Parameters.Payload`` key and every ``ResultSelector`` path into ``$.Payload`` is checked against the step's
TypedDicts in crypto_bot.entrypoints.contracts.
"""

from __future__ import annotations

import copy
import json
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.entrypoints import steps
from crypto_bot.entrypoints.contracts import CONTRACTS
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
MACHINE = TEMPLATE["Resources"]["TradeCycleStateMachine"]["Properties"]
ASL = ROOT / MACHINE["DefinitionUri"]
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")
# $.Payload, $.Payload.key or $.Payload['key'], then anything deeper.
RESULT_PATH = re.compile(r"^\$\.Payload(?:\.(?P<dotted>[A-Za-z_]\w*)|\['(?P<quoted>[^']+)'\])?")


def load_definition(text: str) -> dict[str, Any]:
    """Parse the ASL as JSON; a ``${...}`` outside a string (a number substituted at deploy) reads as 0."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_string:
            in_string = not (char == '"' and not _escaped_quote(text, i))
        elif char == '"':
            in_string = True
        elif text.startswith("${", i):
            i = text.index("}", i) + 1
            out.append("0")
            continue
        out.append(char)
        i += 1
    definition: dict[str, Any] = json.loads("".join(out))
    return definition


def _escaped_quote(text: str, at: int) -> bool:
    """Say whether the quote at ``at`` is escaped (an odd number of backslashes before it)."""
    backslashes = 0
    while at - backslashes - 1 >= 0 and text[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def step_of_function() -> dict[str, str]:
    """Map each ``${...FunctionArn}`` substitution to the step its function runs (its folder under functions/)."""
    steps_by_key = {}
    for key, value in MACHINE["DefinitionSubstitutions"].items():
        if isinstance(value, Mapping) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
            resource = TEMPLATE["Resources"][logical_id]
            if resource["Type"] == "AWS::Serverless::Function":
                steps_by_key[key] = Path(resource["Properties"]["CodeUri"]).name
    return steps_by_key


@dataclass(frozen=True)
class Invocation:
    state: str
    step: str
    payload: Mapping[str, Any] | None
    """The input the ASL builds, keys with their ``.$`` suffix; None when it cannot be known statically."""
    result_selector: Mapping[str, Any]


def invocations(definition: Mapping[str, Any]) -> Iterator[Invocation]:
    """Yield every Lambda Task of the definition, in nested Maps too, with the input it is sent."""
    functions = step_of_function()

    def walk(states: Mapping[str, Any], items: Mapping[str, Any] | None) -> Iterator[Invocation]:
        for name, state in states.items():
            if state.get("Type") == "Map":
                processor = state.get("ItemProcessor") or state.get("Iterator") or {}
                selector = state.get("ItemSelector", state.get("Parameters"))
                yield from walk(processor.get("States", {}), selector)
            if state.get("Type") != "Task" or not str(state.get("Resource", "")).startswith(LAMBDA_INVOKE):
                continue
            parameters = state.get("Parameters", {})
            match = PLACEHOLDER.match(str(parameters.get("FunctionName", "")))
            assert match, f"{name}: FunctionName is not a ${{...}} substitution"
            assert match.group(1) in functions, f"{name}: {match.group(1)} is not a function's substitution"
            if "Payload" in parameters:
                payload = parameters["Payload"]
            elif parameters.get("Payload.$") == "$" and items is not None:
                payload = items  # a Map's iteration: its input is what the ItemSelector built
            else:
                payload = None
            yield Invocation(name, functions[match.group(1)], payload, state.get("ResultSelector", {}))

    yield from walk(definition["States"], None)


def result_keys(selector: Any) -> Iterator[tuple[str, str | None]]:
    """Yield each ``(path, key)`` a ResultSelector reads from the step's result (key None: the whole result)."""
    if isinstance(selector, Mapping):
        for field, value in selector.items():
            if field.endswith(".$") and isinstance(value, str):
                match = RESULT_PATH.match(value)
                if match:
                    yield value, match.group("dotted") or match.group("quoted")
            else:
                yield from result_keys(value)


def keys_of(contract: type[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """Return a TypedDict's (required, all) keys."""
    required: frozenset[str] = contract.__required_keys__
    optional: frozenset[str] = contract.__optional_keys__
    return required, required | optional


def contract_problems(definition: Mapping[str, Any]) -> list[str]:
    """Check every step invocation against its contracts; return each mismatch, worded."""
    problems = []
    for call in invocations(definition):
        if call.step not in CONTRACTS:
            problems.append(f"{call.state}: step {call.step} has no contract")
            continue
        given, returned = CONTRACTS[call.step]
        required, accepted = keys_of(given)
        if call.payload is None:
            problems.append(f"{call.state}: its Payload cannot be checked (neither an object nor a Map item)")
        else:
            sent = {key.removesuffix(".$") for key in call.payload}
            problems += [f"{call.state}: sends {key!r}, not in {given.__name__}" for key in sorted(sent - accepted)]
            problems += [
                f"{call.state}: omits {key!r}, required by {given.__name__}" for key in sorted(required - sent)
            ]
        _, produced = keys_of(returned)
        for path, key in result_keys(call.result_selector):
            if key is not None and key not in produced:
                problems.append(f"{call.state}: ResultSelector reads {path}, not in {returned.__name__}")
    return problems


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return load_definition(ASL.read_text(encoding="utf-8"))


def test_every_key_the_state_machine_sends_or_reads_is_in_the_steps_contracts(definition: dict[str, Any]) -> None:
    assert contract_problems(definition) == []


def test_every_step_is_invoked_and_every_result_is_read(definition: dict[str, Any]) -> None:
    calls = list(invocations(definition))
    assert {call.step for call in calls} == set(CONTRACTS)
    # Finalize's result is read whole ($.Payload); every other step's by key.
    read = {call.step for call in calls if any(key for _, key in result_keys(call.result_selector))}
    assert read == set(CONTRACTS) - {"finalize"}


@pytest.mark.parametrize("step", sorted(CONTRACTS))
def test_each_step_function_is_annotated_with_its_contracts(step: str) -> None:
    hints = typing.get_type_hints(getattr(steps, step))
    assert (hints["event"], hints["return"]) == CONTRACTS[step]


def test_a_renamed_result_key_is_caught(definition: dict[str, Any]) -> None:
    renamed = copy.deepcopy(definition)
    renamed["States"]["Reconcile"]["ResultSelector"] = {"working.$": "$.Payload.workng"}

    assert contract_problems(renamed) == ["Reconcile: ResultSelector reads $.Payload.workng, not in ReconcileResult"]


def test_a_renamed_or_missing_input_key_is_caught(definition: dict[str, Any]) -> None:
    renamed = copy.deepcopy(definition)
    payload = renamed["States"]["PlanPhase"]["Parameters"]["Payload"]
    payload["cycle.$"] = payload.pop("cycle_id.$")
    renamed["States"]["PlaceOrders"]["ItemSelector"].pop("intent_id.$")

    assert sorted(contract_problems(renamed)) == [
        "PlaceOrder: omits 'intent_id', required by PlaceOrderInput",
        "PlanPhase: omits 'cycle_id', required by PlanInput",
        "PlanPhase: sends 'cycle', not in PlanInput",
    ]


def test_placeholders_outside_strings_read_as_numbers() -> None:
    text = '{"Seconds": ${Wait}, "Name": "${Fn}", "Quote": "a \\" ${x}", "Back": "\\\\", "Next": ${Other}}'
    assert load_definition(text) == {"Seconds": 0, "Name": "${Fn}", "Quote": 'a " ${x}', "Back": "\\", "Next": 0}
