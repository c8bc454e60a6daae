"""Headline test-split metrics logged with every registered version (`test_<name>` in MLflow).

The full psychometric report (intervals, subgroups, plots, gates) is `modeling/report.py`;
these are the few numbers `registry list` and the MLflow UI show side by side.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from huleedu_pipelines.domain.ielts import cefr_from_band, cefr_to_ordinal
from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.bundle import BundlePrediction


def headline_metrics(
    task: str,
    y_true: ArrayLike,
    prediction: BundlePrediction,
    n_classes: int,
    ratings: ArrayLike | None = None,
) -> dict[str, float]:
    y = np.asarray(y_true)
    if task == "ordinal":
        labels = prediction.labels
        probabilities = prediction.probabilities
        return {
            "qwk": m.quadratic_weighted_kappa(y, labels, n_classes),
            "accuracy": m.exact_agreement(y, labels),
            "adjacent_agreement": m.adjacent_agreement(y, labels),
            "mae": m.mean_absolute_error(y, labels),
            "macro_f1": m.macro_f1(y, labels, n_classes),
            "ece": m.expected_calibration_error(y, probabilities, y_pred=labels),
            "brier": m.brier_score(y, probabilities),
            "n": float(y.size),
        }
    if task == "regression":
        half_true = np.round(y * 2).astype(np.int64)
        half_pred = np.round(prediction.labels * 2).astype(np.int64)
        cefr_true = [cefr_to_ordinal(cefr_from_band(b)) for b in y]
        cefr_pred = [cefr_to_ordinal(cefr_from_band(b)) for b in prediction.labels]
        return {
            "mae": m.mean_absolute_error(y, prediction.score),
            "rmse": m.rmse(y, prediction.score),
            "qwk": m.quadratic_weighted_kappa(half_true, half_pred, 19),
            "accuracy": m.exact_agreement(half_true, half_pred),
            "cefr_from_band_qwk": m.quadratic_weighted_kappa(cefr_true, cefr_pred, 6),
            "n": float(y.size),
        }
    scores = prediction.score
    result = {
        "roc_auc": m.roc_auc(y, scores),
        "accuracy": m.exact_agreement(y, prediction.labels),
        "brier": m.brier_score(y, scores),
        "ece": m.expected_calibration_error(y, scores),
        "n": float(y.size),
    }
    if ratings is not None:
        result["pearson_r"] = m.pearson_r(scores, np.asarray(ratings, dtype=np.float64))
    return result
