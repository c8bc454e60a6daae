"""Baselines a product model must beat, fitted on the same rows: the trivial predictor (training
mean, mode or base rate), ridge on all features, and LightGBM with its default parameters.

Each returns a `BaselinePrediction` in the task's own terms: a score (the continuous output)
and, for ordinal tasks, labels (the score rounded onto the scale), so one set of metrics
judges product and baselines alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from huleedu_pipelines.modeling.linear import fit_ridge

TASKS = ("ordinal", "regression", "binary")


@dataclass(frozen=True)
class BaselinePrediction:
    score: NDArray[np.float64]
    labels: NDArray[np.int64] | None = None


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def _on_scale(score: NDArray[np.float64], n_classes: int) -> NDArray[np.int64]:
    return np.clip(np.rint(score), 0, n_classes - 1).astype(np.int64)


def _finish(score: NDArray[np.float64], task: str, n_classes: int) -> BaselinePrediction:
    labels = _on_scale(score, n_classes) if task == "ordinal" else None
    return BaselinePrediction(score=np.asarray(score, dtype=np.float64), labels=labels)


def trivial_baseline(
    X_train: NDArray[np.float64],
    y_train: NDArray,
    X_test: NDArray[np.float64],
    task: str,
    n_classes: int = 0,
    seed: int = 0,
) -> BaselinePrediction:
    """The mode for ordinal labels, the mean for regression, the base rate for binary."""
    _check_task(task)
    y = np.asarray(y_train)
    if task == "ordinal":
        value = float(np.bincount(y.astype(np.int64), minlength=n_classes).argmax())
    else:
        value = float(np.mean(y))
    return _finish(np.full(len(X_test), value), task, n_classes)


def ridge_baseline(
    X_train: NDArray[np.float64],
    y_train: NDArray,
    X_test: NDArray[np.float64],
    task: str,
    n_classes: int = 0,
    seed: int = 0,
) -> BaselinePrediction:
    """Ridge on all features (ordinal labels as numbers, binary as 0/1)."""
    _check_task(task)
    model = fit_ridge(X_train, np.asarray(y_train, dtype=np.float64))
    return _finish(model.predict(X_test), task, n_classes)


def lightgbm_default_baseline(
    X_train: NDArray[np.float64],
    y_train: NDArray,
    X_test: NDArray[np.float64],
    task: str,
    n_classes: int = 0,
    seed: int = 0,
    n_jobs: int = 2,
) -> BaselinePrediction:
    """LightGBM with default parameters: a regressor for ordinal and regression targets, a
    classifier (P(class 1)) for binary ones; seeded and deterministic."""
    import lightgbm as lgb

    _check_task(task)
    common = {"random_state": seed, "n_jobs": n_jobs, "deterministic": True, "verbose": -1}
    if task == "binary":
        classifier = lgb.LGBMClassifier(**common).fit(X_train, np.asarray(y_train, np.int64))
        return _finish(classifier.predict_proba(X_test)[:, 1], task, n_classes)
    regressor = lgb.LGBMRegressor(**common).fit(X_train, np.asarray(y_train, np.float64))
    return _finish(regressor.predict(X_test), task, n_classes)


Baseline = Callable[..., BaselinePrediction]
BASELINES: dict[str, Baseline] = {
    "trivial": trivial_baseline,
    "ridge": ridge_baseline,
    "lightgbm_default": lightgbm_default_baseline,
}
"""Every baseline by the name reports use."""
