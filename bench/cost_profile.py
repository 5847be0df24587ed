"""The cost profile: the measured per-cycle counts ``crypto-bot cost`` multiplies by prices."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bench.settings import HANDLERS, ROOT

_COUNT_FIELDS = (
    "transitions",
    "lambda_invocations",
    "lambda_ms",
    "sqs_calls",
    "dynamodb_wru",
    "dynamodb_rru",
    "sns_publishes",
    "log_bytes",
)


def _counts(run: Mapping[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {k: str(run[k]) for k in _COUNT_FIELDS}
    counts["functions"] = list(run["functions"])
    counts["metric_names"] = list(run["metric_names"])
    return counts


def _per_extra(one: Mapping[str, Any], ten: Mapping[str, Any]) -> dict[str, Any]:
    # What each of the nine further alerts of a ten-alert cycle added, never below zero.
    extra: dict[str, Any] = {
        k: str(max(Decimal(0), (Decimal(str(ten[k])) - Decimal(str(one[k]))) / 9)) for k in _COUNT_FIELDS
    }
    extra["functions"] = list(ten["functions"])
    extra["metric_names"] = list(ten["metric_names"])
    return extra


def cost_profile(cold: Mapping[str, Any], cycles: Mapping[str, Any], cache: Mapping[str, Any]) -> dict[str, Any]:
    """Build cost_profile.json: the measured per-cycle counts ``crypto-bot cost`` prices."""
    from crypto_bot_tools.local.template import load_template

    template = load_template(ROOT / "template.yaml")
    resources = template["Resources"]
    memory = template["Globals"]["Function"]["MemorySize"]
    conditions = cold["conditions"]
    # What each deployment ships: ours is compiled by `make build`; the seed's trader was packaged the way
    # `sam build` and `chalice package` do it, sources only, so it compiled ccxt at every cold start (its
    # "1.9 s"); the seed's webhook used only the runtime's boto3, which AWS ships compiled.
    ours, seed = conditions["precompiled"]["probes"], conditions["no bytecode"]["probes"]
    return {
        "generated_by": "make bench (bench/run.py)",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "memory_mb": str(memory),
        "authorizer_memory_mb": str(resources["WebhookAuthorizerFunction"]["Properties"]["MemorySize"]),
        "alarms": str(sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm")),
        "cold_start_conditions": "handlers: precompiled; seed_trader: no bytecode; seed_webhook: the runtime's boto3",
        "cold_start_ms": {
            **{name: str(ours[name]["median_ms"]) for name in HANDLERS},
            "seed_trader": str(seed["seed_trader"]["median_ms"]),
            "seed_webhook": str(ours["seed_webhook"]["median_ms"]),
        },
        "authorizer_ms": str(cold["authorizer call"]["median_ms"]),
        # The markets cache's read per live cold start, as measured (markets_cache: the cached cold start).
        "cache_read_rru": str(cache["cached_cold_start"]["dynamodb_rru"]),
        "empty": _counts(cycles["empty"]),
        "trading": {str(s): _counts(cycles[f"one:{s}"]) for s in (3, 20)},
        "per_extra_signal": {str(s): _per_extra(cycles[f"one:{s}"], cycles[f"ten:{s}"]) for s in (3, 20)},
    }
