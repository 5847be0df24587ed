"""The house rules that keep the core pure, checked by reading the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "core" / "crypto_bot"
CORE = ["signals", "config", "allocation", "sizing", "ledger", "markets", "money", "orders", "ports", "errors", "cycle"]
VENDORS = {"boto3", "botocore", "ccxt", "aws_lambda_powertools"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_vendor_sdk(module: str) -> None:
    assert not imported_modules(PACKAGE / f"{module}.py") & VENDORS


def test_only_the_ccxt_adapter_imports_ccxt() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if "ccxt" in imported_modules(path)
    )
    assert importers in ([], ["exchanges/ccxt_exchange.py"])


def test_importing_the_engine_does_not_load_vendor_sdks() -> None:
    code = (
        "import sys, crypto_bot.cycle, crypto_bot.replay, crypto_bot.exchanges.paper;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'ccxt','boto3','botocore'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_core_converts_money_to_float_only_for_json_output() -> None:
    offenders = []
    for module in CORE:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef) or function.name == "to_json_number":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
                    offenders.append(f"{module}.py:{node.lineno}")
    assert offenders == []
