"""What must hold after every venue scenario, whatever the venue.

The checks read the venue's side from the emulator itself (what the venue holds and
which orders it accepted), never through the adapter under test, so a bug in the
adapter cannot hide a bug in the books:

* the ledger equals the account: for every base asset, what the strategies own
  (``Ledger.amounts_by_asset``) is the venue's total balance, locked funds included,
  and ``Ledger.drift`` is zero everywhere;
* no duplicate order on the venue: no two accepted orders share a client order id,
  every one of them is an attempt of an intent the store knows, and no intent has two
  orders for the same attempt (client ids are ``cb<intent[:24]>a<attempt>``,
  :meth:`crypto_bot.domain.orders.OrderIntent.client_order_id`);
* nothing is left working: no open order on the venue, every intent done;
* every signal has a terminal status and a reason.

An emulator takes part by offering :class:`VenueAccount`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.orders import Balance
from crypto_bot.engine.ports import Store

ZERO = Decimal(0)
SIGNAL_LIMIT = 10_000  # far more signals than any scenario sends: all of them are read

# The shape OrderIntent.client_order_id gives: "cb" + 24 hex chars of the intent id + "a" + attempt.
_CLIENT_ID = re.compile(r"^cb(?P<intent>[0-9a-f]{24})a(?P<attempt>\d+)$")
# A protective stop's (crypto_bot.engine.stops.stop_client_id): no intent's, and never placed twice either.
_STOP_CLIENT_ID = re.compile(r"^cb[0-9a-f]{24}s00000$")


class VenueAccount(Protocol):
    """The venue's own view of the account, read from the emulator's state."""

    def total_balances(self) -> Mapping[str, Decimal]:
        """Return free plus locked balance by asset."""
        ...

    def placed_client_order_ids(self) -> Sequence[str | None]:
        """Return the client order id of every order the venue accepted, one entry per order."""
        ...

    def open_client_order_ids(self) -> Sequence[str | None]:
        """Return the client order id of every order still working on the venue."""
        ...


def check_ledger_equals_account(store: Store, venue: VenueAccount, config: StrategyConfig) -> None:
    """Assert that the strategies own exactly what the venue holds, asset by asset."""
    ledger = store.load_ledger()
    totals = venue.total_balances()
    held = ledger.amounts_by_asset()
    bases = {s.base for s in config.strategies.values()} | set(held)
    mismatched = {
        asset: (held.get(asset, ZERO), totals.get(asset, ZERO))
        for asset in sorted(bases)
        if held.get(asset, ZERO) != totals.get(asset, ZERO)
    }
    assert not mismatched, f"ledger vs venue (ledger, venue) by asset: {mismatched}"
    # drift() sees only free + used; the venue's split does not matter to it, the total does.
    drift = ledger.drift({asset: Balance(free=total) for asset, total in totals.items()})
    assert all(d == ZERO for d in drift.values()), f"ledger drift: {drift}"


def check_no_duplicate_orders(store: Store, venue: VenueAccount) -> None:
    """Assert one venue order per intent attempt, none twice, none outside an intent the store knows."""
    placed = list(venue.placed_client_order_ids())
    assert None not in placed, f"the venue holds orders placed without a client order id: {placed}"
    per_client_id = Counter(placed)
    duplicates = {cid: n for cid, n in per_client_id.items() if n > 1}
    assert not duplicates, f"client order ids the venue accepted more than once: {duplicates}"
    attempts: Counter[tuple[str, int]] = Counter()
    for cid in per_client_id:
        if _STOP_CLIENT_ID.fullmatch(str(cid)):
            continue
        match = _CLIENT_ID.fullmatch(str(cid))
        assert match is not None, f"venue order with a client id the bot does not make: {cid!r}"
        attempts[(match["intent"], int(match["attempt"]))] += 1
    twice = {k: n for k, n in attempts.items() if n > 1}
    assert not twice, f"intent attempts with more than one order: {twice}"
    known = {r.intent.intent_id[:24] for c in _cycle_ids(store) for r in store.intents(c)}
    orphans = sorted({intent for intent, _ in attempts} - known)
    assert not orphans, f"venue orders of no intent the store knows: {orphans}"


def check_nothing_left_working(store: Store, venue: VenueAccount) -> None:
    """Assert no order is open on the venue but the protective stops the ledger owns, and every intent is done."""
    protecting = {p.stop.client_order_id for p in store.load_ledger().positions.values() if p.stop is not None}
    still_open = [c for c in venue.open_client_order_ids() if c not in protecting]
    assert not still_open, f"orders left working on the venue: {still_open}"
    working = [
        f"{r.intent.strategy} {r.intent.purpose.value}: {r.status.value}"
        for c in _cycle_ids(store)
        for r in store.intents(c)
        if not r.status.is_done
    ]
    assert not working, f"intents not done: {working}"


def check_signals_settled(store: Store) -> None:
    """Assert every stored signal has a terminal status and says why."""
    for signal in store.recent_signals(limit=SIGNAL_LIMIT):
        assert signal.status.is_terminal, f"signal {signal.key} ({signal.strategy}) is still {signal.status.value}"
        assert signal.reason, f"signal {signal.key} ({signal.strategy}) is {signal.status.value} without a reason"


def check_after_scenario(store: Store, venue: VenueAccount, config: StrategyConfig) -> None:
    """Assert every invariant of a finished scenario (see the module docstring)."""
    check_ledger_equals_account(store, venue, config)
    check_no_duplicate_orders(store, venue)
    check_nothing_left_working(store, venue)
    check_signals_settled(store)


def _cycle_ids(store: Store) -> list[str]:
    # A cycle without signals (an operator's flatten) is known to the memory store only.
    listed = store.cycle_ids() if isinstance(store, MemoryStore) else []
    return sorted({s.cycle_id for s in store.recent_signals(limit=SIGNAL_LIMIT) if s.cycle_id} | set(listed))
