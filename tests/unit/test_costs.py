"""The cost estimator: exact Decimal money from a measured profile and dated prices."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.timeframe import Timeframe
from crypto_bot_tools import costs
from crypto_bot_tools.cli import main
from crypto_bot_tools.costs import PRICES, Profile, Workload, estimate, estimate_seed, money


def cycle(**overrides: Any) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "transitions": "3",
        "lambda_invocations": "1",
        "lambda_ms": "10",
        "functions": ["CollectFunction"],
        "sqs_calls": "1",
        "dynamodb_wru": "0",
        "dynamodb_rru": "1",
        "sns_publishes": "0",
        "log_bytes": "1000",
        "metric_names": ["SignalsReceived"],
    }
    counts.update(overrides)
    return counts


def profile_data(**overrides: Any) -> dict[str, Any]:
    trade = cycle(
        transitions="20",
        lambda_invocations="8",
        lambda_ms="200",
        functions=["CollectFunction", "PlanFunction", "PlaceOrderFunction", "ReconcileFunction", "FinalizeFunction"],
        sqs_calls="3",
        dynamodb_wru="30",
        dynamodb_rru="20",
        sns_publishes="1",
        log_bytes="20000",
        metric_names=["SignalsReceived", "OrdersPlanned", "OrdersFilled"],
    )
    data: dict[str, Any] = {
        "measured_at": "2026-01-01T00:00:00+00:00",
        "memory_mb": "256",
        "authorizer_memory_mb": "128",
        "alarms": "4",
        "cold_start_ms": {
            "collect": "300",
            "plan": "300",
            "place_order": "300",
            "reconcile": "300",
            "finalize": "300",
            "authorizer": "200",
            "seed_trader": "1900",
            "seed_webhook": "300",
        },
        "authorizer_ms": "1",
        "cache_read_rru": "0.5",
        "empty": cycle(),
        "trading": {"3": trade, "20": trade},
        "per_extra_signal": {"3": cycle(transitions="2", functions=[]), "20": cycle(transitions="2", functions=[])},
    }
    data.update(overrides)
    return data


def workload(timeframe: str = "8h", strategies: int = 3, signals: str = "2", free_tier: bool = True) -> Workload:
    return Workload(Timeframe.parse(timeframe), strategies, Decimal(signals), free_tier)


@pytest.fixture
def profile() -> Profile:
    return Profile.from_json(profile_data())


def test_every_line_of_the_bill_is_an_exact_decimal(profile: Profile) -> None:
    bill = estimate(profile, workload(free_tier=False))
    assert all(isinstance(v, Decimal) for v in bill.lines.values())
    assert bill.total == sum(bill.lines.values(), Decimal(0))


def test_the_month_has_730_hours_of_cycles() -> None:
    assert workload("8h").cycles == Decimal("91.25")
    assert workload("1h").cycles == Decimal(730)
    assert workload("8h", signals="2").signals == Decimal("730") / 12


def test_step_functions_charges_every_transition_without_the_free_tier(profile: Profile) -> None:
    w = workload("1d", signals="0", free_tier=False)
    expected = w.cycles * 3 * Decimal("0.025") / 1000  # empty cycles only, 3 transitions each
    assert estimate(profile, w).lines["Step Functions"] == expected


def test_the_free_tier_absorbs_a_small_deployment(profile: Profile) -> None:
    bill = estimate(profile, workload("1d", signals="0"))
    assert bill.lines["Step Functions"] == 0
    assert bill.lines["Lambda"] == 0


def test_api_gateway_charges_each_alert_at_the_rest_price(profile: Profile) -> None:
    w = workload(signals="10", free_tier=False)
    assert estimate(profile, w).lines["API Gateway"] == w.signals * Decimal("3.50") / 1_000_000


def test_more_alerts_than_cycles_make_every_cycle_trade_with_the_extra_alerts_added(profile: Profile) -> None:
    w = workload("1d", signals="3", free_tier=False)  # 30.4166… cycles, 91.25 alerts: 2 extra alerts a cycle
    transitions = w.cycles * (20 + 2 * 2)
    assert estimate(profile, w).lines["Step Functions"] == transitions * PRICES["sfn_transition"].per_unit


def test_the_profile_file_drives_the_estimate(tmp_path: Path) -> None:
    cheap, dear = tmp_path / "cheap.json", tmp_path / "dear.json"
    cheap.write_text(json.dumps(profile_data()), encoding="utf-8")
    expensive_empty = cycle(transitions="300")
    dear.write_text(json.dumps(profile_data(empty=expensive_empty)), encoding="utf-8")
    w = workload("15m", signals="0", free_tier=False)
    assert estimate(Profile.load(dear), w).total > estimate(Profile.load(cheap), w).total


def test_a_missing_profile_says_to_run_the_benchmark(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make bench"):
        Profile.load(tmp_path / "none.json")


def test_the_nearest_measured_strategy_count_at_or_above_is_used(profile: Profile) -> None:
    assert profile.nearest(1) == 3
    assert profile.nearest(5) == 20
    assert profile.nearest(500) == 20


def test_the_seed_pays_for_its_secret_and_without_free_tier_its_provisioned_table(profile: Profile) -> None:
    free = estimate_seed(profile, workload())
    assert free.lines["SSM/Secrets Manager"] == Decimal("0.40") + workload().cycles * Decimal("0.05") / 10_000
    assert free.lines["DynamoDB"] == 0
    full = estimate_seed(profile, workload(free_tier=False))
    assert full.lines["DynamoDB"] == 5 * 730 * (Decimal("0.00065") + Decimal("0.00013"))


def test_our_secret_store_is_ssm_with_only_kms_requests_to_pay(profile: Profile) -> None:
    bill = estimate(profile, workload(free_tier=False))
    assert bill.lines["SSM/Secrets Manager"] < Decimal("0.01")


def test_money_rounds_up_to_a_hundredth_of_a_cent() -> None:
    assert money(Decimal("0.00001")) == "$0.0001"
    assert money(Decimal("1.23450")) == "$1.2345"


def test_lambda_time_is_scaled_to_the_vcpu_share_of_the_memory_size(profile: Profile) -> None:
    # 100 ms at 256 MB runs on 256/1769 of a vCPU: 691.015625 ms, billed as 692 ms.
    assert costs._gb_seconds(Decimal(100), Decimal(256)) == Decimal(692) / 1000 * Decimal(256) / 1024


def test_cost_command_prints_the_estimate_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--timeframe", "1h", "--strategies", "5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["workload"]["timeframe"] == "1h"
    assert set(printed["ours"]["services"]) == set(costs.SERVICES)
    assert Decimal(printed["ours"]["total"]) == sum(Decimal(v) for v in printed["ours"]["services"].values())


def test_cost_command_prints_a_table_with_the_seed_beside_ours(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--no-free-tier"]) == 0
    out = capsys.readouterr().out
    assert "without free tiers" in out
    assert "crypto-bot" in out
    assert "seed" in out


def test_cost_command_refuses_a_negative_alert_rate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["cost", "--signals-per-day", "-1"])
    assert "must be a number at least 0" in capsys.readouterr().err
