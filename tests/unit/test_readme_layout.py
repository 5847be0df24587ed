"""README's Layout section is a map of the tree: every path it names exists, and every package is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "layers" / "core" / "crypto_bot", ROOT / "tools" / "crypto_bot_tools")


def layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n.*?^```\n(.*?)^```", text, flags=re.M | re.S)
    assert match, "README.md has no ## Layout section with a code block"
    return match.group(1).splitlines()


def named_paths() -> list[Path]:
    """The names before a line's description (two or more spaces) are paths.

    An unindented line's names are relative to the repository; a line indented by two spaces names what is inside
    the last unindented folder above it; a line indented further continues the description above it.
    """
    paths: list[Path] = []
    parent = ROOT
    for line in layout_block():
        if not line.strip() or line.startswith("    "):
            continue
        indented = line.startswith("  ")
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split()
        for name in names:
            path = (parent if indented else ROOT) / name.split("<")[0].rstrip("/")  # functions/<name>/: the folder
            paths.append(path)
            if not indented and name.endswith("/"):
                parent = path
    return paths


def test_every_path_the_layout_names_exists() -> None:
    missing = [str(path.relative_to(ROOT)) for path in named_paths() if not path.exists()]
    assert missing == []


def test_every_package_folder_is_on_the_layout() -> None:
    named = {path.resolve() for path in named_paths()}
    packages = [
        folder
        for package in PACKAGES
        for folder in [package, *sorted(p.parent for p in package.rglob("__init__.py"))]
        if "__pycache__" not in folder.parts
    ]
    absent = sorted({str(folder.relative_to(ROOT)) for folder in packages if folder.resolve() not in named})
    assert absent == []
