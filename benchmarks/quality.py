"""`bench quality CSV`: how good are the product's models on your essays, against baselines?

The CSV is imported into a temporary home exactly as `import-csv` would, the pipeline's own
ingest, label and feature assets build the feature table, and every model the labels support
is evaluated with repeated grouped K-fold cross-validation (whole students per fold,
stratified by label). In every fold the product recipe and three baselines are trained on the
same rows: the trivial predictor, ridge on all features, and LightGBM with default
parameters. Figures are mean ± standard error over folds (Nadeau–Bengio corrected, because
folds share training rows); the margin is the product minus the best baseline, paired by fold.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PRODUCT = "product"


@dataclass(frozen=True)
class ModelData:
    """One registered model's labelled rows: features, target, rating (skills) and groups."""

    X: np.ndarray
    target: np.ndarray
    rating: np.ndarray | None
    groups: np.ndarray


def build_feature_tables(csv_path: Path, source: str) -> dict[str, Any]:
    """Import `csv_path` into a fresh temporary home and materialize ingest, labels and
    features in-process; returns the asset outputs by name."""
    import dagster as dg

    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.csv_import import import_csv
    from huleedu_pipelines.warehouse.engine import make_engine

    home = Path(tempfile.mkdtemp(prefix="huleedu-quality-"))
    os.environ["HULEEDU_HOME"] = str(home)
    for variable in ("HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        os.environ.pop(variable, None)
    settings = get_settings()
    summary = import_csv(make_engine(settings.resolved_warehouse_url), csv_path, source)
    print(summary.describe(), flush=True)
    job = dg.define_asset_job(
        "quality_features_job", selection=dg.AssetSelection.groups("ingest", "labels", "features")
    )
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def(job.name).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    names = ("feature_table", "raw_essays", "swedish_grade_labels", "cefr_labels", "skill_labels")
    return {name: result.output_for_node(name) for name in names} | {"settings": settings}


def model_data(model: Any, tables: dict[str, Any]) -> ModelData | None:
    """The rows carrying `model`'s label, or None when the data has none."""
    import polars as pl

    from huleedu_pipelines.features.build import feature_matrix

    settings = tables["settings"]
    labels = tables[model.family.label_asset]
    if model.label_column not in labels.columns:
        return None
    selected = model.select_labels(labels, settings.high_skill_threshold).drop_nulls("target")
    if selected.is_empty():
        return None
    rows = (
        selected.join(tables["feature_table"], on="essay_id")
        .join(tables["raw_essays"].select("essay_id", "student_id"), on="essay_id", how="left")
        .with_columns(pl.coalesce("student_id", pl.lit("essay:") + pl.col("essay_id")).alias("g"))
        .sort("essay_id")
    )
    if rows.is_empty():
        return None
    return ModelData(
        X=feature_matrix(rows),
        target=model.family.targets(rows["target"].to_numpy()),
        rating=rows["rating"].to_numpy().astype(np.float64) if "rating" in rows.columns else None,
        groups=rows["g"].to_numpy(),
    )


def _product_fold(model: Any, data: ModelData, train: np.ndarray, config: Any) -> Any:
    """Train the product recipe on the fold's training rows, as the training split would."""
    from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS
    from huleedu_pipelines.modeling.families import fit_recipe
    from huleedu_pipelines.modeling.splits import grouped_stratified_split
    from huleedu_pipelines.modeling.training import SplitData

    strata = np.round(data.target).astype(np.int64)
    inner = grouped_stratified_split(
        strata[train],
        data.groups[train],
        seed=config.seed,
        fractions=(0.85, 0.15),
        names=("train", "validation"),
    )
    fit_rows, val_rows = train[inner == "train"], train[inner == "validation"]
    split = SplitData(
        X_train=data.X[fit_rows],
        y_train=data.target[fit_rows],
        groups_train=data.groups[fit_rows],
        X_val=data.X[val_rows],
        y_val=data.target[val_rows],
        groups_val=data.groups[val_rows],
        ratings_train=None if data.rating is None else data.rating[fit_rows],
        ratings_val=None if data.rating is None else data.rating[val_rows],
    )
    return fit_recipe(model, config, MODEL_FEATURE_COLUMNS)(split)


def evaluate_model(
    model: Any, data: ModelData, *, repeats: int, n_folds: int, seed: int, n_jobs: int
) -> dict[str, dict[str, list[float]]]:
    """Per contender (product and each baseline), per metric, the score of every fold."""
    from huleedu_pipelines.modeling.baselines import BASELINES
    from huleedu_pipelines.modeling.cross_validation import repeated_grouped_folds
    from huleedu_pipelines.modeling.evaluation import quality_metrics
    from huleedu_pipelines.modeling.training import TrainingConfig

    family = model.family
    n_classes = len(family.class_labels)
    config = TrainingConfig(seed=seed, n_jobs=n_jobs)
    strata = np.round(data.target).astype(np.int64)
    # Baselines learn the richest label there is: a skill's rating rather than high/low.
    fit_target = data.rating if data.rating is not None else data.target
    baseline_task = "regression" if family.task == "binary" else family.task
    scores: dict[str, dict[str, list[float]]] = {}

    for fold in repeated_grouped_folds(strata, data.groups, n_folds, repeats, seed):
        test = fold.test

        def record(contender: str, prediction: Any, test: np.ndarray = test) -> None:
            figures = quality_metrics(
                family.name,
                data.target[test],
                labels=prediction.labels,
                score=prediction.score,
                n_classes=n_classes,
                ratings=data.rating[test] if data.rating is not None else None,
            )
            for name, value in figures.items():
                scores.setdefault(contender, {}).setdefault(name, []).append(float(value))

        record(PRODUCT, _product_fold(model, data, fold.train, config).predict(data.X[test]))
        for name, baseline in BASELINES.items():
            train = fold.train
            guess = baseline(
                data.X[train], fit_target[train], data.X[test], baseline_task, n_classes, seed=seed
            )
            record(name, guess)
    return scores


def summarise(scores: dict[str, dict[str, list[float]]], n_folds: int) -> dict[str, Any]:
    """Mean ± SE per contender and metric, and the product's paired margin over the best
    baseline (by mean) on each metric, in standard errors."""
    from huleedu_pipelines.modeling.cross_validation import estimate
    from huleedu_pipelines.modeling.evaluation import LOWER_IS_BETTER

    summary: dict[str, Any] = {}
    for contender, metrics in scores.items():
        for metric, values in metrics.items():
            figure = estimate(values, n_folds)
            summary.setdefault(contender, {})[metric] = [
                round(figure.mean, 4),
                round(figure.standard_error, 4),
            ]
    margins: dict[str, Any] = {}
    for metric, product_values in scores[PRODUCT].items():
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        candidates = {
            name: values[metric]
            for name, values in scores.items()
            if name != PRODUCT and not math.isnan(float(np.mean(values[metric])))
        }
        best = max(candidates, key=lambda name: sign * float(np.mean(candidates[name])))
        difference = [sign * (p - b) for p, b in zip(product_values, candidates[best], strict=True)]
        figure = estimate(difference, n_folds)
        margins[metric] = {
            "best_baseline": best,
            "margin": round(figure.mean, 4),
            "standard_error": round(figure.standard_error, 4),
            "margin_in_se": round(figure.mean / figure.standard_error, 2)
            if figure.standard_error > 0
            else None,
        }
    summary["margin_over_best_baseline"] = margins
    return summary


def bench_quality(
    csv_path: Path, *, source: str, repeats: int, n_folds: int, seed: int
) -> dict[str, Any]:
    from huleedu_pipelines.modeling.families import REGISTERED_MODELS

    started = time.perf_counter()
    tables = build_feature_tables(csv_path, source)
    settings = tables["settings"]
    figures: dict[str, Any] = {
        "benchmark": "quality",
        "csv": csv_path.name,
        "repeats": repeats,
        "folds": n_folds,
        "seed": seed,
        "models": {},
        "skipped": {},
    }
    for model in REGISTERED_MODELS:
        data = model_data(model, tables)
        n_groups = 0 if data is None else np.unique(data.groups.astype(str)).size
        if data is None or data.target.size < settings.min_labels_to_train or n_groups < n_folds:
            figures["skipped"][model.name] = (
                f"the file has no `{model.label_column}` labels"
                if data is None
                else f"{data.target.size} labelled essays from {n_groups} students"
            )
            continue
        if model.family.task != "regression" and np.unique(data.target).size < 2:
            figures["skipped"][model.name] = "every essay has the same label"
            continue
        print(f"evaluating {model.name} on {data.target.size} essays", flush=True)
        scores = evaluate_model(
            model, data, repeats=repeats, n_folds=n_folds, seed=seed, n_jobs=settings.n_jobs
        )
        figures["models"][model.name] = {"essays": int(data.target.size)} | summarise(
            scores, n_folds
        )
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def print_quality(figures: dict[str, Any]) -> None:
    """A readable table per model, then the one JSON line."""
    import json

    for model_name, result in figures["models"].items():
        print(
            f"\n{model_name} ({result['essays']} essays, {figures['repeats']}×"
            f"{figures['folds']}-fold grouped CV; mean ± SE)"
        )
        contenders = [c for c in result if c not in ("essays", "margin_over_best_baseline")]
        metrics = list(result[PRODUCT])
        print(f"  {'':18}" + "".join(f"{m:>22}" for m in metrics))
        for contender in contenders:
            cells = "".join(
                f"{f'{mean:.3f} ± {se:.3f}':>22}"
                for mean, se in (result[contender][m] for m in metrics)
            )
            print(f"  {contender:18}{cells}")
        margins = result["margin_over_best_baseline"]
        cells = ""
        for m in metrics:
            margin = margins[m]
            cells += f"{margin['margin']:+.3f} ({margin['margin_in_se']} SE)".rjust(22)
        print(f"  {'margin (+ better)':18}{cells}")
    for model_name, reason in figures["skipped"].items():
        print(f"skipped {model_name}: {reason}")
    print(json.dumps(figures, sort_keys=True))
