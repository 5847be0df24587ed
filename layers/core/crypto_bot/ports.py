"""Ports: the outside worlds the core talks to, as typing.Protocols.

Adapters live in :mod:`crypto_bot.exchanges` (ccxt, paper). The core depends on
these protocols only, so it never imports a vendor SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

from crypto_bot.markets import Market, Side
from crypto_bot.orders import Balance, ExchangeOrder


class Exchange(Protocol):
    """The small exchange surface the engine needs.

    Every method raises only :mod:`crypto_bot.errors` exchange errors.
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

    def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Read an order by exchange id and symbol (Binance and Bybit need the symbol)."""
        ...

    def cancel_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Cancel an order and return its state read *after* the cancel (it may have filled)."""
        ...

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        """Find an order by our client order id, or None if the exchange never got it."""
        ...
