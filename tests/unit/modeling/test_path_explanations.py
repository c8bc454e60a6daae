"""Saabas path contributions (`modeling.explanations`) against the booster and TreeSHAP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.explanations import (
    PathExplainer,
    top_k,
    top_k_json,
    treeshap_contributions,
)


def _rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 8))
    y = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.3 * rng.normal(size=n)
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the default direction
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X, y = _rows(rng, 500)
    X_test, _ = _rows(rng, 200)
    return X, y, X_test


def _train(objective: str, X: np.ndarray, y: np.ndarray):
    import lightgbm as lgb

    target = (y > 0).astype(int) if objective == "binary" else y
    params = {"objective": objective, "num_leaves": 7, "verbose": -1, "num_threads": 1}
    params |= {"deterministic": True, "seed": 3}
    return lgb.train(params, lgb.Dataset(X, target), num_boost_round=40)


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_contributions_sum_to_raw_margin_minus_treeshap_expected_value(data, objective) -> None:
    X, y, X_test = data
    booster = _train(objective, X, y)
    explainer = PathExplainer.from_booster(booster)
    contributions = explainer.contributions(X_test)
    raw = booster.predict(X_test, raw_score=True)
    assert contributions.shape == (200, 8)
    np.testing.assert_allclose(contributions.sum(axis=1) + explainer.expected_value, raw, atol=1e-9)
    # The node expectations are TreeSHAP's: both methods share the expected value (its
    # `pred_contrib` bias column) and so the total they distribute.
    shap = booster.predict(X_test, pred_contrib=True)
    np.testing.assert_allclose(shap[:, -1], explainer.expected_value, atol=1e-9)
    np.testing.assert_allclose(
        contributions.sum(axis=1), treeshap_contributions(booster, X_test).sum(axis=1), atol=1e-9
    )
    # Features no tree splits on get nothing; the informative one gets the most overall.
    used = booster.feature_importance("split") > 0
    assert np.all(contributions[:, ~used] == 0.0)
    assert int(np.argmax(np.abs(contributions).mean(axis=0))) == 0


def test_a_single_split_tree_credits_its_feature_with_the_leaf_minus_the_mean() -> None:
    import lightgbm as lgb

    X = np.array([[0.0, 5.0]] * 30 + [[1.0, 5.0]] * 10)
    y = np.array([0.0] * 30 + [4.0] * 10)
    params = {"objective": "regression", "num_leaves": 2, "min_data_in_leaf": 1, "verbose": -1}
    params |= {"learning_rate": 1.0, "boost_from_average": False, "min_data_in_bin": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=1)
    explainer = PathExplainer.from_booster(booster)
    low, high = booster.predict(np.array([[0.0, 5.0], [1.0, 5.0]]))
    mean = (30 * low + 10 * high) / 40  # cover-weighted root value
    assert explainer.expected_value == pytest.approx(mean)
    contributions = explainer.contributions(np.array([[0.0, 5.0], [1.0, 5.0]]))
    np.testing.assert_allclose(contributions, [[low - mean, 0.0], [high - mean, 0.0]])


def test_no_rows_give_an_empty_matrix(data) -> None:
    X, y, _ = data
    explainer = PathExplainer.from_booster(_train("binary", X, y))
    assert explainer.contributions(np.empty((0, 8))).shape == (0, 8)


def test_multiclass_boosters_are_refused_with_the_method_to_use(data) -> None:
    import lightgbm as lgb

    X, y, _ = data
    labels = np.digitize(y, [-0.5, 0.5])
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, labels), num_boost_round=3)
    with pytest.raises(ValueError, match="treeshap"):
        PathExplainer.from_booster(booster)


def test_top_k_orders_by_magnitude_and_drops_zeros() -> None:
    contributions = np.array([[0.1, -0.5, 0.0, 0.3, -0.05], [0.0, 0.0, 0.2, 0.0, 0.0]])
    names = ["a", "b", "c", "d", "e"]
    assert top_k(contributions, names, 3) == [
        [
            {"feature": "b", "contribution": -0.5},
            {"feature": "d", "contribution": 0.3},
            {"feature": "a", "contribution": 0.1},
        ],
        [{"feature": "c", "contribution": 0.2}],
    ]
    assert top_k(contributions, names, 10)[0][-1] == {"feature": "e", "contribution": -0.05}


def test_top_k_json_is_what_json_dumps_gives() -> None:
    rng = np.random.default_rng(1)
    contributions = rng.normal(size=(50, 12)) * (rng.random((50, 12)) < 0.5)
    contributions[0, :] = 0.0
    contributions[1, :] = 0.0
    contributions[1, 3] = 1.23456789e-9  # rounds to 0.0 but contributes: listed as 0.0
    names = [f"feature_{i}" for i in range(11)] + ['quoted "name"']
    expected = [json.dumps(row) for row in top_k(contributions, names, 5)]
    assert top_k_json(contributions, names, 5) == expected
    assert expected[0] == "[]"
    assert expected[1] == '[{"feature": "feature_3", "contribution": 0.0}]'
    assert expected[2].count('"feature"') == min(5, int((contributions[2] != 0).sum()))


def test_bundle_contributions_by_method(data) -> None:
    X, y, X_test = data
    booster = _train("regression", X, y)
    bundle = ModelBundle.from_boosters(
        model_name="test-band",
        task="regression",
        feature_columns=[f"f{i}" for i in range(8)],
        class_labels=[],
        boosters=[booster],
        booster_kinds=["regression"],
    )
    saabas = bundle.contributions(X_test, method="saabas")
    shap = bundle.contributions(X_test, method="treeshap", n_jobs=1)
    raw = booster.predict(X_test)
    expected = bundle.path_explainer.expected_value
    np.testing.assert_allclose(saabas.sum(axis=1) + expected, raw, atol=1e-9)
    np.testing.assert_allclose(shap.sum(axis=1) + expected, raw, atol=1e-9)
    # Different attributions of the same total: they agree on the dominant feature mostly.
    agree = np.mean(np.argmax(np.abs(saabas), 1) == np.argmax(np.abs(shap), 1))
    assert agree > 0.8
    with pytest.raises(ValueError, match="explain method"):
        bundle.contributions(X_test, method="lime")
