"""The fault suite's own arithmetic: survival per fault, duplicates on the venue's side, the report's sections."""

from __future__ import annotations

import re
from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast

from crypto_bot.domain.orders import ExchangeOrder, OrderIntent, OrderStatus, Purpose, Side, intent_id
from crypto_bot.engine.records import IntentRecord, IntentStatus, Phase
from tests.faults import report
from tests.faults.harness import Case, FaultKind, Violation, venue_duplicates

MUTATION = "<!-- mutation:start -->\n## Mutation testing\n\n| score | 42 of 53 |  \n\ttrailing\t\n<!-- mutation:end -->"


def bare_case() -> Case:
    return Case(stack=cast(Any, None))


def test_a_fault_survives_only_if_the_invariants_of_its_market_and_of_the_account_held() -> None:
    case = bare_case()
    case.fault(FaultKind.RAISED, "PaperExchange.create_limit_order", "timeout", "BTC/USDT")
    case.fault(FaultKind.WITHHELD, "PaperExchange.create_limit_order", "no fill", "ETH/USDT")
    case.fault(FaultKind.RAISED, "step plan", "crash")
    assert case.survived() is None  # the invariants never ran: nothing is survived
    case.violations = [Violation("duplicate order", "two orders", "BTC/USDT")]
    assert case.survived() == [False, True, False]
    case.violations = [Violation("lock released", "the cycle lock was not released")]
    assert case.survived() == [False, False, False]
    case.violations = []
    assert case.survived() == [True, True, True]


def intent(cycle_id: str, amount: str, keys: tuple[str, ...] = ("alert-1",)) -> IntentRecord:
    made = OrderIntent(
        intent_id=intent_id(cycle_id, Purpose.ENTRY, "BTCUSDT"),
        cycle_id=cycle_id,
        strategy="BTCUSDT",
        symbol="BTC/USDT",
        side=Side.BUY,
        purpose=Purpose.ENTRY,
        amount=D(amount),
        limit_price=D(60060),
        notional=D(9500),
        signal_keys=keys,
    )
    return IntentRecord(made, Phase.ENTRIES, status=IntentStatus.FILLED)


def order(client_order_id: str, filled: str, n: int = 1) -> ExchangeOrder:
    return ExchangeOrder(
        f"paper-{n}", client_order_id, "BTC/USDT", Side.BUY, D(filled), D(60060), OrderStatus.CLOSED, filled=D(filled)
    )


def test_venue_duplicates_are_none_for_one_order_per_attempt_within_the_intents_amount() -> None:
    entry = intent("manual-entry", "0.1")
    orders = [order(entry.intent.client_order_id(0), "0.06", 1), order(entry.intent.client_order_id(1), "0.04", 2)]
    assert venue_duplicates(orders, [entry]) == []


def test_venue_duplicates_count_a_client_id_twice_an_overfilled_intent_and_an_alert_traded_in_two_cycles() -> None:
    entry, late = intent("manual-entry", "0.1"), intent("manual-later", "0.1")
    reused = entry.intent.client_order_id(0)
    twice = venue_duplicates([order(reused, "0.05", 1), order(reused, "0.05", 2)], [entry])
    assert [v.message for v in twice] == [f"2 venue orders share {reused}"]
    # A chase that re-places under the next attempt's id while the first order still fills: 0.15 for 0.1.
    overfilled = [order(entry.intent.client_order_id(0), "0.1", 1), order(entry.intent.client_order_id(1), "0.05", 2)]
    assert [v.message for v in venue_duplicates(overfilled, [entry])] == [
        f"{entry.intent.intent_id} filled 0.15 on the venue for 0.1"
    ]
    decided_again = [order(entry.intent.client_order_id(0), "0.1", 1), order(late.intent.client_order_id(0), "0.1", 2)]
    assert [(v.message, v.symbol) for v in venue_duplicates(decided_again, [entry, late])] == [
        ("alert alert-1 (BTCUSDT buy) traded in 2 cycles: ['manual-entry', 'manual-later']", "BTC/USDT")
    ]


def test_a_section_is_replaced_and_everything_outside_it_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "reliability.md"
    head = "# Reliability figures\r\n\nhand-written  \n\n"
    path.write_bytes(f"{head}<!-- generated:faults -->\nold\n<!-- /generated:faults -->\n\n{MUTATION}\n\ntail".encode())
    report.write_section("faults", ["new", "lines"], path)
    report.write_section("venues", ["venue table"], path)
    assert path.read_bytes().decode() == (
        f"{head}<!-- generated:faults -->\nnew\nlines\n<!-- /generated:faults -->\n\n{MUTATION}\n\ntail"
        "\n\n<!-- generated:venues -->\nvenue table\n<!-- /generated:venues -->\n"
    )


def test_a_report_from_the_earlier_generator_keeps_only_its_mutation_section(tmp_path: Path) -> None:
    path = tmp_path / "reliability.md"
    path.write_text(f"# Reliability figures\n\n| fault cases run | 48 |\n\n{MUTATION}\n\n## Cases\n", encoding="utf-8")
    report.write_section("faults", ["figures"], path)
    text = path.read_text(encoding="utf-8")
    assert MUTATION in text
    assert "| fault cases run | 48 |" not in text
    assert "<!-- generated:faults -->\nfigures\n<!-- /generated:faults -->" in text
    assert text.index("<!-- /generated:venues -->") < text.index(MUTATION)


def test_the_measured_line_names_the_commit_and_says_whether_the_tree_differed() -> None:
    assert re.fullmatch(r"Measured at commit `[0-9a-f]{7,}(\+dirty)?`\.", report.measured_line())
