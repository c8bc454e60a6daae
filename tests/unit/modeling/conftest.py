"""Small synthetic essay-like data shared by the modelling tests.

Kept small on purpose (a few hundred rows, 20 features, <= 100 trees, one thread) so the
whole modelling suite runs in well under a minute on a busy 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

N_FEATURES = 20
N_GRADES = 8
N_JOBS = 1
N_TREES = 80


@dataclass(frozen=True)
class OrdinalData:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def make_ordinal_rows(
    rng: np.random.Generator, n: int, missing_share: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Features with some NaN (missing) cells and a 0..7 grade driven by three of them."""
    X = rng.normal(size=(n, N_FEATURES))
    filled = X.copy()
    X[rng.random(X.shape) < missing_share] = np.nan
    latent = 1.5 * filled[:, 0] + filled[:, 1] + 0.5 * filled[:, 2] ** 2 + rng.normal(0, 0.7, n)
    y = np.clip(np.round(latent + 3.5), 0, N_GRADES - 1).astype(np.int64)
    return X, y


@pytest.fixture(scope="session")
def ordinal_data() -> OrdinalData:
    rng = np.random.default_rng(20240601)
    X_train, y_train = make_ordinal_rows(rng, 400)
    X_val, y_val = make_ordinal_rows(rng, 150)
    X_test, y_test = make_ordinal_rows(rng, 300)
    return OrdinalData(X_train, y_train, X_val, y_val, X_test, y_test)


@pytest.fixture(scope="session")
def fitted_ordinal_models(ordinal_data: OrdinalData) -> dict:
    """One fitted model per strategy, early-stopped on the validation rows."""
    from huleedu_pipelines.modeling.ordinal import ORDINAL_STRATEGIES, make_ordinal_model

    models = {}
    for name in ORDINAL_STRATEGIES:
        model = make_ordinal_model(name, N_GRADES, {"n_estimators": N_TREES}, seed=7, n_jobs=N_JOBS)
        models[name] = model.fit(
            ordinal_data.X_train, ordinal_data.y_train, ordinal_data.X_val, ordinal_data.y_val
        )
    return models
