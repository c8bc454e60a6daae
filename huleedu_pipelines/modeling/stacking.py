"""Stacking for small data: linear models carry the embeddings, a small booster the rest.

With a few hundred to a few thousand essays, LightGBM on 440 columns (384 of them embedding
dimensions) overfits; ridge on the embeddings generalises far better but misses the
non-linear effects of the handcrafted features. The stack keeps both:

1. ridge on the embedding columns and ridge on the handcrafted columns, each turned into one
   column of out-of-fold predictions (grouped folds inside the training rows, so no row's
   stacked input has seen its own label);
2. a strongly regularised LightGBM regressor on the handcrafted columns plus those two;
3. a blend `w · ridge(all columns) + (1 − w) · booster`, with `w` chosen on out-of-fold
   predictions from a fixed grid (w = 1 is plain ridge, so the stack is never worse than it on
   the training rows' folds).

Every model regresses the numeric target (ordinal class index, band, skill rating); the
families turn the continuous score into classes, probabilities or P(high). At serving time the
ridges are plain arrays applied in numpy before the booster's ONNX graph (`StackedInput`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from huleedu_pipelines.modeling.cross_validation import grouped_stratified_folds
from huleedu_pipelines.modeling.linear import RidgeModel, fit_ridge

BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
STACK_BOOSTER_PARAMS: dict[str, Any] = {
    "learning_rate": 0.03,
    "num_leaves": 6,
    "min_data_in_leaf": 30,
    "feature_fraction": 0.4,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "verbosity": -1,
}
"""Few leaves, large leaves and strong shrinkage: chosen by grouped CV on three real sets of
500-1,600 essays, where tuning on one validation split lost to untuned defaults."""
STACK_BOOSTER_ROUNDS = 500
STACKED_COLUMN_NAMES = ("ridge_embeddings", "ridge_handcrafted")
"""The booster's stacked inputs, by the columns their ridge reads (a model without embedding
columns has only the second)."""


@dataclass(frozen=True)
class StackedInput:
    """What the booster reads: the handcrafted columns, then one column per ridge."""

    handcrafted: NDArray[np.int64]
    ridges: tuple[RidgeModel, ...]
    ridge_names: tuple[str, ...] = STACKED_COLUMN_NAMES

    def booster_input(self, X: ArrayLike) -> NDArray[np.float64]:
        features = np.asarray(X, dtype=np.float64)
        stacked = [ridge.predict(features) for ridge in self.ridges]
        return np.column_stack([features[:, self.handcrafted], *stacked])

    def to_dict(self) -> dict[str, Any]:
        return {
            "handcrafted": self.handcrafted.tolist(),
            "ridges": [ridge.to_dict() for ridge in self.ridges],
            "ridge_names": list(self.ridge_names),
        }

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> StackedInput:
        return cls(
            handcrafted=np.asarray(params["handcrafted"], dtype=np.int64),
            ridges=tuple(RidgeModel.from_dict(r) for r in params["ridges"]),
            ridge_names=tuple(params["ridge_names"]),
        )


@dataclass(frozen=True)
class Blend:
    """`weight · ridge_all(X) + (1 − weight) · booster output`."""

    ridge_all: RidgeModel
    weight: float

    def apply(self, X: ArrayLike, booster_output: ArrayLike) -> NDArray[np.float64]:
        boosted = np.asarray(booster_output, dtype=np.float64)
        if self.weight == 0.0:
            return boosted
        return self.weight * self.ridge_all.predict(X) + (1.0 - self.weight) * boosted

    def to_dict(self) -> dict[str, Any]:
        return {"ridge_all": self.ridge_all.to_dict(), "weight": self.weight}

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> Blend:
        return cls(RidgeModel.from_dict(params["ridge_all"]), float(params["weight"]))


@dataclass
class StackFit:
    """A fitted stack and its out-of-fold evidence (for cut points and calibration)."""

    stacked_input: StackedInput
    booster: Any
    blend: Blend
    oof_score: NDArray[np.float64]
    """Out-of-fold blended predictions of the training rows (never in-sample)."""
    oof_mse: dict[str, float]
    """Out-of-fold MSE per blend weight, e.g. {"0.5": 0.41}: the evidence for the choice."""


def _fold_ids(y: NDArray[np.float64], groups: NDArray[Any], n_folds: int, seed: int) -> NDArray:
    n_groups = np.unique(groups.astype(str)).size
    strata = np.round(y).astype(np.int64)
    return grouped_stratified_folds(strata, groups, min(n_folds, n_groups), seed)


def _train_booster(X: NDArray[np.float64], y: NDArray[np.float64], seed: int, n_jobs: int) -> Any:
    import lightgbm as lgb

    from huleedu_pipelines.modeling.ordinal import lightgbm_params

    params = lightgbm_params(STACK_BOOSTER_PARAMS, objective="regression", seed=seed, n_jobs=n_jobs)
    return lgb.train(params, lgb.Dataset(X, y, params=params), STACK_BOOSTER_ROUNDS)


def _out_of_fold_ridge(
    X: NDArray[np.float64], y: NDArray[np.float64], folds: NDArray, columns: NDArray | None
) -> NDArray[np.float64]:
    predictions = np.empty(y.size, dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        model = fit_ridge(X[~held], y[~held], columns=columns)
        predictions[held] = model.predict(X[held])
    return predictions


def fit_stack(
    X: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    *,
    embedding_columns: Sequence[int],
    seed: int,
    n_jobs: int,
    n_folds: int = 5,
) -> StackFit:
    """Fit the stack on all rows; out-of-fold predictions choose the blend weight.

    Ridge predictions enter the booster out of fold: inside the booster's own folds they are
    the fold-external predictions computed once over all rows, the usual stacking compromise
    (the ridge that made a row's input never saw that row).
    """
    features = np.asarray(X, dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    group_values = np.asarray(groups)
    embeddings = np.asarray(embedding_columns, dtype=np.int64)
    handcrafted = np.setdiff1d(np.arange(features.shape[1]), embeddings)
    folds = _fold_ids(target, group_values, n_folds, seed)
    parts = [
        (name, columns)
        for name, columns in zip(STACKED_COLUMN_NAMES, (embeddings, handcrafted), strict=True)
        if columns.size
    ]
    oof_parts = [_out_of_fold_ridge(features, target, folds, columns) for _, columns in parts]
    oof_all = _out_of_fold_ridge(features, target, folds, None)
    stacked = np.column_stack([features[:, handcrafted], *oof_parts])

    oof_booster = np.empty(target.size, dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        booster = _train_booster(stacked[~held], target[~held], seed, n_jobs)
        oof_booster[held] = booster.predict(stacked[held], num_threads=n_jobs)

    mse = {
        f"{w:g}": float(np.mean((w * oof_all + (1 - w) * oof_booster - target) ** 2))
        for w in BLEND_WEIGHTS
    }
    weight = min(BLEND_WEIGHTS, key=lambda w: (mse[f"{w:g}"], -w))  # ties go to more ridge
    return StackFit(
        stacked_input=StackedInput(
            handcrafted=handcrafted,
            ridges=tuple(fit_ridge(features, target, columns=columns) for _, columns in parts),
            ridge_names=tuple(name for name, _ in parts),
        ),
        booster=_train_booster(stacked, target, seed, n_jobs),
        blend=Blend(fit_ridge(features, target), weight),
        oof_score=weight * oof_all + (1 - weight) * oof_booster,
        oof_mse=mse,
    )
