"""scripts/bootstrap.py, make's first step, on machines built from fake executables in a temporary folder.

Each test runs the script as make does, with PATH and HOME pointing only at the fakes: a Python that reports a
version, creates a virtual environment or refuses to (Debian without python3-venv), and refuses `pip install` when
its EXTERNALLY-MANAGED marker is there (PEP 668); a uv that finds a Python or not. Every call is logged, so a test
sees what the script ran. Nothing is downloaded or installed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bootstrap.py"

# One program for every fake: its behaviour is the JSON file beside it, and it logs its name and arguments.
FAKE = """#!{python}
import json, os, sys
from pathlib import Path

me = Path(os.path.realpath(sys.argv[0]))  # through the script's link to it, too
spec = json.loads(me.with_name(me.name + ".json").read_text())
args = sys.argv[1:]
with open(spec["log"], "a") as log:
    log.write(json.dumps([str(me), *args]) + "\\n")


def fake(path, kind, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(me.read_text())
    path.chmod(0o755)
    Path(str(path) + ".json").write_text(json.dumps(dict(spec, kind=kind, **fields)))


if spec["kind"] == "uv":
    if args == ["--version"]:
        print("uv " + spec.get("uv_version", "0.13.9"))
    elif args[:2] == ["python", "find"]:
        sys.exit(0 if spec.get("finds_python") else 2)
    elif args[:2] == ["python", "install"]:
        sys.exit(0 if spec.get("downloads") else 2)
    sys.exit(0)

# a Python
if args[:1] == ["-c"]:
    print(spec["version"])
elif args[:2] == ["-m", "venv"]:
    if not spec.get("venv"):
        print("The virtual environment was not created successfully because ensurepip is not available.",
              file=sys.stderr)
        sys.exit(1)
    fake(Path(args[2]) / "bin" / "python", "python", marker=None, pip=True)
elif args[:3] == ["-m", "pip", "--version"]:
    sys.exit(0 if spec.get("pip") else 1)
elif args[:3] == ["-m", "pip", "install"]:
    if not spec.get("pip"):
        print("No module named pip", file=sys.stderr)
        sys.exit(1)
    if "--target" in args:
        fake(Path(args[args.index("--target") + 1]) / "bin" / "uv", "uv")
    elif spec.get("marker") and Path(spec["marker"]).exists():
        print("error: externally-managed-environment", file=sys.stderr)
        sys.exit(1)
    else:
        fake(me.parent / "uv", "uv")
"""


@dataclass
class Machine:
    """A fake machine: its bin folder is the whole PATH, its home is HOME, and every call lands in the log."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def log(self) -> Path:
        return self.root / "calls.log"

    @property
    def cache(self) -> Path:
        return self.root / "project-cache"

    def add(self, path: Path, kind: str, **fields: object) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
        Path(f"{path}.json").write_text(json.dumps({"kind": kind, "log": str(self.log), **fields}))
        return path

    def python(self, name: str, version: str, **fields: object) -> Path:
        return self.add(self.bin / name, "python", version=version, **fields)

    def uv(self, path: Path | None = None, **fields: object) -> Path:
        return self.add(path or self.bin / "uv", "uv", **fields)

    def externally_managed(self) -> Path:
        marker = self.root / "usr" / "lib" / "python3.11" / "EXTERNALLY-MANAGED"
        marker.parent.mkdir(parents=True)
        marker.write_text("[externally-managed]\nError=use apt\n")
        return marker

    def bootstrap(self, step: str, python: Path, downloads: str = "never") -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": str(self.bin),
            "HOME": str(self.root / "home"),
            "PYENV_ROOT": str(self.root / "pyenv"),
            "UV_PYTHON_DOWNLOADS": downloads,
        }
        command = [sys.executable, str(SCRIPT), step, "--cache", str(self.cache), "--python", str(python)]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def syncs(self) -> list[list[str]]:
        return [call[2:] for call in self.calls() if call[1:2] == ["sync"]]


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    (tmp_path / "bin").mkdir()
    (tmp_path / "home").mkdir()
    return Machine(tmp_path)


def debian_python(machine: Machine, *, venv: bool, pip: bool) -> Path:
    """Debian 12's /usr/bin/python3, the one make runs the script with: 3.11, externally managed."""
    marker = str(machine.externally_managed())
    return machine.add(
        machine.root / "usr" / "bin" / "python3", "python", version="3.11", venv=venv, pip=pip, marker=marker
    )


def test_a_uv_on_path_is_used_and_nothing_is_installed(machine: Machine) -> None:
    uv = machine.uv(finds_python=True)
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("uv", python)

    assert done.returncode == 0, done.stderr
    assert (machine.cache / "uv").resolve() == uv
    assert [call for call in machine.calls() if call[0] == str(python)] == []


def test_pep_668_and_no_uv_installs_uv_into_a_private_venv_not_the_system_python(machine: Machine) -> None:
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("uv", python)

    assert done.returncode == 0, done.stderr
    private_uv = machine.cache / "venv" / "bin" / "uv"
    assert (machine.cache / "uv").resolve() == private_uv
    assert [str(python), "-m", "venv", str(machine.cache / "venv")] in machine.calls()
    assert not [call for call in machine.calls() if call[0] == str(python) and "install" in call]
    assert "externally-managed" not in done.stderr


def test_without_python3_venv_uv_goes_into_a_pip_target_folder(machine: Machine) -> None:
    python = debian_python(machine, venv=False, pip=True)

    done = machine.bootstrap("uv", python)

    assert done.returncode == 0, done.stderr
    assert (machine.cache / "uv").resolve() == machine.cache / "target" / "bin" / "uv"
    assert not (machine.cache / "venv").exists()


def test_without_venv_or_pip_one_message_names_the_debian_package(machine: Machine) -> None:
    python = debian_python(machine, venv=False, pip=False)

    done = machine.bootstrap("uv", python)

    assert done.returncode == 1
    assert "sudo apt install python3.11-venv" in done.stderr
    assert "ensurepip is not available" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("make:") == 1


def test_a_uv_in_the_home_folder_is_found_when_path_lacks_it(machine: Machine) -> None:
    uv = machine.uv(machine.root / "home" / ".local" / "bin" / "uv")
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("uv", python)

    assert done.returncode == 0, done.stderr
    assert (machine.cache / "uv").resolve() == uv


def test_a_uv_that_stops_working_is_replaced(machine: Machine) -> None:
    python = debian_python(machine, venv=True, pip=True)
    machine.cache.mkdir()
    (machine.cache / "uv").symlink_to(machine.root / "gone" / "uv")
    uv = machine.uv()

    done = machine.bootstrap("uv", python)

    assert done.returncode == 0, done.stderr
    assert (machine.cache / "uv").resolve() == uv


def test_no_python_3_12_and_downloads_off_gives_one_message_with_the_ways_to_get_it(machine: Machine) -> None:
    machine.uv(finds_python=False)
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("sync", python)

    assert done.returncode == 1
    assert done.stderr.startswith("make: Python 3.12 was not found")
    assert f"{python} (3.11)" in done.stderr
    for way in ("PYTHON_DOWNLOADS=automatic", "pyenv install 3.12", "apt install python3.12"):
        assert way in done.stderr
    assert machine.syncs() == []
    assert not [call for call in machine.calls() if call[1:3] == ["python", "install"]]


def test_no_python_3_12_and_downloads_allowed_lets_uv_fetch_it(machine: Machine) -> None:
    machine.uv(finds_python=False, downloads=True)
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("sync", python, downloads="automatic")

    assert done.returncode == 0, done.stderr
    assert [call[1:] for call in machine.calls() if call[1:3] == ["python", "install"]] == [
        ["python", "install", "3.12"]
    ]
    assert machine.syncs() == [["--frozen", "--quiet"]]


def test_python_3_12_that_uv_finds_is_left_to_uv(machine: Machine) -> None:
    machine.uv(finds_python=True)
    python = debian_python(machine, venv=True, pip=True)

    done = machine.bootstrap("sync", python)

    assert done.returncode == 0, done.stderr
    assert machine.syncs() == [["--frozen", "--quiet"]]


def test_pyenv_s_newest_3_12_is_used_when_its_shims_are_not_on_path(machine: Machine) -> None:
    machine.uv(finds_python=False)
    python = debian_python(machine, venv=True, pip=True)
    versions = machine.root / "pyenv" / "versions"
    for version in ("3.12.1", "3.12.10", "3.12.9", "3.120.0"):  # 3.120 is not a 3.12
        machine.add(versions / version / "bin" / "python3.12", "python", version="3.12")

    done = machine.bootstrap("sync", python)

    assert done.returncode == 0, done.stderr
    assert machine.syncs() == [["--frozen", "--quiet", "--python", str(versions / "3.12.10" / "bin" / "python3.12")]]


def test_python3_12_on_path_is_used_when_uv_does_not_find_it(machine: Machine) -> None:
    machine.uv(finds_python=False)
    python = debian_python(machine, venv=True, pip=True)
    machine.python("python3.12", "3.11")  # a pyenv shim, say, whose version is not installed: it reports 3.11
    real = machine.python("python3", "3.12")  # Ubuntu 24.04's python3

    done = machine.bootstrap("sync", python)

    assert done.returncode == 0, done.stderr
    assert machine.syncs() == [["--frozen", "--quiet", "--python", str(real)]]


def test_the_script_runs_on_the_oldest_python_a_stock_machine_has() -> None:
    """Debian 11's python3 is 3.9: the script must not need anything newer (it is not run by .venv's Python)."""
    source = SCRIPT.read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source
    assert os.access(SCRIPT, os.X_OK)
