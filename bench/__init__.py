"""``make bench``: the performance and cost measurements behind docs/performance.md (see bench/run.py)."""
