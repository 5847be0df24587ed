"""The price band: an alert's ``order_price`` far from its symbol's last known price is not believed.

Orders are priced from the venue's last price, never from an alert. An alert's price matters only where it
stands in for the venue: the paper exchange priced by alerts (``PAPER_PRICES=alerts``: the local stack and the
tests) and ``crypto-bot replay``. There, one mistyped price (``1e12`` instead of ``60000``) would value the
account, fill the orders and book the ledger at a price no market had, so a price more than the band away from
the last one is refused with the field, the value and the last price, and the alert is not traded.

The first price of a symbol has nothing to compare with and is believed: with alert prices there is no other
source, and refusing it would leave the symbol without any price at all. A bad first price therefore shows in
the first cycle's orders; every later one is checked against it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from crypto_bot.domain.errors import FieldProblem
from crypto_bot.domain.money import ONE, ZERO, parse_decimal, plain

DEFAULT_MAX_PRICE_JUMP: Final = Decimal("0.5")
"""A price may be at most 50% away from the last one: crypto moves that much in a day only in a crash."""


def parse_price_jump(value: object) -> Decimal:
    """Parse a price band given as a fraction (``0.5`` means 50%); raise ValueError unless it is above 0."""
    band = parse_decimal(value)
    if band <= 0:
        raise ValueError("must be a fraction above 0 (0.5 means a price may move 50% from the last one)")
    return band


def price_jump_problem(
    shown: object, price: Decimal, symbol: str, last: Decimal | None, band: Decimal
) -> FieldProblem | None:
    """Say why ``price`` (the alert's ``order_price``, as sent: ``shown``) is not believed after ``last``.

    Return None when it is within ``band`` of ``last`` (at the band's edge included), or when there is no
    last price to compare with.
    """
    if last is None or last <= 0:
        return None
    if abs(price - last) <= last * band:
        return None
    low, high = max(last * (ONE - band), ZERO), last * (ONE + band)
    return FieldProblem(
        "order_price",
        shown,
        f"is more than {plain(band * 100)}% away from {symbol}'s last price {plain(last)}: "
        f"only {plain(low)} to {plain(high)} is believed (the price band: MAX_PRICE_JUMP, --max-price-jump)",
    )
