"""Ridge regression on standardised features, kept as plain arrays so it serves without pickle.

With a few hundred essays and 440 features, a well-regularised linear model is the baseline
every booster must beat, and (as out-of-fold predictions) a strong input to one. Missing
values are imputed with the training medians; the penalty is chosen by efficient
leave-one-out over a fixed grid, so the fit is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 13))


@dataclass(frozen=True)
class RidgeModel:
    """`predict(X) = ((impute(X[:, columns]) - means) / scales) @ coef + intercept`."""

    columns: NDArray[np.int64]
    medians: NDArray[np.float64]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coef: NDArray[np.float64]
    intercept: float
    alpha: float

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        values = np.asarray(X, dtype=np.float64)[:, self.columns]
        values = np.where(np.isnan(values), self.medians, values)
        # A row-wise sum, not a BLAS product: a row's prediction must not depend on which other
        # rows share the call (shadow and champion scores of the same model must be identical).
        return (((values - self.means) / self.scales) * self.coef).sum(axis=1) + self.intercept

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored in a model bundle)."""
        return {
            "columns": self.columns.tolist(),
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "alpha": self.alpha,
        }

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> RidgeModel:
        return cls(
            columns=np.asarray(params["columns"], dtype=np.int64),
            medians=np.asarray(params["medians"], dtype=np.float64),
            means=np.asarray(params["means"], dtype=np.float64),
            scales=np.asarray(params["scales"], dtype=np.float64),
            coef=np.asarray(params["coef"], dtype=np.float64),
            intercept=float(params["intercept"]),
            alpha=float(params["alpha"]),
        )


def fit_ridge(
    X: ArrayLike,
    y: ArrayLike,
    *,
    columns: Sequence[int] | None = None,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> RidgeModel:
    """Fit ridge on `columns` of X (all by default), the penalty chosen by leave-one-out."""
    from sklearn.linear_model import RidgeCV

    matrix = np.asarray(X, dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    if matrix.shape[0] != target.size:
        raise ValueError(f"{matrix.shape[0]} rows of features but {target.size} targets")
    if target.size < 3:
        raise ValueError(f"ridge needs at least 3 rows, got {target.size}")
    picked = np.arange(matrix.shape[1]) if columns is None else np.asarray(columns, np.int64)
    values = matrix[:, picked]
    # A column missing everywhere is imputed with 0 (and then has no variance).
    medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0)
    values = np.where(np.isnan(values), medians, values)
    means = values.mean(axis=0)
    scales = values.std(axis=0)
    scales = np.where(scales > 1e-12, scales, 1.0)
    model = RidgeCV(alphas=list(alphas)).fit((values - means) / scales, target)
    return RidgeModel(
        columns=picked,
        medians=medians,
        means=means,
        scales=scales,
        coef=np.asarray(model.coef_, dtype=np.float64),
        intercept=float(model.intercept_),
        alpha=float(model.alpha_),
    )
