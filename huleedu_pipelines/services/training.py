"""Train and register: fit one model on the essays that carry its label, log it with the
dataset it saw and the code that trained it, and register the version as `challenger`.

Each version's MLflow run holds `test_<metric>` (the test split: the holdout validation
gates on, never fitted on) and `validation_<metric>` (the same figures on the validation
split, whose rows the stacked recipe fits on together with the training rows: they describe
the fit, `test_*` the quality on new essays), and the three splits as dataset inputs
(contexts `training`, `validation`, `holdout`).

Returns one "model card" row per model (status, registered version, bundle location, test
metrics); a model with too few labels is skipped with the reason instead of failing the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling import advisories, coherence
from huleedu_pipelines.modeling.advisories import fit_advisories
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.families import RegisteredModel, fit_recipe
from huleedu_pipelines.modeling.training import SplitData, TrainingConfig
from huleedu_pipelines.registry import LoggedDataset, ModelRegistry

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


@dataclass(frozen=True)
class TrainingRun:
    """Where and how one training run trains: the recipe knobs, the label floor below which a
    model is skipped, where bundles are written, and the orchestrator's run id (tagged on
    every version so a version leads back to the run that made it)."""

    config: TrainingConfig
    min_labels_to_train: int
    high_skill_threshold: float
    models_dir: Path
    run_id: str
    review_target_share: float
    """The share of the validation split's essays a model's review threshold puts under it
    (`modeling.coherence.review_threshold`)."""

    def bundle_dir(self, model_name: str) -> Path:
        return Path(self.models_dir) / model_name / self.run_id


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


def _skipped(model: RegisteredModel, message: str) -> dict[str, Any]:
    return {"model_name": model.name, "status": "skipped", "message": message}


def train_and_register(
    model: RegisteredModel,
    feature_table: pl.DataFrame,
    splits: pl.DataFrame,
    labels: pl.DataFrame,
    run: TrainingRun,
    registry: ModelRegistry,
    log: logging.Logger,
) -> dict[str, Any]:
    """Train one model on the essays that carry its label, log it and register `challenger`.

    `labels` is the family's label table; returns the model-card row (`MODEL_CARD_SCHEMA`)."""
    family = model.family
    labels = model.select_labels(labels, run.high_skill_threshold)
    parts = _split_data(feature_table, splits, labels, "target")
    n_labelled = sum(part.height for part in parts.values())
    if n_labelled < run.min_labels_to_train or min(p.height for p in parts.values()) == 0:
        message = (
            f"skipped {model.name}: {n_labelled} essays carry `{model.label_column}` "
            f"(train {parts['train'].height}, validation {parts['validation'].height}, test "
            f"{parts['test'].height}); at least {run.min_labels_to_train} are needed "
            "(HULEEDU_MIN_LABELS_TO_TRAIN) with every split non-empty"
        )
        log.warning(message)
        return _skipped(model, message)

    def target(part: pl.DataFrame) -> np.ndarray:
        return family.targets(part["target"].to_numpy())

    def ratings(part: pl.DataFrame) -> np.ndarray | None:
        return part["rating"].to_numpy().astype(np.float64) if "rating" in part.columns else None

    data = SplitData(
        X_train=feature_matrix(parts["train"]),
        y_train=target(parts["train"]),
        groups_train=parts["train"]["group"].to_numpy(),
        X_val=feature_matrix(parts["validation"]),
        y_val=target(parts["validation"]),
        groups_val=parts["validation"]["group"].to_numpy(),
        ratings_train=ratings(parts["train"]),
        ratings_val=ratings(parts["validation"]),
    )
    if family.task != "regression" and np.unique(data.y_train).size < 2:
        message = f"skipped {model.name}: every training essay has the same `{model.label_column}`"
        log.warning(message)
        return _skipped(model, message)
    log.info(f"training {model.name} on {data.y_train.size} essays")
    bundle = dataclasses.replace(
        fit_recipe(model, run.config, MODEL_FEATURE_COLUMNS)(data),
        feature_version=parts["train"]["feature_version"][0],
    )
    bundle = with_review_references(
        bundle, model, validation_essays(feature_table, splits), run.review_target_share
    )
    bundle = with_advisories(bundle, reference_essays(feature_table, splits))
    X_test = feature_matrix(parts["test"])
    metrics = family.headline_metrics(
        target(parts["test"]), bundle.predict(X_test), ratings(parts["test"])
    )
    validation_metrics = family.headline_metrics(
        data.y_val, bundle.predict(data.X_val), data.ratings_val
    )
    bundle_dir = bundle.save(run.bundle_dir(model.name))
    tags = _dataset_tags(parts, labels, "target") | {
        "dagster_run_id": run.run_id,
        "strategy": str(bundle.info.get("strategy", "")),
        "onnx_sha256": bundle.onnx_sha256,
    }
    ref = registry.log_model_version(
        model_name=model.name,
        run_name=f"{model.name}-{run.run_id[:8]}",
        onnx_bytes=bundle.onnx_model,
        # The ONNX graph reads the boosters' input (a stacked model prepares it from the
        # features in numpy), so its example is that input.
        input_example=bundle.booster_input(X_test[:5]).astype(np.float32),
        output_example=bundle.onnx_raw_outputs(X_test[:5])[0],
        bundle_dir=bundle_dir,
        params=_flat_params(bundle),
        metrics={f"test_{name}": value for name, value in metrics.items()}
        | {f"validation_{name}": value for name, value in validation_metrics.items()},
        tags=tags,
        feature_example=X_test[:5],
        datasets=split_datasets(model.name, parts),
    )
    log.info(f"registered {model.name} version {ref.version} as challenger")
    return {
        "model_name": model.name,
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


DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "holdout"}
"""The MLflow input context of each split."""


def split_datasets(model_name: str, parts: dict[str, pl.DataFrame]) -> list[LoggedDataset]:
    """The splits a model was trained, tuned and tested on, as the run's dataset inputs: one
    row per essay with its label (`target`; the teachers' `rating` for skills) and feature hash."""
    datasets = []
    for split, context in DATASET_CONTEXTS.items():
        part = parts[split]
        columns = [c for c in ("essay_id", "target", "rating", "feature_hash") if c in part.columns]
        datasets.append(
            LoggedDataset(
                name=f"{model_name}-{split}",
                context=context,
                frame=part.select(columns),
                targets="target",
            )
        )
    return datasets


def validation_essays(feature_table: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """Every essay of the validation split with its features, labelled or not: the essays
    each model of a run describes itself on (the same essays for every model)."""
    validation = splits.filter(pl.col("split") == "validation").select("essay_id")
    return feature_table.join(validation, on="essay_id").sort("essay_id")


def reference_essays(feature_table: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """Every essay of the train and validation splits, labelled or not: the population whose
    range the validity advisories describe (the test split stays for the anti-gaming check)."""
    kept = splits.filter(pl.col("split") != "test").select("essay_id")
    return feature_table.join(kept, on="essay_id").sort("essay_id")


def with_advisories(bundle: ModelBundle, essays: pl.DataFrame) -> ModelBundle:
    """`bundle` with the validity advisories fitted on `essays` (`modeling.advisories`)."""
    info = dict(bundle.info)
    info[advisories.INFO_KEY] = [advisory.to_info() for advisory in fit_advisories(essays)]
    return dataclasses.replace(bundle, info=info)


def with_review_references(
    bundle: ModelBundle, model: RegisteredModel, essays: pl.DataFrame, target_share: float
) -> ModelBundle:
    """`bundle` with what scoring's review flags read from it, fitted on `essays` (the
    validation split): its side of the coherence link (`coherence.LevelReference`) and, for a
    model whose confidence decides review, the confidence threshold under which
    `target_share` of those essays fall."""
    prediction = bundle.predict(feature_matrix(essays))
    info = dict(bundle.info)
    info[coherence.REFERENCE_KEY] = coherence.fit_reference(model.family.name, prediction).to_info()
    if model.family.confidence_decides_review:
        threshold = coherence.review_threshold(prediction.confidence, target_share)
        info[coherence.REVIEW_KEY] = threshold.to_info()
    return dataclasses.replace(bundle, info=info)


def _flat_params(bundle: ModelBundle) -> dict[str, Any]:
    params = {f"lgbm_{k}": v for k, v in bundle.info.get("params", {}).items()}
    for key in ("strategy", "n_train", "n_validation", "best_iterations"):
        if key in bundle.info:
            params[key] = bundle.info[key]
    for name, value in bundle.info.get("strategy_validation_qwk", {}).items():
        params[f"validation_qwk_{name}"] = round(float(value), 5)
    params["calibration"] = json.dumps(bundle.info.get("calibration", {}))[:250]
    params["n_features"] = len(bundle.feature_columns)
    review = bundle.info.get(coherence.REVIEW_KEY)
    if review:
        params["review_confidence_threshold"] = review["confidence_threshold"]
        params["review_target_share"] = review["target_share"]
    return params
