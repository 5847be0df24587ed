"""The integration tests' worlds: template.yaml's stack under moto, and its table on two DynamoDB engines.

The store's tests run on two engines: moto and Amazon's DynamoDB Local.

A test that takes ``template_table`` runs once on each. Where the two engines disagree, the test follows DynamoDB
Local, Amazon's own engine, and is marked with :func:`moto_disagrees`: it is then expected to fail on moto, and
fails the run if it passes there, so that the note goes when moto changes.

DynamoDB Local is started once per session (its JVM takes a second or two). When Java or the package is missing,
its tests fail under CI (``CI=true``), so that the gate cannot pass without them, and are skipped elsewhere with
the command that installs it.

The local stacks: ``template_stack`` is template.yaml's stack as deployed (its parameter defaults), started once
per module and shared by every test whose needs agree: the store's tests on moto (``moto_table``), the markets
cache and the paper venue's markets. Tests that run trade cycles cannot share one: each needs an account, a lock,
an execution history and handlers that no earlier test touched, and most set parameters or settings of their own;
they start fresh stacks through ``stack_factory`` and the shared harness (tests/support/harness.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

import pytest

from crypto_bot.domain.config import ExecutionMode
from crypto_bot_tools.local.stack import LocalStack, local_stack
from tests.conftest import ROOT, paper_environment
from tests.support.dynamodb_local import (
    DynamoDBLocal,
    Unavailable,
    create_template_table,
    empty_table,
    find_jar,
    find_java,
    running,
)
from tests.support.harness import Pipeline, cycle_stack

TEMPLATE: Final = ROOT / "template.yaml"
BACKENDS: Final = ("moto", "dynamodb-local")


@dataclass(frozen=True)
class TemplateTable:
    """The template's table on one engine: its name and a low-level client that reaches it."""

    name: str
    client: Any


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """Run DynamoDB Local for the session."""
    missing = _missing_dynamodb_local()
    if missing and os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing}. CI runs the store's tests on DynamoDB Local too.", pytrace=False)
    if missing:
        pytest.skip(missing)
    with running() as server:
        yield server


def _missing_dynamodb_local() -> str | None:
    """Say what keeps DynamoDB Local from running here, or return None."""
    try:
        find_jar()
        find_java()
    except Unavailable as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def template_stack() -> Iterator[LocalStack]:
    """Create template.yaml's resources under moto once per module, with the template's defaults."""
    with local_stack(TEMPLATE) as stack:
        yield stack


@pytest.fixture(scope="module")
def moto_table(template_stack: LocalStack) -> TemplateTable:
    """The table of the module's template stack."""
    return TemplateTable(template_stack.resource("Table"), template_stack.client("dynamodb"))


@pytest.fixture(scope="module")
def dynamodb_local_table(dynamodb_local: DynamoDBLocal) -> Iterator[TemplateTable]:
    """Create the template's table on DynamoDB Local once per module, and delete it after."""
    client = dynamodb_local.client()
    name = create_template_table(client, TEMPLATE)
    yield TemplateTable(name, client)
    client.delete_table(TableName=name)


def emptied_table(request: pytest.FixtureRequest, backend: str) -> TemplateTable:
    """Return the template's table on ``backend`` ("moto" or "dynamodb-local"), emptied after the test."""
    table: TemplateTable = request.getfixturevalue(f"{backend.replace('-', '_')}_table")
    request.addfinalizer(lambda: empty_table(table.client, table.name))
    return table


@pytest.fixture(params=BACKENDS)
def template_table(request: pytest.FixtureRequest) -> TemplateTable:
    """The template's table on each engine in turn, emptied after the test."""
    return emptied_table(request, request.param)


@pytest.fixture
def stack_factory() -> Callable[..., AbstractContextManager[Pipeline]]:
    """Return a starter of fresh trade-cycle stacks: paper trading priced by the alerts, ``mode`` as allocation.

    Wait states last 0 s and Retry intervals 1/100 of theirs (tests/support/harness.py); MaxLockWaits 3, so that
    a held lock gives up sooner.
    """

    def start(mode: ExecutionMode = ExecutionMode.BOOST, **parameters: str) -> AbstractContextManager[Pipeline]:
        return cycle_stack(
            parameters={"ExecutionStrategy": mode.value, **parameters},
            substitutions={"MaxLockWaits": "3"},
            environment=paper_environment(),
        )

    return start


def moto_disagrees(reason: str, *, raises: type[BaseException] = AssertionError) -> pytest.MarkDecorator:
    """Run a test that follows DynamoDB Local on both engines, expecting it to fail on moto with ``raises``."""
    expected_failure = pytest.mark.xfail(
        reason=f"moto disagrees with DynamoDB Local: {reason}", raises=raises, strict=True
    )
    return pytest.mark.parametrize(
        "template_table", [pytest.param("moto", marks=expected_failure), "dynamodb-local"], indirect=True
    )
