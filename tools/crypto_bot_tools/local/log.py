"""The local stack's log: one line per request, cycle or problem, on stdout."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

__all__ = ["log_to_stdout", "stamp"]

_print_lock = threading.Lock()


def stamp() -> str:
    """Return the time of day a log line starts with (UTC)."""
    return datetime.now(UTC).strftime("%H:%M:%S")


def log_to_stdout(line: str) -> None:
    """Write one log line."""
    # One write per line under a lock: request and cycle threads log at the same time.
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
