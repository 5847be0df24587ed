"""The generated sections of docs/performance.md, and the targets checked against this run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bench.cold_starts import TRACER_ON
from bench.settings import DOC


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(ok: bool, detail: str = "") -> str:
    return "met" if ok else f"**missed**{': ' + detail if detail else ''}"


def targets(results: Mapping[str, Any]) -> list[list[Any]]:
    """Check every target of the issue against this run's figures."""
    from crypto_bot.domain.timeframe import Timeframe
    from crypto_bot_tools.costs import Profile, Workload, estimate

    rows: list[list[Any]] = []
    for condition, measured in results["cold_start"]["conditions"].items():
        if "skipped" in measured:
            continue
        ratios = measured["ccxt_over"]
        for name in ("place_order", "reconcile"):
            for label in (name, f"{name}+live_exchange"):
                ratio = ratios[label]
                rows.append(
                    [
                        f"`{label}` starts ≥ 3× faster than `import ccxt` ({condition})",
                        f"{ratio}×",
                        _verdict(ratio >= 3, f"{ratio}× < 3×"),
                    ]
                )
    for run in results["cycle_scale"]["runs"]:
        if "skipped" in run:
            continue
        n, s = run["signals"], run["strategies"]
        limit = math.ceil(n / 10) + 2
        over = run["sqs_calls"] - limit
        rows.append(
            [f"SQS calls ≤ ⌈N/10⌉ + 2 = {limit} (N={n}, S={s})", run["sqs_calls"], _verdict(over <= 0, f"+{over}")]
        )
    for run in results["cycle_scale"]["runs"]:
        if "skipped" not in run and run["signals"] == 1000:
            size = run["largest_payload_bytes"]
            rows.append([f"payload < 64 KB (N=1000, S={run['strategies']})", f"{size:,} B", _verdict(size < 65536)])
    size = results["cold_start"].get("built_layer_size", {})
    if "bytes" in size:
        within = size["bytes"] <= size["limit_bytes"]
        rows.append(["built layer within Lambda's 250 MiB unzipped", f"{size['bytes'] / 1e6:.1f} MB", _verdict(within)])
    planner = results["planner"]["plan_entries_median_ms"]
    rows.append(["planner < 50 ms for 200 strategies", f"{planner} ms", _verdict(planner < 50)])
    empty = results["cycles"]["empty"]["transitions"]
    rows.append(["empty cycle ≤ 6 state transitions", empty, _verdict(empty <= 6)])
    profile = Profile.from_json(results["cost_profile"])
    for timeframe, strategies, limit in (("8h", 3, Decimal("0.01")), ("1h", 5, Decimal("0.10"))):
        total = estimate(profile, Workload(Timeframe.parse(timeframe), strategies, Decimal(2), True)).total
        shown = f"${total.quantize(Decimal('0.0001'), rounding='ROUND_CEILING')}"
        rows.append(
            [
                f"≤ ${limit}/month beyond the free tier at {timeframe}, {strategies} strategies",
                shown,
                _verdict(total <= limit),
            ]
        )
    return rows


def _cold_start_section(cold: Mapping[str, Any]) -> str:
    """The cold-start table, every condition side by side, and what the trees held."""
    conditions = {c: m for c, m in cold["conditions"].items() if "skipped" not in m}
    header = ["probe (fresh process)"]
    for condition in conditions:
        header += [f"{condition}: median ms", "`import ccxt` ÷ this"]
    labels = list(next(iter(conditions.values()))["probes"])
    rows = []
    for label in labels:
        row: list[Any] = [f"`{label}`"]
        for measured in conditions.values():
            if label not in measured["probes"]:
                row += ["not in this layer", ""]
                continue
            ratio = measured["ccxt_over"].get(label)
            row += [measured["probes"][label]["median_ms"], f"{ratio}×" if ratio is not None else ""]
        rows.append(row)
    versions = cold["layer_distributions"]
    shown = ", ".join(f"{n} {versions[n]}" for n in ("ccxt", "aws-lambda-powertools", "botocore") if n in versions)
    lines = [
        _table(header, rows),
        "",
        _layer_size_line(cold.get("built_layer_size") or {"skipped": "not measured by this version of the bench"}),
        "",
        f"Median of {cold['repetitions']} runs each (minimums in `bench/results.json`); interpreter start-up "
        "excluded. The layer is `layers/core/requirements.txt` with its dependencies "
        f"({len(versions)} distributions: {shown}, …), `crypto_bot` and the strategy config.",
        "",
    ]
    for condition, measured in conditions.items():
        line = (
            f"- **{condition}**: {measured['opt_python_py_files']:,} `.py` and "
            f"{measured['opt_python_pyc_files']:,} `.pyc` files under `/opt/python`"
        )
        if "built_at" in measured:
            swapped = ", ".join(measured["swapped_for_this_machine"]) or "none"
            line += (
                f"; `make build` output of {measured['built_at']}, of which {measured['layer_pyc_bytes'] / 1e6:.1f} MB"
                f" of bytecode; swapped for this machine's arm64 binaries: {swapped}"
            )
        if measured.get("ccxt_reference", condition) != condition:
            line += (
                f"; the layer holds only the ccxt modules the handlers import, so `import ccxt` and `seed_trader`"
                f" cannot run from it, and its ratios divide the {measured['ccxt_reference']} tree's `import ccxt`"
            )
        lines.append(line + ".")
        probes = measured["probes"]
        saved = [
            f"`{label}` {probes[label + TRACER_ON]['median_ms']} → {probes[label]['median_ms']} ms"
            for label in ("place_order", "place_order+live_exchange")
        ]
        lines.append(f"  Without the X-Ray SDK Tracer: {'; '.join(saved)}.")
    for condition, measured in cold["conditions"].items():
        if "skipped" in measured:
            lines.append(f"- **{condition}**: not measured ({measured['skipped']}).")
    seed = cold["conditions"]["no bytecode"]["probes"]["seed_trader"]["median_ms"]
    shipped = cold["conditions"]["precompiled"]["probes"]
    versus = "; ".join(
        f"`{label}` {shipped[label]['median_ms']} ms, {seed / shipped[label]['median_ms']:.1f}× faster"
        for label in ("place_order", "place_order+live_exchange", "reconcile+live_exchange")
    )
    lines += [
        "",
        f"As shipped: the seed's trader (no bytecode) starts in {seed} ms; ours (precompiled, `make build`): {versus}.",
        "",
        f"A warm authorizer call (precompiled): {cold['authorizer call']['median_ms']} ms.",
    ]
    return "\n".join(lines)


def _layer_size_line(size: Mapping[str, Any]) -> str:
    """Say how big the built layer is unzipped, beside the cold starts it causes."""
    if "skipped" in size:
        return f"**Built layer**: size not measured ({size['skipped']})."
    return (
        f"**Built layer** (`{size['layer_dir']}`, built {size['built_at']}): {size['bytes'] / 1e6:.1f} MB unzipped"
        f" in {size['files']:,} files; Lambda allows {size['limit_bytes'] / 1e6:.1f} MB (250 MiB) for a function and"
        f" its layers together. Measured by {size['measured_by']}."
    )


def render(results: Mapping[str, Any]) -> dict[str, str]:
    """Return the generated sections of docs/performance.md, by marker name."""
    from crypto_bot.domain.timeframe import Timeframe
    from crypto_bot_tools.costs import Profile, Workload, estimate, estimate_seed, markdown_table, render_table

    sections: dict[str, str] = {"cold-start": _cold_start_section(results["cold_start"])}
    cache = results["markets_cache"]
    sections["markets-cache"] = _table(
        ["cold start", "exchange HTTP requests", "DynamoDB calls", "market bytes downloaded"],
        [
            [
                "no cache (before)",
                cache["without_cache"]["http_requests"],
                cache["without_cache"]["dynamodb_calls"],
                f"{cache['without_cache']['response_bytes']:,}",
            ],
            [
                "cache empty or stale (once a day)",
                cache["first_cold_start"]["http_requests"],
                cache["first_cold_start"]["dynamodb_calls"],
                "as above",
            ],
            [
                "cache fresh",
                cache["cached_cold_start"]["http_requests"],
                cache["cached_cold_start"]["dynamodb_calls"],
                0,
            ],
        ],
    ) + (
        f"\n\nRequests without the cache: {', '.join(f'`{r}`' for r in cache['without_cache']['requests'])}. "
        f"The cached item for {len(cache['symbols'])} symbols is {cache['cached_item_bytes']:,} bytes compressed. "
        f"Saved per cold start: {cache['http_requests_saved_per_cold_start']} requests. DynamoDB calls counted on the"
        f" client the cache is given: {', '.join(cache['first_cold_start']['dynamodb_operations'])} when empty or"
        f" stale, {', '.join(cache['cached_cold_start']['dynamodb_operations'])} when fresh"
        f" ({cache['cached_cold_start']['dynamodb_rru']} RRU)."
    )
    rows = []
    for run in results["cycle_scale"]["runs"]:
        if "skipped" in run:
            rows.append([run["signals"], run["strategies"], f"skipped: {run['skipped']}"] + [""] * 7)
            continue
        written = f"{run['dynamodb_items_written']} / {run['dynamodb_write_calls']}"
        rows.append(
            [
                run["signals"],
                run["strategies"],
                run["wall_seconds"],
                run["transitions"],
                run["lambda_invocations"],
                round(run["lambda_ms"]),
                f"{run['sqs_calls']} (≤ {math.ceil(run['signals'] / 10) + 2})",
                written,
                f"{run['largest_payload_bytes']:,}",
                sum(run["api_calls"].values()),
            ]
        )
    header = [
        "N signals",
        "S strategies",
        "wall s",
        "transitions",
        "Lambda calls",
        "Lambda ms",
        "SQS calls (target)",
        "DynamoDB items / write calls",
        "largest payload B",
        "AWS API calls",
    ]
    sections["cycle-scale"] = _table(header, rows)
    measured = [r for r in results["cycle_scale"]["runs"] if "skipped" not in r]
    biggest = max(measured, key=lambda r: (r["signals"], r["strategies"]))
    sections["api-calls"] = (
        f"AWS API calls of the largest cycle measured (N={biggest['signals']}, S={biggest['strategies']}), "
        f"and of an empty cycle:\n\n"
        + _table(
            ["service:action", f"N={biggest['signals']}, S={biggest['strategies']}", "empty cycle"],
            [
                [f"`{k}`", biggest["api_calls"].get(k, 0), results["cycles"]["empty"]["api_calls"].get(k, 0)]
                for k in sorted(set(biggest["api_calls"]) | set(results["cycles"]["empty"]["api_calls"]))
            ],
        )
        + "\n\nLambda by function (largest cycle):\n\n"
        + _table(
            ["function", "invocations", "total ms", "slowest ms"],
            [[f, v["invocations"], v["total_ms"], v["max_ms"]] for f, v in biggest["lambda_by_function"].items()],
        )
        + f"\n\nEmpty cycle states: {' → '.join(results['cycles']['empty']['states_entered'] or [])}."
    )
    planner = results["planner"]
    sections["planner"] = _table(
        ["strategies", "active", "entering", "plan_entries median ms", "slowest ms", "with size_entries ms"],
        [
            [
                planner["strategies"],
                planner["active"],
                planner["entering"],
                planner["plan_entries_median_ms"],
                planner["plan_entries_max_ms"],
                planner["with_size_entries_median_ms"],
            ]
        ],
    )
    latency = results["stop_loss"]
    sections["latency"] = (
        _table(
            ["hop (emulated stack)", "measured ms", "Lambda handler", "handler ms"],
            [[h["hop"], h["ms"], h.get("lambda", ""), h.get("handler_ms", "")] for h in latency["hops"]]
            + [["**total: SQS send → order on the paper exchange**", f"**{latency['total_ms']}**", "", ""]],
        )
        + "\n\nExpected on AWS:\n\n"
        + _table(
            ["hop", "expected", "source"], [[h["hop"], h["expected"], h["source"]] for h in latency["aws_expected"]]
        )
    )
    profile = Profile.from_json(results["cost_profile"])
    sections["cost"] = markdown_table(profile, ["15m", "1h", "4h", "8h", "1d"], [3, 20])
    breakdown = []
    for timeframe, strategies in (("8h", 3), ("1h", 5)):
        workload = Workload(Timeframe.parse(timeframe), strategies, Decimal(2), True)
        breakdown.append(render_table(workload, estimate(profile, workload), estimate_seed(profile, workload)))
    sections["cost-breakdown"] = "```text\n" + "\n\n".join(breakdown) + "\n```"
    sections["targets"] = _table(["target", "measured", "verdict"], results["targets"])
    sections["run"] = (
        f"Measured {results['measured_at']} at commit `{results['commit']}` on {results['machine']};"
        f" `make bench` took {results['bench_seconds']} s."
    )
    return sections


def update_doc(sections: Mapping[str, str]) -> None:
    """Replace each ``<!-- bench:NAME -->`` … ``<!-- /bench -->`` block of docs/performance.md."""
    text = DOC.read_text(encoding="utf-8")
    for name, body in sections.items():
        start = f"<!-- bench:{name} -->"
        if start not in text:
            raise RuntimeError(f"{DOC}: no {start} marker")
        head, rest = text.split(start, 1)
        _old, tail = rest.split("<!-- /bench -->", 1)
        text = f"{head}{start}\n{body}\n<!-- /bench -->{tail}"
    DOC.write_text(text, encoding="utf-8")
