"""The kill switch and the guards through the executed state machine (issue 14 §2, §3).

template.yaml's resources under moto, the real ASL and handlers, a paper account kept in the table and priced by
the alerts (tests/support/harness.py). The operator's commands are the core's (crypto_bot.domain.controls through
change_controls), as `crypto-bot pause` writes them; the CLI itself is tested in tests/integration/test_ops_controls.py.
After every test the ledger equals the paper account, locked amounts included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal as D
from functools import partial
from pathlib import Path
from typing import Any

from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.controls import pause, request_flatten, resume
from crypto_bot.engine.workflow import change_controls
from tests.conftest import ROOT, AlertClock, paper_environment
from tests.support.harness import Pipeline, cycle_stack

STRATEGIES = json.loads((ROOT / "strategy_config.json").read_text())


@contextmanager
def stack(
    tmp_path: Path, guards: Mapping[str, Any] | None = None, strategies: Mapping[str, Any] = STRATEGIES
) -> Iterator[Pipeline]:
    """The template's stack on the repository's strategies (or ``strategies``), with ``guards`` in its config."""
    config = tmp_path / "strategy_config.json"
    config.write_text(json.dumps({**strategies, **({"guards": dict(guards)} if guards else {})}))
    with cycle_stack(
        parameters={"ExecutionStrategy": "multi"},
        environment=paper_environment(STRATEGY_CONFIG_PATH=str(config)),
    ) as pipeline:
        yield pipeline


def alert(ticker: str, action: str, price: str, comment: str = "") -> dict[str, Any]:
    return {
        "time": "2024-08-10T08:00:00Z",  # AlertClock dates each batch now
        "ticker": ticker,
        "order_action": action,
        "order_price": price,
        "order_comment": comment or ("long" if action == "buy" else "exit"),
        "market_position": "long" if action == "buy" else "flat",
    }


def amounts(pipeline: Pipeline) -> dict[str, D]:
    return {p.strategy: p.amount for p in pipeline.store.load_ledger().long_positions()}


def statuses(pipeline: Pipeline, cycle_id: str) -> dict[str, tuple[str, str]]:
    cycle = pipeline.store.get_cycle(cycle_id)
    assert cycle is not None, cycle_id
    signals = [pipeline.store.get_signal(key) for key in cycle.signal_keys]
    return {s.strategy: (s.status.value, s.reason) for s in signals if s is not None}


def move_price(pipeline: Pipeline, symbol: str, price: D) -> None:
    """Move the paper venue's last price between cycles, as the market does."""
    store = PaperStateStore(pipeline.stack.resource("Table"), pipeline.stack.client("dynamodb"))
    state, version = store.load()
    assert state is not None
    exchange = PaperExchange.from_state(state)
    exchange.set_price(symbol, price)
    store.save(exchange.to_state(), version)


def assert_ledger_is_the_account(pipeline: Pipeline) -> None:
    balances = pipeline.paper().fetch_balances()
    for asset, amount in pipeline.store.load_ledger().amounts_by_asset().items():
        assert balances[asset].total == amount, asset


def operator(pipeline: Pipeline, command: Any, **arguments: Any) -> None:
    change_controls(pipeline.store, partial(command, by="alice", at=datetime.now(UTC), **arguments))


def test_pause_ignores_an_entry_but_a_stop_loss_still_sells(tmp_path: Path) -> None:
    dated = AlertClock()
    with stack(tmp_path) as pipeline:
        pipeline.seed_account()
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="entry")
        operator(pipeline, pause, reason="CPI release")

        pipeline.send(dated([alert("ETHUSDT", "buy", "3000")])[0])
        (stop,) = dated([alert("BTCUSDT", "sell", "58000", "Stop loss")])
        pipeline.urgent(stop, "m-stop", name="stop")

        assert statuses(pipeline, "urgent-stop")["BTCUSDT"][0] == "filled"
        pipeline.run(name="next")
        assert statuses(pipeline, "manual-next")["ETHUSDT"] == (
            "ignored",
            "paused by the operator (alice: CPI release)",
        )
        assert amounts(pipeline) == {}
        assert [o.side.value for o in pipeline.paper().orders()] == ["buy", "sell"]
        assert_ledger_is_the_account(pipeline)


def test_flatten_sells_everything_through_a_cycle_and_leaves_the_account_paused(tmp_path: Path) -> None:
    dated = AlertClock()
    with stack(tmp_path) as pipeline:
        pipeline.seed_account()
        for a in dated([alert("BTCUSDT", "buy", "60000"), alert("ETHUSDT", "buy", "3000")]):
            pipeline.send(a)
        pipeline.run(name="entries")
        assert set(amounts(pipeline)) == {"BTCUSDT", "ETHUSDT"}

        operator(pipeline, request_flatten, reason="holiday")
        result = pipeline.run(name="flatten")  # no alert: the flatten request alone makes the cycle trade

        entered = [e["stateEnteredEventDetails"]["name"] for e in result["history"] if e["type"].endswith("Entered")]
        assert "PlaceOrders" in entered
        assert amounts(pipeline) == {}
        controls = pipeline.store.get_controls()
        assert controls.flatten is None
        assert controls.paused is not None
        assert [e.what for e in controls.events] == ["paused", "flatten requested", "flattened"]
        assert any("ETHUSDT: sell" in n for n in pipeline.notifications())
        assert_ledger_is_the_account(pipeline)

        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="after")
        assert statuses(pipeline, "manual-after")["BTCUSDT"][0] == "ignored"
        operator(pipeline, resume)
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="resumed")
        assert set(amounts(pipeline)) == {"BTCUSDT"}
        assert_ledger_is_the_account(pipeline)


def test_the_account_drawdown_guard_trips_notifies_and_holds_entries_until_resumed(tmp_path: Path) -> None:
    dated = AlertClock()
    with stack(tmp_path, {"account_drawdown": "0.05"}) as pipeline:
        pipeline.seed_account()
        pipeline.send(dated([alert("SOLUSDT", "buy", "150")])[0])
        pipeline.run(name="entry")
        assert pipeline.store.get_controls().account_trip is None

        move_price(pipeline, "SOL/USDT", D(120))  # half the account in SOL, 20% down: about 10% of equity
        pipeline.run({"trigger": "schedule"}, name="marked")  # a scheduled cycle marks even without alerts
        trip = pipeline.store.get_controls().account_trip
        assert trip is not None
        assert trip.reason == (
            "account drawdown guard: equity 9001.00 USDT is 9.99% below its peak 10000.00 USDT "
            "(the limit is 5.00%); crypto-bot resume releases it"
        )
        assert any("account drawdown guard" in n for n in pipeline.notifications())

        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="held")
        assert statuses(pipeline, "manual-held")["BTCUSDT"] == ("ignored", trip.reason)

        operator(pipeline, resume)
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="resumed")
        assert set(amounts(pipeline)) == {"SOLUSDT", "BTCUSDT"}
        assert pipeline.store.get_controls().account_trip is None
        assert_ledger_is_the_account(pipeline)


def test_a_stop_loss_starts_a_cooldown_that_ignores_the_next_entry(tmp_path: Path) -> None:
    dated = AlertClock()
    with stack(tmp_path, {"cooldown_bars": 1}) as pipeline:
        pipeline.seed_account()
        pipeline.send(dated([alert("BTCUSDT", "buy", "60000")])[0])
        pipeline.run(name="entry")
        (stop,) = dated([alert("BTCUSDT", "sell", "58000", "Stop loss")])
        pipeline.urgent(stop, "m-stop", name="stop")
        cooldown = pipeline.store.get_controls().cooldowns["BTCUSDT"]

        pipeline.send(dated([alert("BTCUSDT", "buy", "58500")])[0])  # within the next 8h bar
        pipeline.run(name="again")
        assert statuses(pipeline, "manual-again")["BTCUSDT"] == ("ignored", cooldown.reason)
        assert amounts(pipeline) == {}
        assert_ledger_is_the_account(pipeline)
