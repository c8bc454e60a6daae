"""A registered version is servable as registered, on a real MLflow store: `mlflow.pyfunc` and
the `mlflow models predict` CLI return the bundle's decoded grades and probabilities; the
training run logs its splits as dataset inputs and its validation metrics on the validation
split; the champion carries why and since when it serves; the experiment is classic ML."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
import sqlalchemy as sa
from fakes import register_in_mlflow, tiny_bundle

from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.families import registered_model
from huleedu_pipelines.modeling.names import BAND_MODEL, CEFR_MODEL, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.modeling.training import TrainingConfig
from huleedu_pipelines.registry import MlflowRegistry, load_registered_bundle
from huleedu_pipelines.registry.mlflow import CLASSIC_ML_KIND, EXPERIMENT_KIND_TAG
from huleedu_pipelines.registry.protocol import (
    CHAMPION_REASON_TAG,
    CHAMPION_REPORT_TAG,
    CHAMPION_SINCE_TAG,
)
from huleedu_pipelines.registry.pyfunc_bundle import ServedBundle
from huleedu_pipelines.services.promotion import promote, rollback_champion
from huleedu_pipelines.services.training import TrainingRun, train_and_register
from huleedu_pipelines.warehouse.engine import make_engine, migrate

N_ESSAYS = 360
SPLITS = ["train"] * 200 + ["validation"] * 80 + ["test"] * 80
REPORT_URI = "file:///srv/reports/huleedu-grade-sv/1/report.md"
LOG = logging.getLogger("test-pyfunc-served")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


@dataclass(frozen=True)
class Served:
    registry: MlflowRegistry
    engine: sa.Engine
    card: dict[str, Any]
    features: pl.DataFrame
    splits: pl.DataFrame
    labels: pl.DataFrame

    def rows(self, split: str) -> pl.DataFrame:
        ids = self.splits.filter(pl.col("split") == split).select("essay_id")
        return self.features.join(ids, on="essay_id").sort("essay_id")


def _grade_labels(features: pl.DataFrame) -> pl.DataFrame:
    X = features.select(MODEL_FEATURE_COLUMNS[:3]).to_numpy()
    noise = 0.6 * np.random.default_rng(9).normal(size=len(X))
    latent = X @ np.array([1.0, 0.7, 0.5]) + noise
    codes = np.digitize(latent, np.quantile(latent, np.linspace(0, 1, 9)[1:-1]))
    return pl.DataFrame({"essay_id": features["essay_id"], "grade_ordinal": codes})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The grade model trained by the training service into a real MLflow store (version 1,
    `challenger`) and promoted to `champion` with a report."""
    from fakes import feature_rows

    root = tmp_path_factory.mktemp("served")
    registry = MlflowRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    engine = make_engine(f"sqlite:///{root / 'warehouse.db'}")
    migrate(engine)
    features = feature_rows(N_ESSAYS, seed=4)
    ids = features["essay_id"].to_list()
    splits = pl.DataFrame({"essay_id": ids, "group": ids, "split": SPLITS})
    labels = _grade_labels(features)
    run = TrainingRun(
        config=TrainingConfig(seed=3, n_jobs=1),
        min_labels_to_train=50,
        high_skill_threshold=3.5,
        models_dir=root / "models",
        run_id="run-served",
        review_target_share=0.15,
    )
    card = train_and_register(
        registered_model(GRADE_MODEL), features, splits, labels, run, registry, LOG
    )
    assert card["status"] == "registered", card["message"]
    report = {
        "model_name": GRADE_MODEL,
        "version": card["version"],
        "verdict": "passed all gates",
        "passed": True,
        "report_uri": REPORT_URI,
        "champion_version": None,
    }
    assert promote(engine, registry, report).action == "promoted"
    yield Served(registry, engine, card, features, splits, labels)
    engine.dispose()


def _client(registry: MlflowRegistry):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


def _expected(served: Served, rows: pl.DataFrame):
    """The verified registered bundle's own decoding of `rows`."""
    bundle = load_registered_bundle(served.registry, GRADE_MODEL, served.card["version"])
    prediction = bundle.predict(feature_matrix(rows))
    grades = [bundle.class_labels[int(i)] for i in prediction.labels]
    return bundle, prediction, grades


def test_pyfunc_returns_the_bundles_decoded_grades_and_probabilities(served: Served) -> None:
    import mlflow.pyfunc

    rows = served.rows("test")
    bundle, prediction, grades = _expected(served, rows)
    model = mlflow.pyfunc.load_model(f"models:/{GRADE_MODEL}@challenger")
    frame = rows.select(MODEL_FEATURE_COLUMNS).to_pandas()
    output = model.predict(frame)

    assert list(output["grade"]) == grades
    assert len(set(grades)) > 2  # a real spread of grades, not one class
    probabilities = output[[f"probability_{label}" for label in bundle.class_labels]].to_numpy()
    np.testing.assert_allclose(probabilities, prediction.probabilities, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(output["confidence"], prediction.confidence, atol=1e-12)
    # Columns in another order (and extra ones) are read by name.
    shuffled = frame[list(reversed(MODEL_FEATURE_COLUMNS))].assign(essay_id="x")
    assert list(model.predict(shuffled)["grade"]) == grades


def test_the_logged_model_keeps_onnx_byte_identical_beside_the_pyfunc_flavor(
    served: Served,
) -> None:
    import mlflow.artifacts
    import mlflow.models

    bundle = ModelBundle.load(Path(served.card["bundle_dir"]))
    assert served.registry.download_onnx(GRADE_MODEL, served.card["version"]) == bundle.onnx_model
    uri = f"models:/{GRADE_MODEL}/{served.card['version']}"
    info = mlflow.models.get_model_info(uri)
    assert info.flavors["python_function"]["loader_module"] == (
        "huleedu_pipelines.registry.pyfunc_bundle"
    )
    assert info.flavors["onnx"]["data"] == "model.onnx"
    assert info.signature.inputs.input_names() == list(MODEL_FEATURE_COLUMNS)
    assert info.signature.outputs.input_names()[:3] == ["grade", "score", "confidence"]
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, tracking_uri=served.registry.tracking_uri
        )
    )
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {"MLmodel", "model.onnx", "bundle/bundle.json", "bundle/manifest.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("huleedu-pipelines==") for r in requirements)


def test_mlflow_models_predict_cli_returns_grades_offline(served: Served, tmp_path: Path) -> None:
    rows = served.rows("test").head(6)
    _, prediction, grades = _expected(served, rows)
    payload = {
        "dataframe_split": {
            "columns": list(MODEL_FEATURE_COLUMNS),
            "data": rows.select(MODEL_FEATURE_COLUMNS).to_numpy().tolist(),
        }
    }
    (tmp_path / "input.json").write_text(json.dumps(payload))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": served.registry.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    completed = subprocess.run(
        [
            str(mlflow_cli),
            "models",
            "predict",
            "-m",
            f"models:/{GRADE_MODEL}@champion",
            "-i",
            str(tmp_path / "input.json"),
            "-t",
            "json",
            "-o",
            str(tmp_path / "output.json"),
            "--env-manager",
            "local",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    predictions = json.loads((tmp_path / "output.json").read_text())["predictions"]
    assert [p["grade"] for p in predictions] == grades
    assert [p["probability_A"] for p in predictions] == pytest.approx(
        prediction.probabilities[:, -1].tolist(), abs=1e-9
    )


def test_the_training_run_logs_its_splits_as_dataset_inputs(served: Served) -> None:
    run = _client(served.registry).get_run(served.card["run_id"])
    found = {}
    for dataset_input in run.inputs.dataset_inputs:
        context = {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"]
        found[context] = dataset_input.dataset
    assert set(found) == {"training", "validation", "holdout"}
    assert found["training"].name == f"{GRADE_MODEL}-train"
    assert found["holdout"].name == f"{GRADE_MODEL}-test"
    rows = {context: json.loads(d.profile)["num_rows"] for context, d in found.items()}
    assert rows == {"training": 200, "validation": 80, "holdout": 80}
    columns = {c["name"] for c in json.loads(found["training"].schema)["mlflow_colspec"]}
    assert {"essay_id", "target", "feature_hash"} <= columns


def test_validation_metrics_are_computed_on_the_validation_split(served: Served) -> None:
    metrics = served.registry.run_metrics(served.card["run_id"])
    family = registered_model(GRADE_MODEL).family
    bundle = ModelBundle.load(Path(served.card["bundle_dir"]))
    for split, prefix in (("validation", "validation_"), ("test", "test_")):
        rows = served.rows(split).join(served.labels, on="essay_id")
        expected = family.headline_metrics(
            family.targets(rows["grade_ordinal"].to_numpy()),
            bundle.predict(feature_matrix(rows)),
            None,
        )
        for name in ("qwk", "accuracy", "mae", "n"):
            assert metrics[f"{prefix}{name}"] == pytest.approx(expected[name], abs=1e-9)
    assert metrics["validation_n"] == 80 and metrics["test_n"] == 80
    assert metrics["validation_qwk"] != metrics["test_qwk"]
    assert metrics["validation_mae"] != metrics["test_mae"]


def test_the_experiment_is_typed_for_classic_ml(served: Served, tmp_path: Path) -> None:
    client = _client(served.registry)
    experiment = client.get_experiment_by_name(served.registry.experiment_name)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == CLASSIC_ML_KIND == "custom_model_development"

    # An experiment created before the kind existed is typed when the next version is logged.
    client.create_experiment("huleedu-older", artifact_location=(tmp_path / "art").as_uri())
    older = MlflowRegistry(served.registry.tracking_uri, experiment_name="huleedu-older")
    register_in_mlflow(older, "huleedu-t-older", tiny_bundle(GRADE_MODEL), tmp_path / "b")
    tags = client.get_experiment_by_name("huleedu-older").tags
    assert tags[EXPERIMENT_KIND_TAG] == CLASSIC_ML_KIND


def test_the_champion_carries_its_reason_time_and_report_as_tags(
    served: Served, tmp_path: Path
) -> None:
    import datetime as dt

    version = served.card["version"]
    tags = served.registry.get_version_by_number(GRADE_MODEL, version).tags
    assert tags[CHAMPION_REASON_TAG] == "passed all gates"
    assert tags[CHAMPION_REPORT_TAG] == REPORT_URI
    since = dt.datetime.fromisoformat(tags[CHAMPION_SINCE_TAG])
    assert since.tzinfo is not None
    assert dt.datetime.now(dt.UTC) - since < dt.timedelta(hours=1)

    # A newer champion takes the tags; the one it replaced loses them; a rollback gives them
    # back with the rollback as the reason and no report.
    newer = register_in_mlflow(served.registry, GRADE_MODEL, tiny_bundle(GRADE_MODEL), tmp_path)
    report = {
        "model_name": GRADE_MODEL,
        "version": newer,
        "verdict": "failed: qwk",
        "passed": False,
        "report_uri": "file:///srv/reports/2/report.md",
        "champion_version": version,
    }
    decision = promote(served.engine, served.registry, report, force_reason="hotfix")
    assert decision.action == "promoted"
    new_tags = served.registry.get_version_by_number(GRADE_MODEL, newer).tags
    assert new_tags[CHAMPION_REASON_TAG] == "forced by operator: hotfix; gates: failed: qwk"
    assert new_tags[CHAMPION_REPORT_TAG] == "file:///srv/reports/2/report.md"
    old_tags = served.registry.get_version_by_number(GRADE_MODEL, version).tags
    assert not {CHAMPION_REASON_TAG, CHAMPION_SINCE_TAG, CHAMPION_REPORT_TAG} & set(old_tags)

    rollback_champion(served.engine, served.registry, GRADE_MODEL)
    restored = served.registry.get_version_by_number(GRADE_MODEL, version).tags
    assert restored[CHAMPION_REASON_TAG] == f"rollback from v{newer} to v{version}"
    assert CHAMPION_REPORT_TAG not in restored
    assert dt.datetime.fromisoformat(restored[CHAMPION_SINCE_TAG]) >= since
    replaced = served.registry.get_version_by_number(GRADE_MODEL, newer).tags
    assert CHAMPION_REASON_TAG not in replaced


@pytest.mark.parametrize(
    ("model_name", "label_column", "probability_columns"),
    [
        (CEFR_MODEL, "cefr", ["probability_A1", "probability_C2"]),
        (BAND_MODEL, "ielts_band", []),
        (SKILL_MODELS["grammar"], "skill_level", ["probability_not_high", "probability_high"]),
    ],
)
def test_every_family_is_served_with_its_decoded_label(
    model_name: str, label_column: str, probability_columns: list[str], tmp_path: Path
) -> None:
    bundle = tiny_bundle(model_name, seed=2)
    served = ServedBundle.load(bundle.save(tmp_path / "bundle"))
    X = np.random.default_rng(5).normal(size=(12, len(MODEL_FEATURE_COLUMNS)))
    output = served.predict(pd.DataFrame(X, columns=list(MODEL_FEATURE_COLUMNS)))
    prediction = bundle.predict(X)

    assert list(output.columns[:3]) == [label_column, "score", "confidence"]
    assert set(probability_columns) <= set(output.columns)
    np.testing.assert_allclose(output["score"], prediction.score, atol=1e-12)
    if bundle.task == "regression":
        np.testing.assert_allclose(output[label_column], prediction.labels)
        assert np.all(np.asarray(output[label_column]) * 2 % 1 == 0)  # half bands
    else:
        assert list(output[label_column]) == [
            bundle.class_labels[int(i)] for i in prediction.labels
        ]
    with pytest.raises(ValueError, match="the input lacks emb_000"):
        served.predict(pd.DataFrame(X, columns=list(MODEL_FEATURE_COLUMNS)).drop(columns="emb_000"))


def test_the_served_bundle_refuses_a_changed_model_folder(tmp_path: Path) -> None:
    from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError

    bundle = tiny_bundle(GRADE_MODEL, seed=3)
    folder = bundle.save(tmp_path / "bundle")
    (tmp_path / "model.onnx").write_bytes(bundle.onnx_model)
    assert ServedBundle.load(folder).bundle.onnx_sha256 == bundle.onnx_sha256

    (tmp_path / "model.onnx").write_bytes(bundle.onnx_model + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="the logged model was changed"):
        ServedBundle.load(folder)
    (tmp_path / "model.onnx").write_bytes(bundle.onnx_model)
    description = json.loads((folder / "bundle.json").read_text())
    description["class_labels"] = list(reversed(description["class_labels"]))
    (folder / "bundle.json").write_text(json.dumps(description, indent=2, sort_keys=True))
    with pytest.raises(ArtifactIntegrityError, match=r"bundle\.json has sha256"):
        ServedBundle.load(folder)
