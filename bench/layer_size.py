"""The built layer's unzipped size and file count: what Lambda's 250 MB limit counts, beside the cold starts."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.settings import ROOT

BUILT_LAYER: Final = ROOT / ".aws-sam" / "build" / "CoreLayer"
BUILD_LAYER_SCRIPT: Final = ROOT / "layers" / "build_layer.py"
# Lambda's quota: a function and all its layers, unzipped, at most 250 MB (262,144,000 bytes).
LAMBDA_UNZIPPED_LIMIT: Final = 262_144_000


def _measure() -> Callable[[Path], Mapping[str, int]]:
    """Return the measure of layers/build_layer.py: the count `make build` prints after pruning the layer."""
    spec = importlib.util.spec_from_file_location("build_layer", BUILD_LAYER_SCRIPT)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {BUILD_LAYER_SCRIPT}")
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measure: Callable[[Path], Mapping[str, int]] = module.measure
    return measure


def layer_size() -> dict[str, Any]:
    """Measure `make build`'s CoreLayer as Lambda unpacks it, or say why it was not measured."""
    if not BUILT_LAYER.is_dir():
        return {"skipped": "no .aws-sam/build: run `make build` first"}
    size = _measure()(BUILT_LAYER)
    return {
        "layer_dir": str(BUILT_LAYER.relative_to(ROOT)),
        "built_at": datetime.fromtimestamp(BUILT_LAYER.stat().st_mtime, UTC).isoformat(timespec="seconds"),
        "bytes": int(size["bytes"]),
        "files": int(size["files"]),
        "limit_bytes": LAMBDA_UNZIPPED_LIMIT,
        "measured_by": "layers/build_layer.py measure()",
    }
