"""The reliability report: generated sections written by test runs, everything else kept byte for byte.

A run replaces only the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; what
lies outside the markers (the title, hand-written notes, the mutation section between
``<!-- mutation:start -->`` and ``<!-- mutation:end -->``) is never touched. Each section says which
commit it measured.

Where it is written: ``$RELIABILITY_REPORT`` when set (``make reports`` points it at
``docs/reliability.md``, for committing), else ``.build/reports/reliability.md``, so that ``make test``
leaves no tracked file modified. A report written there for the first time starts from a copy of
``docs/reliability.md``, so that it shows the hand-written parts too.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path

from tests.conftest import ROOT

DOCS_REPORT = ROOT / "docs" / "reliability.md"
BUILD_REPORT = ROOT / ".build" / "reports" / "reliability.md"
# Files the runs themselves write: a tree that differs only in them still measures the commit.
GENERATED = ("docs/reliability.md", "docs/performance.md", "bench/results.json")
MUTATION = re.compile(r"<!-- mutation:start -->.*?<!-- mutation:end -->", re.DOTALL)
SKELETON = """# Reliability figures

Each section between `generated` markers is written by a full run of the tests it names, with the commit
it measured; `make reports` regenerates this file for committing. The rest is written by hand.

<!-- generated:faults -->
<!-- /generated:faults -->

<!-- generated:e2e -->
<!-- /generated:e2e -->

<!-- generated:venues -->
<!-- /generated:venues -->
"""


def report_path() -> Path:
    """Return where this run writes the report."""
    configured = os.environ.get("RELIABILITY_REPORT")
    return Path(configured).resolve() if configured else BUILD_REPORT


@cache
def commit_id() -> str:
    """Return the measured commit: ``git rev-parse --short HEAD``, plus ``+dirty`` when the tree differs."""
    head = _git("rev-parse", "--short", "HEAD")
    if head is None:
        return "unknown (no git)"
    changes = _git("status", "--porcelain", "--", ".", *(f":(exclude){path}" for path in GENERATED))
    return head + ("+dirty" if changes else "")


def measured_line() -> str:
    """Return the line every generated section starts with."""
    return f"Measured at commit `{commit_id()}`."


def write_section(name: str, body: list[str], path: Path | None = None) -> Path:
    """Replace the section ``name`` of the report (or add it at the end) and return the file written."""
    path = path or report_path()
    start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    text = _current(path)
    block = "\n".join([start, *body, end])
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole then renamed: two pytest sessions finishing together never leave half a report.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(text.encode("utf-8"))
    partial.replace(path)
    return path


def _current(path: Path) -> str:
    """Return the report as it stands, or what a new one starts from."""
    for source in (path, DOCS_REPORT):
        if source.exists():
            # Bytes, not text: newline translation would rewrite the hand-written parts' line endings.
            text = source.read_bytes().decode("utf-8")
            return text if "<!-- generated:" in text else _from_legacy(text)
    return SKELETON


def _from_legacy(text: str) -> str:
    """Start over from a report written whole by the earlier generator, keeping its mutation section."""
    mutation = MUTATION.search(text)
    return SKELETON + ("\n" + mutation.group(0) + "\n" if mutation else "")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603, S607
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()
