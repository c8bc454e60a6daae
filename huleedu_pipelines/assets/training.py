"""Group `training`: splits, then every model trained, exported to ONNX and registered in MLflow
with alias `challenger`. Each model asset outputs a small "model card" table (one row per
model: status, registered version, bundle location, test metrics); the validation group reads
it. A model with too few labels is skipped with the reason, and the others still train."""

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata, markdown_table
from huleedu_pipelines.domain import CEFR_LEVELS, SKILLS, SWEDISH_GRADES
from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.evaluation import headline_metrics
from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    GRADE_MODEL,
    SKILL_CLASS_LABELS,
    SKILL_MODELS,
    identity_of,
)
from huleedu_pipelines.modeling.splits import grouped_stratified_split, leaking_groups
from huleedu_pipelines.modeling.training import (
    SplitData,
    TrainingConfig,
    train_band_bundle,
    train_binary_bundle,
    train_ordinal_bundle,
)
from huleedu_pipelines.resources.mlflow_registry import MlflowRegistryResource
from huleedu_pipelines.resources.training import TrainingResource

GROUP = "training"

MODEL_CARD_SCHEMA = {
    "model_name": pl.String,
    "status": pl.String,
    "version": pl.String,
    "run_id": pl.String,
    "bundle_dir": pl.String,
    "onnx_sha256": pl.String,
    "strategy": pl.String,
    "n_train": pl.Int64,
    "n_test": pl.Int64,
    "test_metrics": pl.String,
    "message": pl.String,
}
"""One row per model. status is `registered` or `skipped`; test_metrics is JSON."""


@functools.cache
def code_version() -> str:
    """Package version and git commit of the code that trains (once per process)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"{package_version('huleedu-pipelines')}+{commit}"


@dg.asset(group_name=GROUP, kinds={"polars"}, owners=OWNERS)
def training_splits(
    feature_table: pl.DataFrame,
    raw_essays: pl.DataFrame,
    swedish_grade_labels: pl.DataFrame,
    cefr_labels: pl.DataFrame,
    training: TrainingResource,
) -> dg.Output[pl.DataFrame]:
    """Train / validation / test assignment per essay: whole students on one side, stratified
    by grade (or CEFR where there is no grade), reproducible from the seed. Every model uses
    this one partition."""
    essays = feature_table.select("essay_id").join(
        raw_essays.select("essay_id", "student_id", "source"), on="essay_id", how="left"
    )
    strata = (
        essays.join(swedish_grade_labels.select("essay_id", "grade"), on="essay_id", how="left")
        .join(cefr_labels.select("essay_id", "cefr"), on="essay_id", how="left")
        .with_columns(
            pl.coalesce(pl.lit("grade:") + pl.col("grade"), pl.lit("cefr:") + pl.col("cefr")).alias(
                "stratum"
            ),
            pl.coalesce("student_id", pl.lit("essay:") + pl.col("essay_id")).alias("group"),
        )
    )
    assignment = grouped_stratified_split(
        strata["stratum"].to_numpy(), strata["group"].to_numpy(), seed=training.seed
    )
    splits = strata.select("essay_id", "group", "source", "stratum").with_columns(
        pl.Series("split", assignment, dtype=pl.String)
    )
    leaks = leaking_groups(splits["group"].to_numpy(), assignment)
    if leaks:
        raise RuntimeError(f"students on two sides of the split: {leaks[:5]}")
    counts = dict(splits.group_by("split").len().sort("split").iter_rows())
    return dg.Output(
        splits,
        metadata=frame_metadata(splits) | {"rows_per_split": dg.MetadataValue.json(counts)},
    )


@dataclass(frozen=True)
class ModelSpec:
    model_name: str
    target: str
    task: str
    class_labels: tuple[str, ...] = ()
    rating_column: str | None = None
    """Skill models: the mean teacher rating, for Pearson r against the score."""


def _split_data(
    feature_table: pl.DataFrame, splits: pl.DataFrame, labels: pl.DataFrame, target: str
) -> dict[str, pl.DataFrame]:
    joined = (
        labels.drop_nulls(target)
        .join(splits.select("essay_id", "group", "split"), on="essay_id")
        .join(feature_table, on="essay_id")
        .sort("essay_id")
    )
    return {
        name: joined.filter(pl.col("split") == name) for name in ("train", "validation", "test")
    }


def _dataset_tags(parts: dict[str, pl.DataFrame], labels: pl.DataFrame, target: str) -> dict:
    rows = pl.concat(list(parts.values())).sort("essay_id")
    digest = hashlib.sha256()
    for essay_id, split, value, feature_hash in rows.select(
        "essay_id", "split", target, "feature_hash"
    ).iter_rows():
        digest.update(f"{essay_id}|{split}|{value}|{feature_hash}\n".encode())
    watermark = labels["labelled_at"].max() if "labelled_at" in labels.columns else None
    return {
        "dataset_hash": digest.hexdigest()[:32],
        "data_watermark": watermark.isoformat() if isinstance(watermark, dt.datetime) else "",
        "feature_version": rows["feature_version"][0] if rows.height else "",
        "code_version": code_version(),
    }


def fit_recipe(spec: ModelSpec, config: TrainingConfig) -> Callable[[SplitData], ModelBundle]:
    """The training recipe for a model's task, bound to its name, classes and features."""
    common = {
        "model_name": spec.model_name,
        "feature_columns": MODEL_FEATURE_COLUMNS,
        "config": config,
    }
    if spec.task == "ordinal":
        return lambda data: train_ordinal_bundle(
            data=data,
            n_classes=len(spec.class_labels),
            class_labels=spec.class_labels,
            **common,
        )
    if spec.task == "regression":
        return lambda data: train_band_bundle(data=data, **common)
    return lambda data: train_binary_bundle(data=data, **common)


def _skipped(spec: ModelSpec, message: str) -> dict[str, Any]:
    return {"model_name": spec.model_name, "status": "skipped", "message": message}


def train_and_register(
    context: dg.AssetExecutionContext,
    spec: ModelSpec,
    feature_table: pl.DataFrame,
    splits: pl.DataFrame,
    labels: pl.DataFrame,
    training: TrainingResource,
    mlflow: MlflowRegistryResource,
) -> dict[str, Any]:
    """Train one model on the essays that carry its label, log it and register `challenger`."""
    parts = _split_data(feature_table, splits, labels, spec.target)
    n_labelled = sum(part.height for part in parts.values())
    if n_labelled < training.min_labels_to_train or min(p.height for p in parts.values()) == 0:
        message = (
            f"skipped {spec.model_name}: {n_labelled} essays carry `{spec.target}` "
            f"(train {parts['train'].height}, validation {parts['validation'].height}, test "
            f"{parts['test'].height}); at least {training.min_labels_to_train} are needed "
            "(HULEEDU_MIN_LABELS_TO_TRAIN) with every split non-empty"
        )
        context.log.warning(message)
        return _skipped(spec, message)

    def target(part: pl.DataFrame) -> np.ndarray:
        values = part[spec.target].to_numpy()
        return values.astype(np.float64) if spec.task == "regression" else values.astype(np.int64)

    data = SplitData(
        X_train=feature_matrix(parts["train"]),
        y_train=target(parts["train"]),
        groups_train=parts["train"]["group"].to_numpy(),
        X_val=feature_matrix(parts["validation"]),
        y_val=target(parts["validation"]),
    )
    if spec.task != "regression" and np.unique(data.y_train).size < 2:
        message = f"skipped {spec.model_name}: every training essay has the same `{spec.target}`"
        context.log.warning(message)
        return _skipped(spec, message)
    context.log.info(f"training {spec.model_name} on {data.y_train.size} essays")
    bundle = dataclasses.replace(
        fit_recipe(spec, training.config())(data),
        family=identity_of(spec.model_name).family,
        feature_version=parts["train"]["feature_version"][0],
    )
    X_test = feature_matrix(parts["test"])
    ratings = parts["test"][spec.rating_column] if spec.rating_column else None
    metrics = headline_metrics(
        spec.task, target(parts["test"]), bundle.predict(X_test), len(spec.class_labels), ratings
    )
    bundle_dir = bundle.save(training.bundle_dir(spec.model_name, context.run_id))
    tags = _dataset_tags(parts, labels, spec.target) | {
        "dagster_run_id": context.run_id,
        "strategy": str(bundle.info.get("strategy", "")),
        "onnx_sha256": bundle.onnx_sha256,
    }
    ref = mlflow.log_model_version(
        model_name=spec.model_name,
        run_name=f"{spec.model_name}-{context.run_id[:8]}",
        onnx_bytes=bundle.onnx_model,
        input_example=X_test[:5].astype(np.float32),
        output_example=bundle.onnx_raw_outputs(X_test[:5])[0],
        bundle_dir=bundle_dir,
        params=_flat_params(bundle),
        metrics={f"test_{name}": value for name, value in metrics.items()},
        tags=tags,
    )
    context.log.info(f"registered {spec.model_name} version {ref.version} as challenger")
    return {
        "model_name": spec.model_name,
        "status": "registered",
        "version": ref.version,
        "run_id": ref.run_id,
        "bundle_dir": str(bundle_dir),
        "onnx_sha256": bundle.onnx_sha256,
        "strategy": str(bundle.info.get("strategy", "")),
        "n_train": int(data.y_train.size),
        "n_test": int(X_test.shape[0]),
        "test_metrics": json.dumps(metrics, sort_keys=True),
        "message": f"version {ref.version} registered with alias challenger",
    }


def _flat_params(bundle: ModelBundle) -> dict[str, Any]:
    params = {f"lgbm_{k}": v for k, v in bundle.info.get("params", {}).items()}
    for key in ("strategy", "n_train", "n_validation", "best_iterations"):
        if key in bundle.info:
            params[key] = bundle.info[key]
    for name, value in bundle.info.get("strategy_validation_qwk", {}).items():
        params[f"validation_qwk_{name}"] = round(float(value), 5)
    params["calibration"] = json.dumps(bundle.info.get("calibration", {}))[:250]
    params["n_features"] = len(bundle.feature_columns)
    return params


def model_cards_output(rows: list[dict[str, Any]]) -> dg.Output[pl.DataFrame]:
    cards = pl.DataFrame(rows, schema=MODEL_CARD_SCHEMA)
    summary = cards.select("model_name", "status", "version", "strategy", "n_train", "message")
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(cards.height),
        "models": dg.MetadataValue.md(markdown_table(summary, max_rows=20)),
        "registered": dg.MetadataValue.int(int((cards["status"] == "registered").sum())),
        "skipped": dg.MetadataValue.int(int((cards["status"] == "skipped").sum())),
    }
    for row in cards.iter_rows(named=True):
        if row["status"] == "registered":
            for name, value in json.loads(row["test_metrics"]).items():
                metadata[f"{row['model_name']}/test_{name}"] = dg.MetadataValue.float(float(value))
        else:
            metadata[f"{row['model_name']}/skipped"] = dg.MetadataValue.text(row["message"])
    return dg.Output(cards, metadata=metadata)


@dg.asset(group_name=GROUP, kinds={"lightgbm", "onnx", "mlflow"}, owners=OWNERS)
def grade_model(
    context: dg.AssetExecutionContext,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    swedish_grade_labels: pl.DataFrame,
    training: TrainingResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """Swedish grade F..A as an ordinal model: the best of three ordinal strategies by
    validation QWK, with 8 calibrated probabilities; registered as huleedu-grade-sv."""
    spec = ModelSpec(GRADE_MODEL, "grade_ordinal", "ordinal", SWEDISH_GRADES)
    row = train_and_register(
        context,
        spec,
        feature_table,
        training_splits,
        swedish_grade_labels,
        training,
        mlflow,
    )
    return model_cards_output([row])


@dg.asset(group_name=GROUP, kinds={"lightgbm", "onnx", "mlflow"}, owners=OWNERS)
def cefr_model(
    context: dg.AssetExecutionContext,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    cefr_labels: pl.DataFrame,
    training: TrainingResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """CEFR level A1..C2 as an ordinal classifier; registered as huleedu-cefr."""
    spec = ModelSpec(CEFR_MODEL, "cefr_ordinal", "ordinal", CEFR_LEVELS)
    row = train_and_register(
        context,
        spec,
        feature_table,
        training_splits,
        cefr_labels,
        training,
        mlflow,
    )
    return model_cards_output([row])


@dg.asset(group_name=GROUP, kinds={"lightgbm", "onnx", "mlflow"}, owners=OWNERS)
def ielts_band_model(
    context: dg.AssetExecutionContext,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    cefr_labels: pl.DataFrame,
    training: TrainingResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """IELTS band regressor, served on the half-band scale; registered as huleedu-ielts-band."""
    spec = ModelSpec(BAND_MODEL, "ielts_band", "regression")
    row = train_and_register(
        context,
        spec,
        feature_table,
        training_splits,
        cefr_labels,
        training,
        mlflow,
    )
    return model_cards_output([row])


@dg.asset(group_name=GROUP, kinds={"lightgbm", "onnx", "mlflow"}, owners=OWNERS)
def skill_models(
    context: dg.AssetExecutionContext,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    skill_labels: pl.DataFrame,
    training: TrainingResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """Seven binary models, P(high skill) with rating >= the high-skill threshold, Platt
    calibrated; registered as huleedu-skill-<skill>."""
    rows = []
    for skill in SKILLS:
        rating = f"rating_{skill}"
        labels = skill_labels.select(
            "essay_id",
            "labelled_at",
            rating,
            (pl.col(rating) >= training.high_skill_threshold).cast(pl.Int64).alias("is_high"),
        )
        spec = ModelSpec(SKILL_MODELS[skill], "is_high", "binary", SKILL_CLASS_LABELS, rating)
        rows.append(
            train_and_register(
                context,
                spec,
                feature_table,
                training_splits,
                labels,
                training,
                mlflow,
            )
        )
    return model_cards_output(rows)
