"""The in-memory store adapter: the Store port in a few dicts, for the in-process engine, replay and tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crypto_bot.domain.controls import Controls
from crypto_bot.domain.errors import StoreConflict
from crypto_bot.domain.ledger import Ledger
from crypto_bot.engine.records import CycleRecord, IntentRecord, SignalRecord, arrival_order


class MemoryStore:
    """A store in a few dicts: for the in-process engine, replay, and tests.

    Records are copied in and out through their dict form, so callers cannot mutate
    stored state by accident, exactly as with a database.
    """

    def __init__(self) -> None:
        self._signals: dict[str, dict[str, Any]] = {}
        self._cycles: dict[str, dict[str, Any]] = {}
        self._intents: dict[tuple[str, str], dict[str, Any]] = {}
        self._ledger: dict[str, Any] = {"positions": {}, "dust": {}}
        self._controls: dict[str, Any] | None = None
        self.audit: list[Any] = []

    def add_signal(self, record: SignalRecord) -> bool:
        if record.key in self._signals:
            return False
        self._signals[record.key] = record.to_dict()
        return True

    def get_signal(self, key: str) -> SignalRecord | None:
        data = self._signals.get(key)
        return SignalRecord.from_dict(data) if data else None

    def put_signal(self, record: SignalRecord) -> None:
        self._signals[record.key] = record.to_dict()

    def pending_signals(self) -> list[SignalRecord]:
        pending = [SignalRecord.from_dict(d) for d in self._signals.values() if d["status"] == "received"]
        return sorted(pending, key=arrival_order)

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]:
        records = sorted((SignalRecord.from_dict(d) for d in self._signals.values()), key=lambda r: r.received_at)
        return records[-limit:]

    def get_cycle(self, cycle_id: str) -> CycleRecord | None:
        data = self._cycles.get(cycle_id)
        return CycleRecord.from_dict(data) if data else None

    def put_cycle(self, record: CycleRecord) -> None:
        self._cycles[record.cycle_id] = record.to_dict()

    def cycle_ids(self) -> list[str]:
        """Every cycle stored, by id (not a port method: for the tests' invariants over a whole scenario)."""
        return sorted(self._cycles)

    def get_intent(self, cycle_id: str, intent_id: str) -> IntentRecord | None:
        data = self._intents.get((cycle_id, intent_id))
        return IntentRecord.from_dict(data) if data else None

    def put_intent(self, record: IntentRecord) -> None:
        self._intents[(record.intent.cycle_id, record.intent.intent_id)] = record.to_dict()

    def intents(self, cycle_id: str) -> list[IntentRecord]:
        return [IntentRecord.from_dict(d) for (c, _), d in self._intents.items() if c == cycle_id]

    def load_ledger(self) -> Ledger:
        return Ledger.from_dict(self._ledger)

    def save_ledger(self, ledger: Ledger) -> None:
        self._ledger = ledger.to_dict()
        self.audit.extend(ledger.entries)
        ledger.entries.clear()

    def book(self, record: IntentRecord, ledger: Ledger) -> None:
        self.put_intent(record)
        self.save_ledger(ledger)

    def get_controls(self) -> Controls:
        return Controls.from_dict(self._controls) if self._controls else Controls()

    def put_controls(self, controls: Controls) -> Controls:
        stored = self._controls["version"] if self._controls else 0
        if stored != controls.version:
            raise StoreConflict(f"the controls changed meanwhile (version {stored}, read {controls.version})")
        written = replace(controls, version=controls.version + 1)
        self._controls = written.to_dict()
        return written
