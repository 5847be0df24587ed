"""``make bench``: measure cold starts, the markets cache, cycle scale and stop-loss latency.

Writes ``bench/results.json``, ``tools/crypto_bot_tools/cost_profile.json`` (the counts
``crypto-bot cost`` multiplies by prices) and the generated tables of ``docs/performance.md``
(between ``<!-- bench:NAME -->`` and ``<!-- /bench -->``). Every figure comes from this run.
Offline: the exchange is the paper exchange or ccxt behind a fake HTTP layer, AWS is moto.

Usage: ``python bench/run.py [--quick]`` (``--quick`` runs small sizes only, for a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
PROFILE = ROOT / "tools" / "crypto_bot_tools" / "cost_profile.json"
DOC = ROOT / "docs" / "performance.md"
FIXTURES = ROOT / "tests" / "fixtures" / "ccxt"
HANDLERS = ("authorizer", "collect", "plan", "place_order", "reconcile", "finalize")
REPETITIONS = 5
# Cycle-scale combinations stop being started once this much of the run has passed, so that
# `make bench` stays under 10 minutes on a small machine; skipped ones are reported as such.
SCALE_BUDGET_SECONDS = 420.0
STARTED = time.monotonic()


def progress(message: str) -> None:
    """Print one progress line with the elapsed time (stderr: stdout is captured during cycles)."""
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.__stderr__, flush=True)


# --------------------------------------------------------------------------- cold starts
#
# On Lambda the layer sits read-only under /opt/python: Python can neither find nor write .pyc files there
# unless the layer ships them, so each cold start compiles every module it imports. This machine's venv has
# its bytecode cached, which hides that cost. So every probe runs in a fresh interpreter against a copy of
# what Lambda sees, in up to three conditions:
#   no bytecode  the layer as `sam build` makes it: sources only, run with -B so no .pyc is ever written;
#   precompiled  the same files after the compileall command of `make build`;
#   built layer  `make build`'s own .aws-sam output, when there is one (its native wheels are for arm64, so
#                the distributions holding them are swapped for this machine's copies, compiled the same way).
# The Lambda runtime's own boto3 is precompiled in every condition, as AWS ships it.

LAYER_REQUIREMENTS = ROOT / "layers" / "core" / "requirements.txt"
BUILT = ROOT / ".aws-sam" / "build"
# The Makefile's COMPILE_PYC: keep the two in step.
COMPILE_PYC = ("-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash")
CONDITIONS = ("no bytecode", "precompiled", "built layer")
TRACER_ON = ", Tracer on"


def _distribution_closure(requirements: list[str]) -> dict[str, Any]:
    """Return the installed distributions ``requirements`` pull in, extras and markers applied (what pip installs)."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, Any] = {}
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        dist = distribution(requirement.name)
        found[name] = dist
        for text in dist.requires or []:
            child = Requirement(text)
            extras = [*requirement.extras, ""]
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append(child)
    return found


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _link(source: Path, target: Path) -> None:
    # Hard links: the trees hold tens of thousands of files, and a link costs no copy. Nothing writes to them.
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _link_distribution(dist: Any, target: Path) -> None:
    """Install ``dist`` into ``target`` from this venv's files, without any bytecode."""
    for file in dist.files or []:
        if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
            continue  # console scripts live outside site-packages; bytecode is what is being measured
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            _link(source, target / file)


def _link_tree(source: Path, target: Path, skip_pycache: bool = True) -> None:
    for path in source.rglob("*"):
        if path.is_file() and not (skip_pycache and "__pycache__" in path.relative_to(source).parts):
            _link(path, target / path.relative_to(source))


def _compile(*paths: Path) -> None:
    subprocess.run([sys.executable, *COMPILE_PYC, *map(str, paths)], check=True)  # noqa: S603 (our interpreter)


def _count(root: Path, suffix: str) -> int:
    return sum(1 for _ in root.rglob(f"*{suffix}"))


def _elf_machine(path: Path) -> int | None:
    """Return the ELF machine field of a shared object (62 x86-64, 183 arm64), None if not ELF."""
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def _function_dirs() -> dict[str, str]:
    """Map each handler (functions/<name>/) to its logical id in template.yaml (its directory in .aws-sam/build)."""
    from crypto_bot_tools.local.aws import load_template

    ids: dict[str, str] = {}
    for logical_id, resource in load_template(ROOT / "template.yaml")["Resources"].items():
        code = resource.get("Properties", {}).get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(code, str):
            ids[Path(code).name] = logical_id
    return ids


class LambdaTree:
    """A copy of what one Lambda container imports from: /var/task, /opt/python and the runtime's boto3."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.task = root / "task"  # one directory per handler, like each function's /var/task
        self.opt = root / "opt" / "python"
        self.runtime = root / "runtime"
        self.notes: dict[str, Any] = {}

    def python_path(self, handler: str | None = None) -> str:
        # Lambda's python3.12 order: /var/task, /opt/python, then the runtime's site-packages.
        paths = ([self.task / handler] if handler else []) + [self.opt, self.runtime]
        return os.pathsep.join(map(str, paths))

    def add_runtime(self, layer: Mapping[str, Any]) -> dict[str, str]:
        """Install boto3 as the runtime does, precompiled (the layer's own copies still come first on the path)."""
        runtime = _distribution_closure(["boto3"])
        for dist in runtime.values():
            _link_distribution(dist, self.runtime)
        _compile(self.runtime)
        return {name: dist.version for name, dist in sorted(runtime.items()) if name not in layer}

    @classmethod
    def from_sources(cls, root: Path, layer: Mapping[str, Any]) -> LambdaTree:
        """The layer `sam build` makes (requirements, crypto_bot, the strategy config) and the functions, no .pyc."""
        tree = cls(root)
        for dist in layer.values():
            _link_distribution(dist, tree.opt)
        _link_tree(ROOT / "layers" / "core" / "crypto_bot", tree.opt / "crypto_bot")
        _link(ROOT / "strategy_config.json", tree.opt / "strategy_config.json")
        for name in HANDLERS:
            _link(ROOT / "functions" / name / "app.py", tree.task / name / "app.py")
        tree.add_runtime(layer)
        return tree

    @classmethod
    def from_build(cls, root: Path, layer: Mapping[str, Any]) -> LambdaTree:
        """`make build`'s output as built; distributions with foreign-architecture binaries swapped for ours."""
        from importlib.metadata import distributions
        from importlib.util import cache_from_source

        from packaging.utils import canonicalize_name

        tree = cls(root)
        built_layer = BUILT / "CoreLayer" / "python"
        ours = _elf_machine(Path(sys.executable).resolve())
        foreign: dict[str, str] = {}
        for dist in distributions(path=[str(built_layer)]):
            binaries = [f for f in dist.files or [] if f.suffix == ".so" and (built_layer / f).is_file()]
            if any(_elf_machine(built_layer / f) not in (None, ours) for f in binaries):
                foreign[dist.metadata["Name"]] = dist.version
        skipped: set[Path] = set()
        for dist in distributions(path=[str(built_layer)]):
            if dist.metadata["Name"] in foreign:
                files = [built_layer / f for f in dist.files or []]
                skipped.update(files)
                skipped.update(Path(cache_from_source(str(f))) for f in files if f.suffix == ".py")
        for path in built_layer.rglob("*"):
            if path.is_file() and path not in skipped:
                _link(path, tree.opt / path.relative_to(built_layer))
        swapped = []
        for name, version in sorted(foreign.items()):
            native = layer.get(canonicalize_name(name))
            if native is None or native.version != version:
                raise RuntimeError(f"built layer: {name} {version} has no matching install in this venv to swap in")
            _link_distribution(native, tree.opt)
            swapped.append(f"{name} {version}")
            _compile(*(tree.opt / f for f in native.files or [] if f.suffix == ".py" and f.parts[0] != ".."))
        for name, logical_id in _function_dirs().items():
            _link_tree(BUILT / logical_id, tree.task / name, skip_pycache=False)
        tree.add_runtime(layer)
        files = [p for p in built_layer.rglob("*") if p.is_file()]
        tree.notes = {
            "built_at": datetime.fromtimestamp(built_layer.stat().st_mtime, UTC).isoformat(timespec="seconds"),
            "layer_bytes": sum(p.stat().st_size for p in files),
            "layer_files": len(files),
            "layer_py": sum(1 for p in files if p.suffix == ".py"),
            "layer_pyc": sum(1 for p in files if p.suffix == ".pyc"),
            "layer_pyc_bytes": sum(p.stat().st_size for p in files if p.suffix == ".pyc"),
            "swapped_for_this_machine": swapped,
        }
        return tree


def _child_env(tree: LambdaTree, handler: str | None, **overrides: str) -> dict[str, str]:
    """The environment of a Lambda container: the template's Globals plus what the probes need, offline."""
    from crypto_bot_tools.local.aws import load_template

    template = load_template(ROOT / "template.yaml")
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    defaults = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    # A parameter's !Ref takes the template's default, as a stack deployed with the defaults has it; other
    # intrinsics (the table's name, ...) are the stack's and are set below.
    env = {
        k: v if isinstance(v, str) else defaults[v["Ref"]]
        for k, v in globals_env.items()
        if isinstance(v, str) or (isinstance(v, dict) and v.get("Ref") in defaults)
    }
    env.update(
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": tree.python_path(handler),
            # Paper trading priced by the alerts, with the paper defaults for markets: no network at init.
            "PAPER_TRADING": "true",
            "PAPER_PRICES": "alerts",
            "PAPER_MARKETS": "permissive",
            "TABLE_NAME": "bench",
            "STRATEGY_CONFIG_PATH": str(tree.opt / "strategy_config.json"),
            "EXCHANGE_NAME": "binance",
            "TIMEFRAME": "8h",
            "SIGNALS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench",
            "WEBHOOK_TOKEN_PARAMETER": "/bench/token",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            # What Lambda sets: Powertools' Tracer traces (and patches botocore) only where it finds them.
            "LAMBDA_TASK_ROOT": str(tree.task / (handler or "")),
            "AWS_LAMBDA_FUNCTION_NAME": handler or "bench",
        }
    )
    env.update(overrides)
    return env


def _time_child(body: str, env: Mapping[str, str], setup: str = "") -> float:
    """Run ``body`` in a fresh interpreter and return the seconds it took (start-up and ``setup`` excluded).

    ``-S``: no site-packages of this venv, only the tree on PYTHONPATH (and the standard library, precompiled as
    in the Lambda runtime). ``-B``: the interpreter never writes bytecode, so a tree without any stays without.
    """
    code = f"import time\n{setup}\n_t0 = time.perf_counter()\n{body}\nprint(repr(time.perf_counter() - _t0))\n"
    argv = [sys.executable, "-S", "-B", "-c", code]
    done = subprocess.run(  # noqa: S603 (our own interpreter and code)
        argv, env=dict(env), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe failed:\n{body}\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _probes(tree: LambdaTree) -> dict[str, tuple[str, dict[str, str]]]:
    """Each probe's code and environment, by label."""
    probes: dict[str, tuple[str, dict[str, str]]] = {}
    for name in HANDLERS:
        probes[name] = ("import app", _child_env(tree, name))
    # The live path: the handler plus the exchange Runtime._live_exchange() builds (no network, no key read).
    build = (
        "from crypto_bot.adapters.ccxt.exchange import CcxtExchange; "
        "CcxtExchange('binance', api_key='bench', secret='bench')"
    )
    for name in ("place_order", "reconcile"):
        probes[f"{name}+live_exchange"] = (f"import app; {build}", _child_env(tree, name, PAPER_TRADING="false"))
    # Before the handlers skipped it: Powertools' Tracer on, as with POWERTOOLS_TRACE_DISABLED=false.
    for label in ("place_order", "place_order+live_exchange"):
        body, env = probes[label]
        probes[label + TRACER_ON] = (body, {**env, "POWERTOOLS_TRACE_DISABLED": "false"})
    # What the handlers' start-up is made of.
    base = _child_env(tree, None)
    probes["import boto3"] = ("import boto3", base)
    probes["Powertools Tracer (X-Ray SDK)"] = ("from aws_lambda_powertools import Tracer; Tracer()", base)
    probes["import ccxt"] = ("import ccxt", base)
    probes["seed_trader"] = ("import ccxt; ccxt.binance()", base)
    # The seed's webhook Lambda had no layer: the runtime's boto3 only.
    probes["seed_webhook"] = ("import boto3; boto3.client('dynamodb')", {**base, "PYTHONPATH": str(tree.runtime)})
    return probes


def _measure(condition: str, tree: LambdaTree) -> dict[str, Any]:
    """Run every probe ``REPETITIONS`` times in fresh processes against ``tree``."""
    probes = _probes(tree)
    # One run of the heaviest probes first, so that no probe pays for filling the OS file cache.
    for label in ("place_order+live_exchange" + TRACER_ON, "seed_trader"):
        _time_child(*probes[label])
    results: dict[str, Any] = {}
    for label, (body, env) in probes.items():
        samples = [_time_child(body, env) for _ in range(REPETITIONS)]
        results[label] = {
            "median_ms": round(statistics.median(samples) * 1000, 1),
            "min_ms": round(min(samples) * 1000, 1),
            "samples": len(samples),
        }
        progress(f"cold start, {condition}, {label}: {results[label]['median_ms']} ms")
    ccxt_ms = results["import ccxt"]["median_ms"]
    ratios = {label: round(ccxt_ms / p["median_ms"], 2) for label, p in results.items() if label != "import ccxt"}
    return {
        "opt_python_py_files": _count(tree.opt, ".py"),
        "opt_python_pyc_files": _count(tree.opt, ".pyc"),
        **tree.notes,
        "probes": results,
        "ccxt_over": ratios,
    }


def _authorizer_call(tree: LambdaTree) -> dict[str, Any]:
    """One authorizer call on a loaded handler (the token from SSM replaced by a constant): a warm invocation."""
    setup = (
        "import app; app.token_source = lambda: 'secret'\n"
        "from types import SimpleNamespace\n"
        "event = {'type': 'REQUEST', 'methodArn': 'arn:aws:execute-api:us-east-1:123456789012:a/dev/POST/signals', "
        "'queryStringParameters': {'token': 'secret'}, 'requestContext': {'identity': {'sourceIp': '192.0.2.1'}}}\n"
        "context = SimpleNamespace(function_name='authorizer', memory_limit_in_mb=128, aws_request_id='r', "
        "invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:a')"
    )
    env = _child_env(tree, "authorizer")
    call = [_time_child("app.lambda_handler(event, context)", env, setup) for _ in range(REPETITIONS)]
    result = {"median_ms": round(statistics.median(call) * 1000, 1), "min_ms": round(min(call) * 1000, 1)}
    progress(f"authorizer call: {result['median_ms']} ms")
    return {**result, "samples": len(call)}


def cold_starts() -> dict[str, Any]:
    """Measure import + init of every handler, ccxt and the seed's start-up, without and with bytecode."""
    layer = _distribution_closure(_requirements(LAYER_REQUIREMENTS))
    conditions: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lambda-") as tmp:
        tree = LambdaTree.from_sources(Path(tmp) / "sources", layer)
        if _count(tree.opt, ".pyc") or _count(tree.task, ".pyc"):
            raise RuntimeError("the no-bytecode tree holds .pyc files")
        conditions["no bytecode"] = _measure("no bytecode", tree)
        if _count(tree.opt, ".pyc"):
            raise RuntimeError("a probe wrote bytecode into the no-bytecode tree")
        _compile(tree.opt, tree.task)
        conditions["precompiled"] = _measure("precompiled", tree)
        authorizer = _authorizer_call(tree)
        if (BUILT / "CoreLayer" / "python").is_dir():
            built = LambdaTree.from_build(Path(tmp) / "built", layer)
            conditions["built layer"] = _measure("built layer", built)
        else:
            conditions["built layer"] = {"skipped": "no .aws-sam/build: run `make build` first"}
            progress("cold start, built layer: skipped (no .aws-sam/build)")
    return {
        "repetitions": REPETITIONS,
        "layer_requirements": _requirements(LAYER_REQUIREMENTS),
        "layer_distributions": {name: dist.version for name, dist in sorted(layer.items())},
        "conditions": conditions,
        "authorizer call": authorizer,
    }


# --------------------------------------------------------------------------- markets cache


class _FakeBinance:
    """ccxt's ``fetch`` for Binance, answering the market download from the recorded fixture; counts requests."""

    def __init__(self, client: Any) -> None:
        data = json.loads((FIXTURES / "binance.json").read_text(encoding="utf-8"))
        self.routes: dict[str, Any] = {
            "/api/v3/exchangeInfo": data["exchange_info"],
            "/sapi/v1/capital/config/getall": [],
            "/sapi/v1/margin/allPairs": [],
            "/sapi/v1/margin/isolated/allPairs": [],
        }
        self.requests: list[str] = []
        self.bytes = 0
        client.fetch = self

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        self.requests.append(f"{method} {path}")
        if path not in self.routes:
            raise AssertionError(f"unexpected request {method} {url}")
        payload = self.routes[path]
        self.bytes += len(json.dumps(payload))
        return payload


def markets_cache() -> dict[str, Any]:
    """Count the exchange requests of a cold start's market load without and with the table cache."""
    import boto3
    from moto import mock_aws

    from crypto_bot.adapters.aws.markets_cache import CacheOutcome, prime_from_table
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    symbols = ["BTC/USDT", "ETH/BTC"]

    def cold_exchange() -> tuple[CcxtExchange, _FakeBinance]:
        # A fake key: the fake HTTP layer answers everything, and ccxt only needs one to sign.
        options = {"enableRateLimit": False}
        exchange = CcxtExchange("binance", api_key="bench", secret="bench", options=options)  # noqa: S106
        return exchange, _FakeBinance(exchange.client)

    without, http = cold_exchange()
    without.load_markets(symbols)
    no_cache: dict[str, Any] = {
        "http_requests": len(http.requests),
        "response_bytes": http.bytes,
        "requests": http.requests,
    }

    with _fake_aws(), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="bench",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        first, first_http = cold_exchange()
        first_db = _CountingDynamoDB(client)
        miss = prime_from_table(first, "bench", first_db, symbols)
        first.load_markets(symbols)
        second, second_http = cold_exchange()
        second_db = _CountingDynamoDB(client)
        hit = prime_from_table(second, "bench", second_db, symbols)
        second.load_markets(symbols)
        item = client.get_item(TableName="bench", Key={"pk": {"S": "MARKETS#binance"}, "sk": {"S": "MARKETS"}})
        item_bytes = len(item["Item"]["markets"]["B"])
    if miss is not CacheOutcome.REFRESHED or hit is not CacheOutcome.HIT:
        raise RuntimeError(f"markets cache: expected a refresh then a hit, got {miss} then {hit}")
    result = {
        "symbols": symbols,
        "without_cache": {**no_cache, "dynamodb_calls": 0},  # no table: the adapter alone, as before the cache
        "first_cold_start": {
            "outcome": miss.value,
            "http_requests": len(first_http.requests),
            "dynamodb_calls": len(first_db.calls),
            "dynamodb_operations": first_db.calls,
        },
        "cached_cold_start": {
            "outcome": hit.value,
            "http_requests": len(second_http.requests),
            "dynamodb_calls": len(second_db.calls),
            "dynamodb_operations": second_db.calls,
            "dynamodb_rru": second_db.rru,
        },
        "cached_item_bytes": item_bytes,
        "http_requests_saved_per_cold_start": no_cache["http_requests"] - len(second_http.requests),
        "response_bytes_saved_per_cold_start": no_cache["response_bytes"],
    }
    progress(f"markets cache: {no_cache['http_requests']} requests without, {len(second_http.requests)} with a hit")
    return result


class _CountingDynamoDB:
    """The DynamoDB client handed to the markets cache, counting each call it makes and the read units it uses."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.rru = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return method

        def call(**params: Any) -> Any:
            response = method(**params)
            self.calls.append(operation)
            self.rru += _units(operation, params, response)[1]
            return response

        return call


@contextlib.contextmanager
def _fake_aws() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- AWS call counting


def _item_bytes(item: Mapping[str, Any]) -> int:
    # DynamoDB sizes a binary attribute by its bytes; its JSON repr (b'x\\x9c…') would count each byte up to 4 times.
    return sum(
        len(name) + (len(value["B"]) if isinstance(value.get("B"), bytes) else len(json.dumps(value, default=str)))
        for name, value in item.items()
    )


def _units(operation: str, params: Mapping[str, Any], response: Mapping[str, Any] | None) -> tuple[float, float]:
    """Estimate (WRU, RRU) of one DynamoDB call from item sizes: 1 KB per WRU, 4 KB per RRU (half if eventual)."""

    def write(item: Mapping[str, Any] | None) -> float:
        size = _item_bytes(item) if item else 1
        # An item in the sparse GSI is written there too.
        return math.ceil(size / 1024) + (1 if item and "gsi1pk" in item else 0)

    def read(size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    response = response or {}
    consistent = bool(params.get("ConsistentRead"))
    if operation == "PutItem":
        return write(params.get("Item")), 0
    if operation in ("UpdateItem", "DeleteItem"):
        return write(None), 0
    if operation == "BatchWriteItem":
        requests = [r for rs in params.get("RequestItems", {}).values() for r in rs]
        return sum(write(r.get("PutRequest", {}).get("Item")) for r in requests), 0
    if operation == "TransactWriteItems":
        return sum(2 * write((t.get("Put") or {}).get("Item")) for t in params.get("TransactItems", [])), 0
    if operation == "GetItem":
        return 0, read(_item_bytes(response.get("Item") or {}), consistent)
    if operation in ("Query", "Scan"):
        return 0, read(sum(_item_bytes(i) for i in response.get("Items", [])), consistent)
    if operation == "BatchGetItem":
        items = [i for rs in response.get("Responses", {}).values() for i in rs]
        return 0, sum(read(_item_bytes(i), consistent) for i in items)
    if operation == "TransactGetItems":
        return 0, sum(2 * read(_item_bytes(r.get("Item") or {}), True) for r in response.get("Responses", []))
    return 0, 0


class ApiCounter:
    """Count botocore calls made off the main thread (the state machine and the handlers), by service and action."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.wru = 0.0
        self.rru = 0.0
        self.items_written = 0
        self.write_calls = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.wru = self.rru = 0.0
            self.items_written = self.write_calls = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from botocore.client import BaseClient

        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 (private: not in the stubs)
        main = threading.main_thread()
        counter = self

        def counting(client: Any, operation: str, params: Mapping[str, Any]) -> Any:
            response = None
            try:
                response = original(client, operation, params)
                return response
            finally:
                if threading.current_thread() is not main:  # the bench's own polling runs on the main thread
                    counter.record(client.meta.service_model.service_name, operation, params, response)

        setattr(BaseClient, "_make_api_call", counting)  # noqa: B010
        try:
            yield
        finally:
            setattr(BaseClient, "_make_api_call", original)  # noqa: B010

    def record(self, service: str, operation: str, params: Mapping[str, Any], response: Any) -> None:
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            if service == "dynamodb":
                wru, rru = _units(operation, params, response)
                self.wru += wru
                self.rru += rru
                written = _items_written(operation, params)
                if written:
                    self.items_written += written
                    self.write_calls += 1


def _items_written(operation: str, params: Mapping[str, Any]) -> int:
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 1
    if operation == "BatchWriteItem":
        return sum(len(v) for v in params.get("RequestItems", {}).values())
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    return 0


class CapturedOutput(io.TextIOBase):
    """Collect what the handlers print (Powertools logs and EMF metrics): its size is the CloudWatch Logs volume."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text.encode())
        return len(text)

    def since(self, mark: int) -> str:
        return "".join(self.parts[mark:])


def _metric_names(text: str) -> list[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        with contextlib.suppress(ValueError):
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names.update(m["Name"] for m in directive["Metrics"])
    return sorted(names)


# --------------------------------------------------------------------------- cycles on the emulated stack


def _environment(config_path: Path) -> dict[str, str]:
    return {
        "PAPER_TRADING": "true",
        "PAPER_PRICES": "alerts",
        "PAPER_MARKETS": "permissive",  # offline: the venue's markets would need the network
        "STRATEGY_CONFIG_PATH": str(config_path),
        "MAX_SIGNAL_AGE_MINUTES": "0",  # the benchmark's alerts are fixed historical ones
        "FILL_TIMEOUT_SECONDS": "0",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CryptoBotBench",
    }


def write_config(directory: Path, strategies: int) -> Path:
    """Write a config of ``strategies`` strategies on distinct symbols S001/USD…, percentages summing to ≤ 0.98."""
    share = (Decimal("0.98") / strategies).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    config = {
        f"S{i:03d}": {"exchange_symbol": f"S{i:03d}/USD", "base_asset": f"S{i:03d}", "percentage": str(share)}
        for i in range(1, strategies + 1)
    }
    path = directory / f"strategies_{strategies}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def alert(index: int, strategies: int, action: str = "buy", comment: str = "long") -> dict[str, Any]:
    """Build alert ``index``, on strategy ``index mod strategies``, priced 100 (the paper exchange's price)."""
    return {
        "time": "2024-08-10T02:30:02Z",
        "ticker": f"S{index % strategies + 1:03d}",
        "order_action": action,
        "order_price": "100",
        "order_comment": comment,
        "order_id": f"bench-{index}",
    }


@contextlib.contextmanager
def stack_for(config_path: Path) -> Iterator[Any]:
    """Start the template's stack on moto with the paper exchange priced by the alerts and no waits."""
    from crypto_bot_tools.local.aws import local_stack

    with local_stack(
        ROOT / "template.yaml",
        parameters={"IncrementPct": "0"},
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "3"},
        environment=_environment(config_path),
        retry_interval_scale=0,
    ) as stack:
        yield stack


def queue_alerts(stack: Any, alerts: list[dict[str, Any]], queue: str = "SignalsQueue") -> None:
    """Queue alerts as API Gateway would (ten per call here, only to save the bench's time)."""
    sqs, url = stack.client("sqs"), stack.resource(queue)
    for start in range(0, len(alerts), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(a)} for i, a in enumerate(alerts[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def _payload_sizes(history: list[dict[str, Any]]) -> tuple[int, str]:
    largest, where = 0, ""
    for event in history:
        for key, details in event.items():
            if not (key.endswith("EventDetails") and isinstance(details, dict)):
                continue
            for field in ("input", "output"):
                value = details.get(field)
                if isinstance(value, str) and len(value.encode()) > largest:
                    largest = len(value.encode())
                    where = f"{event['type']} {details.get('name', '')}".strip()
    return largest, where


def run_cycle(stack: Any, counter: ApiCounter, output: CapturedOutput, execution_input: Any) -> dict[str, Any]:
    """Run one execution and return what it cost: calls, transitions, invocations, payloads, logs, wall time."""
    counter.reset()
    mark, invocations_before = len(output.parts), len(stack.invocations())
    started = time.perf_counter()
    arn = stack.start_execution("TradeCycleStateMachine", execution_input)
    result = stack.wait_for_execution(arn, timeout=900)
    wall = time.perf_counter() - started
    if result["status"] != "SUCCEEDED":
        raise RuntimeError(f"bench cycle {result['status']}: {json.dumps(result['history'][-3:], default=str)[:2000]}")
    history = result["history"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    invocations = stack.invocations()[invocations_before:]
    by_function: dict[str, list[float]] = defaultdict(list)
    for logical_id, seconds in invocations:
        by_function[logical_id].append(seconds * 1000)
    text = output.since(mark)
    largest, where = _payload_sizes(history)
    calls = dict(sorted(counter.calls.items()))
    calls["stepfunctions:StartExecution"] = calls.get("stepfunctions:StartExecution", 0) + 1  # the trigger
    return {
        "status": result["status"],
        "wall_seconds": round(wall, 3),
        "transitions": len(entered),
        "states_entered": entered if len(entered) <= 12 else None,
        "api_calls": calls,
        "sqs_calls": sum(n for k, n in calls.items() if k.startswith("sqs:")),
        "dynamodb_wru": round(counter.wru, 1),
        "dynamodb_rru": round(counter.rru, 1),
        "dynamodb_items_written": counter.items_written,
        "dynamodb_write_calls": counter.write_calls,
        "lambda_invocations": len(invocations),
        "lambda_ms": round(sum(s for _, s in invocations) * 1000, 1),
        "functions": sorted(by_function),
        "lambda_by_function": {
            f: {"invocations": len(ms), "total_ms": round(sum(ms), 1), "max_ms": round(max(ms), 1)}
            for f, ms in sorted(by_function.items())
        },
        "largest_payload_bytes": largest,
        "largest_payload_at": where,
        "log_bytes": len(text.encode()),
        "metric_names": _metric_names(text),
        "sns_publishes": calls.get("sns:Publish", 0),
    }


def cycle(config_path: Path, counter: ApiCounter, output: CapturedOutput, alerts: list[dict[str, Any]]) -> dict:
    """Queue ``alerts`` on a fresh stack and run one scheduled cycle over them."""
    with stack_for(config_path) as stack:
        queue_alerts(stack, alerts)
        return run_cycle(stack, counter, output, {"trigger": "manual"})


def cycle_scale(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run N signals over S strategies through the executed state machine; also the cost profile's cycles."""
    signal_counts, strategy_counts = ((10, 100), (3, 20)) if quick else ((10, 100, 1000), (3, 20, 200))
    counter, output = ApiCounter(), CapturedOutput()
    runs: list[dict[str, Any]] = []
    profile_cycles: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, counter.installed(), contextlib.redirect_stdout(output):
        directory = Path(tmp)
        configs = {s: write_config(directory, s) for s in strategy_counts}
        empty = cycle(configs[3], counter, output, [])
        progress(f"empty cycle: {empty['transitions']} transitions, {empty['sqs_calls']} SQS calls")
        profile_cycles["empty"] = empty
        for s in (3, 20):
            one = cycle(configs[s], counter, output, [alert(0, s)])
            ten = cycle(configs[s], counter, output, [alert(i, s) for i in range(10)])
            profile_cycles[f"one:{s}"], profile_cycles[f"ten:{s}"] = one, ten
            progress(f"profile S={s}: one alert {one['wall_seconds']} s, ten alerts {ten['wall_seconds']} s")
        for s in strategy_counts:
            for n in signal_counts:
                elapsed = time.monotonic() - STARTED
                if elapsed > SCALE_BUDGET_SECONDS:
                    runs.append({"signals": n, "strategies": s, "skipped": f"time budget ({elapsed:.0f} s used)"})
                    progress(f"scale N={n} S={s}: skipped, over the time budget")
                    continue
                progress(f"scale N={n} S={s}: running")
                measured = cycle(configs[s], counter, output, [alert(i, s) for i in range(n)])
                runs.append({"signals": n, "strategies": s, **measured})
                progress(
                    f"scale N={n} S={s}: {measured['wall_seconds']} s, {measured['transitions']} transitions, "
                    f"{measured['sqs_calls']} SQS calls, payload ≤ {measured['largest_payload_bytes']} B"
                )
    return {"runs": runs}, profile_cycles


def planner_time() -> dict[str, Any]:
    """Time plan_entries (boost) for 200 strategies, half of them holding a position, all entering or active."""
    from crypto_bot.domain.allocation import PlanContext, plan_entries, size_entries
    from crypto_bot.domain.config import ExecutionMode, StrategyConfig
    from crypto_bot.domain.ledger import Ledger
    from crypto_bot.domain.markets import Market, Side

    strategies = 200
    with tempfile.TemporaryDirectory() as tmp:
        config = StrategyConfig.load(write_config(Path(tmp), strategies), "USD")
    ledger = Ledger()
    at = datetime(2024, 8, 10, tzinfo=UTC)
    keys = sorted(config.strategies)
    for key in keys[::2]:
        ledger.apply_fill(
            config[key], Side.BUY, order_id=f"o-{key}", filled=Decimal("0.4"), cost=Decimal(40), fees=(), at=at
        )
    markets = {
        s.symbol: Market(s.symbol, s.base, "USD", amount_step=Decimal("0.00000001"), price_step=Decimal("0.01"))
        for s in config.strategies.values()
    }
    free = {"USD": Decimal(6000), **{config[k].base: Decimal("0.4") for k in keys[::2]}}
    context = PlanContext(
        cycle_id="bench",
        config=config,
        ledger=ledger,
        free=free,
        total_quote=Decimal(6000),
        markets=markets,
        prices={s.symbol: Decimal(100) for s in config.strategies.values()},
        increment=Decimal("0.001"),
    )
    entering = keys[1::2]
    samples, with_sizing = [], []
    for _ in range(25):
        started = time.perf_counter()
        plan = plan_entries(ExecutionMode.BOOST, entering, context)
        samples.append(time.perf_counter() - started)
        size_entries(plan, context)
        with_sizing.append(time.perf_counter() - started)
    result = {
        "strategies": strategies,
        "entering": len(entering),
        "active": len(keys[::2]),
        "plan_entries_median_ms": round(statistics.median(samples) * 1000, 2),
        "plan_entries_max_ms": round(max(samples) * 1000, 2),
        "with_size_entries_median_ms": round(statistics.median(with_sizing) * 1000, 2),
    }
    progress(f"planner: {result['plan_entries_median_ms']} ms for {strategies} strategies")
    return result


# --------------------------------------------------------------------------- stop-loss latency

# What each hop typically takes on AWS, with where the figure comes from (not measured here).
AWS_HOPS: list[tuple[str, str, str]] = [
    (
        "webhook → SQS",
        "≈ 20–60 ms",
        "API Gateway REST `Latency` minus `IntegrationLatency` is typically single- to low double-digit ms "
        "(API Gateway CloudWatch metrics); an SQS SendMessage is ≈ 10–20 ms in-region",
    ),
    (
        "pipe: poll + StartExecution",
        "≈ 0.1–1 s",
        "EventBridge Pipes long-polls SQS (batch 1, no batching window) and starts the execution "
        "asynchronously (FIRE_AND_FORGET); AWS publishes no SLA figure",
    ),
    (
        "Step Functions transitions",
        "≈ 10–50 ms each",
        "Standard workflows: per-state overhead of tens of ms (AWS Step Functions quotas and service "
        "documentation; Express is lower)",
    ),
    (
        "Lambda cold start (per function)",
        "measured INIT × 1769/256",
        "INIT runs on 256/1769 of a vCPU (Lambda allocates one vCPU at 1,769 MB); AWS bills INIT since 2025-08-01",
    ),
    ("Lambda warm invoke", "≈ 5–20 ms overhead", "Lambda service overhead of a synchronous invoke from Step Functions"),
    (
        "exchange round trip",
        "≈ 150–250 ms",
        "us-east-1 to Binance's matching engine in Tokyo (ap-northeast-1): ≈ 150 ms network RTT plus processing",
    ),
]


def stop_loss_latency() -> dict[str, Any]:
    """Time a stop loss from its SQS send to the order on the paper exchange, hop by hop, on the emulated stack."""
    output = CapturedOutput()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(output):
        config = write_config(Path(tmp), 3)
        with stack_for(config) as stack:
            queue_alerts(stack, [alert(0, 3)])
            arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"}, name="position")
            stack.wait_for_execution(arn, timeout=120)
            before = len(stack.invocations())
            sqs, url = stack.client("sqs"), stack.resource("UrgentQueue")
            stop = alert(0, 3, action="sell", comment="Stop loss")
            t0 = time.time()
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(stop))
            t1 = time.time()
            # What the pipe does: receive one message, start an execution with it, delete it.
            (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
            arn = stack.start_execution(
                "TradeCycleStateMachine", [{"messageId": message["MessageId"], "body": message["Body"]}], name="stop"
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            t2 = time.time()
            result = stack.wait_for_execution(arn, timeout=120)
            invocations = stack.invocations()[before:]
    history = result["history"]
    hops: list[dict[str, Any]] = [
        {"hop": "SQS SendMessage (the webhook's integration)", "ms": round((t1 - t0) * 1000, 1)},
        {"hop": "pipe: ReceiveMessage + StartExecution + DeleteMessage", "ms": round((t2 - t1) * 1000, 1)},
    ]
    started_at = history[0]["timestamp"].timestamp()
    open_states: dict[str, float] = {}
    placed_at: float | None = None
    lambda_ms = iter([(f, round(s * 1000, 1)) for f, s in invocations])
    for event in history:
        stamp = event["timestamp"].timestamp()
        if event["type"].endswith("StateEntered"):
            open_states[event["stateEnteredEventDetails"]["name"]] = stamp
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name not in open_states:
                continue
            row: dict[str, Any] = {"hop": f"state {name}", "ms": round((stamp - open_states.pop(name)) * 1000, 1)}
            if name in ("Collect", "PlanPhase", "PlaceOrder"):
                function, handler_ms = next(lambda_ms, ("", 0.0))
                row["lambda"] = function
                row["handler_ms"] = handler_ms
            hops.append(row)
            if name == "PlaceOrder":
                placed_at = stamp
                break
    if placed_at is None:
        raise RuntimeError("the stop loss never reached PlaceOrder")
    first_state = next(e["timestamp"].timestamp() for e in history if e["type"].endswith("StateEntered"))
    hops.insert(2, {"hop": "execution start → first state", "ms": round((first_state - started_at) * 1000, 1)})
    total = round((placed_at - t0) * 1000, 1)
    progress(f"stop loss: {total} ms from SQS send to the order on the paper exchange")
    return {
        "total_ms": total,
        "status": result["status"],
        "hops": hops,
        "aws_expected": [{"hop": h, "expected": e, "source": s} for h, e, s in AWS_HOPS],
    }


# --------------------------------------------------------------------------- the cost profile

_COUNT_FIELDS = (
    "transitions",
    "lambda_invocations",
    "lambda_ms",
    "sqs_calls",
    "dynamodb_wru",
    "dynamodb_rru",
    "sns_publishes",
    "log_bytes",
)


def _counts(run: Mapping[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {k: str(run[k]) for k in _COUNT_FIELDS}
    counts["functions"] = list(run["functions"])
    counts["metric_names"] = list(run["metric_names"])
    return counts


def _per_extra(one: Mapping[str, Any], ten: Mapping[str, Any]) -> dict[str, Any]:
    # What each of the nine further alerts of a ten-alert cycle added, never below zero.
    extra: dict[str, Any] = {
        k: str(max(Decimal(0), (Decimal(str(ten[k])) - Decimal(str(one[k]))) / 9)) for k in _COUNT_FIELDS
    }
    extra["functions"] = list(ten["functions"])
    extra["metric_names"] = list(ten["metric_names"])
    return extra


def cost_profile(cold: Mapping[str, Any], cycles: Mapping[str, Any], cache: Mapping[str, Any]) -> dict[str, Any]:
    """Build cost_profile.json: the measured per-cycle counts ``crypto-bot cost`` prices."""
    from crypto_bot_tools.local.aws import load_template

    template = load_template(ROOT / "template.yaml")
    resources = template["Resources"]
    memory = template["Globals"]["Function"]["MemorySize"]
    conditions = cold["conditions"]
    # What each deployment ships: ours is compiled by `make build`; the seed's trader was packaged the way
    # `sam build` and `chalice package` do it, sources only, so it compiled ccxt at every cold start (its
    # "1.9 s"); the seed's webhook used only the runtime's boto3, which AWS ships compiled.
    ours, seed = conditions["precompiled"]["probes"], conditions["no bytecode"]["probes"]
    return {
        "generated_by": "make bench (bench/run.py)",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "memory_mb": str(memory),
        "authorizer_memory_mb": str(resources["WebhookAuthorizerFunction"]["Properties"]["MemorySize"]),
        "alarms": str(sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm")),
        "cold_start_conditions": "handlers: precompiled; seed_trader: no bytecode; seed_webhook: the runtime's boto3",
        "cold_start_ms": {
            **{name: str(ours[name]["median_ms"]) for name in HANDLERS},
            "seed_trader": str(seed["seed_trader"]["median_ms"]),
            "seed_webhook": str(ours["seed_webhook"]["median_ms"]),
        },
        "authorizer_ms": str(cold["authorizer call"]["median_ms"]),
        # The markets cache's read per live cold start, as measured (markets_cache: the cached cold start).
        "cache_read_rru": str(cache["cached_cold_start"]["dynamodb_rru"]),
        "empty": _counts(cycles["empty"]),
        "trading": {str(s): _counts(cycles[f"one:{s}"]) for s in (3, 20)},
        "per_extra_signal": {str(s): _per_extra(cycles[f"one:{s}"], cycles[f"ten:{s}"]) for s in (3, 20)},
    }


# --------------------------------------------------------------------------- the document


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(ok: bool, detail: str = "") -> str:
    return "met" if ok else f"**missed**{': ' + detail if detail else ''}"


def targets(results: Mapping[str, Any]) -> list[list[Any]]:
    """Check every target of the issue against this run's figures."""
    from crypto_bot.domain.timeframe import Timeframe
    from crypto_bot_tools.costs import Profile, Workload, estimate

    rows: list[list[Any]] = []
    for condition, measured in results["cold_start"]["conditions"].items():
        if "skipped" in measured:
            continue
        ratios = measured["ccxt_over"]
        for name in ("place_order", "reconcile"):
            for label in (name, f"{name}+live_exchange"):
                ratio = ratios[label]
                rows.append(
                    [
                        f"`{label}` starts ≥ 3× faster than `import ccxt` ({condition})",
                        f"{ratio}×",
                        _verdict(ratio >= 3, f"{ratio}× < 3×"),
                    ]
                )
    for run in results["cycle_scale"]["runs"]:
        if "skipped" in run:
            continue
        n, s = run["signals"], run["strategies"]
        limit = math.ceil(n / 10) + 2
        over = run["sqs_calls"] - limit
        rows.append(
            [f"SQS calls ≤ ⌈N/10⌉ + 2 = {limit} (N={n}, S={s})", run["sqs_calls"], _verdict(over <= 0, f"+{over}")]
        )
    for run in results["cycle_scale"]["runs"]:
        if "skipped" not in run and run["signals"] == 1000:
            size = run["largest_payload_bytes"]
            rows.append([f"payload < 64 KB (N=1000, S={run['strategies']})", f"{size:,} B", _verdict(size < 65536)])
    planner = results["planner"]["plan_entries_median_ms"]
    rows.append(["planner < 50 ms for 200 strategies", f"{planner} ms", _verdict(planner < 50)])
    empty = results["cycles"]["empty"]["transitions"]
    rows.append(["empty cycle ≤ 6 state transitions", empty, _verdict(empty <= 6)])
    profile = Profile.from_json(results["cost_profile"])
    for timeframe, strategies, limit in (("8h", 3, Decimal("0.01")), ("1h", 5, Decimal("0.10"))):
        total = estimate(profile, Workload(Timeframe.parse(timeframe), strategies, Decimal(2), True)).total
        shown = f"${total.quantize(Decimal('0.0001'), rounding='ROUND_CEILING')}"
        rows.append(
            [
                f"≤ ${limit}/month beyond the free tier at {timeframe}, {strategies} strategies",
                shown,
                _verdict(total <= limit),
            ]
        )
    return rows


def _cold_start_section(cold: Mapping[str, Any]) -> str:
    """The cold-start table, every condition side by side, and what the trees held."""
    conditions = {c: m for c, m in cold["conditions"].items() if "skipped" not in m}
    header = ["probe (fresh process)"]
    for condition in conditions:
        header += [f"{condition}: median ms", "`import ccxt` ÷ this"]
    labels = list(next(iter(conditions.values()))["probes"])
    rows = []
    for label in labels:
        row: list[Any] = [f"`{label}`"]
        for measured in conditions.values():
            ratio = measured["ccxt_over"].get(label)
            row += [measured["probes"][label]["median_ms"], f"{ratio}×" if ratio is not None else ""]
        rows.append(row)
    versions = cold["layer_distributions"]
    shown = ", ".join(f"{n} {versions[n]}" for n in ("ccxt", "aws-lambda-powertools", "botocore") if n in versions)
    lines = [
        _table(header, rows),
        "",
        f"Median of {cold['repetitions']} runs each (minimums in `bench/results.json`); interpreter start-up "
        "excluded. The layer is `layers/core/requirements.txt` with its dependencies "
        f"({len(versions)} distributions: {shown}, …), `crypto_bot` and the strategy config.",
        "",
    ]
    for condition, measured in conditions.items():
        line = (
            f"- **{condition}**: {measured['opt_python_py_files']:,} `.py` and "
            f"{measured['opt_python_pyc_files']:,} `.pyc` files under `/opt/python`"
        )
        if "layer_bytes" in measured:
            swapped = ", ".join(measured["swapped_for_this_machine"]) or "none"
            line += (
                f"; `make build` output of {measured['built_at']}: {measured['layer_bytes'] / 1e6:.0f} MB unzipped "
                f"in {measured['layer_files']:,} files, of which {measured['layer_pyc_bytes'] / 1e6:.0f} MB of "
                f"bytecode (Lambda allows 250 MB); swapped for this machine's arm64 binaries: {swapped}"
            )
        lines.append(line + ".")
        probes = measured["probes"]
        saved = [
            f"`{label}` {probes[label + TRACER_ON]['median_ms']} → {probes[label]['median_ms']} ms"
            for label in ("place_order", "place_order+live_exchange")
        ]
        lines.append(f"  Without the X-Ray SDK Tracer: {'; '.join(saved)}.")
    for condition, measured in cold["conditions"].items():
        if "skipped" in measured:
            lines.append(f"- **{condition}**: not measured ({measured['skipped']}).")
    seed = cold["conditions"]["no bytecode"]["probes"]["seed_trader"]["median_ms"]
    shipped = cold["conditions"]["precompiled"]["probes"]
    versus = "; ".join(
        f"`{label}` {shipped[label]['median_ms']} ms, {seed / shipped[label]['median_ms']:.1f}× faster"
        for label in ("place_order", "place_order+live_exchange", "reconcile+live_exchange")
    )
    lines += [
        "",
        f"As shipped: the seed's trader (no bytecode) starts in {seed} ms; ours (precompiled, `make build`): {versus}.",
        "",
        f"A warm authorizer call (precompiled): {cold['authorizer call']['median_ms']} ms.",
    ]
    return "\n".join(lines)


def render(results: Mapping[str, Any]) -> dict[str, str]:
    """Return the generated sections of docs/performance.md, by marker name."""
    from crypto_bot.domain.timeframe import Timeframe
    from crypto_bot_tools.costs import Profile, Workload, estimate, estimate_seed, markdown_table, render_table

    sections: dict[str, str] = {"cold-start": _cold_start_section(results["cold_start"])}
    cache = results["markets_cache"]
    sections["markets-cache"] = _table(
        ["cold start", "exchange HTTP requests", "DynamoDB calls", "market bytes downloaded"],
        [
            [
                "no cache (before)",
                cache["without_cache"]["http_requests"],
                cache["without_cache"]["dynamodb_calls"],
                f"{cache['without_cache']['response_bytes']:,}",
            ],
            [
                "cache empty or stale (once a day)",
                cache["first_cold_start"]["http_requests"],
                cache["first_cold_start"]["dynamodb_calls"],
                "as above",
            ],
            [
                "cache fresh",
                cache["cached_cold_start"]["http_requests"],
                cache["cached_cold_start"]["dynamodb_calls"],
                0,
            ],
        ],
    ) + (
        f"\n\nRequests without the cache: {', '.join(f'`{r}`' for r in cache['without_cache']['requests'])}. "
        f"The cached item for {len(cache['symbols'])} symbols is {cache['cached_item_bytes']:,} bytes compressed. "
        f"Saved per cold start: {cache['http_requests_saved_per_cold_start']} requests. DynamoDB calls counted on the"
        f" client the cache is given: {', '.join(cache['first_cold_start']['dynamodb_operations'])} when empty or"
        f" stale, {', '.join(cache['cached_cold_start']['dynamodb_operations'])} when fresh"
        f" ({cache['cached_cold_start']['dynamodb_rru']} RRU)."
    )
    rows = []
    for run in results["cycle_scale"]["runs"]:
        if "skipped" in run:
            rows.append([run["signals"], run["strategies"], f"skipped: {run['skipped']}"] + [""] * 7)
            continue
        written = f"{run['dynamodb_items_written']} / {run['dynamodb_write_calls']}"
        rows.append(
            [
                run["signals"],
                run["strategies"],
                run["wall_seconds"],
                run["transitions"],
                run["lambda_invocations"],
                round(run["lambda_ms"]),
                f"{run['sqs_calls']} (≤ {math.ceil(run['signals'] / 10) + 2})",
                written,
                f"{run['largest_payload_bytes']:,}",
                sum(run["api_calls"].values()),
            ]
        )
    header = [
        "N signals",
        "S strategies",
        "wall s",
        "transitions",
        "Lambda calls",
        "Lambda ms",
        "SQS calls (target)",
        "DynamoDB items / write calls",
        "largest payload B",
        "AWS API calls",
    ]
    sections["cycle-scale"] = _table(header, rows)
    measured = [r for r in results["cycle_scale"]["runs"] if "skipped" not in r]
    biggest = max(measured, key=lambda r: (r["signals"], r["strategies"]))
    sections["api-calls"] = (
        f"AWS API calls of the largest cycle measured (N={biggest['signals']}, S={biggest['strategies']}), "
        f"and of an empty cycle:\n\n"
        + _table(
            ["service:action", f"N={biggest['signals']}, S={biggest['strategies']}", "empty cycle"],
            [
                [f"`{k}`", biggest["api_calls"].get(k, 0), results["cycles"]["empty"]["api_calls"].get(k, 0)]
                for k in sorted(set(biggest["api_calls"]) | set(results["cycles"]["empty"]["api_calls"]))
            ],
        )
        + "\n\nLambda by function (largest cycle):\n\n"
        + _table(
            ["function", "invocations", "total ms", "slowest ms"],
            [[f, v["invocations"], v["total_ms"], v["max_ms"]] for f, v in biggest["lambda_by_function"].items()],
        )
        + f"\n\nEmpty cycle states: {' → '.join(results['cycles']['empty']['states_entered'] or [])}."
    )
    planner = results["planner"]
    sections["planner"] = _table(
        ["strategies", "active", "entering", "plan_entries median ms", "slowest ms", "with size_entries ms"],
        [
            [
                planner["strategies"],
                planner["active"],
                planner["entering"],
                planner["plan_entries_median_ms"],
                planner["plan_entries_max_ms"],
                planner["with_size_entries_median_ms"],
            ]
        ],
    )
    latency = results["stop_loss"]
    sections["latency"] = (
        _table(
            ["hop (emulated stack)", "measured ms", "Lambda handler", "handler ms"],
            [[h["hop"], h["ms"], h.get("lambda", ""), h.get("handler_ms", "")] for h in latency["hops"]]
            + [["**total: SQS send → order on the paper exchange**", f"**{latency['total_ms']}**", "", ""]],
        )
        + "\n\nExpected on AWS:\n\n"
        + _table(
            ["hop", "expected", "source"], [[h["hop"], h["expected"], h["source"]] for h in latency["aws_expected"]]
        )
    )
    profile = Profile.from_json(results["cost_profile"])
    sections["cost"] = markdown_table(profile, ["15m", "1h", "4h", "8h", "1d"], [3, 20])
    breakdown = []
    for timeframe, strategies in (("8h", 3), ("1h", 5)):
        workload = Workload(Timeframe.parse(timeframe), strategies, Decimal(2), True)
        breakdown.append(render_table(workload, estimate(profile, workload), estimate_seed(profile, workload)))
    sections["cost-breakdown"] = "```text\n" + "\n\n".join(breakdown) + "\n```"
    sections["targets"] = _table(["target", "measured", "verdict"], results["targets"])
    sections["run"] = (
        f"Measured {results['measured_at']} at commit `{results['commit']}` on {results['machine']};"
        f" `make bench` took {results['bench_seconds']} s."
    )
    return sections


def update_doc(sections: Mapping[str, str]) -> None:
    """Replace each ``<!-- bench:NAME -->`` … ``<!-- /bench -->`` block of docs/performance.md."""
    text = DOC.read_text(encoding="utf-8")
    for name, body in sections.items():
        start = f"<!-- bench:{name} -->"
        if start not in text:
            raise RuntimeError(f"{DOC}: no {start} marker")
        head, rest = text.split(start, 1)
        _old, tail = rest.split("<!-- /bench -->", 1)
        text = f"{head}{start}\n{body}\n<!-- /bench -->{tail}"
    DOC.write_text(text, encoding="utf-8")


def commit_id() -> str:
    """Return the measured commit: ``git rev-parse --short HEAD``, plus ``+dirty`` when the tree differs.

    The files this run writes do not count, so that measuring a commit twice still names it.
    """
    written = [RESULTS, PROFILE, DOC, ROOT / "docs" / "reliability.md"]
    excluded = [f":(exclude){path.relative_to(ROOT)}" for path in written]
    try:
        head = _git("rev-parse", "--short", "HEAD")
        changes = _git("status", "--porcelain", "--", ".", *excluded)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + ("+dirty" if changes else "")


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603, S607
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, then write the results, the cost profile and the document's tables."""
    import platform

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test; files are not written)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "commit": commit_id(),
    }
    progress("cold starts")
    results["cold_start"] = cold_starts()
    progress("markets cache")
    results["markets_cache"] = markets_cache()
    progress("planner")
    results["planner"] = planner_time()
    progress("cycles on the emulated stack")
    results["cycle_scale"], results["cycles"] = cycle_scale(args.quick)
    progress("stop-loss latency")
    results["stop_loss"] = stop_loss_latency()
    results["cost_profile"] = cost_profile(results["cold_start"], results["cycles"], results["markets_cache"])
    results["targets"] = targets(results)
    results["bench_seconds"] = round(time.monotonic() - STARTED, 1)
    if args.quick:
        progress("quick run: nothing written")
        print(json.dumps(results["targets"], indent=1, default=str))
        return 0
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    PROFILE.write_text(json.dumps(results["cost_profile"], indent=1) + "\n", encoding="utf-8")
    update_doc(render(results))
    progress(f"wrote {RESULTS.relative_to(ROOT)}, {PROFILE.relative_to(ROOT)}, {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
