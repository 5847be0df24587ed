"""The load test: a burst of 1,000 alerts over 200 strategies, POSTed concurrently to `crypto-bot local`.

About one alert in ten is sent twice, as TradingView resends after a 5xx. Every POST must be answered 200,
every distinct alert stored exactly once, none lost, every signal final with a reason, no order placed
twice, and the ledger must equal the paper balances. Latencies are measured and published, never
asserted: the machine is shared and noisy. The figures go to ``.build/reliability/burst.json``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from crypto_bot_tools.local.cli import redate_alerts
from tests.conftest import ROOT
from tests.e2e.test_abuse import FIGURES_DIR, TERMINAL
from tests.e2e.test_local_stack import TOKEN, Local, stop_local

STRATEGIES: Final = 200
ALERTS: Final = 1_000
RESENDS: Final = 100
WORKERS: Final = 16
TRADERS: Final = 5  # strategies whose alerts end long, and so trade


def burst_config(path: Path) -> Path:
    """200 strategies S001USD…S200USD on S001/USD…, sharing 98% of the account."""
    config = {
        f"S{n:03d}USD": {"exchange_symbol": f"S{n:03d}/USD", "base_asset": f"S{n:03d}", "percentage": 0.0049}
        for n in range(1, STRATEGIES + 1)
    }
    assert sum(Decimal(str(c["percentage"])) for c in config.values()) <= Decimal("0.98")
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def burst_alerts() -> list[dict[str, Any]]:
    """Five alerts per strategy, alternating buy and sell at distinct times and prices: 1,000 distinct alerts.

    The first TRADERS strategies end on a buy and trade; the others end on a sell and net to nothing. Every
    alert still goes through intake, dedupe and netting, but the cycle places tens of orders, not hundreds:
    under moto each order costs a state-machine branch, and the suite's time is bounded.
    """
    alerts = []
    for n in range(1, STRATEGIES + 1):
        first = "buy" if n <= TRADERS else "sell"
        for k in range(ALERTS // STRATEGIES):
            buy = (k % 2 == 0) == (first == "buy")
            alerts.append(
                {
                    "time": f"2024-08-10T{k:02d}:30:{n % 60:02d}Z",
                    "ticker": f"S{n:03d}USD",
                    "order_action": "buy" if buy else "sell",
                    "order_price": str(10 + n + k),
                    "order_comment": "long" if buy else "exit",
                }
            )
    # Their spacing (4 h and under a minute) kept, ending a minute ago: the template's expiry (8 h 05) is on.
    return redate_alerts(alerts, datetime.now(UTC) - timedelta(minutes=1))


def start_burst_local(log: Path, config: Path) -> Local:
    """Start `crypto-bot local` on a free port with the 200-strategy config; only 127.0.0.1."""
    command = [
        *(sys.executable, "-m", "crypto_bot_tools.cli", "local", "--port", "0", "--host", "127.0.0.1"),
        *("--token", TOKEN, "--schedule", "none"),
        *("--config", str(config), "--template", str(ROOT / "template.yaml")),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if "webhook   POST http://127.0.0.1:" in line:
                base = line.split("POST ", 1)[1].split("/signals", 1)[0]
                http = httpx.Client(base_url=base, timeout=300)
                if http.get("/_local/health").status_code == 200:
                    return Local(process, http, log)
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(f"crypto-bot local did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def burst_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    where = tmp_path_factory.mktemp("burst")
    started = start_burst_local(where / "local.log", burst_config(where / "strategy_config.json"))
    try:
        yield started
    finally:
        stop_local(started)


def post_all(local: Local, bodies: list[str]) -> list[tuple[int, float]]:
    """POST every body from 16 threads (one HTTP client each); return each status and latency in ms."""
    base = str(local.http.base_url)
    clients = [httpx.Client(base_url=base, timeout=60) for _ in range(WORKERS)]

    def post(index: int) -> tuple[int, float]:
        client = clients[index % WORKERS]
        started = time.perf_counter()
        response = client.post(
            f"/signals?token={TOKEN}", content=bodies[index].encode(), headers={"Content-Type": "application/json"}
        )
        return response.status_code, (time.perf_counter() - started) * 1000

    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return list(pool.map(post, range(len(bodies))))
    finally:
        for client in clients:
            client.close()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))]


# A minute of load on the 2-core machine: `make load` and `make reports` run it, `make test` does not (the abuse
# suite, the local stack's duplicate test and the fault suite hold the same dedupe and ledger rules every run).
@pytest.mark.load
def test_burst_of_1000_alerts_over_200_strategies_is_stored_once_each_and_traded_without_duplicates(
    burst_local: Local,
) -> None:
    alerts = burst_alerts()
    distinct = [json.dumps(alert) for alert in alerts]
    rng = random.Random(5)  # the same burst every run
    resent = rng.sample(distinct, RESENDS)
    bodies = distinct + resent
    rng.shuffle(bodies)

    answers = post_all(burst_local, bodies)

    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: len(bodies)}
    cycles, started = 0, time.perf_counter()
    for _ in range(3):  # Collect drains at most 1,000 messages a cycle: 1,100 were sent
        detail = burst_local.cycle()
        assert detail["status"] == "SUCCEEDED"
        cycles += 1
        state = burst_local.state()
        if all(d == {"visible": 0, "in_flight": 0} for d in state["queues"].values()):
            break
    cycle_seconds = time.perf_counter() - started
    # Each resend is recorded ignored under its own message id, naming the signal it copies, and never traded.
    copies = [s for s in state["signals"] if s["dedupe_key"].startswith("duplicate-")]
    signals = [s for s in state["signals"] if s not in copies]
    originals = {s["id"] for s in signals}
    assert len(copies) == RESENDS
    assert all(c["status"] == "ignored" and c["reason"].split()[4] in originals for c in copies)

    # Every distinct alert stored exactly once; the resends absorbed; nothing lost.
    stored = Counter((s["strategy"], s["action"], s["time"]) for s in signals)
    sent = Counter((a["ticker"], a["order_action"], a["time"]) for a in alerts)
    assert stored == sent
    assert len(signals) == ALERTS
    assert {name: d for name, d in state["queues"].items() if d != {"visible": 0, "in_flight": 0}} == {}
    # Every signal final, with its reason.
    assert [s for s in signals if s["status"] not in TERMINAL or not s["reason"]] == []
    # No order twice.
    orders = state["orders"]
    assert len({o["client_order_id"] for o in orders}) == len(orders)
    # The ledger is the paper account: each asset's positions sum to its balance.
    held: dict[str, Decimal] = {}
    for position in state["positions"].values():
        asset = position["symbol"].split("/")[0]
        held[asset] = held.get(asset, Decimal(0)) + position["amount"]
    balances = {asset: b["total"] for asset, b in state["balances"].items() if asset != "USD" and b["total"] != 0}
    assert {a: v for a, v in held.items() if v != 0} == balances

    latencies = [ms for _, ms in answers]
    figures = {
        "measured_at": time.time(),
        "measured_on": datetime.now(UTC).strftime("%Y-%m-%d"),
        "strategies": STRATEGIES,
        "alerts_sent": len(bodies),
        "distinct_alerts": ALERTS,
        "accepted": statuses[200],
        "stored": len(signals),
        "duplicates_absorbed": len(copies),
        "lost": sum((sent - stored).values()),
        "duplicate_orders": len(orders) - len({o["client_order_id"] for o in orders}),
        "orders": len(orders),
        "statuses": dict(Counter(s["status"] for s in signals)),
        "workers": WORKERS,
        "accept_latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        },
        "cycles": cycles,
        "cycle_seconds": round(cycle_seconds, 1),
    }
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    (FIGURES_DIR / "burst.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))  # shown with -s: the figures of this run
