"""The Lambda layer installs exactly what uv.lock pins, so what is deployed is what the tests ran."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

REQUIREMENTS = ROOT / "layers" / "core" / "requirements.txt"


def _uv() -> list[str]:
    # `uv run` (how make runs the tests) says where it is; otherwise uv on the PATH or as a module.
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = line.split(";")[0].split(" ")[0]
            name, _, version = requirement.partition("==")
            pins[name.lower()] = version
    return pins


def test_the_layer_requirements_are_exported_from_the_lock(tmp_path: Path) -> None:
    exported = tmp_path / "requirements.txt"
    command = [*_uv(), "export", "--frozen", "--only-group", "layer", "--no-emit-project"]
    command += ["--format", "requirements-txt", "--quiet", "--output-file", str(exported)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    # The header names the output path; everything below it must be the same, hashes included.
    body = [line for line in exported.read_text().splitlines() if not line.startswith("#")]
    committed = [line for line in REQUIREMENTS.read_text().splitlines() if not line.startswith("#")]
    assert committed == body, "layers/core/requirements.txt is stale: run `make layer-requirements`"


def test_every_layer_requirement_is_pinned_to_the_locked_version_with_hashes() -> None:
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    pins = _pins(REQUIREMENTS.read_text())
    assert {"ccxt", "aws-lambda-powertools"} <= set(pins)
    assert {name: locked.get(name) for name in pins} == pins
    assert "--hash=sha256:" in REQUIREMENTS.read_text()
