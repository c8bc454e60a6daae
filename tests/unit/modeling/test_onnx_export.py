from __future__ import annotations

import json
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import pytest

from huleedu_pipelines.modeling.onnx_export import (
    MAX_SHARE_FLIPPED,
    MAX_SHARE_OVER_TOLERANCE,
    ArtifactIntegrityError,
    OnnxExportError,
    OnnxRunner,
    booster_to_onnx,
    parity_report,
    sha256_bytes,
)
from huleedu_pipelines.modeling.ordinal import ORDINAL_STRATEGIES, decode_ordinal, lightgbm_params

N_FEATURES = 20
N_TREES = 80
KINDS = ("binary", "multiclass", "regression")


def _rows(rng: np.random.Generator, n: int, missing_share: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, N_FEATURES))
    grade = np.clip(np.round(1.5 * X[:, 0] + X[:, 1] + rng.normal(0, 0.7, n) + 3.5), 0, 7)
    X[rng.random(X.shape) < missing_share] = np.nan
    return X, grade.astype(np.int64)


def _train(kind: str, X: np.ndarray, grade: np.ndarray) -> lgb.Booster:
    objective, target, extra = {
        "binary": ("binary", (grade > 3).astype(int), {}),
        "multiclass": ("multiclass", grade, {"num_class": 8}),
        "regression": ("regression", grade.astype(float), {}),
    }[kind]
    params = lightgbm_params(None, objective=objective, seed=5, n_jobs=1, **extra)
    return lgb.train(params, lgb.Dataset(X, target), num_boost_round=N_TREES)


@pytest.fixture(scope="module")
def training_rows() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    return {"with_missing": _rows(rng, 600, 0.1), "complete": _rows(rng, 600, 0.0)}


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """20k unseen rows: half complete, half with 20% missing cells, plus an all-missing row."""
    rng = np.random.default_rng(12)
    complete, _ = _rows(rng, 10_000, 0.0)
    missing, _ = _rows(rng, 10_000, 0.2)
    return np.vstack([complete, missing, np.full((1, N_FEATURES), np.nan)])


@pytest.fixture(scope="module")
def exported(training_rows: dict) -> dict[tuple[str, str], tuple[lgb.Booster, bytes]]:
    models = {}
    for data_name, (X, grade) in training_rows.items():
        for kind in KINDS:
            booster = _train(kind, X, grade)
            models[(kind, data_name)] = (booster, booster_to_onnx(booster, N_FEATURES, kind))
    return models


@pytest.mark.parametrize("data_name", ["with_missing", "complete"])
@pytest.mark.parametrize("kind", KINDS)
def test_onnx_matches_native_on_held_out_rows(
    kind: str, data_name: str, exported: dict, held_out: np.ndarray
) -> None:
    """Parity within the share thresholds of onnx_export, including NaN inputs.

    ``complete`` boosters never saw a missing value (LightGBM missing_type=None: NaN is
    read as 0); ``with_missing`` ones learned a default direction for NaN.
    """
    booster, model_bytes = exported[(kind, data_name)]
    runner = OnnxRunner(model_bytes, intra_op_threads=1)
    native = booster.predict(held_out, num_threads=1)
    onnx_out = runner.raw(held_out)
    assert onnx_out.shape == native.shape
    report = parity_report(native, onnx_out, kind=kind)
    assert report["passed"], report
    assert report["share_rows_over_tol"] <= MAX_SHARE_OVER_TOLERANCE
    assert report["share_rows_flipped"] <= MAX_SHARE_FLIPPED
    # The all-missing row takes LightGBM's missing-value path in both runtimes.
    assert abs(native[-1] - onnx_out[-1]).max() < 1e-5


@pytest.mark.parametrize("name", list(ORDINAL_STRATEGIES))
def test_ordinal_models_decode_identically_through_onnx(
    name: str, fitted_ordinal_models: dict, ordinal_data: Any
) -> None:
    model = fitted_ordinal_models[name]
    params = json.loads(json.dumps(model.decoding_params()))
    runners = [
        OnnxRunner(booster_to_onnx(booster, params["n_features"], kind))
        for booster, kind in zip(model.boosters, params["booster_kinds"], strict=True)
    ]
    X = ordinal_data.X_test
    probs = decode_ordinal([runner.raw(X) for runner in runners], params)
    report = parity_report(model.predict_proba(X), probs)
    assert report["passed"], report
    assert report["max_abs_diff"] < 1e-5


def test_exported_model_shape_opset_and_metadata(exported: dict) -> None:
    _, model_bytes = exported[("multiclass", "complete")]
    model = onnx.load_model_from_string(model_bytes)
    onnx.checker.check_model(model)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] <= 15
    (graph_input,) = model.graph.input
    assert graph_input.name == "features"
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[1].dim_value == N_FEATURES
    outputs = {o.name: o for o in model.graph.output}
    assert set(outputs) == {"label", "probabilities"}
    assert outputs["label"].type.tensor_type.shape.dim[0].dim_param == "N"
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata == {"objective_kind": "multiclass", "n_features": str(N_FEATURES)}


def test_export_refuses_what_it_cannot_do(exported: dict) -> None:
    booster, _ = exported[("binary", "complete")]
    with pytest.raises(OnnxExportError, match="trained as binary"):
        booster_to_onnx(booster, N_FEATURES, "regression")
    with pytest.raises(OnnxExportError, match="expects 20 features"):
        booster_to_onnx(booster, N_FEATURES + 1, "binary")
    with pytest.raises(OnnxExportError, match="opset <= 15"):
        booster_to_onnx(booster, N_FEATURES, "binary", target_opset=17)


def test_sha256_is_checked_on_load(exported: dict) -> None:
    assert sha256_bytes(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    _, model_bytes = exported[("binary", "complete")]
    digest = sha256_bytes(model_bytes)
    assert OnnxRunner(model_bytes, expected_sha256=digest).sha256 == digest
    with pytest.raises(ArtifactIntegrityError, match="expected 0000"):
        OnnxRunner(model_bytes, expected_sha256="0000")
    with pytest.raises(ValueError, match=r"\(n, 20\)"):
        OnnxRunner(model_bytes).raw(np.zeros((2, 19)))


def test_large_regression_forest_is_summed_in_chunks(
    training_rows: dict, held_out: np.ndarray
) -> None:
    X, grade = training_rows["with_missing"]
    params = lightgbm_params({"num_leaves": 4}, objective="regression", seed=5, n_jobs=1)
    booster = lgb.train(params, lgb.Dataset(X, grade.astype(float)), num_boost_round=150)
    model_bytes = booster_to_onnx(booster, N_FEATURES, "regression", regression_split=60)
    ensembles = [
        node
        for node in onnx.load_model_from_string(model_bytes).graph.node
        if node.op_type == "TreeEnsembleRegressor"
    ]
    assert len(ensembles) == 3
    report = parity_report(
        booster.predict(held_out, num_threads=1),
        OnnxRunner(model_bytes).raw(held_out),
        kind="regression",
    )
    assert report["passed"], report


def test_export_is_deterministic(exported: dict) -> None:
    booster, model_bytes = exported[("regression", "with_missing")]
    assert booster_to_onnx(booster, N_FEATURES, "regression") == model_bytes


def test_parity_report_counts_rows() -> None:
    native = np.tile([0.7, 0.2, 0.1], (10, 1))
    onnx_out = native.copy()
    onnx_out[3] = [0.7 + 2e-5, 0.2 - 2e-5, 0.1]
    onnx_out[8] = [0.3, 0.6, 0.1]
    report = parity_report(native, onnx_out)
    assert report["rows_over_tol"] == 2 and report["share_rows_over_tol"] == pytest.approx(0.2)
    assert report["rows_flipped"] == 1
    assert report["max_abs_diff"] == pytest.approx(0.4)
    assert [row["row"] for row in report["worst_rows"][:2]] == [8, 3]
    assert report["worst_rows"][0]["onnx"] == [0.3, 0.6, 0.1]
    assert report["passed"] is False
    binary = parity_report(np.array([0.49, 0.8]), np.array([0.51, 0.8]))
    assert binary["rows_flipped"] == 1 and binary["kind"] == "binary"
    regression = parity_report(np.array([0.49, 3.0]), np.array([0.51, 3.0]), kind="regression")
    assert regression["rows_flipped"] == 0


def test_one_vs_all_multiclass_is_refused(training_rows: dict) -> None:
    # onnxmltools would give it a softmax where native LightGBM uses independent sigmoids.
    X, grade = training_rows["complete"]
    params = lightgbm_params(None, objective="multiclassova", seed=5, n_jobs=1, num_class=8)
    booster = lgb.train(params, lgb.Dataset(X, grade), num_boost_round=3)
    with pytest.raises(OnnxExportError, match="multiclassova"):
        booster_to_onnx(booster, N_FEATURES, "multiclass")
