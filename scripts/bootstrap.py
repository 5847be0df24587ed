#!/usr/bin/env python3
"""make's first step: find uv (or install it under .cache/uv), find the pinned Python, and build .venv from uv.lock.

Run by whatever python3 the machine has, with the standard library only, and never installs anything into that
Python: Debian 12 and Ubuntu 24.04 mark it externally managed (PEP 668), and a `pip install` there fails. uv comes
from PATH, ~/.local/bin or ~/.cargo/bin if the machine has it; otherwise it is installed into a virtual environment
under .cache/uv (or, when that Python cannot make one, with `pip install --target` into the same folder). Python 3.12
comes from uv's own search, pyenv's versions, or python3.12 / python3 on PATH; uv downloads it only when
PYTHON_DOWNLOADS allows (the Makefile passes it on as UV_PYTHON_DOWNLOADS). When something cannot be had, one message
says what is missing and how to get it, and the exit status is 1.

    python3 scripts/bootstrap.py uv      # make bootstrap: .cache/uv/uv runs a working uv
    python3 scripts/bootstrap.py sync    # make sync: the above, then uv sync --frozen with Python 3.12
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The uv that wrote uv.lock; installed only on a machine without uv.
UV_VERSION = "0.13.9"
UV_INSTALL_DOCS = "https://docs.astral.sh/uv/getting-started/installation/"
VERSION_QUERY = "import sys; print('%d.%d' % sys.version_info[:2])"


class Missing(Exception):
    """Something the project needs that the machine does not have: the message says how to get it."""


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str] | None:
    """Run a command quietly; None when it cannot be started at all."""
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError:
        return None


def succeeds(command: list[str], cwd: Path | None = None) -> bool:
    done = run(command, cwd)
    return done is not None and done.returncode == 0


def last_line(done: subprocess.CompletedProcess[str] | None) -> str:
    if done is None:
        return "it could not be started"
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


# -- uv


def find_uv() -> str | None:
    """A uv that answers --version: on PATH, or where the standalone installer and pip --user put it."""
    home = Path.home()
    for candidate in (shutil.which("uv"), home / ".local" / "bin" / "uv", home / ".cargo" / "bin" / "uv"):
        if candidate and succeeds([str(candidate), "--version"]):
            return str(candidate)
    return None


def install_uv(cache: Path, python: str) -> Path:
    """Install uv under cache, leaving `python` itself untouched, and return the uv executable."""
    venv = cache / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    made = run([python, "-m", "venv", str(venv)])
    if made is not None and made.returncode == 0:
        uv = venv / "bin" / "uv"
        pip = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"])
        if pip is not None and pip.returncode == 0 and succeeds([str(uv), "--version"]):
            return uv
        raise Missing(
            f"uv is not installed, and installing uv {UV_VERSION} into {venv} failed: {last_line(pip)}\n"
            "The first install needs network access to the package index (PyPI, or the index pip is set up for).\n"
            f"Or install uv yourself ({UV_INSTALL_DOCS}) and run make again."
        )
    shutil.rmtree(venv, ignore_errors=True)
    if succeeds([python, "-m", "pip", "--version"]):
        # --target writes only into the folder given: pip skips the PEP 668 check for it, rightly.
        target = cache / "target"
        shutil.rmtree(target, ignore_errors=True)
        pip = run([python, "-m", "pip", "install", "--quiet", "--target", str(target), f"uv=={UV_VERSION}"])
        uv = target / "bin" / "uv"
        if pip is not None and pip.returncode == 0 and succeeds([str(uv), "--version"]):
            return uv
        raise Missing(
            f"uv is not installed, and installing uv {UV_VERSION} into {target} failed: {last_line(pip)}\n"
            "The first install needs network access to the package index (PyPI, or the index pip is set up for).\n"
            f"Or install uv yourself ({UV_INSTALL_DOCS}) and run make again."
        )
    version = python_version(python) or "3"
    raise Missing(
        f"uv is not installed, and {python} can neither create a virtual environment ({last_line(made)}) nor run "
        "pip, so there is nowhere to install uv without touching the system Python.\n"
        f"On Debian or Ubuntu: sudo apt install python{version}-venv   (then run make again)\n"
        f"Or install uv yourself ({UV_INSTALL_DOCS}) and run make again."
    )


def ensure_uv(cache: Path, python: str) -> Path:
    """Make cache/uv run a working uv (a link to the machine's, or a private install) and return it."""
    link = cache / "uv"
    if succeeds([str(link), "--version"]):
        return link
    uv = find_uv() or str(install_uv(cache, python))
    cache.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(uv).absolute())
    return link


# -- Python


def python_version(python: str) -> str | None:
    done = run([python, "-c", VERSION_QUERY])
    return done.stdout.strip() if done is not None and done.returncode == 0 else None


def pinned_version() -> str:
    pin = (ROOT / ".python-version").read_text(encoding="utf-8").split()[0]
    return ".".join(pin.split(".")[:2])


def pyenv_pythons(version: str) -> list[Path]:
    """pyenv's installs of `version` (3.12, 3.12.1, ...), newest first, whether or not its shims are on PATH."""
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pattern = re.compile(rf"{re.escape(version)}(\.\d+)?")
    found = [v for v in versions.glob(f"{version}*") if pattern.fullmatch(v.name)]
    found.sort(key=lambda v: [int(part) for part in v.name.split(".")], reverse=True)
    return [v / "bin" / f"python{version}" for v in found]


def locate_python(uv: Path, version: str, host: str) -> list[str]:
    """The arguments that point uv sync at Python `version`: none when uv finds or fetches it itself."""
    if succeeds([str(uv), "python", "find", version], cwd=ROOT):
        return []
    looked_at: list[str] = []
    candidates = [*pyenv_pythons(version), shutil.which(f"python{version}"), shutil.which("python3"), host]
    for candidate in dict.fromkeys(str(c) for c in candidates if c):
        found = python_version(candidate)
        if found == version:
            return ["--python", candidate]
        looked_at.append(f"{candidate} ({found or 'does not run'})")
    downloads = os.environ.get("UV_PYTHON_DOWNLOADS", "never")  # pyproject.toml says never, too
    if downloads != "never":
        fetched = run([str(uv), "python", "install", version], cwd=ROOT)
        if fetched is not None and fetched.returncode == 0:
            return []
        raise Missing(
            f"Python {version} is not on this machine, and uv could not download it: {last_line(fetched)}\n"
            f"Install it yourself (pyenv install {version}, or your system's python{version} package) and run make "
            "again."
        )
    raise Missing(
        f"Python {version} was not found (.python-version pins it: the Lambda runtime's version).\n"
        f"Looked at: uv's search (virtual environments, uv-managed Pythons, PATH), then "
        f"{', '.join(looked_at) or 'no other interpreter'}.\n"
        "Get it one of these ways, then run make again:\n"
        + "\n".join(
            f"  {way:<38} {note}".rstrip()
            for way, note in (
                ("make demo PYTHON_DOWNLOADS=automatic", f"uv downloads a standalone Python {version} (needs network)"),
                (f"pyenv install {version}", ""),
                (f"sudo apt install python{version}", "Ubuntu 24.04 or later (Debian 12 has no such package)"),
            )
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["uv", "sync"], help="uv: find or install uv; sync: also build .venv")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "uv", help="where uv's link and install go")
    parser.add_argument("--python", default=sys.executable, help="the Python that installs uv (default: this one)")
    args = parser.parse_args(argv)
    try:
        uv = ensure_uv(args.cache, args.python)
        if args.step == "uv":
            return 0
        chosen = locate_python(uv, pinned_version(), args.python)
    except Missing as missing:
        print(f"make: {missing}", file=sys.stderr)
        return 1
    return subprocess.run([str(uv), "sync", "--frozen", "--quiet", *chosen], cwd=ROOT, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
