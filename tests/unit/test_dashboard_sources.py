"""LocalSource's cycles and execution paths, read from ``crypto-bot local``'s answers (a fake client, no socket).

The same records come from a deployed stack in tests/integration/test_dashboard_sources.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.orders import Fee, OrderIntent, Purpose, Side
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase
from crypto_bot_tools.ops.local_source import LocalClient, LocalSource, local_cycles
from crypto_bot_tools.ops.rows import StateVisit

AT = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
RECORD = CycleRecord("manual-x", AT, urgent=False, status="done", signal_keys=["k1"])
INTENT = IntentRecord(
    OrderIntent("i1", "manual-x", "BTCUSDT", "BTC/USDT", Side.BUY, Purpose.ENTRY, D("0.1"), D("60060"), D("6000")),
    Phase.ENTRIES,
    IntentStatus.FILLED,
    attempt=1,
    filled=D("0.1"),
    cost=D("6000.5"),
    fees=[Fee(D("0.0001"), "BTC")],
)


class FakeClient(LocalClient):
    """``crypto-bot local``'s answers, as given."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        super().__init__("http://127.0.0.1:3000")
        self.answers = answers

    def cycles(self, limit: int) -> dict[str, Any]:
        return self.answers["cycles"]

    def execution(self, name: str) -> dict[str, Any]:
        return self.answers[name]


def test_cycles_reads_each_record_and_its_intents_exactly() -> None:
    answer = {"cycles": [{"cycle": RECORD.to_dict(), "intents": [INTENT.to_dict()]}]}

    [row] = LocalSource(FakeClient({"cycles": answer})).cycles(10)

    assert row.record == RECORD
    assert row.intents == [INTENT]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"cycles": "none"}, "/_local/cycles: cycles is not a list of objects"),
        ({"cycles": [{"cycle": RECORD.to_dict()}]}, "/_local/cycles cycles[0].intents: expected a list, got None"),
        ({"cycles": [{"cycle": {"at": "2024"}, "intents": []}]}, "/_local/cycles cycles[0]: not a cycle record"),
    ],
)
def test_a_malformed_cycles_answer_names_where(answer: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        local_cycles(answer)


def test_execution_path_lists_the_states_entered_and_the_cycle() -> None:
    detail = {"transitions": ["Collect", "HasPendingSignals", "NothingToDo"], "cycle_id": "manual-x"}

    path = LocalSource(FakeClient({"e1": detail})).execution_path("e1")

    assert path.states == [StateVisit("Collect"), StateVisit("HasPendingSignals"), StateVisit("NothingToDo")]
    assert (path.cycle_id, path.error) == ("manual-x", "")


def test_execution_path_of_a_failed_execution_says_why() -> None:
    detail = {"transitions": ["Collect"], "cycle_id": None, "error": "States.TaskFailed", "cause": "boom"}

    path = LocalSource(FakeClient({"e1": detail})).execution_path("e1")

    assert (path.cycle_id, path.error) == (None, "States.TaskFailed: boom")


def test_execution_path_refuses_an_answer_without_its_states() -> None:
    with pytest.raises(ConfigError, match="/_local/executions/e1 transitions: expected a list, got 3"):
        LocalSource(FakeClient({"e1": {"transitions": 3}})).execution_path("e1")
