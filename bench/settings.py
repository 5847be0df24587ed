"""Where the benchmark reads and writes, what it repeats, and its progress lines."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
PROFILE = ROOT / "tools" / "crypto_bot_tools" / "cost_profile.json"
DOC = ROOT / "docs" / "performance.md"
FIXTURES = ROOT / "tests" / "fixtures" / "ccxt"
HANDLERS = ("authorizer", "collect", "plan", "place_order", "reconcile", "finalize")
REPETITIONS = 5
# Cycle-scale combinations stop being started once this much of the run has passed, so that
# `make bench` stays under 10 minutes on a small machine; skipped ones are reported as such.
SCALE_BUDGET_SECONDS = 420.0
STARTED = time.monotonic()


def progress(message: str) -> None:
    """Print one progress line with the elapsed time (stderr: stdout is captured during cycles)."""
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.__stderr__, flush=True)
