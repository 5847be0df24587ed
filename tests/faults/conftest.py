"""Fixtures of the fault suite, and the figures it publishes in the reliability report (tests/faults/report.py)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.faults.harness import Case, Fault, fault_stack
from tests.faults.report import measured_line, write_section

FAULTS_DIR = Path(__file__).resolve().parent
# Figures the end-to-end abuse and load tests (tests/e2e/test_abuse.py, test_burst.py) leave for this report.
FIGURES_DIR = ROOT / ".build" / "reliability"
# Imported at collection, before any test runs: a figures file written later is from this run.
_SESSION_STARTED = time.time()


@dataclass
class Outcome:
    passed: bool
    result: str
    faults: list[Fault] = field(default_factory=list)
    survived: list[bool] | None = None  # per fault; None when the invariants never ran
    redeliveries: int = 0
    duplicates: int = 0
    lost: int = 0


_outcomes: dict[str, Outcome] = {}
_cases: dict[str, Case] = {}
_collected: set[str] = set()
_deselected: list[str] = []


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """Yield a fresh stack per case (about a second to start), so no state leaks between cases."""
    substitutions = getattr(request, "param", {})
    with fault_stack(**substitutions) as current:
        _cases[request.node.nodeid] = current
        yield current


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _collected.update(item.nodeid for item in items if _is_case(item))


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items if _is_case(item))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _collected or report.when != "call":
        return
    case = _cases.pop(report.nodeid, None)
    result = "passed" if report.passed else "FAILED"
    if hasattr(report, "wasxfail"):
        result = f"known defect (strict xfail): {report.wasxfail}"
    if case is None:
        _outcomes[report.nodeid] = Outcome(passed=report.passed, result=result)
        return
    _outcomes[report.nodeid] = Outcome(
        passed=report.passed,
        result=result,
        faults=list(case.injected),
        survived=case.survived(),
        redeliveries=case.redeliveries,
        duplicates=max(case.duplicates, 0),
        lost=max(case.lost, 0),
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Only a full run of the suite may speak for it: not a -k selection, not one file.
    modules = {p.name for p in FAULTS_DIR.glob("test_*_faults.py")}
    ran_modules = {nodeid.split("::")[0].rsplit("/", 1)[-1] for nodeid in _outcomes}
    if _deselected or not _outcomes or ran_modules != modules or set(_outcomes) != _collected:
        return
    write_section("faults", fault_section(_outcomes))
    write_section("e2e", _e2e_sections())


def fault_section(outcomes: dict[str, Outcome]) -> list[str]:
    """Return the fault suite's section from the outcomes of a full run."""
    faults = [f for o in outcomes.values() for f in o.faults]
    survived = sum(sum(o.survived) for o in outcomes.values() if o.survived is not None)
    unchecked = sum(len(o.faults) for o in outcomes.values() if o.survived is None)
    kinds = Counter(f.kind.value for f in faults)
    known = outcomes.values()
    lines = [
        "## Fault suite (tests/faults)",
        "",
        measured_line(),
        "",
        "Each case runs real trade cycles through the executed state machine on the emulated stack",
        "(`crypto_bot_tools.local.stack.local_stack`, the template's `IncrementPct`, Step Functions Retry intervals",
        "at 1/100 of their length) with a paper exchange, injects faults, and then checks every invariant",
        "of `tests/faults/harness.py::check_invariants`.",
        "",
        "- A fault is counted where it fired, and only if an error was really raised into the bot or a",
        "  response the venue would have given was withheld. A duplicate delivery is counted apart: nothing",
        "  is raised or withheld.",
        "- A fault survived when every invariant that concerns it held after its case: those of its market",
        "  and those of the whole account and cycle. A case that failed before its checks ran proves",
        "  nothing, so its faults are not survived.",
        "- Duplicate orders are counted on the venue's side, over its whole order history: a second order",
        "  of one intent attempt, an intent filled beyond its amount, an alert traded in two cycles.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| fault cases run | {len(outcomes)} |",
        f"| cases passing every assertion | {sum(o.passed for o in outcomes.values())} |",
        f"| cases failing on a known defect (strict xfail) | {sum(o.result.startswith('known') for o in known)} |",
        f"| faults injected | {len(faults)} |",
        *(f"| — {kind} | {n} |" for kind, n in sorted(kinds.items())),
        f"| faults survived (every invariant concerning it held) | {survived} |",
        f"| faults in cases whose invariants never ran | {unchecked} |",
        f"| duplicate deliveries sent (not faults) | {sum(o.redeliveries for o in outcomes.values())} |",
        f"| duplicate orders on the venue | {sum(o.duplicates for o in outcomes.values())} |",
        f"| lost signals | {sum(o.lost for o in outcomes.values())} |",
        "",
        "### Cases",
        "",
        "| case | faults injected | survived | duplicate deliveries | result |",
        "|---|---|---|---|---|",
    ]
    for nodeid, outcome in sorted(outcomes.items()):
        name = nodeid.split("::", 1)[1]
        where = ", ".join(f"{n}× {w}" for w, n in Counter(f.where for f in outcome.faults).items()) or "none"
        kept = "not checked" if outcome.survived is None else str(sum(outcome.survived))
        lines.append(
            f"| `{name}` | {len(outcome.faults)} ({where}) | {kept} | {outcome.redeliveries} | {outcome.result} |"
        )
    return lines


def _figures(name: str) -> tuple[dict[str, Any] | None, str]:
    """Read one e2e figures file; say whether it is from this run, else when it was measured."""
    path = FIGURES_DIR / f"{name}.json"
    try:
        figures: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "not measured in this run"
    if float(figures.get("measured_at", 0)) >= _SESSION_STARTED:
        return figures, ""
    return figures, f" (measured {figures.get('measured_on', 'earlier')}, not in this run)"


def _e2e_sections() -> list[str]:
    """The abuse and load figures, from the files the e2e tests wrote (older ones marked with their date)."""
    lines = [
        "## Abuse: the webhook of `crypto-bot local` over HTTP (tests/e2e/test_abuse.py)",
        "",
        f'{measured_line()} Figures marked "not in this run" were measured by an earlier run, of a commit'
        " it did not record.",
        "",
    ]
    abuse, note = _figures("abuse")
    if abuse is None:
        lines.append(f"Abuse figures: {note}.")
    else:
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(abuse["status_counts"].items()))
        lines += [
            "| figure | value |",
            "|---|---|",
            f"| inputs fuzzed{note} | {abuse['inputs_fuzzed']} |",
            f"| answers by status | {statuses} |",
            f"| 5xx answers | {abuse['responses_5xx']} |",
            f"| crashes (no answer, or the server down) | {abuse['crashes']} |",
            f"| bad-token attempts | {abuse['bad_token_attempts']} |",
            f"| bad-token attempts enqueued | {abuse['bad_token_enqueued']} |",
        ]
        if abuse["responses_5xx"]:
            lines += [
                "",
                "Each 5xx is the open finding of `test_a_valid_alert_too_big_for_sqs_is_refused_without_a_5xx`:"
                " an alert the model accepts but over SQS's 1 MiB is answered 502 (template.yaml).",
            ]
    lines += ["", "## Load: a burst over HTTP to `crypto-bot local` (tests/e2e/test_burst.py)", ""]
    burst, note = _figures("burst")
    if burst is None:
        lines.append(f"Burst figures: {note}.")
        return lines
    latency = burst["accept_latency_ms"]
    lines += [
        f"{burst['distinct_alerts']} distinct alerts over {burst['strategies']} strategies, resends included,"
        f" POSTed by {burst['workers']} concurrent clients{note}. Latencies are measured, never asserted"
        " (a shared machine).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| alerts sent | {burst['alerts_sent']} |",
        f"| accepted (200) | {burst['accepted']} |",
        f"| signals stored | {burst['stored']} |",
        f"| duplicates recorded ignored, not traded | {burst['duplicates_absorbed']} |",
        f"| lost | {burst['lost']} |",
        f"| duplicate orders | {burst['duplicate_orders']} |",
        f"| orders | {burst['orders']} |",
        f"| accept latency p50 / p95 / max | {latency['p50']} / {latency['p95']} / {latency['max']} ms |",
        f"| cycles to drain, total time | {burst['cycles']}, {burst['cycle_seconds']} s |",
    ]
    return lines


def _is_case(item: pytest.Item) -> bool:
    """Say whether a test is a fault case (it runs on the ``case`` stack), not a test of the figures themselves."""
    return item.path.resolve().is_relative_to(FAULTS_DIR) and "case" in getattr(item, "fixturenames", ())
