"""``make help``: every documented target, its description in one column however long the names grow.

Issue 13 §5: the columns were misaligned, the width being a fixed number narrower than a target name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

_TARGET = re.compile(r"^([a-zA-Z_-]+):.*## (.*)$")


def _help(makefile: Path) -> list[str]:
    done = subprocess.run(  # noqa: S603 (make, on our own Makefile)
        ["make", "-s", "-f", str(makefile), "help"],  # noqa: S607 (make from PATH, as a user runs it)
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def _columns(lines: list[str]) -> tuple[list[str], set[int]]:
    names = [line.split()[1] for line in lines]
    starts = {len(line) - len(line.split(None, 2)[2]) for line in lines}
    return names, starts


def test_make_help_lists_every_documented_target_in_one_column() -> None:
    documented = [m.group(1) for line in (ROOT / "Makefile").read_text().splitlines() if (m := _TARGET.match(line))]
    names, starts = _columns(_help(ROOT / "Makefile"))
    assert names == documented
    assert len(starts) == 1


def test_a_longer_target_widens_the_column(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    long_name = "a-target-name-longer-than-any-of-the-project"
    makefile.write_text((ROOT / "Makefile").read_text() + f"\n{long_name}: ## a long one\n\t@true\n")
    lines = _help(makefile)
    names, starts = _columns(lines)
    assert names[-1] == long_name
    assert starts == {len("  make ") + len(long_name) + 2}
