"""The house rules, checked by reading the source: the layer's folders import in one direction only.

``crypto_bot`` (layers/core, the Lambda layer) is drawn in four layers, each importing only itself and those
before it: domain → engine → adapters → entrypoints. The tools (``crypto_bot_tools``) may import anything in
``crypto_bot``; nothing in ``crypto_bot`` imports the tools, so the layer never needs them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "crypto_bot"
TOOLS = ROOT / "tools" / "crypto_bot_tools"
LAYERS = ("domain", "engine", "adapters", "entrypoints")
"""In import order: a module may import from its own layer and the ones before it."""
VENDORS = {"boto3", "botocore", "ccxt", "aws_lambda_powertools"}
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at the top or inside a function (a lazy import counts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module:
                names.add(node.module)
    return names


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "crypto_bot" and len(parts) > 1 and parts[1] in LAYERS else None


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_layer_module_lives_in_one_of_the_four_layers() -> None:
    strays = [
        str(path.relative_to(PACKAGE))
        for path in package_modules()
        if path.relative_to(PACKAGE).parts[0] not in LAYERS and path.name != "__init__.py"
    ]
    assert strays == []


@pytest.mark.parametrize("path", package_modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_layer_imports_only_itself_and_the_layers_before_it(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0]
    if own not in LAYERS:
        return
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    wrong = sorted(m for m in imported_modules(path) if (layer := layer_of(m)) is not None and layer not in allowed)
    assert wrong == [], f"{own} may import only {sorted(allowed)}"


@pytest.mark.parametrize("path", package_modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_layer_module_imports_a_tool_module(path: Path) -> None:
    assert not {m for m in imported_modules(path) if m.split(".")[0] == "crypto_bot_tools"}


@pytest.mark.parametrize("path", HANDLERS, ids=lambda path: path.parent.name)
def test_the_handlers_import_only_the_entrypoints(path: Path) -> None:
    ours = {m for m in imported_modules(path) if m.split(".")[0] in {"crypto_bot", "crypto_bot_tools"}}
    assert ours
    assert all(m.startswith("crypto_bot.entrypoints") for m in ours)


def test_the_layer_folder_holds_only_the_layer_package() -> None:
    """The tools cannot reach the layer by sitting in its folder: ``sam build`` ships everything under it."""
    python_dirs = {path.relative_to(PACKAGE.parent).parts[0] for path in PACKAGE.parent.rglob("*.py")}
    assert python_dirs == {"crypto_bot"}
    assert not list(PACKAGE.rglob("*.json")), "data the tools write (cost_profile.json) belongs in tools/"


@pytest.mark.parametrize("layer", ["domain", "engine"])
def test_domain_and_engine_import_no_vendor_sdk(layer: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path) if m.split(".")[0] in VENDORS)
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }
    assert {module: vendors for module, vendors in offenders.items() if vendors} == {}


def test_only_the_ccxt_adapter_imports_ccxt() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in package_modules()
        if any(m.split(".")[0] == "ccxt" for m in imported_modules(path))
    )
    # The adapter loads ccxt's modules through importlib (only the configured exchange's), so it may show no import.
    assert importers in ([], ["adapters/ccxt/exchange.py"])


def test_boto_is_imported_only_by_the_aws_adapters_and_the_entrypoints() -> None:
    importers = {
        path.relative_to(PACKAGE).parts[:2]
        for path in package_modules()
        if any(m.split(".")[0] in {"boto3", "botocore"} for m in imported_modules(path))
    }
    assert importers <= {("adapters", "aws")} | {
        ("entrypoints", path.name) for path in (PACKAGE / "entrypoints").glob("*.py")
    }


def test_importing_the_engine_does_not_load_vendor_sdks() -> None:
    code = (
        "import sys, crypto_bot.engine.workflow, crypto_bot_tools.cycle, crypto_bot_tools.replay,"
        " crypto_bot.adapters.paper.exchange;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'ccxt','boto3','botocore'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_domain_converts_money_to_float_only_for_json_output() -> None:
    offenders = []
    for path in sorted((PACKAGE / "domain").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef) or function.name == "to_json_number":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_the_tools_are_not_inside_the_layer_package() -> None:
    assert TOOLS.is_dir()
    assert not (PACKAGE / "local").exists()
    assert not (PACKAGE / "cli.py").exists()


@pytest.mark.parametrize("layer", ["domain", "engine"])
def test_domain_and_engine_never_read_the_environment(layer: str) -> None:
    """Settings are read once, by crypto_bot.entrypoints.settings; the core is handed them, typed."""
    offenders = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        reads = {m for m in imported_modules(path) if m == "os" or m.startswith("os.")}
        reads |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb", "getenvb"}
        }
        if reads:
            offenders[str(path.relative_to(PACKAGE))] = sorted(reads)
    assert offenders == {}
