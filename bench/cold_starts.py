"""Cold starts: every handler, ccxt and the seed's start-up, each in a fresh interpreter."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.layer_size import layer_size
from bench.settings import HANDLERS, REPETITIONS, ROOT, progress

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
    # A top-level marker that is false here (winloop: Windows only) is a distribution pip does not install.
    pending = [r for r in map(Requirement, requirements) if r.marker is None or r.marker.evaluate()]
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
    """Return the requirement lines of a requirements file, as `uv export` writes it: without options or hashes."""
    # A requirement continues over lines ending in a backslash, each of its --hash options on its own line.
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (line.split("#", 1)[0].split(" --", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-")]


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
    from crypto_bot_tools.local.template import load_template

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
        # False for a layer pruned to the handlers' imports: ccxt/__init__.py is kept, the exchanges it imports not.
        self.whole_ccxt = True

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
        tree.whole_ccxt = _whole_ccxt(built_layer)
        tree.notes = {
            "built_at": datetime.fromtimestamp(built_layer.stat().st_mtime, UTC).isoformat(timespec="seconds"),
            "layer_py": sum(1 for p in files if p.suffix == ".py"),
            "layer_pyc": sum(1 for p in files if p.suffix == ".pyc"),
            "layer_pyc_bytes": sum(p.stat().st_size for p in files if p.suffix == ".pyc"),
            "swapped_for_this_machine": swapped,
        }
        return tree


def _whole_ccxt(python_dir: Path) -> bool:
    """Say whether ``import ccxt`` can run from ``python_dir``: every module ccxt/__init__.py imports is there."""
    init = python_dir / "ccxt" / "__init__.py"
    if not init.is_file():
        return False
    modules = re.findall(r"^from (ccxt(?:\.\w+)+) import", init.read_text(encoding="utf-8"), re.MULTILINE)
    return all(
        (python_dir / Path(*m.split("."))).with_suffix(".py").is_file() or (python_dir / Path(*m.split("."))).is_dir()
        for m in modules
    )


def _child_env(tree: LambdaTree, handler: str | None, **overrides: str) -> dict[str, str]:
    """The environment of a Lambda container: the template's Globals plus what the probes need, offline."""
    from crypto_bot_tools.local.template import load_template

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
            "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's documented fake)
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
        "CcxtExchange('binance', api_key='bench', secret='bench')"  # pragma: allowlist secret (a placeholder)
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
    if tree.whole_ccxt:
        probes["import ccxt"] = ("import ccxt", base)
        probes["seed_trader"] = ("import ccxt; ccxt.binance()", base)
    # The seed's webhook Lambda had no layer: the runtime's boto3 only.
    probes["seed_webhook"] = ("import boto3; boto3.client('dynamodb')", {**base, "PYTHONPATH": str(tree.runtime)})
    return probes


def _measure(condition: str, tree: LambdaTree, reference: tuple[str, float] | None = None) -> dict[str, Any]:
    """Run every probe ``REPETITIONS`` times in fresh processes against ``tree``.

    The ratios divide ``import ccxt`` by each probe; a tree that cannot import the whole of ccxt (a pruned layer)
    takes ``reference``, the condition and median of another tree's ``import ccxt``.
    """
    probes = _probes(tree)
    # One run of the heaviest probes first, so that no probe pays for filling the OS file cache.
    for label in ("place_order+live_exchange" + TRACER_ON, "seed_trader"):
        if label in probes:
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
    if "import ccxt" in results:
        ccxt_from, ccxt_ms = condition, results["import ccxt"]["median_ms"]
    elif reference is not None:
        ccxt_from, ccxt_ms = reference
    else:
        raise RuntimeError(f"cold start, {condition}: ccxt cannot be imported whole, and no reference was given")
    ratios = {label: round(ccxt_ms / p["median_ms"], 2) for label, p in results.items() if label != "import ccxt"}
    return {
        "opt_python_py_files": _count(tree.opt, ".py"),
        "opt_python_pyc_files": _count(tree.opt, ".pyc"),
        **tree.notes,
        "ccxt_reference": ccxt_from,
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
            compiled = ("precompiled", conditions["precompiled"]["probes"]["import ccxt"]["median_ms"])
            conditions["built layer"] = _measure("built layer", built, reference=compiled)
        else:
            conditions["built layer"] = {"skipped": "no .aws-sam/build: run `make build` first"}
            progress("cold start, built layer: skipped (no .aws-sam/build)")
    return {
        "repetitions": REPETITIONS,
        "layer_requirements": _requirements(LAYER_REQUIREMENTS),
        "layer_distributions": {name: dist.version for name, dist in sorted(layer.items())},
        "conditions": conditions,
        "authorizer call": authorizer,
        "built_layer_size": layer_size(),
    }
