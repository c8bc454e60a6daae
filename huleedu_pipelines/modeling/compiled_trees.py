"""An optional faster scorer: each bundle's LightGBM boosters compiled to native code by
lleaves (LLVM), used instead of the ONNX graph only where a parity check passes.

lleaves is the `compiled` extra (`pip install 'huleedu-pipelines[compiled]'`); it needs
llvmlite < 0.45 (lleaves 1.3 uses LLVM's legacy pass manager, which later llvmlite
releases removed). Compiling costs seconds to a minute per booster, so compiled objects
are cached on disk by the sha256 of the booster text: a model is compiled once per machine.

Compiled trees compare thresholds in float64, as native LightGBM does, so they reproduce
native `booster.predict` to rounding; ONNX compares in float32, so the two differ on the few
rows where a feature sits between a threshold and its float32 rounding. The parity check is
therefore: compiled vs native within `NATIVE_TOLERANCE` on every row, and the decoded labels
equal to the ONNX graph's on at least `LABEL_AGREEMENT` of the rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

NATIVE_TOLERANCE = 1e-9
LABEL_AGREEMENT = 0.999


class CompiledTreesUnavailable(RuntimeError):
    """lleaves (or a compatible llvmlite) is not installed."""


@dataclass(frozen=True)
class Parity:
    """Compiled scoring against native LightGBM and the ONNX graph on the same rows."""

    rows: int
    max_abs_vs_native: float
    max_abs_vs_onnx: float
    label_agreement_vs_onnx: float

    @property
    def passed(self) -> bool:
        return (
            self.max_abs_vs_native <= NATIVE_TOLERANCE
            and self.label_agreement_vs_onnx >= LABEL_AGREEMENT
        )


def available() -> bool:
    try:
        _lleaves()
    except CompiledTreesUnavailable:
        return False
    return True


def _lleaves() -> Any:
    try:
        import lleaves
        from llvmlite import binding
    except ImportError as error:
        raise CompiledTreesUnavailable(
            "compiled scoring needs lleaves: pip install 'huleedu-pipelines[compiled]' "
            "(or unset HULEEDU_COMPILED_SCORER)"
        ) from error
    if not hasattr(binding, "PassManagerBuilder"):
        raise CompiledTreesUnavailable(
            "lleaves 1.3 needs llvmlite < 0.45 (the installed llvmlite removed the legacy "
            "pass manager): pip install 'llvmlite<0.45'"
        )
    return lleaves


class CompiledBoosters:
    """The boosters of one bundle as compiled functions: `raw_outputs(X)` returns what
    `ModelBundle.native_raw_outputs` returns (per booster, `booster.predict`)."""

    def __init__(self, native_models: list[str], cache_dir: Path) -> None:
        lleaves = _lleaves()
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.models = []
        for text in native_models:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            model_file = cache_dir / f"{digest}.txt"
            if not model_file.exists():
                model_file.write_text(text, encoding="utf-8")
            model = lleaves.Model(model_file=str(model_file))
            model.compile(cache=str(cache_dir / f"{digest}.o"))
            self.models.append(model)

    def raw_outputs(self, features: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        data = np.ascontiguousarray(features, dtype=np.float64)
        return [np.asarray(m.predict(data, n_jobs=1), dtype=np.float64) for m in self.models]


def compile_bundle(bundle: Any, cache_dir: Path) -> CompiledBoosters:
    """Compile `bundle`'s boosters (or load them from `cache_dir`)."""
    return CompiledBoosters(bundle.native_models, cache_dir)


def check_parity(bundle: Any, compiled: CompiledBoosters, X: ArrayLike) -> Parity:
    """Compare the bundle decoded from compiled trees with native LightGBM and ONNX on `X`."""
    features = bundle.booster_input(X)
    mine = compiled.raw_outputs(features)
    native = bundle.native_raw_outputs(X)
    onnx = bundle.onnx_raw_outputs(X)
    vs_native = max(
        float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(mine, native, strict=True)
    )
    decoded, by_onnx = bundle.decode_raw(X, mine), bundle.decode_raw(X, onnx)
    vs_onnx = float(np.max(np.abs(decoded.score - by_onnx.score), initial=0.0))
    agreement = float(np.mean(decoded.labels == by_onnx.labels)) if len(decoded.labels) else 1.0
    return Parity(len(decoded.labels), vs_native, vs_onnx, agreement)


def use_compiled_trees(bundles: dict[str, Any], X: ArrayLike, cache_dir: Path) -> dict[str, Parity]:
    """Compile each bundle of `bundles` (by model name) and let it score through the compiled
    trees when its parity check on `X` passes; a bundle that fails keeps ONNX. Returns each
    model's parity."""
    checked = {}
    for name, bundle in bundles.items():
        if bundle.compiled is not None:
            continue
        compiled = compile_bundle(bundle, cache_dir)
        checked[name] = parity = check_parity(bundle, compiled, X)
        if parity.passed:
            bundle.compiled = compiled
    return checked
