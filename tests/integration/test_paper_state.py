"""The paper exchange's state: its dict form, and its item in the template's table (moto and DynamoDB Local)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crypto_bot.adapters.aws.paper_state import PaperStateStore, paper_session
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import InvalidOrder, StoreConflict
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Balance, OrderStatus
from tests.integration.conftest import TemplateTable

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def states(template_table: TemplateTable) -> PaperStateStore:
    """A paper state store on the template's table, on moto and on DynamoDB Local."""
    return PaperStateStore(template_table.name, template_table.client, clock=lambda: NOW)


def busy_exchange() -> PaperExchange:
    """An account with resting orders on both sides, a partial fill, a cancel, and fees in the asset received."""
    exchange = PaperExchange(
        balances={"USD": Decimal("10000.00"), "BTC": Decimal("0.50000000")},
        fee_mode="received",
        partial_fill_ratio=Decimal("0.5"),
        default_fee=Decimal("0.001"),
    )
    exchange.markets["BTC/USD"] = Market(
        "BTC/USD",
        "BTC",
        "USD",
        amount_step=Decimal("0.0001"),
        price_step=Decimal("0.01"),
        min_amount=Decimal("0.0001"),
        min_cost=Decimal("10"),
        maker_fee=Decimal("0.0010"),
        taker_fee=Decimal("0.0020"),
    )
    exchange.load_markets(["ETH/USD"])  # a default market, with default_fee
    exchange.set_price("BTC/USD", Decimal("60000.00"))
    exchange.set_price("ETH/USD", Decimal("3000.00"))
    exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.0100"), Decimal("59000.00"), "cb-rest-buy")
    exchange.create_limit_order("BTC/USD", Side.SELL, Decimal("0.1000"), Decimal("61000.00"), "cb-rest-sell")
    exchange.create_limit_order("ETH/USD", Side.BUY, Decimal("1.00000000"), Decimal("3000.00"), "cb-partial")
    canceled = exchange.create_limit_order("ETH/USD", Side.BUY, Decimal("0.2"), Decimal("2000.00"), "cb-cancel")
    exchange.cancel_order(canceled.id, "ETH/USD")
    return exchange


# -- to_state / from_state ---------------------------------------------------------------------


def test_state_is_plain_json_with_decimals_as_strings() -> None:
    state = busy_exchange().to_state()

    assert json.loads(json.dumps(state)) == state
    assert state["balances"]["BTC"] == "0.40000000"
    # USD: the resting buy (0.01 x 59000) and the unfilled half of the partial ETH buy (0.5 x 3000).
    assert state["locked"] == {"USD": "2090.0000000000", "BTC": "0.1000"}
    assert state["partial_fill_ratio"] == "0.5"
    assert state["next_id"] == 5


def test_restored_exchange_has_the_same_state() -> None:
    exchange = busy_exchange()

    restored = PaperExchange.from_state(json.loads(json.dumps(exchange.to_state())))

    assert restored.to_state() == exchange.to_state()
    assert restored.fetch_balances() == exchange.fetch_balances()
    assert restored.open_orders() == exchange.open_orders()
    assert restored.fee_mode == "received"
    assert restored.markets["BTC/USD"].taker_fee == Decimal("0.0020")


def test_reading_the_state_does_not_skip_an_order_id() -> None:
    exchange = busy_exchange()
    exchange.to_state()
    exchange.to_state()

    order = exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.0010"), Decimal("50000.00"), "cb-next")

    assert order.id == "paper-5"


def test_restored_exchange_trades_on_exactly_as_the_original() -> None:
    original = busy_exchange()
    restored = PaperExchange.from_state(original.to_state())

    for exchange in (original, restored):
        exchange.set_price("BTC/USD", Decimal("58000.00"))  # fills the resting buy as maker
        exchange.set_price("BTC/USD", Decimal("61500.00"))  # fills the resting sell
        exchange.set_price("ETH/USD", Decimal("2999.00"))  # fills the rest of the partial buy
        exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.0020"), Decimal("50000.00"), "cb-new")

    assert restored.to_state() == original.to_state()
    assert [o.status for o in restored.orders()] == [OrderStatus.CLOSED] * 3 + [OrderStatus.CANCELED, OrderStatus.OPEN]
    assert restored.fetch_balances()["BTC"] == Balance(free=Decimal("0.40999000"), used=Decimal("0E-4"))
    assert restored.orders()[-1].id == "paper-5"


def test_restored_exchange_still_refuses_a_used_client_order_id() -> None:
    restored = PaperExchange.from_state(busy_exchange().to_state())

    with pytest.raises(InvalidOrder, match="duplicate client order id cb-rest-buy"):
        restored.create_limit_order("BTC/USD", Side.BUY, Decimal("0.0010"), Decimal("50000.00"), "cb-rest-buy")
    found = restored.find_order_by_client_id("cb-partial", "ETH/USD")
    assert found is not None
    assert found.filled == Decimal("0.50000000")


def test_from_state_refuses_an_unknown_format() -> None:
    state = busy_exchange().to_state()
    state["format"] = 99

    with pytest.raises(ValueError, match="format 99"):
        PaperExchange.from_state(state)


# -- PaperStateStore -------------------------------------------------------------------------


def test_load_without_a_stored_state_returns_none_and_version_zero(states: PaperStateStore) -> None:
    assert states.load() == (None, 0)


def test_saved_state_loads_back_as_an_identical_exchange(states: PaperStateStore) -> None:
    exchange = busy_exchange()

    version = states.save(exchange.to_state(), expected_version=0)
    state, loaded_version = states.load()

    assert (version, loaded_version) == (1, 1)
    assert state is not None
    assert PaperExchange.from_state(state).to_state() == exchange.to_state()


def test_each_save_raises_the_version_by_one(states: PaperStateStore) -> None:
    state = busy_exchange().to_state()

    assert states.save(state, 0) == 1
    assert states.save(state, 1) == 2
    assert states.load()[1] == 2


def test_saving_over_a_newer_version_raises_conflict(states: PaperStateStore) -> None:
    state = busy_exchange().to_state()
    states.save(state, 0)
    states.save(state, 1)

    with pytest.raises(StoreConflict, match="since version 1"):
        states.save(state, 1)
    with pytest.raises(StoreConflict):
        states.save(state, 0)  # "there was none yet" no longer holds either
    assert states.load()[1] == 2


def test_a_long_paper_run_fits_in_one_item(states: PaperStateStore) -> None:
    exchange = PaperExchange(balances={"USD": Decimal("100000000")})
    exchange.load_markets(["BTC/USD"])
    for n in range(3000):
        exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.00100000"), Decimal("1000.00"), f"cb{n:024d}a0")

    states.save(exchange.to_state(), 0)

    state, _ = states.load()
    assert state is not None
    assert len(state["orders"]) == 3000
    assert len(json.dumps(state)) > 400_000  # more than DynamoDB's item limit, were it not compressed


# -- paper_session ---------------------------------------------------------------------------


def new_account() -> PaperExchange:
    exchange = PaperExchange(balances={"USD": Decimal("10000")})
    exchange.load_markets(["BTC/USD"])
    return exchange


def no_account() -> PaperExchange:
    raise AssertionError("the factory must not be called when a state is stored")


def test_session_creates_the_account_from_the_factory_and_saves_it(states: PaperStateStore) -> None:
    with paper_session(states, new_account) as exchange:
        exchange.set_price("BTC/USD", Decimal("60000"))

    state, version = states.load()
    assert version == 1
    assert state is not None
    assert state["prices"] == {"BTC/USD": "60000"}


def test_session_resumes_the_stored_account(states: PaperStateStore) -> None:
    states.save(busy_exchange().to_state(), 0)

    with paper_session(states, no_account) as exchange:
        exchange.set_price("BTC/USD", Decimal("58000.00"))

    state, version = states.load()
    assert version == 2
    assert state is not None
    assert PaperExchange.from_state(state).fetch_balances()["BTC"].free == Decimal("0.40999000")


def test_session_saves_nothing_when_the_step_fails(states: PaperStateStore) -> None:
    states.save(busy_exchange().to_state(), 0)

    def failing_step() -> None:
        with paper_session(states, no_account) as exchange:
            exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.0010"), Decimal("50000.00"), "cb-lost")
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        failing_step()

    state, version = states.load()
    assert version == 1
    assert state == busy_exchange().to_state()


def test_session_that_changed_nothing_writes_nothing(states: PaperStateStore) -> None:
    states.save(busy_exchange().to_state(), 0)

    with paper_session(states, no_account) as exchange:
        exchange.fetch_balances()
        exchange.open_orders()

    assert states.load()[1] == 1


def test_session_raises_conflict_when_another_step_saved_meanwhile(states: PaperStateStore) -> None:
    states.save(busy_exchange().to_state(), 0)

    def overlapping_steps() -> None:
        with paper_session(states, no_account) as first:
            with paper_session(states, no_account) as second:
                second.set_price("BTC/USD", Decimal("58000.00"))
            first.set_price("BTC/USD", Decimal("61500.00"))

    with pytest.raises(StoreConflict):
        overlapping_steps()

    state, version = states.load()
    assert version == 2
    assert state is not None
    assert state["prices"]["BTC/USD"] == "58000.00"  # the first writer won; the other step re-runs


def test_paper_item_never_expires(states: PaperStateStore) -> None:
    states.save(busy_exchange().to_state(), 0)

    item: dict[str, Any] = states.client.get_item(
        TableName=states.table_name, Key={"pk": {"S": "PAPER"}, "sk": {"S": "STATE"}}
    )["Item"]

    assert "expires_at" not in item
    assert item["version"] == {"N": "1"}
    assert item["updated_at"] == {"S": NOW.isoformat()}
