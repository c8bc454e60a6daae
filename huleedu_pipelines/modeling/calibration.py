"""Probability calibration stored as JSON parameters and applied in numpy.

Calibrators are fitted with scikit-learn on out-of-fold (or held-out) probabilities, then
reduced to plain numbers: isotonic keeps its interpolation knots, Platt its slope and
intercept. Serving applies them after ONNX; a calibrated scikit-learn model is never
exported (calibrated LightGBM through skl2onnx returns silently wrong probabilities).

- ``isotonic``: non-decreasing step-free map, linear between knots, clipped at the ends
  (``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``).
- ``platt``: p = 1 / (1 + exp(-(a·z + b))), with z = logit(score) by default (so a=1, b=0
  is the identity on probabilities) or the raw score (``platt_input="score"``).
- ``identity``: leaves scores alone; used for a class with no positives or no negatives in
  the calibration rows, where nothing can be learned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

CALIBRATOR_KINDS = ("isotonic", "platt", "identity")
_LOGIT_CLIP = 1e-7
# Platt fits are maximum likelihood in spirit; a large C keeps sklearn's L2 penalty from
# shrinking the slope on a few hundred rows while still bounding it on separable data.
PLATT_C = 1e4


def _scores(values: ArrayLike, name: str = "scores") -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} row {bad[0]} is {array[bad[0]]!r}; calibration needs finite scores"
        )
    return array


def _binary(values: ArrayLike, n_rows: int) -> NDArray[np.int64]:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_rows,):
        raise ValueError(f"y must have shape ({n_rows},), got {array.shape}")
    bad = np.flatnonzero((array != 0) & (array != 1))
    if bad.size:
        raise ValueError(f"y row {bad[0]} is {array[bad[0]]!r}; binary calibration needs 0/1")
    return array.astype(np.int64)


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(clipped) - np.log1p(-clipped)


def _platt_feature(scores: FloatArray, platt_input: str) -> FloatArray:
    if platt_input == "logit":
        if scores.min() < 0 or scores.max() > 1:
            raise ValueError("platt_input='logit' needs probabilities in [0, 1]")
        return _logit(scores)
    if platt_input == "score":
        return scores
    raise ValueError(f"platt_input must be 'logit' or 'score', got {platt_input!r}")


def fit_calibrator(
    kind: str, scores: ArrayLike, y: ArrayLike, *, platt_input: str = "logit"
) -> dict[str, Any]:
    """Fit a binary calibrator and return its JSON-serialisable parameters."""
    values = _scores(scores)
    target = _binary(y, values.size)
    if kind == "identity":
        return {"kind": "identity"}
    if np.unique(target).size < 2:
        raise ValueError(
            f"{kind} calibration needs both outcomes in y; got only {int(target[0])}s "
            "(use kind='identity' for a class that never or always occurs)"
        )
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
        iso.fit(values, target)
        return {
            "kind": "isotonic",
            "x": [float(v) for v in iso.X_thresholds_],
            "y": [float(v) for v in iso.y_thresholds_],
        }
    if kind == "platt":
        from sklearn.linear_model import LogisticRegression

        feature = _platt_feature(values, platt_input)
        logistic = LogisticRegression(C=PLATT_C, max_iter=1000)
        logistic.fit(feature[:, None], target)
        return {
            "kind": "platt",
            "a": float(logistic.coef_[0, 0]),
            "b": float(logistic.intercept_[0]),
            "input": platt_input,
        }
    raise ValueError(f"unknown calibrator kind {kind!r}; choose from {CALIBRATOR_KINDS}")


def apply_calibrator(params: dict[str, Any], scores: ArrayLike) -> FloatArray:
    """Calibrated P(positive) for each score, from ``fit_calibrator`` parameters."""
    values = _scores(scores)
    kind = params.get("kind")
    if kind == "identity":
        return values.copy()
    if kind == "isotonic":
        knots_x = np.asarray(params["x"], dtype=np.float64)
        knots_y = np.asarray(params["y"], dtype=np.float64)
        if knots_x.size == 1:
            return np.full_like(values, knots_y[0])
        return np.interp(values, knots_x, knots_y)
    if kind == "platt":
        z = params["a"] * _platt_feature(values, params.get("input", "logit")) + params["b"]
        return 1.0 / (1.0 + np.exp(-z))
    raise ValueError(f"unknown calibrator kind {kind!r}; choose from {CALIBRATOR_KINDS}")


def fit_multiclass_calibrator(
    kind: str, probs: ArrayLike, y: ArrayLike, *, platt_input: str = "logit"
) -> dict[str, Any]:
    """One-vs-rest calibrators, one per class column; a class seen never or always is identity."""
    matrix = np.asarray(probs, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"probs must be (n, K), got shape {matrix.shape}")
    labels = np.asarray(y, dtype=np.float64)
    if labels.shape != (matrix.shape[0],):
        raise ValueError(f"y must have shape ({matrix.shape[0]},), got {labels.shape}")
    n_classes = matrix.shape[1]
    bad = np.flatnonzero((labels != np.rint(labels)) | (labels < 0) | (labels >= n_classes))
    if bad.size:
        raise ValueError(f"y row {bad[0]} is {labels[bad[0]]!r}, not a class 0..{n_classes - 1}")
    per_class = []
    for k in range(n_classes):
        target = (labels == k).astype(np.int64)
        class_kind = kind if 0 < target.sum() < target.size else "identity"
        per_class.append(fit_calibrator(class_kind, matrix[:, k], target, platt_input=platt_input))
    return {"kind": kind, "n_classes": n_classes, "classes": per_class}


def apply_multiclass_calibrator(params: dict[str, Any], probs: ArrayLike) -> FloatArray:
    """Calibrate each column, then renormalise rows to sum to one.

    A row whose calibrated values are all zero (possible with isotonic knots at 0) keeps its
    uncalibrated probabilities rather than becoming undefined.
    """
    matrix = np.asarray(probs, dtype=np.float64)
    n_classes = int(params["n_classes"])
    if matrix.ndim != 2 or matrix.shape[1] != n_classes:
        raise ValueError(f"probs must be (n, {n_classes}), got shape {matrix.shape}")
    calibrated = np.column_stack(
        [apply_calibrator(p, matrix[:, k]) for k, p in enumerate(params["classes"])]
    )
    total = calibrated.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 1e-12
    calibrated[empty] = matrix[empty]
    total[empty] = matrix[empty].sum(axis=1, keepdims=True)
    return calibrated / total
