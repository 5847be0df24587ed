"""Secret scanning: the pre-commit hook's scan, run over the whole repository, finds nothing new."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BASELINE = ROOT / ".secrets.baseline"
BIN = Path(sys.executable).parent


def repository_files() -> list[str]:
    """List the files a commit could include: tracked and untracked, minus what .gitignore ignores."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listing.split("\0") if name and (ROOT / name).is_file())


def findings(scan: dict[str, object]) -> set[tuple[str, str]]:
    """Reduce a detect-secrets report to (file, hashed secret): line numbers move with every edit."""
    results = scan["results"]
    assert isinstance(results, dict)
    return {(name, entry["hashed_secret"]) for name, entries in results.items() for entry in entries}


def test_the_repository_holds_no_secret_beyond_the_reviewed_baseline() -> None:
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    excluded = baseline["filters_used"]
    pattern = next(f["pattern"] for f in excluded if f["path"].endswith("should_exclude_file"))
    scan = subprocess.run(
        [str(BIN / "detect-secrets"), "scan", "--exclude-files", *pattern, *repository_files()],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
        timeout=120,
    )
    new = findings(json.loads(scan.stdout)) - findings(baseline)
    assert not new, f"new secrets (review, then refresh .secrets.baseline or add a pragma): {sorted(new)}"


def test_the_scan_catches_a_planted_key(tmp_path: Path) -> None:
    planted = tmp_path / "settings.py"
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8vG2kT3p"  # pragma: allowlist secret
    planted.write_text(f'aws_secret_access_key = "{key}"\n', encoding="utf-8")
    scan = subprocess.run(
        [str(BIN / "detect-secrets"), "scan", planted.name],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    )
    assert findings(json.loads(scan.stdout)), "detect-secrets missed an obvious AWS secret key"


def test_pre_commit_runs_the_secret_scan_and_ruff() -> None:
    config = ROOT / ".pre-commit-config.yaml"
    subprocess.run([str(BIN / "pre-commit"), "validate-config", str(config)], check=True, capture_output=True)
    text = config.read_text(encoding="utf-8")
    for hook in ("detect-secrets-hook --baseline .secrets.baseline", "ruff check", "ruff format"):
        assert hook in text
