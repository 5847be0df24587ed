"""`crypto-bot local --exchange binance` trading the Binance emulator over HTTP, end to end.

The emulator (:mod:`tests.venues.binance`) runs in this process on 127.0.0.1; `crypto-bot local`
runs as a subprocess, as a user starts it against a testnet, with ``--exchange-options`` pointing
ccxt's binance class at the emulator and ``--api-key-file`` holding a key only the emulator knows.
The test reads both sides: what the stack says (``GET /_local/state``) and what the venue holds
(the emulator's own state, never through the adapter under test).

The account is a USDT one, as on Binance's spot markets: `crypto-bot local` takes its quote currency
from the config's symbols (BTC/USDT), with no option given.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any, Final

import pytest

from tests.e2e.test_local_stack import Local, parse_state, start_local, stop_local
from tests.venues.binance import BTCUSDT, Binance, ccxt_options
from tests.venues.http import VenueServer, serving

STRATEGY: Final = {"BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.5"}}
CASH: Final = D(10000)
PRICE: Final = D(60000)


@pytest.fixture
def venue() -> Binance:
    """A Binance account holding 10,000 USDT only, under a key made for this test; BTCUSDT trades at 60,000."""
    account = Binance(rules={BTCUSDT.symbol: BTCUSDT}, api_key=secrets.token_hex(32), secret=secrets.token_hex(32))
    account.deposit("USDT", CASH)
    account.set_price(BTCUSDT.symbol, PRICE)
    return account


@pytest.fixture
def venue_server(venue: Binance) -> Iterator[VenueServer]:
    with serving(venue.routes()) as server:
        yield server


@pytest.fixture
def local(tmp_path: Path, venue: Binance, venue_server: VenueServer) -> Iterator[Local]:
    config = tmp_path / "strategy_config.json"
    config.write_text(json.dumps(STRATEGY), encoding="utf-8")
    key_file = tmp_path / "api-key.json"
    key_file.write_text(json.dumps({"apiKey": venue.api_key, "secret": venue.secret}), encoding="utf-8")
    started = start_local(
        tmp_path / "local.log",
        [
            "--config",
            str(config),
            "--exchange",
            "binance",
            "--exchange-options",
            # 5 s rather than the venue lane's 1.5 s: here the handlers share two cores with moto and the test.
            json.dumps(ccxt_options(venue_server.url, timeout_ms=5000)),
            "--api-key-file",
            str(key_file),
        ],
    )
    try:
        yield started
    finally:
        stop_local(started)


def exact_state(local: Local) -> tuple[dict[str, Any], str]:
    """Read ``GET /_local/state`` with its money as Decimals (compared exactly); return it and its text."""
    response = local.http.get("/_local/state")
    assert response.status_code == 200, response.text
    return parse_state(response.text), response.text


def alert(action: str) -> dict[str, str]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ticker": "BTCUSDT",
        "order_action": action,
        "order_price": str(PRICE),
        "order_comment": "Long entry" if action == "buy" else "Long exit",
    }


def trade(local: Local, action: str) -> str:
    """POST one alert over the webhook, run a cycle, and return the cycle's answer as text."""
    posted = local.post_alert(alert(action))
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] is True
    response = local.http.post("/_local/cycle")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SUCCEEDED", response.text
    return response.text


def venue_totals(venue: Binance) -> dict[str, D]:
    return {asset: total.normalize() for asset, total in venue.total_balances().items()}


def test_local_stack_buys_and_exits_on_the_binance_emulator_with_the_ledger_equal_to_the_account(
    local: Local, venue: Binance
) -> None:
    bought = trade(local, "buy")

    # Half the 10,000 USDT: 0.08316 BTC is the most whose cost at the 60,060 limit (60,000 + 0.1%) plus ccxt's 0.1%
    # taker fee fits 5,000 USDT. It fills at the 60,000 ask, and Binance takes 0.1% of the BTC received.
    [buy] = venue.orders
    assert (buy.symbol, buy.side, buy.type, buy.status) == ("BTCUSDT", "BUY", "LIMIT", "FILLED")
    assert (buy.price, buy.executed_qty, buy.cumulative_quote_qty) == (D(60060), D("0.08316"), D("4989.6"))
    assert [(t.qty, t.price, t.commission, t.commission_asset) for t in venue.trades] == [
        (D("0.08316"), PRICE, D("0.00008316"), "BTC")
    ]
    assert venue_totals(venue) == {"USDT": D("5010.4"), "BTC": D("0.08307684")}
    state, text = exact_state(local)
    assert state["exchange"] == "binance"
    assert state["balances"]["BTC"] == {"free": D("0.08307684"), "used": D(0), "total": D("0.08307684")}
    assert state["balances"]["USDT"]["total"] == D("5010.4")
    assert state["ledger"] == {"BTC": D("0.08307684")}  # the venue's BTC exactly: the commission is booked
    assert state["positions"]["BTCUSDT"]["amount"] == D("0.08307684")
    assert [(s["strategy"], s["action"], s["status"]) for s in state["signals"]] == [("BTCUSDT", "buy", "filled")]
    [order] = state["orders"]
    assert (order["client_order_id"], order["status"], order["filled"]) == (buy.client_order_id, "filled", D("0.08316"))
    assert state["prices"] == {"BTC/USDT": PRICE}

    sold = trade(local, "sell")

    # The ledger holds what the account holds, so the exit sells all of it the lot size allows: 0.08307 BTC.
    first, sell = venue.orders
    assert first is buy
    assert (sell.side, sell.status, sell.executed_qty) == ("SELL", "FILLED", D("0.08307"))
    assert [(t.commission, t.commission_asset) for t in venue.trades[1:]] == [(D("4.9842"), "USDT")]
    assert venue.open_client_order_ids() == []
    assert venue_totals(venue) == {"USDT": D("9989.6158"), "BTC": D("0.00000684")}
    final, final_text = exact_state(local)
    assert final["balances"]["BTC"]["total"] == D("0.00000684")  # dust below the lot size, which the ledger holds
    assert final["ledger"] == {"BTC": D("0.00000684")}
    assert [(s["action"], s["status"]) for s in final["signals"]] == [("buy", "filled"), ("sell", "filled")]
    assert [o["status"] for o in final["orders"]] == ["filled", "filled"]

    # The key reached the venue (every signed call passed) and nothing the stack shows or logs.
    answers = [bought, sold, text, final_text, local.log.read_text(errors="replace")]
    leaked = [n for n, answer in enumerate(answers) for s in (venue.api_key, venue.secret) if s in answer]
    assert leaked == []
