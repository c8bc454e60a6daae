"""Repeated grouped K-fold cross-validation and honest standard errors.

One holdout of a few hundred essays is too noisy to choose a model or to say one model beats
another; repeating a K-fold split R times uses every essay for testing R times. Folds keep
whole students together and are stratified by label with the same greedy assignment as the
training split, so no fold tests on a student it trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from huleedu_pipelines.modeling.splits import grouped_stratified_split


@dataclass(frozen=True)
class Fold:
    """Row indices of one train/test pair; `repeat` and `index` say where it came from."""

    repeat: int
    index: int
    train: NDArray[np.int64]
    test: NDArray[np.int64]


def grouped_stratified_folds(
    labels: ArrayLike, groups: ArrayLike, n_folds: int, seed: int
) -> NDArray[np.int64]:
    """The fold (0..n_folds-1) of each row: whole groups per fold, label shares balanced."""
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    n_groups = np.unique(np.asarray(groups).astype(str)).size
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} students cannot fill {n_folds} folds")
    names = [str(k) for k in range(n_folds)]
    assignment = grouped_stratified_split(
        labels, groups, seed=seed, fractions=[1.0 / n_folds] * n_folds, names=names
    )
    return assignment.astype(np.int64)


def repeated_grouped_folds(
    labels: ArrayLike, groups: ArrayLike, n_folds: int = 5, repeats: int = 3, seed: int = 42
) -> list[Fold]:
    """`repeats` × `n_folds` train/test pairs, each repeat with its own seeded assignment."""
    folds: list[Fold] = []
    for repeat in range(repeats):
        assignment = grouped_stratified_folds(labels, groups, n_folds, seed + 1009 * repeat)
        for index in range(n_folds):
            folds.append(
                Fold(
                    repeat=repeat,
                    index=index,
                    train=np.flatnonzero(assignment != index),
                    test=np.flatnonzero(assignment == index),
                )
            )
    return folds


@dataclass(frozen=True)
class Estimate:
    """A cross-validated figure: mean over folds and its (corrected) standard error."""

    mean: float
    standard_error: float
    n_folds: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.standard_error:.3f}"


def corrected_standard_error(values: Sequence[float], test_share: float) -> float:
    """Standard error of the mean of fold scores from repeated K-fold CV.

    Fold scores share most of their training rows, so the naive `sd / sqrt(k)` is too small.
    Nadeau and Bengio's correction scales the variance by `1/k + n_test/n_train`; it is the
    usual choice for comparing learners on repeated CV (Bouckaert and Frank, 2004).
    """
    scores = np.asarray(values, dtype=np.float64)
    k = scores.size
    if k < 2:
        return math.nan
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    variance = float(np.var(scores, ddof=1))
    return math.sqrt(variance * (1.0 / k + test_share / (1.0 - test_share)))


def estimate(values: Sequence[float], n_folds: int) -> Estimate:
    """Mean and corrected standard error of per-fold scores of `n_folds`-fold CV."""
    scores = [float(v) for v in values]
    return Estimate(
        mean=float(np.mean(scores)) if scores else math.nan,
        standard_error=corrected_standard_error(scores, 1.0 / n_folds),
        n_folds=len(scores),
    )
