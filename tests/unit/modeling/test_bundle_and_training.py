"""Bundles: one ONNX graph per model that decodes exactly like native LightGBM, stored with
sha256s; training recipes that are reproducible to the byte."""

import numpy as np
import pytest

from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.metrics import pearson_r, quadratic_weighted_kappa
from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError
from huleedu_pipelines.modeling.ordinal import make_ordinal_model
from huleedu_pipelines.modeling.training import SplitData, TrainingConfig, train_stacked_bundle

CONFIG = TrainingConfig(seed=11, n_jobs=1)
COLUMNS = [f"f{i}" for i in range(20)]
GRADES = ["F", "E", "D", "D+", "C", "C+", "B", "A"]
SKILL = ["not_high", "high"]


def split_data(data) -> SplitData:
    groups = np.arange(data.y_train.size) // 2  # two essays per student
    return SplitData(data.X_train, data.y_train, groups, data.X_val, data.y_val)


def test_multi_booster_bundle_serves_native_predictions(ordinal_data, tmp_path) -> None:
    model = make_ordinal_model("cumulative_binary", 8, {"n_estimators": 40}, seed=3, n_jobs=1)
    model.fit(ordinal_data.X_train, ordinal_data.y_train, ordinal_data.X_val, ordinal_data.y_val)
    bundle = ModelBundle.from_boosters(
        model_name="test-grade",
        task="ordinal",
        feature_columns=COLUMNS,
        class_labels=GRADES,
        boosters=model.boosters,
        booster_kinds=model.booster_kinds,
        decoding=model.decoding_params(),
    )
    assert len(model.boosters) == 7  # one ONNX graph holds all seven
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"))
    onnx = loaded.predict(ordinal_data.X_test)
    native = loaded.predict(ordinal_data.X_test, native=True)
    np.testing.assert_allclose(
        onnx.probabilities, model.predict_proba(ordinal_data.X_test), atol=1e-5
    )
    np.testing.assert_array_equal(native.labels, model.predict(ordinal_data.X_test))
    assert (onnx.labels == native.labels).mean() >= 0.999
    assert np.all((onnx.confidence >= 0) & (onnx.confidence <= 1))


def _stacked(task: str, data: SplitData, class_labels=()) -> ModelBundle:
    return train_stacked_bundle(
        model_name=task,
        task=task,
        data=data,
        class_labels=class_labels,
        feature_columns=COLUMNS,
        config=CONFIG,
    )


def _high(data: SplitData) -> SplitData:
    return SplitData(
        data.X_train,
        (data.y_train >= 4).astype(int),
        data.groups_train,
        data.X_val,
        (data.y_val >= 4).astype(int),
    )


def test_tampered_artifact_is_refused(ordinal_data, tmp_path) -> None:
    bundle = _stacked("binary", _high(split_data(ordinal_data)), SKILL)
    directory = bundle.save(tmp_path / "skill")
    (directory / "model.onnx").write_bytes(bundle.onnx_model[:-10])
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        ModelBundle.load(directory)


def test_ordinal_training_is_reproducible_and_learns(ordinal_data) -> None:
    first = _stacked("ordinal", split_data(ordinal_data), GRADES)
    second = _stacked("ordinal", split_data(ordinal_data), GRADES)
    assert first.onnx_sha256 == second.onnx_sha256
    assert first.native_models == second.native_models
    assert first.manifest_sha256 == second.manifest_sha256
    assert first.info["strategy"] == "stacked_ridge_lightgbm"
    mse = first.info["oof_mse_by_blend_weight"]
    assert mse[f"{first.info['blend_weight']:g}"] == min(mse.values())
    assert len(first.decoding["cutpoints"]) == 7
    # What the cut points optimise is recorded with them, for the validation report.
    assert first.info["cutpoints"] == {
        "objective": "qwk+adjacent",
        "max_share_gap": 0.03,
        "fitted_on": "out-of-fold predictions of the training and validation rows",
    }
    assert first.info["cutpoints_objective"] == (
        "cut points maximise QWK + adjacent agreement with class shares kept within 3 points "
        "of the training shares"
    )
    prediction = first.predict(ordinal_data.X_test)
    assert quadratic_weighted_kappa(ordinal_data.y_test, prediction.labels, 8) > 0.6
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-9)


def test_band_and_skill_recipes(ordinal_data) -> None:
    data = split_data(ordinal_data)
    bands = SplitData(
        data.X_train, 4.0 + data.y_train / 2, data.groups_train, data.X_val, 4.0 + data.y_val / 2
    )
    band = _stacked("regression", bands)
    predicted = band.predict(ordinal_data.X_test)
    assert set(np.unique(predicted.labels * 2 % 1)) == {0.0}  # half bands
    assert np.mean(np.abs(predicted.score - (4.0 + ordinal_data.y_test / 2))) < 0.6

    skill = _stacked("binary", _high(data), SKILL)
    scores = skill.predict(ordinal_data.X_test).score
    assert scores.min() >= 0 and scores.max() <= 1
    truth = ordinal_data.y_test >= 4
    assert scores[truth].mean() > scores[~truth].mean() + 0.3
    assert skill.info["fit_target"] == "label"  # no ratings given: the 0/1 label itself
    assert skill.calibration["kind"] == "platt" and skill.calibration["a"] > 0


def test_a_skill_fitted_on_the_rating_also_serves_its_rating_scale_score(ordinal_data) -> None:
    """The fairness report compares this score with the mean teacher rating."""
    data = split_data(ordinal_data)

    def rating(codes: np.ndarray) -> np.ndarray:
        return 1.0 + codes / 2  # grade codes 0..7 as ratings 1..4.5

    rated = SplitData(
        data.X_train,
        (rating(data.y_train) >= 3.5).astype(int),
        data.groups_train,
        data.X_val,
        (rating(data.y_val) >= 3.5).astype(int),
        ratings_train=rating(data.y_train),
        ratings_val=rating(data.y_val),
    )
    skill = _stacked("binary", rated, SKILL)
    assert skill.info["fit_target"] == "rating"
    prediction = skill.predict(ordinal_data.X_test)
    on_scale = prediction.rating_scale_score
    assert on_scale is not None
    truth = rating(ordinal_data.y_test)
    assert abs(on_scale.mean() - truth.mean()) < 0.2
    assert pearson_r(on_scale, truth) > 0.7
    # P(high) is the Platt map of this very score: the two rank the essays alike.
    by_scale = np.argsort(on_scale)
    assert np.all(np.diff(prediction.score[by_scale]) >= -1e-12)
    labelled = _stacked("binary", _high(data), SKILL)
    assert labelled.predict(ordinal_data.X_test).rating_scale_score is None
