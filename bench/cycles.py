"""Cycles on the emulated stack: an empty one, N signals over S strategies, the planner and a stop loss's latency."""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.harness import Pipeline

from bench.aws_calls import ApiCounter, CapturedOutput, metric_names
from bench.settings import SCALE_BUDGET_SECONDS, STARTED, progress


def _environment(config_path: Path) -> dict[str, str]:
    return {
        "PAPER_TRADING": "true",
        "PAPER_PRICES": "alerts",
        "PAPER_MARKETS": "permissive",  # offline: the venue's markets would need the network
        "STRATEGY_CONFIG_PATH": str(config_path),
        "MAX_SIGNAL_AGE_MINUTES": "0",  # the benchmark's alerts are fixed historical ones
        "FILL_TIMEOUT_SECONDS": "0",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CryptoBotBench",
    }


def write_config(directory: Path, strategies: int) -> Path:
    """Write a config of ``strategies`` strategies on distinct symbols S001/USDT…, percentages summing to ≤ 0.98."""
    share = (Decimal("0.98") / strategies).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    config = {
        f"S{i:03d}": {"exchange_symbol": f"S{i:03d}/USDT", "base_asset": f"S{i:03d}", "percentage": str(share)}
        for i in range(1, strategies + 1)
    }
    path = directory / f"strategies_{strategies}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def alert(index: int, strategies: int, action: str = "buy", comment: str = "long") -> dict[str, Any]:
    """Build alert ``index``, on strategy ``index mod strategies``, priced 100 (the paper exchange's price)."""
    return {
        "time": "2024-08-10T02:30:02Z",
        "ticker": f"S{index % strategies + 1:03d}",
        "order_action": action,
        "order_price": "100",
        "order_comment": comment,
        "order_id": f"bench-{index}",
    }


def stack_for(config_path: Path) -> AbstractContextManager[Pipeline]:
    """Start the template's stack with the shared harness: the paper exchange priced by the alerts, no waits."""
    from tests.support.harness import cycle_stack

    return cycle_stack(
        parameters={"IncrementPct": "0"},
        substitutions={"MaxLockWaits": "3"},
        environment=_environment(config_path),
        retry_interval_scale=0,
    )


def _payload_sizes(history: list[dict[str, Any]]) -> tuple[int, str]:
    largest, where = 0, ""
    for event in history:
        for key, details in event.items():
            if not (key.endswith("EventDetails") and isinstance(details, dict)):
                continue
            for field in ("input", "output"):
                value = details.get(field)
                if isinstance(value, str) and len(value.encode()) > largest:
                    largest = len(value.encode())
                    where = f"{event['type']} {details.get('name', '')}".strip()
    return largest, where


def run_cycle(pipeline: Pipeline, counter: ApiCounter, output: CapturedOutput, execution_input: Any) -> dict[str, Any]:
    """Run one execution and return what it cost: calls, transitions, invocations, payloads, logs, wall time."""
    stack = pipeline.stack
    counter.reset()
    mark, invocations_before = len(output.parts), len(stack.invocations())
    started = time.perf_counter()
    result = stack.wait_for_execution(pipeline.start(execution_input), timeout=900)
    wall = time.perf_counter() - started
    if result["status"] != "SUCCEEDED":
        raise RuntimeError(f"bench cycle {result['status']}: {json.dumps(result['history'][-3:], default=str)[:2000]}")
    history = result["history"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    invocations = stack.invocations()[invocations_before:]
    by_function: dict[str, list[float]] = defaultdict(list)
    for logical_id, seconds in invocations:
        by_function[logical_id].append(seconds * 1000)
    text = output.since(mark)
    largest, where = _payload_sizes(history)
    calls = dict(sorted(counter.calls.items()))
    calls["stepfunctions:StartExecution"] = calls.get("stepfunctions:StartExecution", 0) + 1  # the trigger
    return {
        "status": result["status"],
        "wall_seconds": round(wall, 3),
        "transitions": len(entered),
        "states_entered": entered if len(entered) <= 12 else None,
        "api_calls": calls,
        "sqs_calls": sum(n for k, n in calls.items() if k.startswith("sqs:")),
        "dynamodb_wru": round(counter.wru, 1),
        "dynamodb_rru": round(counter.rru, 1),
        "dynamodb_items_written": counter.items_written,
        "dynamodb_write_calls": counter.write_calls,
        "lambda_invocations": len(invocations),
        "lambda_ms": round(sum(s for _, s in invocations) * 1000, 1),
        "functions": sorted(by_function),
        "lambda_by_function": {
            f: {"invocations": len(ms), "total_ms": round(sum(ms), 1), "max_ms": round(max(ms), 1)}
            for f, ms in sorted(by_function.items())
        },
        "largest_payload_bytes": largest,
        "largest_payload_at": where,
        "log_bytes": len(text.encode()),
        "metric_names": metric_names(text),
        "sns_publishes": calls.get("sns:Publish", 0),
    }


def cycle(config_path: Path, counter: ApiCounter, output: CapturedOutput, alerts: list[dict[str, Any]]) -> dict:
    """Queue ``alerts`` on a fresh stack and run one scheduled cycle over them."""
    with stack_for(config_path) as pipeline:
        pipeline.send_batch(alerts)  # ten per call: the same messages as API Gateway's one each, sooner
        return run_cycle(pipeline, counter, output, {"trigger": "manual"})


def cycle_scale(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run N signals over S strategies through the executed state machine; also the cost profile's cycles."""
    signal_counts, strategy_counts = ((10, 100), (3, 20)) if quick else ((10, 100, 1000), (3, 20, 200))
    counter, output = ApiCounter(), CapturedOutput()
    runs: list[dict[str, Any]] = []
    profile_cycles: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, counter.installed(), contextlib.redirect_stdout(output):
        directory = Path(tmp)
        configs = {s: write_config(directory, s) for s in strategy_counts}
        empty = cycle(configs[3], counter, output, [])
        progress(f"empty cycle: {empty['transitions']} transitions, {empty['sqs_calls']} SQS calls")
        profile_cycles["empty"] = empty
        for s in (3, 20):
            one = cycle(configs[s], counter, output, [alert(0, s)])
            ten = cycle(configs[s], counter, output, [alert(i, s) for i in range(10)])
            profile_cycles[f"one:{s}"], profile_cycles[f"ten:{s}"] = one, ten
            progress(f"profile S={s}: one alert {one['wall_seconds']} s, ten alerts {ten['wall_seconds']} s")
        for s in strategy_counts:
            for n in signal_counts:
                elapsed = time.monotonic() - STARTED
                if elapsed > SCALE_BUDGET_SECONDS:
                    runs.append({"signals": n, "strategies": s, "skipped": f"time budget ({elapsed:.0f} s used)"})
                    progress(f"scale N={n} S={s}: skipped, over the time budget")
                    continue
                progress(f"scale N={n} S={s}: running")
                measured = cycle(configs[s], counter, output, [alert(i, s) for i in range(n)])
                runs.append({"signals": n, "strategies": s, **measured})
                progress(
                    f"scale N={n} S={s}: {measured['wall_seconds']} s, {measured['transitions']} transitions, "
                    f"{measured['sqs_calls']} SQS calls, payload ≤ {measured['largest_payload_bytes']} B"
                )
    return {"runs": runs}, profile_cycles


def planner_time() -> dict[str, Any]:
    """Time plan_entries (boost) for 200 strategies, half of them holding a position, all entering or active."""
    from crypto_bot.domain.allocation import PlanContext, plan_entries, size_entries
    from crypto_bot.domain.config import ExecutionMode, StrategyConfig
    from crypto_bot.domain.ledger import Ledger
    from crypto_bot.domain.markets import Market, Side

    strategies = 200
    with tempfile.TemporaryDirectory() as tmp:
        config = StrategyConfig.load(write_config(Path(tmp), strategies), "USDT")
    ledger = Ledger()
    at = datetime(2024, 8, 10, tzinfo=UTC)
    keys = sorted(config.strategies)
    for key in keys[::2]:
        ledger.apply_fill(
            config[key], Side.BUY, order_id=f"o-{key}", filled=Decimal("0.4"), cost=Decimal(40), fees=(), at=at
        )
    markets = {
        s.symbol: Market(s.symbol, s.base, "USDT", amount_step=Decimal("0.00000001"), price_step=Decimal("0.01"))
        for s in config.strategies.values()
    }
    free = {"USDT": Decimal(6000), **{config[k].base: Decimal("0.4") for k in keys[::2]}}
    context = PlanContext(
        cycle_id="bench",
        config=config,
        ledger=ledger,
        free=free,
        total_quote=Decimal(6000),
        markets=markets,
        prices={s.symbol: Decimal(100) for s in config.strategies.values()},
        increment=Decimal("0.001"),
    )
    entering = keys[1::2]
    samples, with_sizing = [], []
    for _ in range(25):
        started = time.perf_counter()
        plan = plan_entries(ExecutionMode.BOOST, entering, context)
        samples.append(time.perf_counter() - started)
        size_entries(plan, context)
        with_sizing.append(time.perf_counter() - started)
    result = {
        "strategies": strategies,
        "entering": len(entering),
        "active": len(keys[::2]),
        "plan_entries_median_ms": round(statistics.median(samples) * 1000, 2),
        "plan_entries_max_ms": round(max(samples) * 1000, 2),
        "with_size_entries_median_ms": round(statistics.median(with_sizing) * 1000, 2),
    }
    progress(f"planner: {result['plan_entries_median_ms']} ms for {strategies} strategies")
    return result


# What each hop typically takes on AWS, with where the figure comes from (not measured here).
AWS_HOPS: list[tuple[str, str, str]] = [
    (
        "webhook → SQS",
        "≈ 20–60 ms",
        "API Gateway REST `Latency` minus `IntegrationLatency` is typically single- to low double-digit ms "
        "(API Gateway CloudWatch metrics); an SQS SendMessage is ≈ 10–20 ms in-region",
    ),
    (
        "pipe: poll + StartExecution",
        "≈ 0.1–1 s",
        "EventBridge Pipes long-polls SQS (batch 1, no batching window) and starts the execution "
        "asynchronously (FIRE_AND_FORGET); AWS publishes no SLA figure",
    ),
    (
        "Step Functions transitions",
        "≈ 10–50 ms each",
        "Standard workflows: per-state overhead of tens of ms (AWS Step Functions quotas and service "
        "documentation; Express is lower)",
    ),
    (
        "Lambda cold start (per function)",
        "measured INIT × 1769/256",
        "INIT runs on 256/1769 of a vCPU (Lambda allocates one vCPU at 1,769 MB); AWS bills INIT since 2025-08-01",
    ),
    ("Lambda warm invoke", "≈ 5–20 ms overhead", "Lambda service overhead of a synchronous invoke from Step Functions"),
    (
        "exchange round trip",
        "≈ 150–250 ms",
        "us-east-1 to Binance's matching engine in Tokyo (ap-northeast-1): ≈ 150 ms network RTT plus processing",
    ),
]


def stop_loss_latency() -> dict[str, Any]:
    """Time a stop loss from its SQS send to the order on the paper exchange, hop by hop, on the emulated stack."""
    output = CapturedOutput()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(output):
        config = write_config(Path(tmp), 3)
        with stack_for(config) as pipeline:
            stack = pipeline.stack
            pipeline.send_batch([alert(0, 3)])
            pipeline.run(name="position")
            before = len(stack.invocations())
            sqs, url = stack.client("sqs"), stack.resource("UrgentQueue")
            stop = alert(0, 3, action="sell", comment="Stop loss")
            t0 = time.time()
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(stop))
            t1 = time.time()
            # What the pipe does: receive one message, start an execution with it, delete it.
            (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
            arn = pipeline.start([{"messageId": message["MessageId"], "body": message["Body"]}], name="stop")
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            t2 = time.time()
            result = stack.wait_for_execution(arn, timeout=120)
            invocations = stack.invocations()[before:]
    history = result["history"]
    hops: list[dict[str, Any]] = [
        {"hop": "SQS SendMessage (the webhook's integration)", "ms": round((t1 - t0) * 1000, 1)},
        {"hop": "pipe: ReceiveMessage + StartExecution + DeleteMessage", "ms": round((t2 - t1) * 1000, 1)},
    ]
    started_at = history[0]["timestamp"].timestamp()
    open_states: dict[str, float] = {}
    placed_at: float | None = None
    lambda_ms = iter([(f, round(s * 1000, 1)) for f, s in invocations])
    for event in history:
        stamp = event["timestamp"].timestamp()
        if event["type"].endswith("StateEntered"):
            open_states[event["stateEnteredEventDetails"]["name"]] = stamp
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name not in open_states:
                continue
            row: dict[str, Any] = {"hop": f"state {name}", "ms": round((stamp - open_states.pop(name)) * 1000, 1)}
            if name in ("Collect", "PlanPhase", "PlaceOrder"):
                function, handler_ms = next(lambda_ms, ("", 0.0))
                row["lambda"] = function
                row["handler_ms"] = handler_ms
            hops.append(row)
            if name == "PlaceOrder":
                placed_at = stamp
                break
    if placed_at is None:
        raise RuntimeError("the stop loss never reached PlaceOrder")
    first_state = next(e["timestamp"].timestamp() for e in history if e["type"].endswith("StateEntered"))
    hops.insert(2, {"hop": "execution start → first state", "ms": round((first_state - started_at) * 1000, 1)})
    total = round((placed_at - t0) * 1000, 1)
    progress(f"stop loss: {total} ms from SQS send to the order on the paper exchange")
    return {
        "total_ms": total,
        "status": result["status"],
        "hops": hops,
        "aws_expected": [{"hop": h, "expected": e, "source": s} for h, e, s in AWS_HOPS],
    }
