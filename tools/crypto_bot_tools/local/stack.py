"""Emulate the SAM template's AWS resources in-process with moto, with no AWS account.

:func:`local_stack` reads ``template.yaml`` (so the local stack cannot drift from the deployed one), creates
the supported resources under ``moto.mock_aws`` (:mod:`~crypto_bot_tools.local.builder`) and routes every
Lambda invocation of the template's functions to the real Python handler, in this process
(:mod:`~crypto_bot_tools.local.lambdas`). Step Functions executions run the real Amazon States Language
definition with moto's interpreter, so Retry, Catch, Choice, Map, Wait and the direct SDK integrations
(``dynamodb:putItem``, ``aws-sdk:sqs:*``...) behave as they do on AWS.

Everything that is patched (environment variables, moto's Lambda backend, imported handler modules) is
restored when the context manager exits.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from crypto_bot_tools.local.builder import StackBuilder
from crypto_bot_tools.local.lambdas import LambdaRouter, patched_environ
from crypto_bot_tools.local.template import load_template

__all__ = ["LocalStack", "local_stack"]


@dataclass
class LocalStack:
    """The emulated stack: physical names of the created resources and helpers to drive it."""

    region: str
    # Logical id -> what `!Ref` gives: table/function/parameter name, queue URL, topic/state machine ARN.
    outputs: dict[str, str]
    # Resources of types that are not emulated: (logical id, type).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _router: LambdaRouter | None = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def resource(self, logical_id: str) -> str:
        """Return the physical name or ARN (queue: URL) of a created resource."""
        try:
            return self.outputs[logical_id]
        except KeyError:
            skipped = dict(self.skipped)
            why = f"its type {skipped[logical_id]} is not emulated" if logical_id in skipped else "no such resource"
            raise KeyError(f"{logical_id}: not created in the local stack ({why})") from None

    def client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` bound to the mock, in the stack's region."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def start_execution(self, state_machine_logical_id: str, input: dict[str, Any], name: str | None = None) -> str:
        """Start an execution of a template state machine and return its ARN."""
        # moto does not make up a name; AWS would, and names must be unique per state machine.
        name = name or f"{state_machine_logical_id[:40]}-{uuid.uuid4().hex}"
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.resource(state_machine_logical_id), name=name, input=json.dumps(input)
        )
        return str(response["executionArn"])

    def wait_for_execution(self, execution_arn: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until an execution is no longer RUNNING; return describe_execution's output plus its "history"."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout} s")
            time.sleep(0.02)
        description.pop("ResponseMetadata", None)
        history: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
            history.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        description["history"] = history
        return description

    def invocations(self) -> list[tuple[str, float]]:
        """Return (function logical id, duration in seconds) of every Lambda invocation so far, in order."""
        return list(self._router.invocations) if self._router else []


_active = threading.Lock()  # moto's backends are process-wide: one local stack at a time


@contextmanager
def local_stack(
    template_path: Path,
    *,
    parameters: Mapping[str, str] | None = None,
    substitution_overrides: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    ssm_values: Mapping[str, str] | None = None,
    region: str = "us-east-1",
    retry_interval_scale: float = 1.0,
) -> Iterator[LocalStack]:
    """Create the template's resources under moto and yield the stack; tear everything down on exit.

    ``parameters`` override the template's parameter defaults; ``substitution_overrides`` win over
    every state machine's DefinitionSubstitutions (e.g. to shorten Wait states); ``environment`` is
    merged over every function's Environment.Variables; ``ssm_values`` (name -> value) are put as
    SecureString parameters before anything else, since CloudFormation cannot create those.
    ``retry_interval_scale`` multiplies the sleeps of Step Functions Retry (0 retries at once).
    """
    from moto import mock_aws

    if retry_interval_scale < 0:
        raise ValueError(f"retry_interval_scale must be >= 0, got {retry_interval_scale}")
    template_path = Path(template_path).resolve()
    document = load_template(template_path)
    if not _active.acquire(blocking=False):
        raise RuntimeError("a local_stack is already running in this process; nesting them is not supported")
    try:
        with ExitStack() as exits:
            exits.enter_context(_fake_aws_environment(region))
            exits.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
            )
            router = LambdaRouter(region)
            exits.enter_context(router.installed())
            if retry_interval_scale != 1.0:
                exits.enter_context(_scaled_retry_sleep(retry_interval_scale))
            stack = LocalStack(region=region, outputs={}, _router=router)
            builder = StackBuilder(
                stack,
                router,
                template_path,
                document,
                parameters=parameters or {},
                substitution_overrides=substitution_overrides or {},
                # moto answers a receive from every message it holds, so the long poll that protects
                # a real queue from false empties would only add a second's wait to every drain here.
                environment={"SQS_WAIT_SECONDS": "0", **(environment or {})},
                ssm_values=ssm_values or {},
            )
            builder.build()
            exits.callback(_stop_running_executions, stack, router)
            yield stack
    finally:
        _active.release()


@contextmanager
def _fake_aws_environment(region: str) -> Iterator[None]:
    """Point boto3 at fake credentials and the stack's region, never at a real account or endpoint."""
    with patched_environ(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 (moto's documented fake)  # pragma: allowlist secret
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # A profile or endpoint override would send boto3 elsewhere than moto.
            "AWS_PROFILE": None,
            "AWS_DEFAULT_PROFILE": None,
            "AWS_ENDPOINT_URL": None,
        }
    ):
        yield


@contextmanager
def _scaled_retry_sleep(scale: float) -> Iterator[None]:
    """Scale the real-time sleep moto's Step Functions interpreter does between Retry attempts."""
    from unittest import mock

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    def sleep(seconds: float) -> None:
        time.sleep(seconds * scale)

    with mock.patch.object(retrier_decl, "time", SimpleNamespace(sleep=sleep)):
        yield


def _stop_running_executions(stack: LocalStack, router: LambdaRouter) -> None:
    """Stop executions still running, so their threads do not call AWS after the mock is gone."""
    sfn = stack.client("stepfunctions")
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"])
    # A stopped execution does not interrupt a handler already running: let it finish under the mock.
    router.wait_idle(timeout=10)
