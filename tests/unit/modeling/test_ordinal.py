from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from huleedu_pipelines.modeling.metrics import quadratic_weighted_kappa
from huleedu_pipelines.modeling.ordinal import (
    ORDINAL_STRATEGIES,
    CumulativeBinary,
    Multiclass,
    OrdinalDecodingError,
    RegressionWithCutpoints,
    compare_ordinal_strategies,
    decide,
    decode_ordinal,
    decode_ordinal_labels,
    lightgbm_params,
    make_ordinal_model,
    optimise_cutpoints,
    out_of_fold_proba,
)

STRATEGIES = list(ORDINAL_STRATEGIES)
# Must match the fitted_ordinal_models fixture in conftest.py.
N_GRADES = 8
N_JOBS = 1
N_TREES = 80


@pytest.mark.parametrize("name", STRATEGIES)
def test_probabilities_are_distributions_and_labels_on_the_scale(
    name: str, fitted_ordinal_models: dict, ordinal_data: Any
) -> None:
    model = fitted_ordinal_models[name]
    probs = model.predict_proba(ordinal_data.X_test)
    assert probs.shape == (ordinal_data.X_test.shape[0], N_GRADES)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    labels = model.predict(ordinal_data.X_test)
    assert labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < N_GRADES


@pytest.mark.parametrize("name", STRATEGIES)
def test_each_strategy_learns_the_grade(
    name: str, fitted_ordinal_models: dict, ordinal_data: Any
) -> None:
    predicted = fitted_ordinal_models[name].predict(ordinal_data.X_test)
    assert quadratic_weighted_kappa(ordinal_data.y_test, predicted, N_GRADES) > 0.6


@pytest.mark.parametrize("name", STRATEGIES)
def test_decode_on_native_booster_outputs_equals_predict_proba(
    name: str, fitted_ordinal_models: dict, ordinal_data: Any
) -> None:
    model = fitted_ordinal_models[name]
    params = json.loads(json.dumps(model.decoding_params()))
    raw = [booster.predict(ordinal_data.X_test, num_threads=1) for booster in model.boosters]
    assert len(raw) == len(params["booster_kinds"])
    np.testing.assert_array_equal(
        decode_ordinal(raw, params), model.predict_proba(ordinal_data.X_test)
    )
    np.testing.assert_array_equal(
        decode_ordinal_labels(raw, params), model.predict(ordinal_data.X_test)
    )


@pytest.mark.parametrize("name", STRATEGIES)
def test_refitting_gives_byte_identical_boosters(
    name: str, fitted_ordinal_models: dict, ordinal_data: Any
) -> None:
    again = make_ordinal_model(
        name, N_GRADES, {"n_estimators": N_TREES}, seed=7, n_jobs=N_JOBS
    ).fit(ordinal_data.X_train, ordinal_data.y_train, ordinal_data.X_val, ordinal_data.y_val)
    first = fitted_ordinal_models[name]
    assert [b.model_to_string() for b in again.boosters] == [
        b.model_to_string() for b in first.boosters
    ]
    assert again.decoding_params() == first.decoding_params()


def test_boosters_keep_exactly_the_early_stopped_trees(fitted_ordinal_models: dict) -> None:
    for model in fitted_ordinal_models.values():
        for booster, best in zip(model.boosters, model.best_iterations, strict=True):
            assert 1 <= best <= N_TREES
            assert booster.current_iteration() == best
    multiclass = fitted_ordinal_models["multiclass"]
    assert multiclass.boosters[0].num_trees() == multiclass.best_iterations[0] * N_GRADES


def test_lightgbm_params_force_reproducibility() -> None:
    params = lightgbm_params(
        {"n_jobs": 8, "random_state": 1, "n_estimators": 5, "num_leaves": 7},
        objective="binary",
        seed=3,
        n_jobs=1,
    )
    assert params["num_threads"] == 1 and params["seed"] == 3
    assert params["deterministic"] is True and params["force_row_wise"] is True
    assert params["num_leaves"] == 7
    assert not {"n_jobs", "random_state", "n_estimators"} & params.keys()
    with pytest.raises(ValueError, match="objective"):
        lightgbm_params({"objective": "huber"}, objective="regression", seed=0, n_jobs=1)


def test_regression_decoding_params(fitted_ordinal_models: dict) -> None:
    params = fitted_ordinal_models["regression_cutpoints"].decoding_params()
    cutpoints = np.asarray(params["cutpoints"])
    assert cutpoints.shape == (N_GRADES - 1,)
    assert np.all(np.diff(cutpoints) > 0)
    assert params["sigma"] > 0
    assert params["decision"] == "cutpoints"


def test_optimise_cutpoints_beats_half_steps_on_biased_predictions() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, N_GRADES, 600)
    # A regressor that shrinks towards the middle, as regressors do.
    predictions = 3.5 + 0.6 * (y - 3.5) + rng.normal(0, 0.4, y.size)
    half_steps = np.arange(N_GRADES - 1) + 0.5
    before = quadratic_weighted_kappa(y, np.searchsorted(half_steps, predictions, side="right"))
    cuts = optimise_cutpoints(predictions, y, N_GRADES)
    after = quadratic_weighted_kappa(y, np.searchsorted(cuts, predictions, side="right"))
    assert after > before + 0.02
    assert np.all(np.diff(cuts) > 0)


def test_cumulative_decoding_repairs_crossing_curves() -> None:
    # P(y > 1) above P(y > 0) is impossible; the repair caps it, so no negative mass.
    exceed = [np.array([0.6, 0.2]), np.array([0.7, 0.1]), np.array([0.3, 0.05])]
    params = {"strategy": "cumulative_binary", "n_classes": 4, "booster_kinds": ["binary"] * 3}
    probs = decode_ordinal(exceed, params)
    np.testing.assert_allclose(probs[0], [0.4, 0.0, 0.3, 0.3])
    np.testing.assert_allclose(probs[1], [0.8, 0.1, 0.05, 0.05])
    with pytest.raises(OrdinalDecodingError, match="3 raw outputs"):
        decode_ordinal(exceed[:2], params)


def test_decision_rules() -> None:
    probs = np.array([[0.4, 0.0, 0.0, 0.6], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(decide(probs, "argmax"), [3, 3])
    # Expected grade 1.8 and 2.0: the quadratic expected cost picks the nearest grade.
    np.testing.assert_array_equal(decide(probs, "expected_cost"), [2, 2])
    np.testing.assert_array_equal(decide(probs, "median"), [3, 2])
    with pytest.raises(ValueError, match="unknown decision"):
        decide(probs, "mode")


def test_out_of_fold_probabilities(fitted_ordinal_models: dict, ordinal_data: Any) -> None:
    model = fitted_ordinal_models["multiclass"]
    oof = out_of_fold_proba(model, ordinal_data.X_train, ordinal_data.y_train, n_folds=3, seed=0)
    in_sample = model.predict_proba(ordinal_data.X_train)
    assert oof.shape == in_sample.shape
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    rows = np.arange(oof.shape[0])
    # Held-out probabilities of the true grade are lower than in-sample ones.
    y = ordinal_data.y_train
    assert oof[rows, y].mean() < in_sample[rows, y].mean()


def test_compare_strategies_picks_the_best_validation_qwk(ordinal_data: Any) -> None:
    best, scores, models = compare_ordinal_strategies(
        ordinal_data.X_train,
        ordinal_data.y_train,
        ordinal_data.X_val,
        ordinal_data.y_val,
        {"n_estimators": 40, "num_leaves": 7},
        seed=1,
        n_jobs=N_JOBS,
        n_classes=N_GRADES,
        strategies=("multiclass", "regression_cutpoints"),
        return_models=True,
    )
    assert set(scores) == {"multiclass", "regression_cutpoints"}
    assert scores[best] == max(scores.values())
    assert isinstance(models["multiclass"], Multiclass)
    assert isinstance(models["regression_cutpoints"], RegressionWithCutpoints)


def test_bad_labels_and_missing_classes_are_named(ordinal_data: Any) -> None:
    y = ordinal_data.y_train.astype(float)
    y[5] = 8
    model = Multiclass(N_GRADES, seed=0, n_jobs=N_JOBS, n_estimators=5)
    with pytest.raises(ValueError, match="row 5"):
        model.fit(ordinal_data.X_train, y)
    y_without_top = np.minimum(ordinal_data.y_train, N_GRADES - 2)
    with pytest.raises(ValueError, match="never occur"):
        CumulativeBinary(N_GRADES, seed=0, n_jobs=N_JOBS, n_estimators=5).fit(
            ordinal_data.X_train, y_without_top
        )
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(ordinal_data.X_test)
    with pytest.raises(ValueError, match="decision"):
        Multiclass(N_GRADES, seed=0, n_jobs=N_JOBS, decision="cutpoints")


def test_cut_points_for_qwk_plus_adjacency_keep_adjacent_agreement():
    """QWK alone rewards spreading predictions to the ends of the scale; adding adjacent
    agreement to the objective keeps more essays within one grade."""
    from huleedu_pipelines.modeling.ordinal import optimise_cutpoints

    rng = np.random.default_rng(5)
    y = rng.integers(0, 8, 1500)
    predictions = 0.6 * y + 1.4 + rng.normal(0, 1.2, y.size)  # shrunk toward the middle

    def agreement(cuts: np.ndarray) -> tuple[float, float]:
        decoded = np.searchsorted(cuts, predictions, side="right")
        return quadratic_weighted_kappa(y, decoded, 8), float(np.mean(np.abs(decoded - y) <= 1))

    qwk_only = agreement(optimise_cutpoints(predictions, y, 8))
    both = agreement(optimise_cutpoints(predictions, y, 8, objective="qwk+adjacent"))
    assert both[1] > qwk_only[1]
    assert both[0] > qwk_only[0] - 0.03
    with pytest.raises(ValueError, match="objective must be one of"):
        optimise_cutpoints(predictions, y, 8, objective="accuracy")
