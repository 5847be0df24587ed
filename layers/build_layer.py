"""Prune the built Lambda layer to what the handlers import, and measure it.

``sam build`` installs everything ``layers/core/requirements.txt`` pins: all of ccxt (every exchange
three times over: sync, ``async_support`` and ``pro``), ccxt's asyncio stack (aiohttp, uvloop, ...)
that only its async and websocket clients use, and botocore, which the Lambda runtime already
provides. ``make build`` runs this script on ``.aws-sam/build/CoreLayer`` afterwards; it deletes
every file that no handler can import, so that the layer holds what runs and nothing else. (A step
after ``sam build`` rather than ``BuildMethod: makefile``: SAM's python builder still picks the arm64
wheels, checks the hashes and caches the install; this script only deletes.)

What is kept comes from an import walk, not from a list of names:

* The walk starts at every ``functions/*/app.py``, every module of ``crypto_bot``, and the few
  modules imported by a computed name, which reading the source cannot find (:data:`DYNAMIC_ROOTS`
  and the exchange's own ``ccxt.<id>`` module).
* It follows the ``import`` and ``from … import`` statements of every module it reaches (in a
  ``try`` or not), and ``importlib.import_module("literal")`` calls. Imports inside functions are
  followed in the handlers, crypto_bot and ccxt, not in other packages (:data:`LAZY_FOLLOWED`).
* A distribution (as its ``*.dist-info/RECORD`` lists it) is kept whole when the walk reaches
  any of its top-level modules, and so is every distribution it requires (``Requires-Dist``),
  since a package may import in ways the walk cannot see: requests imports idna with
  ``__import__``, cryptography's compiled bindings import ``_cffi_backend``. Every other
  distribution is deleted.
* ccxt is the exception, kept module by module: ``ccxt/base``, the chosen exchange's module and
  what it imports (``ccxt/abstract/<id>.py``, a parent exchange such as ``binance`` for
  ``binanceus``, the ``static_dependencies`` that ``ccxt/base/exchange.py`` imports), and not its
  requirements, whose asyncio stack (aiohttp, uvloop, ...) serves only the clients left out. The
  ccxt adapter (``crypto_bot.adapters.ccxt.exchange.load_exchange_class``) registers a bare
  ``ccxt`` package object, so ``ccxt/__init__.py``, which imports every exchange, never runs; the
  walk does not follow it either. The file itself stays, so that ccxt is a regular package as in
  the development environment.
* boto3 and botocore are the Lambda runtime's (:data:`RUNTIME_PROVIDED`): the walk stops there,
  and the copy that aws-xray-sdk pulls into the layer is deleted, so it cannot shadow the
  runtime's.

``__pycache__`` folders go too: the build then compiles the pruned tree (``COMPILE_PYC``).

The exchange is the deploy's ``ExchangeName``: ``--exchange`` (``make build EXCHANGE=...``), else
the ``parameter_overrides`` of samconfig.toml's ``--config-env`` section, else template.yaml's
default. A stack deployed with another exchange fails at its first exchange call, naming the
exchange and the ``make build EXCHANGE=...`` that fixes it.

``python layers/build_layer.py prune .aws-sam/build/CoreLayer [--exchange ID] [--config-env ENV]``
prunes a built layer; ``python layers/build_layer.py measure DIR`` prints its unzipped size.
tests/unit/test_built_layer.py builds the same selection from the installed distributions
(:func:`assemble`) and imports every handler from it alone.
"""

# No `from __future__ import annotations`: with real annotations the dataclasses below also work when this file is
# loaded by path (importlib.util.spec_from_file_location) without a sys.modules entry, as a benchmark may load it.
import argparse
import ast
import csv
import re
import shlex
import shutil
import sys
import sysconfig
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self, TypedDict

import yaml
from packaging.requirements import Requirement

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = "crypto_bot"
PACKAGE_DIR: Final = ROOT / "layers" / "core" / PACKAGE
REQUIREMENTS: Final = ROOT / "layers" / "core" / "requirements.txt"
FUNCTIONS: Final = ROOT / "functions"

RUNTIME_PROVIDED: Final = frozenset({"boto3", "botocore", "s3transfer"})
"""The Lambda Python runtime's SDK (``/var/runtime``), as modules and distributions: never walked, never shipped."""

DYNAMIC_ROOTS: Final = (
    # load_exchange_class imports these by name (ccxt.<id> is added per exchange).
    "ccxt.base.exchange",
    "ccxt.base.errors",
    # Powertools' Tracer imports the X-Ray SDK through a LazyLoader (aws_lambda_powertools/tracing/tracer.py)
    # when POWERTOOLS_TRACE_DISABLED is "false".
    "aws_xray_sdk.core",
)
"""Modules imported by a computed name, which the walk cannot read in the source."""

OPAQUE_PACKAGES: Final = frozenset({"ccxt"})
"""Packages whose ``__init__.py`` never runs (the ccxt adapter registers a bare package instead)."""

LAZY_FOLLOWED: Final = frozenset({PACKAGE, "ccxt"})
"""Packages whose imports inside functions are followed too, as are the handlers'.

The handlers call into every part of crypto_bot, and any method of ``ccxt.base.exchange`` may run for
a venue. Elsewhere only module-level imports are followed: a third-party import inside a function
is an optional feature (Powertools' ``aiohttp_trace_config``, its pydantic parser), and the ones the
handlers do use import by a computed name (:data:`DYNAMIC_ROOTS`).
"""

MODULE_GRAINED: Final = frozenset({"ccxt"})
"""Distributions kept module by module rather than whole."""

TARGET: Final = {
    # Where the layer runs: Lambda's python3.12 on arm64 (template.yaml's CoreLayer BuildArchitecture).
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
}
"""The environment markers of ``Requires-Dist`` are evaluated for."""

# ccxt/ subpackages that look like exchange ids but are not exchanges (as in the ccxt adapter).
_NOT_EXCHANGES: Final = frozenset(
    {"abstract", "async_support", "base", "prediction", "pro", "protobuf", "static_dependencies", "test"}
)
_EXCHANGE_ID: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class LayerSize(TypedDict):
    """A layer's unzipped size: what Lambda's 250 MB limit counts."""

    bytes: int
    files: int


def measure(layer_dir: Path | str) -> LayerSize:
    """Return the unzipped size in bytes and the number of files under ``layer_dir``."""
    files = [path for path in Path(layer_dir).rglob("*") if path.is_file() and not path.is_symlink()]
    return {"bytes": sum(path.stat().st_size for path in files), "files": len(files)}


# --------------------------------------------------------------------------- the exchange


class _CloudFormationLoader(yaml.SafeLoader):
    """Read template.yaml, whose short-form intrinsics (``!Ref``, ``!Sub``) plain YAML rejects."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # `!Ref Table` becomes {"Ref": "Table"}, `!Sub ...` {"Fn::Sub": ...}, as in the template's JSON form.
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    if isinstance(node, yaml.MappingNode):
        return {name: loader.construct_mapping(node, deep=True)}
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """Read a SAM template, its short-form intrinsic functions as their long form."""
    template: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # noqa: S506
    return template


def _overrides(value: str | Sequence[str] | None) -> dict[str, str]:
    # samconfig.toml takes parameter_overrides as a list of "Key=Value" or as one string of them.
    items = shlex.split(value) if isinstance(value, str) else [str(item) for item in value or ()]
    return dict(item.split("=", 1) for item in items if "=" in item)


def deploy_exchange(config_env: str = "default", root: Path = ROOT) -> tuple[str, str]:
    """Return the ``ExchangeName`` a ``sam deploy --config-env`` would deploy, and where it was read."""
    samconfig = root / "samconfig.toml"
    if samconfig.exists():
        section = tomllib.loads(samconfig.read_text(encoding="utf-8")).get(config_env, {})
        overrides = _overrides(section.get("deploy", {}).get("parameters", {}).get("parameter_overrides"))
        if "ExchangeName" in overrides:
            return overrides["ExchangeName"], f"samconfig.toml [{config_env}.deploy.parameters]"
    default = load_template(root / "template.yaml")["Parameters"]["ExchangeName"]["Default"]
    return str(default), "template.yaml's ExchangeName default"


# --------------------------------------------------------------------------- where modules live


@dataclass(frozen=True)
class Distribution:
    """One installed distribution: its name, the folder it is installed in, and its files (from RECORD)."""

    name: str
    root: Path
    files: frozenset[Path]

    @property
    def top_levels(self) -> set[str]:
        """Return the importable top-level names among its files (``attr`` and ``attrs`` for attrs)."""
        names = set()
        for path in self.files:
            first = path.relative_to(self.root).parts[0]
            if first.endswith((".dist-info", ".data")) or first == "__pycache__" or first.endswith(".pth"):
                continue
            names.add(first.split(".")[0] if (self.root / first).is_file() else first)
        return names

    def requirements(self) -> set[str]:
        """Return the distributions it requires on the layer's platform (``Requires-Dist``, extras left out)."""
        metadata = next((f for f in self.files if f.name == "METADATA" and f.parent.name.endswith(".dist-info")), None)
        if metadata is None:
            return set()
        names = set()
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
            if requirement.marker is None or requirement.marker.evaluate({**TARGET, "extra": ""}):
                names.add(_normalized(requirement.name))
        return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions(site: Path) -> Iterator[Distribution]:
    for info in sorted(site.glob("*.dist-info")):
        record = info / "RECORD"
        if not record.exists():
            continue
        with record.open(encoding="utf-8", newline="") as lines:
            paths = {(site / row[0]).resolve() for row in csv.reader(lines) if row}
        inside = frozenset(path for path in paths if path.is_relative_to(site.resolve()))
        yield Distribution(_normalized(info.name.split("-")[0]), site.resolve(), inside)


@dataclass
class Site:
    """The modules a layer can import: each top-level name, where it lives and which distribution owns it."""

    tops: dict[str, Path] = field(default_factory=dict)
    owners: dict[str, Distribution | None] = field(default_factory=dict)
    distributions: list[Distribution] = field(default_factory=list)

    def add(self, distribution: Distribution) -> None:
        """Make a distribution's top-level modules importable."""
        self.distributions.append(distribution)
        for name in distribution.top_levels:
            self.tops[name] = _top_path(distribution.root, name)
            self.owners[name] = distribution

    @classmethod
    def of_layer(cls, python_dir: Path) -> Self:
        """Read a built layer's ``python/`` folder: its distributions, and the packages sam copied in (crypto_bot)."""
        site = cls()
        for distribution in _distributions(python_dir):
            site.add(distribution)
        for entry in sorted(python_dir.iterdir()):
            name = entry.name.split(".")[0] if entry.is_file() else entry.name
            package = entry.is_dir() and (entry / "__init__.py").exists()
            if name not in site.tops and (package or entry.suffix == ".py"):
                site.tops[name], site.owners[name] = entry.resolve(), None
        return site

    @classmethod
    def of_environment(cls, site_packages: Path, requirements: Path = REQUIREMENTS) -> Self:
        """Read the layer's distributions (those ``requirements`` pins) as installed here, and crypto_bot's source."""
        pinned = {
            _normalized(line.split("==")[0])
            for line in requirements.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith((" ", "#"))
        }
        site = cls()
        for distribution in _distributions(site_packages):
            if distribution.name in pinned:
                site.add(distribution)
        site.tops[PACKAGE], site.owners[PACKAGE] = PACKAGE_DIR.resolve(), None
        return site

    def locate(self, module: str) -> Path | None:
        """Return the file or folder that ``import module`` would load, or None when it is not here."""
        parts = module.split(".")
        path = self.tops.get(parts[0])
        if path is None:
            return None
        for part in parts[1:]:
            if not path.is_dir():
                return None
            found = _top_path(path, part)
            if not found.exists():
                return None
            path = found
        return path


def _top_path(folder: Path, name: str) -> Path:
    """Return where ``name`` lives in ``folder``: a package folder, a ``.py`` file or an extension module."""
    if (folder / name).is_dir():
        return folder / name
    if (folder / f"{name}.py").exists():
        return folder / f"{name}.py"
    extensions = sorted(folder.glob(f"{name}.*.so")) + sorted(folder.glob(f"{name}.so"))
    return extensions[0] if extensions else folder / f"{name}.py"


def _source(path: Path) -> Path | None:
    """Return the Python source that runs when ``path`` is imported (None: an extension or a namespace package)."""
    if path.is_dir():
        init = path / "__init__.py"
        return init if init.exists() else None
    return path if path.suffix == ".py" else None


# --------------------------------------------------------------------------- the walk


def _statements(tree: ast.AST, lazy: bool) -> Iterator[ast.AST]:
    """Yield the nodes of a module; without ``lazy``, none inside a function (they run only when it is called)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if lazy or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def _imports(source: Path, module: str, lazy: bool) -> Iterator[str]:
    """Yield every module a source file imports, relative imports made absolute; with ``lazy``, in functions too."""
    tree = ast.parse(source.read_bytes(), filename=str(source))
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    for node in _statements(tree, lazy):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from package import name` imports the submodule package.name when there is one.
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield node.args[0].value


@dataclass
class Walk:
    """What an import walk reached: module name → the file or folder it loads; and what it could not find."""

    reached: dict[str, Path] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)


def walk(site: Site, roots: Iterable[str], files: Iterable[Path] = ()) -> Walk:
    """Follow the imports of ``roots`` (module names) and of ``files`` (handler sources) through ``site``."""
    result = Walk()
    pending: list[tuple[str, Path, bool]] = [("__main__", path, True) for path in files]

    def reach(name: str) -> None:
        parts = name.split(".")
        if parts[0] in RUNTIME_PROVIDED or not parts[0]:
            return
        if parts[0] not in site.tops:
            result.absent.add(parts[0])
            return
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix in result.reached:
                continue
            path = site.locate(prefix)
            if path is None:
                return  # `from a import name` where name is not a submodule
            result.reached[prefix] = path
            source = _source(path)
            if source is not None and prefix not in OPAQUE_PACKAGES:
                pending.append((prefix, source, parts[0] in LAZY_FOLLOWED))

    for root in roots:
        reach(root)
    while pending:
        module, source, lazy = pending.pop()
        for name in _imports(source, module, lazy):
            reach(name)
    return result


# --------------------------------------------------------------------------- the selection


@dataclass(frozen=True)
class Selection:
    """The files a layer keeps, each with the folder it is relative to, and what the walk found."""

    files: dict[Path, Path]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    absent: tuple[str, ...]
    exchanges: tuple[str, ...]


def _uncached(paths: Iterable[Path]) -> Iterator[Path]:
    return (path for path in paths if "__pycache__" not in path.parts and path.is_file())


def select(site: Site, exchanges: Sequence[str], handlers: Sequence[Path] | None = None) -> Selection:
    """Choose the files the handlers can import with ``exchanges`` as their ccxt venues."""
    handlers = sorted(FUNCTIONS.glob("*/app.py")) if handlers is None else handlers
    ccxt_dir = site.tops.get("ccxt")
    for exchange in exchanges:
        if not _EXCHANGE_ID.fullmatch(exchange) or exchange in _NOT_EXCHANGES:
            raise ValueError(f"{exchange!r} is not a ccxt exchange id (expected a lowercase id such as 'binance')")
        if ccxt_dir is None or not (ccxt_dir / f"{exchange}.py").exists():
            raise ValueError(f"ccxt has no exchange {exchange!r}")
    package_dir = site.tops[PACKAGE]
    package_modules = [
        ".".join((PACKAGE, *path.relative_to(package_dir).with_suffix("").parts)).removesuffix(".__init__")
        for path in sorted(package_dir.rglob("*.py"))
    ]
    roots = [*package_modules, *DYNAMIC_ROOTS, *(f"ccxt.{exchange}" for exchange in exchanges)]
    found = walk(site, roots, handlers)

    files: dict[Path, Path] = {}
    reached = {name.split(".")[0] for name in found.reached}
    for top in sorted(reached):
        if site.owners[top] is None:
            path = site.tops[top]
            files.update((f, path.parent) for f in _uncached(path.rglob("*") if path.is_dir() else [path]))
    kept = _required(site, {owner.name for top in reached if (owner := site.owners[top]) is not None})
    for owner in site.distributions:
        if owner.name not in kept:
            continue
        if owner.name not in MODULE_GRAINED:
            files.update((f, owner.root) for f in _uncached(owner.files))
            continue
        tops = owner.top_levels
        # Module by module: every module reached, the __init__.py of each folder above it, and the dist-info.
        modules = {
            source
            for name, path in found.reached.items()
            if name.split(".")[0] in tops and (source := _source(path) or (path if path.is_file() else None))
        }
        for source in modules:
            files[source] = owner.root
            for folder in source.parents:
                if folder == owner.root:
                    break
                if (folder / "__init__.py").exists():
                    files[folder / "__init__.py"] = owner.root
        metadata = (f for f in owner.files if f.relative_to(owner.root).parts[0].endswith(".dist-info"))
        files.update((f, owner.root) for f in _uncached(metadata))
    every = {distribution.name for distribution in site.distributions}
    return Selection(
        files=files,
        kept=tuple(sorted(kept)),
        dropped=tuple(sorted(every - kept)),
        absent=tuple(sorted(found.absent - set(sys.stdlib_module_names))),
        exchanges=tuple(exchanges),
    )


def _required(site: Site, names: set[str]) -> set[str]:
    """Add what the distributions require, transitively, except ccxt's (the walk reads which of its modules run)."""
    by_name = {distribution.name: distribution for distribution in site.distributions}
    kept, pending = set(), sorted(names)
    while pending:
        name = pending.pop()
        if name in kept or name not in by_name or name in RUNTIME_PROVIDED:
            continue
        kept.add(name)
        if name not in MODULE_GRAINED:
            pending.extend(sorted(by_name[name].requirements() - kept))
    return kept


def prune(layer_dir: Path, exchanges: Sequence[str]) -> Selection:
    """Delete from a built layer (``layer_dir/python``) every file the selection does not keep."""
    python_dir = layer_dir / "python"
    selection = select(Site.of_layer(python_dir), exchanges)
    keep = {path.resolve() for path in selection.files}
    for path in sorted(python_dir.rglob("*"), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.resolve() not in keep:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return selection


def assemble(destination: Path, exchanges: Sequence[str], site_packages: Path | None = None) -> Selection:
    """Copy the layer's selection from the installed distributions into ``destination`` (a layer's ``python/``)."""
    packages = site_packages or Path(sysconfig.get_paths()["purelib"])
    selection = select(Site.of_environment(packages), exchanges)
    for source, root in selection.files.items():
        target = destination / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return selection


# --------------------------------------------------------------------------- command line


def _report(selection: Selection, before: LayerSize, after: LayerSize, source: str) -> str:
    return "\n".join(
        [
            f"layer: exchange {', '.join(selection.exchanges)} ({source})",
            f"layer: kept {', '.join(selection.kept)}",
            f"layer: deleted {', '.join(selection.dropped)} (no handler imports them; botocore is the runtime's)",
            f"layer: imported somewhere but not installed (optional, type-checking or newer-Python imports): "
            f"{', '.join(selection.absent) or 'none'}",
            f"layer: {_size(before)} -> {_size(after)}",
        ]
    )


def _size(size: LayerSize) -> str:
    return f"{size['bytes'] / 1e6:.1f} MB unzipped in {size['files']:,} files"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``prune`` or ``measure`` on a built layer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prune_command = commands.add_parser("prune", help="delete what no handler imports from a built layer")
    prune_command.add_argument("layer_dir", type=Path, help="the built layer, e.g. .aws-sam/build/CoreLayer")
    prune_command.add_argument("--exchange", action="append", default=[], help="ccxt exchange id (repeatable)")
    prune_command.add_argument("--config-env", default="default", help="samconfig.toml section to read")
    measure_command = commands.add_parser("measure", help="print a built layer's unzipped size and file count")
    measure_command.add_argument("layer_dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "measure":
        print(f"{args.layer_dir}: {_size(measure(args.layer_dir))}")
        return 0
    exchanges = [e for value in args.exchange for e in re.split(r"[\s,]+", value) if e]
    source = "EXCHANGE"
    if not exchanges:
        exchange, source = deploy_exchange(args.config_env)
        exchanges = [exchange]
    before = measure(args.layer_dir)
    try:
        selection = prune(args.layer_dir, exchanges)
    except ValueError as e:
        print(f"build_layer.py: {e}", file=sys.stderr)
        return 2
    print(_report(selection, before, measure(args.layer_dir), source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
