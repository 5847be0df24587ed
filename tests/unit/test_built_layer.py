"""The pruned Lambda layer alone imports every handler, and holds one exchange of ccxt and nothing unused.

The layer is assembled here from the installed distributions with the pruning ``make build`` runs
(layers/build_layer.py), so a module the selection leaves out fails this test, not a deploy. The
handlers are then imported in a fresh interpreter (``-I -S``: no site-packages) whose path is only
what Lambda gives a function: its own folder, the layer, and the runtime's boto3 and botocore.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from layers import build_layer

from tests.conftest import ROOT

EXCHANGE, _ = build_layer.deploy_exchange()
OTHER_EXCHANGE = "kraken" if EXCHANGE != "kraken" else "bybit"
FUNCTION_DIRS = sorted(path.parent for path in (ROOT / "functions").glob("*/app.py"))
# What the Python 3.12 runtime holds in /var/runtime besides the bootstrap: the AWS SDK and its dependencies.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

# Run in the fresh interpreter: import every handler as Lambda does, then build what their cold start and first
# call build, short of calling AWS or the exchange. Any socket is an error: the check runs offline.
CHECK = """
import importlib, importlib.util, json, pkgutil, socket, sys
from pathlib import Path

def _offline(*args, **kwargs):
    raise OSError("the layer check must not use the network")

socket.socket.connect = _offline
args = json.loads(sys.argv[1])
sys.path[:0] = [args["layer"], args["runtime"]]
for folder in args["functions"]:
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(Path(folder).name + "_app", Path(folder) / "app.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.lambda_handler), folder
    sys.path.remove(folder)

import crypto_bot
for info in pkgutil.walk_packages(crypto_bot.__path__, "crypto_bot."):
    importlib.import_module(info.name)

import os
import boto3
from crypto_bot.adapters.ccxt.exchange import CcxtExchange, load_exchange_class
from crypto_bot.domain.errors import UnsupportedExchange

# The step handlers built their runtime at import; the exchange and the clients are built at the first call.
CcxtExchange(os.environ["EXCHANGE_NAME"], options=json.loads(os.environ["EXCHANGE_OPTIONS"]))
boto3.client("dynamodb")
import aws_xray_sdk.core  # what Powertools' Tracer imports when POWERTOOLS_TRACE_DISABLED is "false"
try:
    load_exchange_class(args["other_exchange"])
    missing = None
except UnsupportedExchange as e:
    missing = str(e)
files = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()}
print(json.dumps({"missing_exchange": missing, "files": files}))
"""


@dataclass(frozen=True)
class Layer:
    """A layer assembled the way ``make build`` prunes one: its ``python/`` folder and the selection."""

    python: Path
    selection: Any


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Layer:
    python = tmp_path_factory.mktemp("CoreLayer") / "python"
    selection = build_layer.assemble(python, [EXCHANGE])
    shutil.copy(ROOT / "strategy_config.json", python / "strategy_config.json")
    return Layer(python, selection)


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runtime = tmp_path_factory.mktemp("var-runtime")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME_MODULES:
        (runtime / name).symlink_to(site_packages / name)
    return runtime


def _template_environment(layer: Layer) -> dict[str, str]:
    """Return the functions' environment as deployed with the template's defaults (resources get a test name)."""
    template = build_layer.load_template()
    parameters = template["Parameters"]
    environment: dict[str, str] = {}
    for name, value in template["Globals"]["Function"]["Environment"]["Variables"].items():
        if isinstance(value, dict) and "Ref" in value:
            parameter = parameters.get(value["Ref"], {})
            value = parameter.get("Default", f"test-{value['Ref']}")
        environment[name] = str(value).lower() if isinstance(value, bool) else str(value)
    environment["STRATEGY_CONFIG_PATH"] = str(layer.python / "strategy_config.json")
    return environment


def _check(layer: Layer, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **_template_environment(layer),
        "PATH": os.environ.get("PATH", ""),
        # Hermetic AWS settings: a region for the clients, and no profile or credential file read from $HOME.
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "WEBHOOK_TOKEN_PARAMETER": "/crypto-bot/test/webhook-token",
    }
    paths = {
        "layer": str(layer.python),
        "runtime": str(runtime_dir),
        "functions": [str(folder) for folder in FUNCTION_DIRS],
        "other_exchange": OTHER_EXCHANGE,
    }
    command = [sys.executable, "-I", "-S", "-c", CHECK, json.dumps(paths)]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def imported(layer: Layer, runtime_dir: Path) -> dict[str, Any]:
    result = _check(layer, runtime_dir)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


def _ccxt_modules(layer: Layer, folder: str = "") -> set[str]:
    return {path.stem for path in (layer.python / "ccxt" / folder).glob("*.py")} - {"__init__"}


def test_every_handler_imports_from_the_layer_alone(layer: Layer, runtime_dir: Path, imported: dict[str, Any]) -> None:
    allowed = (str(layer.python), str(runtime_dir), sysconfig.get_paths()["stdlib"], *map(str, FUNCTION_DIRS))
    outside = {name: file for name, file in imported["files"].items() if file and not file.startswith(allowed)}
    assert outside == {}
    assert {f"{folder.name}_app" for folder in FUNCTION_DIRS} <= set(imported["files"])
    assert f"ccxt.{EXCHANGE}" in imported["files"]
    assert "ccxt.async_support" not in imported["files"]


def test_the_layer_holds_the_deployed_exchange_and_no_other(layer: Layer) -> None:
    ccxt = layer.python / "ccxt"
    assert (ccxt / f"{EXCHANGE}.py").is_file()
    assert (ccxt / "abstract" / f"{EXCHANGE}.py").is_file()
    assert {"exchange", "errors", "decimal_to_precision", "precise", "types"} <= _ccxt_modules(layer, "base")
    # binance imports no other exchange; a subclass such as binanceus would bring its parent too.
    assert _ccxt_modules(layer) == {EXCHANGE}
    assert _ccxt_modules(layer, "abstract") == {EXCHANGE}
    assert not (ccxt / "async_support").exists()
    assert not (ccxt / "pro").exists()
    assert not (ccxt / "test").exists()


def test_the_layer_leaves_out_what_no_handler_imports(layer: Layer) -> None:
    # ccxt's asyncio stack serves only its async and websocket clients; botocore is the Lambda runtime's.
    assert {"aiohttp", "uvloop", "yarl", "multidict", "botocore"} <= set(layer.selection.dropped)
    assert not (layer.python / "aiohttp").exists()
    assert not (layer.python / "botocore").exists()
    # requests imports idna through __import__ and cryptography's bindings load _cffi_backend: kept as requirements.
    assert {"ccxt", "aws-lambda-powertools", "aws-xray-sdk", "requests", "idna", "cryptography", "cffi"} <= set(
        layer.selection.kept
    )


def test_the_layer_stays_well_under_the_lambda_limits(layer: Layer) -> None:
    # `make build` adds bytecode, about a quarter more (27.9 MB of sources became 35.0 MB): 40 MB of sources
    # keeps the built layer under 50 MB.
    size = build_layer.measure(layer.python)
    assert size["bytes"] < 40_000_000, size
    assert size["files"] > 100, size


def test_another_exchange_fails_naming_it_and_the_rebuild(imported: dict[str, Any]) -> None:
    assert imported["missing_exchange"] == (
        f"ccxt's {OTHER_EXCHANGE!r} exchange is not in this Lambda layer, which was built for {EXCHANGE}: "
        f"rebuild with make build EXCHANGE={OTHER_EXCHANGE}"
    )


@pytest.fixture
def without(layer: Layer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Hide a module of the assembled layer (a file or a package folder) for the test, and put it back afterwards."""
    path = layer.python / request.param
    hidden = path.with_name(path.name + ".hidden")
    path.rename(hidden)
    try:
        yield request.param
    finally:
        hidden.rename(path)


@pytest.mark.parametrize(
    ("without", "module"),
    [(f"ccxt/abstract/{EXCHANGE}.py", f"ccxt.abstract.{EXCHANGE}"), ("idna", "idna")],
    indirect=["without"],
)
def test_the_check_fails_when_the_layer_lacks_a_module(
    layer: Layer, runtime_dir: Path, without: str, module: str
) -> None:
    result = _check(layer, runtime_dir)
    assert result.returncode != 0
    assert f"No module named '{module}'" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ('["Stage=prod", "ExchangeName=kraken"]', ("kraken", "samconfig.toml [prod.deploy.parameters]")),
        ('"Stage=prod ExchangeName=bybit"', ("bybit", "samconfig.toml [prod.deploy.parameters]")),
        ('["Stage=prod"]', ("gemini", "template.yaml's ExchangeName default")),
    ],
)
def test_the_exchange_is_the_deploys(tmp_path: Path, overrides: str, expected: tuple[str, str]) -> None:
    (tmp_path / "samconfig.toml").write_text(f"[prod.deploy.parameters]\nparameter_overrides = {overrides}\n")
    (tmp_path / "template.yaml").write_text("Parameters:\n  ExchangeName:\n    Type: String\n    Default: gemini\n")
    assert build_layer.deploy_exchange("prod", root=tmp_path) == expected
