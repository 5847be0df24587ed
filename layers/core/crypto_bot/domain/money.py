"""Exact decimal parsing and rounding for prices, amounts and cash."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)


def parse_decimal(value: object) -> Decimal:
    """Parse a JSON-ish number (str, int, float, Decimal) into an exact Decimal.

    Floats go through ``repr`` so ``0.1`` becomes ``Decimal("0.1")``, not its binary
    expansion. Booleans are refused: ``True`` is not a price. Raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip().replace("_", "x")  # Decimal() accepts "1_000"; we do not
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError("not a number") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("not a finite number")
    return result


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Truncate ``value`` down to a whole multiple of ``step`` (amounts never round up)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    steps = (value / step).to_integral_value(rounding=ROUND_DOWN)
    return (steps * step).quantize(step) if steps else ZERO


def round_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` to the nearest multiple of ``step``, halves away from zero."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    steps = (value / step).to_integral_value(rounding=ROUND_HALF_UP)
    return (steps * step).quantize(step) if steps else ZERO


def to_json_number(value: Decimal) -> int | float:
    """Render a Decimal for JSON output: an int when whole, else the nearest float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def plain(value: Decimal) -> str:
    """Show a Decimal without exponent or trailing zeros: ``1.50000`` → ``1.5``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
