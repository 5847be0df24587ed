from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from crypto_bot.domain.config import Strategy
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Balance, Fee

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
BTC = Strategy(key="BTCUSD", symbol="BTC/USD", base="BTC", quote="USD", percentage=D("0.2"))
BTC_FAST = Strategy(key="BTCFAST", symbol="BTC/USD", base="BTC", quote="USD", percentage=D("0.3"))


def buy(ledger: Ledger, strategy: Strategy, amount: str, cost: str, fees: tuple[Fee, ...] = ()) -> None:
    ledger.apply_fill(strategy, Side.BUY, order_id="o", filled=D(amount), cost=D(cost), fees=fees, at=T0)


def sell(ledger: Ledger, strategy: Strategy, amount: str, cost: str, fees: tuple[Fee, ...] = ()) -> None:
    ledger.apply_fill(strategy, Side.SELL, order_id="o", filled=D(amount), cost=D(cost), fees=fees, at=T0)


def test_buy_with_quote_fee_adds_the_fee_to_the_cost_basis() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000", (Fee(D("6"), "USD"),))
    position = ledger.position(BTC)
    assert position.amount == D("0.1")
    assert position.cost_basis == D("6006")
    assert position.opened_at == T0


def test_buy_with_base_fee_receives_less_of_the_asset() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000", (Fee(D("0.0001"), "BTC"),))
    assert ledger.position(BTC).amount == D("0.0999")
    assert ledger.position(BTC).cost_basis == D("6000")


def test_partial_sell_releases_cost_basis_pro_rata_and_realizes_pnl() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.2", "12000")
    sell(ledger, BTC, "0.05", "3500", (Fee(D("3.5"), "USD"),))
    position = ledger.position(BTC)
    assert position.amount == D("0.15")
    assert position.cost_basis == D("9000")
    assert position.realized_pnl == D("496.5")  # 3500 − 3.5 − 3000


def test_full_sell_closes_the_position() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.2", "12000")
    sell(ledger, BTC, "0.2", "11000")
    position = ledger.position(BTC)
    assert not position.is_long
    assert position.cost_basis == 0
    assert position.realized_pnl == D("-1000")
    assert position.opened_at is None


def test_fills_are_booked_as_deltas_across_partial_fills() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.05", "3000")
    buy(ledger, BTC, "0.05", "3100")
    assert ledger.position(BTC).amount == D("0.1")
    assert ledger.position(BTC).cost_basis == D("6100")
    assert len(ledger.entries) == 2


def test_strategies_sharing_an_asset_are_kept_apart() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000")
    buy(ledger, BTC_FAST, "0.3", "18000")
    sell(ledger, BTC, "0.1", "6500")
    assert ledger.position(BTC_FAST).amount == D("0.3")
    assert not ledger.position(BTC).is_long
    assert ledger.amounts_by_asset() == {"BTC": D("0.3")}


def test_drift_compares_ledger_sums_with_exchange_balances() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000")
    buy(ledger, BTC_FAST, "0.3", "18000")
    assert ledger.drift({"BTC": Balance(free=D("0.35"), used=D("0.05"))}) == {"BTC": D("0")}
    assert ledger.drift({"BTC": Balance(free=D("0.5"))}) == {"BTC": D("0.1")}


def test_unsellable_remainder_moves_to_dust_so_the_strategy_is_flat() -> None:
    market = Market("BTC/USD", "BTC", "USD", amount_step=D("0.0001"), price_step=D("0.01"), min_amount=D("0.0001"))
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000", (Fee(D("0.00001"), "BTC"),))  # holds 0.09999
    sell(ledger, BTC, "0.0999", "5994")
    assert ledger.sweep_dust(BTC, market) == D("0.00009")
    assert not ledger.position(BTC).is_long
    assert ledger.dust == {"BTC": D("0.00009")}
    assert ledger.drift({"BTC": Balance(free=D("0.00009"))}) == {"BTC": D("0")}


def test_sellable_position_is_not_swept() -> None:
    market = Market("BTC/USD", "BTC", "USD", amount_step=D("0.0001"), price_step=D("0.01"), min_amount=D("0.0001"))
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000")
    assert ledger.sweep_dust(BTC, market) == 0
    assert ledger.position(BTC).amount == D("0.1")


def test_ledger_round_trips_through_its_dict_form() -> None:
    ledger = Ledger()
    buy(ledger, BTC, "0.1", "6000.123456789")
    copy = Ledger.from_dict(ledger.to_dict())
    assert copy.position(BTC) == ledger.position(BTC)
