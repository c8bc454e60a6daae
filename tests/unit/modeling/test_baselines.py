import json

import numpy as np
import pytest

from huleedu_pipelines.modeling.baselines import (
    lightgbm_default_baseline,
    ridge_baseline,
    trivial_baseline,
)
from huleedu_pipelines.modeling.linear import RidgeModel, fit_ridge


def _linear_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = 2.0 * X[:, 0] - 1.0 * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def test_trivial_baseline_predicts_the_mode_mean_or_base_rate():
    X = np.zeros((5, 2))
    ordinal = trivial_baseline(X, np.array([1, 2, 2, 3, 2]), X[:3], "ordinal", n_classes=8)
    assert ordinal.labels.tolist() == [2, 2, 2]
    regression = trivial_baseline(X, np.array([5.0, 6.0, 7.0, 6.5, 5.5]), X[:2], "regression")
    assert regression.score.tolist() == [6.0, 6.0]
    binary = trivial_baseline(X, np.array([1, 0, 0, 0, 1]), X[:1], "binary")
    assert binary.score.tolist() == [0.4]


def test_ridge_recovers_a_linear_signal_and_imputes_missing_values_with_training_medians():
    X, y = _linear_data()
    model = fit_ridge(X[:200], y[:200])
    assert np.corrcoef(model.predict(X[200:]), y[200:])[0, 1] > 0.99
    holes = X[200:].copy()
    holes[:, 5] = np.nan  # a column with no signal: imputing it changes almost nothing
    assert np.abs(model.predict(holes) - model.predict(X[200:])).max() < 0.05


def test_ridge_parameters_round_trip_through_json():
    X, y = _linear_data()
    model = fit_ridge(X, y, columns=[0, 2, 4])
    again = RidgeModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal(again.predict(X), model.predict(X))
    assert again.columns.tolist() == [0, 2, 4]


def test_ridge_baseline_puts_ordinal_predictions_on_the_scale():
    X, y = _linear_data()
    grades = np.clip(np.rint(y + 3.5), 0, 7).astype(np.int64)
    prediction = ridge_baseline(X[:200], grades[:200], X[200:], "ordinal", n_classes=8)
    assert prediction.labels.min() >= 0 and prediction.labels.max() <= 7
    assert np.mean(np.abs(prediction.labels - grades[200:]) <= 1) > 0.95


def test_lightgbm_default_baseline_is_deterministic_and_ranks_a_binary_target():
    X, y = _linear_data(n=400)
    high = (y > 0).astype(np.int64)
    first = lightgbm_default_baseline(X[:300], high[:300], X[300:], "binary", seed=3, n_jobs=1)
    again = lightgbm_default_baseline(X[:300], high[:300], X[300:], "binary", seed=3, n_jobs=1)
    assert np.array_equal(first.score, again.score)
    assert ((first.score > 0.5) == high[300:]).mean() > 0.85


def test_an_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        trivial_baseline(np.zeros((2, 1)), np.zeros(2), np.zeros((1, 1)), "ranking")
