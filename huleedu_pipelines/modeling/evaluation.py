"""Headline metrics logged with every registered version: on the test split (`test_<name>` in
MLflow) and, by the same functions, on the validation split (`validation_<name>`).

The full psychometric report (intervals, subgroups, plots, gates) is `modeling/figures.py`
and `modeling/report.py`; these are the few numbers `registry list` and the MLflow UI show
side by side. One function per task; `modeling.families` says which a family uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from huleedu_pipelines.domain.ielts import CEFR_LEVELS, cefr_from_band, cefr_to_ordinal
from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.bundle import BundlePrediction
from huleedu_pipelines.modeling.figures import HALF_BAND_CLASSES


def ordinal_headline_metrics(
    y_true: ArrayLike,
    prediction: BundlePrediction,
    *,
    class_labels: Sequence[str],
    ratings: ArrayLike | None = None,
) -> dict[str, float]:
    """Agreement and calibration of an ordinal classifier on its full scale of classes."""
    del ratings  # only skill models have a rating behind the label
    y = np.asarray(y_true)
    n_classes = len(class_labels)
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


def regression_headline_metrics(
    y_true: ArrayLike,
    prediction: BundlePrediction,
    *,
    class_labels: Sequence[str] = (),
    ratings: ArrayLike | None = None,
) -> dict[str, float]:
    """Error on raw bands; kappa and agreement on half bands and on the CEFR levels they map to."""
    del class_labels, ratings  # a regressor has neither
    y = np.asarray(y_true)
    half_true = np.round(y * 2).astype(np.int64)
    half_pred = np.round(prediction.labels * 2).astype(np.int64)
    cefr_true = [cefr_to_ordinal(cefr_from_band(b)) for b in y]
    cefr_pred = [cefr_to_ordinal(cefr_from_band(b)) for b in prediction.labels]
    return {
        "mae": m.mean_absolute_error(y, prediction.score),
        "rmse": m.rmse(y, prediction.score),
        "qwk": m.quadratic_weighted_kappa(half_true, half_pred, HALF_BAND_CLASSES),
        "accuracy": m.exact_agreement(half_true, half_pred),
        "cefr_from_band_qwk": m.quadratic_weighted_kappa(cefr_true, cefr_pred, len(CEFR_LEVELS)),
        "n": float(y.size),
    }


def binary_headline_metrics(
    y_true: ArrayLike,
    prediction: BundlePrediction,
    *,
    class_labels: Sequence[str] = (),
    ratings: ArrayLike | None = None,
) -> dict[str, float]:
    """Discrimination and calibration of P(positive); Pearson r with the rating when given."""
    del class_labels
    y = np.asarray(y_true)
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


# ------------------------------------------------------------------ quality against baselines

QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "grade": ("qwk", "adjacent_agreement", "exact_agreement"),
    "cefr": ("qwk", "macro_f1"),
    "band": ("mae", "qwk_half_band"),
    "skill": ("roc_auc", "pearson_r"),
}
"""Per family, the figures a product model and its baselines are compared on."""
LOWER_IS_BETTER = frozenset({"mae"})


def quality_metrics(
    family: str,
    y_true: ArrayLike,
    *,
    labels: ArrayLike | None,
    score: ArrayLike,
    n_classes: int = 0,
    ratings: ArrayLike | None = None,
) -> dict[str, float]:
    """`QUALITY_METRICS[family]` from class labels (ordinal families) or scores (band: the
    predicted band; skill: any score that ranks high skill, Pearson r against `ratings`)."""
    y = np.asarray(y_true)
    if family in ("grade", "cefr"):
        predicted = np.asarray(labels, dtype=np.int64)
        figures = {
            "qwk": m.quadratic_weighted_kappa(y, predicted, n_classes),
            "adjacent_agreement": m.adjacent_agreement(y, predicted),
            "exact_agreement": m.exact_agreement(y, predicted),
            "macro_f1": m.macro_f1(y, predicted, n_classes),
        }
    elif family == "band":
        bands = np.clip(np.asarray(score, dtype=np.float64), 0.0, 9.0)
        figures = {
            "mae": m.mean_absolute_error(y, bands),
            "qwk_half_band": m.quadratic_weighted_kappa(
                np.round(y * 2).astype(np.int64),
                np.round(bands * 2).astype(np.int64),
                HALF_BAND_CLASSES,
            ),
        }
    elif family == "skill":
        scores = np.asarray(score, dtype=np.float64)
        figures = {
            "roc_auc": m.roc_auc(y, scores),
            "pearson_r": m.pearson_r(scores, np.asarray(ratings, dtype=np.float64))
            if ratings is not None and np.ptp(scores) > 0
            else float("nan"),
        }
    else:
        raise ValueError(f"no quality metrics for family {family!r}")
    return {name: figures[name] for name in QUALITY_METRICS[family]}
