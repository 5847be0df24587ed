"""What ``crypto-bot signals`` shows of each signal: the alert's own time, ticker and price, rejected ones too.

Issue 13 §5: the table's "received (UTC)" was the time a cycle collected the alert, it showed no alert time or
price, and a rejected row showed no ticker. Received is now when the webhook queued the alert (SQS's
SentTimestamp, kept as ``queued_at``); a record stored before that was kept shows its collected time, marked.
Read here from the template's table (the deployed path) and from a ``/_local/state`` answer (the local path):
both give the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.engine.records import SignalRecord
from crypto_bot_tools.ops import render
from crypto_bot_tools.ops.aws_source import deployed_signals
from crypto_bot_tools.ops.local_source import local_signals
from crypto_bot_tools.ops.rows import SignalRow, iso
from tests.integration.conftest import TemplateTable

COLLECTED = datetime(2099, 1, 1, 8, 1, 5, tzinfo=UTC)
SENT = COLLECTED - timedelta(hours=5, minutes=30)
QUEUED = SENT + timedelta(seconds=2)
FILLED = SignalRecord(
    key="k-1",
    status=SignalStatus.FILLED,
    received_at=COLLECTED,
    payload={"time": iso(SENT), "ticker": "BTCUSDT", "order_action": "buy", "order_price": "60712.5"},
    strategy="BTCUSDT",
    action="buy",
    time=SENT,
    reason="buy 0.03 of 0.03 BTC/USDT filled",
    message_id="m-1",
    queued_at=QUEUED,
)
REJECTED = SignalRecord(
    key="rejected-1",
    status=SignalStatus.REJECTED,
    received_at=COLLECTED + timedelta(seconds=1),
    payload={"ticker": "DOGEUSDT", "order_action": "buy", "order_price": "0.1"},
    reason="ticker: is not a strategy of the config (got 'DOGEUSDT')",
    message_id="m-2",
)
NOT_JSON = SignalRecord(
    key="rejected-2",
    status=SignalStatus.REJECTED,
    received_at=COLLECTED + timedelta(seconds=2),
    payload="buy BTC now",
    reason="body: is not JSON",
    message_id="m-3",
)
EXPECTED = [
    ("m-1", "BTCUSDT", "BTCUSDT", "60712.5", SENT, QUEUED),
    ("m-2", "", "DOGEUSDT", "0.1", None, None),
    ("m-3", "", "", "", None, None),
]


def _shown(rows: list[SignalRow]) -> list[tuple[str, str, str, str, datetime | None, datetime | None]]:
    return [(r.id, r.strategy, r.ticker, r.price, r.time, r.queued_at) for r in rows]


def test_deployed_signals_carry_the_alerts_time_ticker_and_price(template_table: TemplateTable) -> None:
    store = DynamoDBStore(template_table.name, template_table.client)
    for record in (FILLED, REJECTED, NOT_JSON):
        store.add_signal(record)
    assert _shown(deployed_signals(template_table.client, template_table.name)) == EXPECTED


def test_local_signals_carry_the_same_fields() -> None:
    # /_local/state's signals, as local/state.py writes them.
    state = {
        "signals": [
            {
                "id": r.message_id,
                "strategy": r.strategy,
                "action": r.action,
                "status": r.status.value,
                "reason": r.reason,
                "dedupe_key": r.key,
                "received_at": iso(r.received_at),
                "queued_at": iso(r.queued_at) if r.queued_at else None,
                "time": iso(r.time) if r.time else None,
                "ticker": r.payload.get("ticker", "") if isinstance(r.payload, dict) else "",
                "price": r.payload.get("order_price", "") if isinstance(r.payload, dict) else "",
            }
            for r in (FILLED, REJECTED, NOT_JSON)
        ]
    }
    assert _shown(local_signals(state)) == EXPECTED


def test_the_table_shows_when_it_was_received_the_alert_time_ticker_and_price(template_table: TemplateTable) -> None:
    store = DynamoDBStore(template_table.name, template_table.client)
    for record in (FILLED, REJECTED):
        store.add_signal(record)
    console = Console(width=250, record=True)
    render.print_signals(deployed_signals(template_table.client, template_table.name), console)
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "received (UTC)" in line)
    assert [cell.strip() for cell in header.split("┃")[1:5]] == [
        "received (UTC)",
        "alert time (UTC)",
        "ticker",
        "strategy",
    ]
    filled, rejected = ([cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│ 2099"))
    assert filled[:7] == [
        "2099-01-01 02:31:07",
        "2099-01-01 02:31:05",
        "BTCUSDT",
        "BTCUSDT",
        "buy",
        "60712.5",
        "filled",
    ]
    # Stored without the time the webhook queued it: its collected time, marked, and the caption says what * is.
    assert rejected[:7] == ["2099-01-01 08:01:06*", "", "DOGEUSDT", "", "", "0.1", "rejected"]
    caption = "* when a cycle collected it: the time the webhook queued it was not recorded"
    assert caption in [line.strip() for line in lines]


@pytest.mark.parametrize("record", [FILLED, REJECTED])
def test_signals_json_has_the_alert_fields(record: SignalRecord) -> None:
    row = SignalRow(
        id="m",
        strategy=record.strategy,
        action=record.action,
        status=record.status.value,
        reason=record.reason,
        dedupe_key=record.key,
        received_at=record.received_at,
        time=record.time,
        ticker=str(record.payload["ticker"]) if isinstance(record.payload, dict) else "",
        price=str(record.payload["order_price"]) if isinstance(record.payload, dict) else "",
        queued_at=record.queued_at,
    )
    shown = row.to_json()
    assert (shown["ticker"], shown["price"]) == (record.payload["ticker"], record.payload["order_price"])  # type: ignore[index]
    assert shown["time"] == (iso(record.time) if record.time else None)
    assert shown["received_at"] == iso(record.received_at)
    assert shown["queued_at"] == (iso(record.queued_at) if record.queued_at else None)
