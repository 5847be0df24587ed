from __future__ import annotations

from decimal import Decimal as D

import pytest

from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.sizing import buy_cost_with_fee, limit_price, size_buy, size_sell


def market(**overrides: D) -> Market:
    values = {
        "amount_step": D("0.001"),
        "price_step": D("0.5"),
        "min_amount": D("0.001"),
        "min_cost": D("10"),
        "taker_fee": D("0.001"),
    }
    values.update(overrides)
    return Market(symbol="BTC/USD", base="BTC", quote="USD", **values)


def test_buy_is_priced_above_last_by_the_increment_on_a_half_dollar_tick() -> None:
    # 60,000 × 1.001 = 60,060 exactly; 60,001 × 1.001 = 60,061.001 → nearest 0.5 tick is 60,061.0
    assert limit_price(D("60000"), Side.BUY, D("0.001"), market()) == D("60060.0")
    assert limit_price(D("60001"), Side.BUY, D("0.001"), market()) == D("60061.0")


def test_sell_is_priced_below_last_by_the_increment() -> None:
    assert limit_price(D("60000"), Side.SELL, D("0.001"), market()) == D("59940.0")


def test_half_tick_rounds_up_like_ccxt() -> None:
    assert limit_price(D("100.25"), Side.BUY, D("0"), market()) == D("100.5")


def test_tick_size_is_respected_where_log10_rounding_would_fail() -> None:
    # The seed rounded to decimal places; a 0.5 tick needs real tick rounding.
    assert limit_price(D("27.3"), Side.BUY, D("0"), market()) == D("27.5")


def test_buy_amount_is_notional_over_price_truncated_to_the_lot() -> None:
    sized = size_buy(D("1000"), D("60000"), D("100000"), market())
    assert sized.ok
    assert sized.amount == D("0.016")  # 0.016666… truncated, never rounded up


def test_buy_is_capped_so_cost_plus_fee_fits_the_free_balance() -> None:
    sized = size_buy(D("1000"), D("100"), D("500"), market(amount_step=D("0.0001")))
    assert sized.ok
    assert buy_cost_with_fee(sized.amount, D("100"), market()) <= D("500")
    assert sized.amount == D("4.995")  # 500 / (100 × 1.001) = 4.99500499… truncated


def test_buy_below_the_minimum_cost_is_skipped_with_the_reason() -> None:
    sized = size_buy(D("5"), D("60000"), D("100000"), market(amount_step=D("0.00001"), min_amount=D("0.00001")))
    assert not sized.ok
    assert sized.amount == 0
    assert sized.reason is not None
    assert "below the market minimum 10 USD" in sized.reason


def test_buy_that_rounds_to_nothing_is_skipped() -> None:
    sized = size_buy(D("50"), D("60000"), D("100000"), market())
    assert sized.reason == "amount 0 rounds to nothing at lot size 0.001"


def test_buy_with_no_cash_is_skipped_and_says_why() -> None:
    sized = size_buy(D("1000"), D("60000"), D("0"), market())
    assert not sized.ok
    assert sized.reason is not None
    assert "free USD 0 covers only" in sized.reason


def test_sell_is_capped_by_the_free_base_balance() -> None:
    assert size_sell(D("2"), D("1.2345"), D("60000"), market()).amount == D("1.234")


def test_sell_below_minimum_amount_is_skipped() -> None:
    sized = size_sell(D("0.0005"), D("1"), D("60000"), market())
    assert not sized.ok


@pytest.mark.parametrize("bad", ["amount_step", "price_step"])
def test_market_rejects_non_positive_steps(bad: str) -> None:
    with pytest.raises(ValueError, match=f"{bad} must be positive"):
        market(**{bad: D(0)})
