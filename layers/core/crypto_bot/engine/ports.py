"""Ports: the outside worlds the core talks to, as typing.Protocols.

Adapters live in :mod:`crypto_bot.adapters` (ccxt, paper). The core depends on
these protocols only, so it never imports a vendor SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from crypto_bot.domain.controls import Controls
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Balance, ExchangeOrder
from crypto_bot.engine.records import CycleRecord, IntentRecord, SignalRecord


class Exchange(Protocol):
    """The small exchange surface the engine needs.

    Every method raises only :mod:`crypto_bot.domain.errors` exchange errors.
    """

    @property
    def name(self) -> str: ...

    def load_markets(self, symbols: Iterable[str]) -> Mapping[str, Market]:
        """Return the trading rules of the given symbols; BadSymbol if one is not listed."""
        ...

    def fetch_balances(self) -> Mapping[str, Balance]:
        """Return free and locked balances by asset (assets with nothing may be absent)."""
        ...

    def fetch_last_price(self, symbol: str) -> Decimal:
        """Return the last traded price of a symbol."""
        ...

    def create_limit_order(
        self, symbol: str, side: Side, amount: Decimal, price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        """Place a limit order. Amount and price are already at the market's precision."""
        ...

    @property
    def supports_market_orders(self) -> bool:
        """Say whether :meth:`create_market_order` can be used on this venue."""
        ...

    def create_market_order(self, symbol: str, side: Side, amount: Decimal, client_order_id: str) -> ExchangeOrder:
        """Place a market order (the stop-loss fallback); UnsupportedExchange where the venue has none.

        Amount is already at the market's precision. Like a limit placement it is never
        retried here: a timeout leaves the outcome unknown, to be looked up by client id.
        """
        ...

    @property
    def supports_stop_orders(self) -> bool:
        """Say whether :meth:`create_stop_order` can be used on this venue."""
        ...

    def create_stop_order(
        self, symbol: str, amount: Decimal, stop_price: Decimal, limit_price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        """Place a sell stop-limit that rests on the venue; UnsupportedExchange where the venue has none.

        When the last price falls to ``stop_price`` the venue places a sell limit of ``amount`` at
        ``limit_price``; until then the order is open with ``triggered`` False and its base amount locked.
        A stop at or above the last price is refused (InvalidOrder): it would trigger at once. Amount and
        prices are already at the market's precision. Like a limit placement it is never retried here: a
        timeout leaves the outcome unknown, to be looked up by client id.
        """
        ...

    def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Read an order by exchange id and symbol (Binance and Bybit need the symbol)."""
        ...

    def cancel_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Cancel an order and return its state read *after* the cancel (it may have filled)."""
        ...

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        """Find an order by our client order id, or None if the exchange never got it."""
        ...


class Store(Protocol):
    """Persistence for signals, cycles, intents and the ledger."""

    def add_signal(self, record: SignalRecord) -> bool:
        """Insert a signal unless its key exists; return False for a duplicate."""
        ...

    def get_signal(self, key: str) -> SignalRecord | None: ...

    def put_signal(self, record: SignalRecord) -> None:
        """Overwrite a signal (status changes)."""
        ...

    def pending_signals(self) -> list[SignalRecord]:
        """Signals received and not yet taken by a cycle, oldest first."""
        ...

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]: ...

    def get_cycle(self, cycle_id: str) -> CycleRecord | None: ...

    def put_cycle(self, record: CycleRecord) -> None: ...

    def get_intent(self, cycle_id: str, intent_id: str) -> IntentRecord | None: ...

    def put_intent(self, record: IntentRecord) -> None: ...

    def intents(self, cycle_id: str) -> list[IntentRecord]: ...

    def load_ledger(self) -> Ledger: ...

    def save_ledger(self, ledger: Ledger) -> None:
        """Persist the positions and dust, and append the ledger's new entries to the audit trail."""
        ...

    def book(self, record: IntentRecord, ledger: Ledger) -> None:
        """Persist an intent together with the ledger changes its fills caused, atomically.

        The intent's stored order states say which fills are booked; if they were written
        without the ledger (or the other way round) a crash in between would lose a fill
        or book it twice.
        """
        ...

    def get_controls(self) -> Controls:
        """Return the kill switch and guard state (all off when never written)."""
        ...

    def put_controls(self, controls: Controls) -> Controls:
        """Write the controls if nobody wrote them since ``controls.version`` was read; return them written.

        StoreConflict when someone did (an operator's pause during a cycle): read again and re-apply.
        """
        ...


# -- what the composition root (crypto_bot.entrypoints.bootstrap) wires besides the exchange and the store


class PriceFeed(Protocol):
    """A venue's last traded price of a symbol: what prices the paper account on a live-priced dry run."""

    def __call__(self, symbol: str, /) -> Decimal: ...


class AlertPricedMarket(Protocol):
    """A market whose prices are the alerts' own order prices (the paper account without a price feed)."""

    @property
    def prices(self) -> Mapping[str, Decimal]:
        """The last price set for each symbol."""
        ...

    def load_markets(self, symbols: Iterable[str]) -> Mapping[str, Market]: ...

    def set_price(self, symbol: str, price: Decimal) -> object:
        """Move the symbol's price (resting orders it crosses fill)."""
        ...


class Refused(Protocol):
    """A delivery the webhook refused and sent on as a record instead of the alert."""

    def record(
        self, excerpt: str, message_id: str, received_at: datetime, queued_at: datetime | None = None
    ) -> SignalRecord:
        """Return the rejected signal that records it."""
        ...


class Drained(Protocol):
    @property
    def failed(self) -> list[str]:
        """``"message id: error"`` of each message whose handling raised, left in the queue."""
        ...


class AlertQueue(Protocol):
    """The queue alerts wait in for their cycle: ``take(body, message_id, queued_at)`` stores each, then it is
    deleted. ``queued_at`` is when the queue accepted the message (None where it does not say)."""

    def __call__(
        self,
        take: Callable[[str, str, datetime | None], None],
        /,
        *,
        refused: Callable[[str, str, Refused, datetime | None], None],
    ) -> Drained: ...


class Notifier(Protocol):
    """Tell the user about a cycle (an e-mail through the notifications topic)."""

    def __call__(self, subject: str, message: str, /) -> None: ...


class Channel(Protocol):
    """A chat the trader reads (Telegram, Discord), beside the e-mail: one text in, delivered or an error."""

    @property
    def name(self) -> str: ...

    def send(self, text: str) -> None:
        """Deliver ``text``, split or cut at the channel's limit; raise a CryptoBotError whose ``transient``
        attribute says whether a later attempt may succeed. No message raised carries the channel's secret."""
        ...

    def secrets(self) -> list[str]:
        """Return the channel's secrets (a token, a webhook URL), so that no channel is ever sent another's."""
        ...


class LeaseRenewal(Protocol):
    """Extend the cycle lock's lease if ``owner`` still holds it; return False if it does not."""

    def __call__(self, owner: str, now: datetime, /) -> bool: ...


class Secrets(Protocol):
    """Where the exchange API key is kept."""

    def api_key(self) -> Mapping[str, str]:
        """Return the key as ccxt takes it (``apiKey``, ``secret``, maybe ``password``); ConfigError if malformed."""
        ...
