"""``make bench``: measure cold starts, the markets cache, cycle scale and stop-loss latency.

Writes ``bench/results.json``, ``tools/crypto_bot_tools/cost_profile.json`` (the counts
``crypto-bot cost`` multiplies by prices) and the generated tables of ``docs/performance.md``
(between ``<!-- bench:NAME -->`` and ``<!-- /bench -->``). Every figure comes from this run.
Offline: the exchange is the paper exchange or ccxt behind a fake HTTP layer, AWS is moto.

Each measurement is its own module: ``cold_starts``, ``markets_cache``, ``cycles`` (cycle scale, the planner,
stop-loss latency; the stack is the tests' harness, tests/support/harness.py), ``aws_calls`` and
``dynamodb_units`` (what a cycle calls and the capacity units it uses), ``cost_profile`` and ``render`` (the
tables of docs/performance.md). This module runs them in order and writes the files.

Usage: ``python bench/run.py [--quick]`` or ``python -m bench [--quick]`` (``--quick``: small sizes only, a smoke
test).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/run.py`): the repository root, which holds bench/ and tests/, goes first.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_starts import cold_starts  # noqa: E402 (after the path above)
from bench.cost_profile import cost_profile  # noqa: E402
from bench.cycles import cycle_scale, planner_time, stop_loss_latency  # noqa: E402
from bench.markets_cache import markets_cache  # noqa: E402
from bench.render import render, targets, update_doc  # noqa: E402
from bench.settings import DOC, PROFILE, RESULTS, ROOT, STARTED, progress  # noqa: E402


def commit_id() -> str:
    """Return the measured commit: ``git rev-parse --short HEAD``, plus ``+dirty`` when the tree differs.

    The files this run writes do not count, so that measuring a commit twice still names it.
    """
    written = [RESULTS, PROFILE, DOC, ROOT / "docs" / "reliability.md"]
    excluded = [f":(exclude){path.relative_to(ROOT)}" for path in written]
    try:
        head = _git("rev-parse", "--short", "HEAD")
        changes = _git("status", "--porcelain", "--", ".", *excluded)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + ("+dirty" if changes else "")


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603, S607
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, then write the results, the cost profile and the document's tables."""
    import platform

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test; files are not written)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "commit": commit_id(),
    }
    progress("cold starts")
    results["cold_start"] = cold_starts()
    progress("markets cache")
    results["markets_cache"] = markets_cache()
    progress("planner")
    results["planner"] = planner_time()
    progress("cycles on the emulated stack")
    results["cycle_scale"], results["cycles"] = cycle_scale(args.quick)
    progress("stop-loss latency")
    results["stop_loss"] = stop_loss_latency()
    results["cost_profile"] = cost_profile(results["cold_start"], results["cycles"], results["markets_cache"])
    results["targets"] = targets(results)
    results["bench_seconds"] = round(time.monotonic() - STARTED, 1)
    if args.quick:
        progress("quick run: nothing written")
        print(json.dumps(results["targets"], indent=1, default=str))
        return 0
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    PROFILE.write_text(json.dumps(results["cost_profile"], indent=1) + "\n", encoding="utf-8")
    update_doc(render(results))
    progress(f"wrote {RESULTS.relative_to(ROOT)}, {PROFILE.relative_to(ROOT)}, {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
