"""What the user is told about a cycle: the subject and text of its summary, and whether it is worth sending.

Pure text from a finished :class:`~crypto_bot.engine.records.CycleRecord`; the channel that carries it
(SNS, :mod:`crypto_bot.adapters.aws.notify`) is an adapter's business.
"""

from __future__ import annotations

import json
from typing import Final

from crypto_bot.engine.records import CycleRecord

# SNS API Reference, Publish: a Subject must be "less than 100 characters long", so 100 itself may be refused.
# Kept at 100 as before this module existed; the subjects composed here are about 60 characters.
MAX_SUBJECT: Final = 100
# Order outcomes the user must hear about even from a quiet scheduled cycle.
ABANDONED: Final = frozenset({"unfilled", "partially_filled", "failed"})


def cycle_message(cycle: CycleRecord) -> tuple[str, str]:
    """Render a cycle summary as an e-mail subject and a plain-text body."""
    summary = cycle.summary
    state = "FAILED" if cycle.status == "failed" else "done"
    kind = "stop-loss cycle" if cycle.urgent else "cycle"
    subject = f"crypto-bot {kind} {cycle.at:%Y-%m-%d %H:%M} UTC {state}"
    lines = [subject, ""]
    if cycle.error:
        lines += [f"error: {cycle.error}", ""]
    traded = summary.get("traded", {})
    lines += [f"  {strategy}: {what}" for strategy, what in sorted(traded.items())] or ["  no trades"]
    notes = summary.get("notes", {})
    if notes:
        # Cancelled, abandoned, refused or skipped orders, fills that needed the market fallback, and drift.
        lines += ["", "orders not simply filled, and ledger drift:"]
        lines += [f"  {order}: {why}" for order, why in sorted(notes.items())]
    controls = summary.get("controls", {})
    if controls:
        # A guard that tripped holds entries back until `crypto-bot resume`; a cooldown that ended lets them in;
        # a flatten the operator asked for was done.
        lines += ["", "kill switch and guards:"]
        lines += [f"  {what}: {why}" for what, why in sorted(controls.items())]
    lines += ["", "signals: " + json.dumps(summary.get("signals", {}), sort_keys=True)]
    lines += ["orders: " + json.dumps(summary.get("orders", {}), sort_keys=True)]
    return subject[:MAX_SUBJECT], "\n".join(lines)


def worth_notifying(cycle: CycleRecord) -> bool:
    """Say whether a finished cycle needs a message: it traded, failed, was urgent, gave an order up, drifted,
    or changed the kill switch or guards."""
    orders = cycle.summary.get("orders", {})
    return bool(
        cycle.urgent
        or cycle.status == "failed"
        or cycle.summary.get("traded")
        or cycle.summary.get("drift")
        or cycle.summary.get("controls")
        or any(orders.get(status) for status in ABANDONED)
    )
