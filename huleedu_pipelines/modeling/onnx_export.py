"""LightGBM booster -> ONNX bytes, an onnxruntime runner, and native/ONNX parity figures.

Only bare boosters are exported (``onnxmltools.convert_lightgbm``, ``zipmap=False``);
ordinal decoding and calibration run in numpy on the runner's output (a calibrated model
through skl2onnx is silently wrong).

Measured with onnxmltools 1.16 / onnx 1.23 / onnxruntime 1.32 / lightgbm 4.7:
``target_opset`` must be an int <= 15 (the ``{"": 15, "ai.onnx.ml": ...}`` dict form raises
a TypeError inside the converter); the converter stamps the lowest opsets the graph needs
(ai.onnx 8–9, ai.onnx.ml 1). Missing values: NaN inputs follow LightGBM's default
direction for splits trained with NaN (missing_type=NaN) and are treated as 0 for splits
trained without (missing_type=None), as native LightGBM does. Thresholds become float32,
so a value lying between a float64 threshold and its float32 rounding can take the other
branch (a few rows per 100k); regression sums trees in float32 (~1e-6
relative).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import lightgbm as lgb

FloatArray = NDArray[np.float64]

OBJECTIVE_KINDS = ("binary", "multiclass", "regression")
INPUT_NAME = "features"
MAX_TARGET_OPSET = 15
REGRESSION_SPLIT = 100
# Parity thresholds, as shares of rows (gates onnx_parity_over_tolerance / _flipped).
PROB_TOLERANCE = 1e-5
MAX_SHARE_OVER_TOLERANCE = 1e-4
MAX_SHARE_FLIPPED = 1e-3


class OnnxExportError(RuntimeError):
    """The booster cannot be exported as asked."""


class ArtifactIntegrityError(RuntimeError):
    """Model bytes do not match the sha256 recorded with them."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Objectives whose ONNX post-transform matches native predict(). onnxmltools also accepts
# "multiclassova" but gives it a softmax (native: independent sigmoids), so it is refused.
_KIND_BY_OBJECTIVE = {
    "binary": "binary",
    "multiclass": "multiclass",
    "regression": "regression",
    "regression_l1": "regression",
    "huber": "regression",
    "quantile": "regression",
}


def _booster_objective_kind(booster: lgb.Booster) -> str:
    """Kind of a booster's objective; identity-link objectives only (what parity covers)."""
    objective = str(booster.dump_model(num_iteration=1).get("objective", "")).split(" ")[0]
    try:
        return _KIND_BY_OBJECTIVE[objective]
    except KeyError:
        raise OnnxExportError(
            f"objective {objective!r} is not supported for export; use binary, multiclass "
            "(softmax) or an identity-link regression objective"
        ) from None


def booster_to_onnx(
    booster: lgb.Booster,
    n_features: int,
    objective_kind: str,
    *,
    target_opset: int = MAX_TARGET_OPSET,
    name: str = "lightgbm",
    regression_split: int | None = REGRESSION_SPLIT,
) -> bytes:
    """Serialised ONNX model with one float input ``features`` [None, n_features].

    Outputs: classifiers ``label`` [N] and ``probabilities`` [N, K] (K=2 for binary);
    regression ``variable`` [N, 1]. ``objective_kind`` and ``n_features`` are stored in
    the model's metadata so ``OnnxRunner`` knows which output is the raw quantity.
    Regression forests are exported in chunks of ``regression_split`` trees (onnxmltools'
    ``split``): one TreeEnsembleRegressor sums all trees in float32, and past ~300 trees
    about 0.04% of rows then drift more than 1e-5 from native; chunks halve the error.
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if objective_kind not in OBJECTIVE_KINDS:
        raise OnnxExportError(
            f"objective_kind must be one of {OBJECTIVE_KINDS}, got {objective_kind!r}"
        )
    if not 1 <= target_opset <= MAX_TARGET_OPSET:
        raise OnnxExportError(
            f"onnxmltools.convert_lightgbm supports ai.onnx opset <= {MAX_TARGET_OPSET}, "
            f"got {target_opset}"
        )
    actual_kind = _booster_objective_kind(booster)
    if actual_kind != objective_kind:
        raise OnnxExportError(
            f"booster was trained as {actual_kind}, not {objective_kind}; pass the booster's kind"
        )
    if booster.num_feature() != n_features:
        raise OnnxExportError(
            f"booster expects {booster.num_feature()} features, n_features says {n_features}"
        )
    # onnxmltools raises "Initial attributes are not consistant" when the forest fits in
    # one chunk, so split only forests larger than a chunk.
    split = None
    if (
        objective_kind == "regression"
        and regression_split
        and booster.num_trees() > regression_split
    ):
        split = int(regression_split)
    model = onnxmltools.convert_lightgbm(
        booster,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=target_opset,
        zipmap=False,
        split=split,
    )
    # The converter declares the classifier's ``label`` output as shape [1]; onnxruntime
    # then warns on every batch. It is one label per row.
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"
    for key, value in (("objective_kind", objective_kind), ("n_features", str(n_features))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


class OnnxRunner:
    """An onnxruntime session over exported booster bytes, returning native-equivalent outputs.

    ``raw(X)`` gives what ``booster.predict(X)`` gives: P(positive) for binary, the (n, K)
    probability matrix for multiclass, the value for regression (float64, from float32
    inference). With ``expected_sha256`` the bytes are checked before loading.
    """

    def __init__(
        self,
        model_bytes: bytes,
        *,
        intra_op_threads: int = 1,
        expected_sha256: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.sha256 = sha256_bytes(model_bytes)
        if expected_sha256 is not None and expected_sha256 != self.sha256:
            raise ArtifactIntegrityError(
                f"ONNX model sha256 is {self.sha256}, expected {expected_sha256}; "
                "the artifact was changed or truncated — re-download or re-export it"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "objective_kind" not in metadata:
            raise OnnxExportError(
                "model has no objective_kind metadata; export it with booster_to_onnx"
            )
        self.objective_kind: str = metadata["objective_kind"]
        self.n_features = int(metadata["n_features"])
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self._output = "variable" if self.objective_kind == "regression" else "probabilities"
        if self._output not in outputs:
            raise OnnxExportError(f"model outputs {outputs} lack {self._output!r}")

    def raw(self, X: ArrayLike) -> FloatArray:
        features = np.ascontiguousarray(X, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"X must be (n, {self.n_features}), got shape {features.shape}")
        (result,) = self.session.run([self._output], {self.input_name: features})
        result = np.asarray(result, dtype=np.float64)
        if self.objective_kind == "binary":
            return result[:, 1]
        if self.objective_kind == "regression":
            return result[:, 0]
        return result


def parity_report(
    native: ArrayLike,
    onnx: ArrayLike,
    prob_tol: float = PROB_TOLERANCE,
    *,
    kind: str | None = None,
    max_share_over_tol: float = MAX_SHARE_OVER_TOLERANCE,
    max_share_flipped: float = MAX_SHARE_FLIPPED,
    n_worst: int = 5,
) -> dict[str, Any]:
    """How far ONNX outputs are from native ones, row by row.

    ``kind`` defaults to ``multiclass`` for (n, K) inputs (a flip is a different argmax) and
    ``binary`` for 1-D inputs (a flip is a different side of 0.5); with ``regression`` no
    flips are counted and the tolerance is absolute on the value, so for an ordinal
    regression compare the decoded probabilities as well. ``passed`` applies the share
    thresholds above.
    """
    a = np.asarray(native, dtype=np.float64)
    b = np.asarray(onnx, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"native shape {a.shape} differs from ONNX shape {b.shape}")
    if a.size == 0:
        raise ValueError("parity needs at least one row")
    diff = np.abs(a - b)
    both_missing = np.isnan(a) & np.isnan(b)
    diff = np.where(both_missing, 0.0, np.where(np.isnan(diff), np.inf, diff))
    row_diff = diff if diff.ndim == 1 else diff.max(axis=1)
    kind = kind or ("multiclass" if a.ndim == 2 else "binary")
    if kind == "regression":
        flipped = np.zeros(row_diff.size, dtype=bool)
    elif kind == "binary":
        flipped = (a >= 0.5) != (b >= 0.5)
    elif kind == "multiclass" and a.ndim == 2:
        flipped = np.argmax(a, axis=1) != np.argmax(b, axis=1)
    else:
        raise ValueError(f"kind {kind!r} does not fit outputs of shape {a.shape}")
    over = row_diff > prob_tol
    worst = np.argsort(-row_diff, kind="stable")[:n_worst]
    share_over = float(over.mean())
    share_flipped = float(flipped.mean())
    return {
        "kind": kind,
        "n_rows": int(row_diff.size),
        "max_abs_diff": float(row_diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "prob_tol": prob_tol,
        "rows_over_tol": int(over.sum()),
        "share_rows_over_tol": share_over,
        "rows_flipped": int(flipped.sum()),
        "share_rows_flipped": share_flipped,
        "worst_rows": [
            {
                "row": int(i),
                "abs_diff": float(row_diff[i]),
                "native": np.atleast_1d(a[i]).tolist(),
                "onnx": np.atleast_1d(b[i]).tolist(),
            }
            for i in worst
        ],
        "passed": share_over <= max_share_over_tol and share_flipped <= max_share_flipped,
    }
