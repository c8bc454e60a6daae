"""Group `validation`: a report per challenger on the held-out test split, gates that block
promotion, and `promoted_models`, which moves `champion` and records the decision.

The gates are blocking ERROR checks on `validation_reports` (one check per gate, over every
model). When any fails, Dagster does not run `promoted_models`: no champion moves in that
run, and the failed check and each model's report say which gate, value and threshold.
A single model can still be promoted by hand with `huleedu-pipelines registry promote`.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, markdown_table
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.metrics import quadratic_weighted_kappa
from huleedu_pipelines.modeling.names import CHAMPION, GRADE_MODEL
from huleedu_pipelines.resources import MlflowRegistryResource, TrainingResource, WarehouseResource
from huleedu_pipelines.resources.validation import ValidationResource
from huleedu_pipelines.services.promotion import (
    Holdout,
    load_registered_bundle,
    measure_serving_latency,
    move_champion,
    validate_version,
)

GROUP = "validation"

VALIDATION_SCHEMA = {
    "model_name": pl.String,
    "version": pl.String,
    "run_id": pl.String,
    "passed": pl.Boolean,
    "verdict": pl.String,
    "report_uri": pl.String,
    "champion_version": pl.String,
    "gates": pl.String,
}
"""One row per validated challenger; `gates` is JSON (gate, passed, value, threshold...)."""


def _oracle_qwk(validation: ValidationResource, test_ids: list[str], labels: pl.DataFrame):
    """Best achievable QWK on these essays, when the demo generator's truth is at hand."""
    path = Path(validation.latent_truth_path) if validation.latent_truth_path else None
    if path is None or not path.exists():
        return None
    truth = pl.read_parquet(path).select("essay_id", "true_grade_ordinal")
    joined = labels.filter(pl.col("essay_id").is_in(test_ids)).join(truth, on="essay_id")
    if joined.is_empty():
        return None
    return quadratic_weighted_kappa(
        joined["grade_ordinal"].to_numpy(), joined["true_grade_ordinal"].to_numpy(), 8
    )


def _champion_bundle(registry: MlflowRegistryResource, model_name: str, challenger: str):
    ref = registry.get_version(model_name, CHAMPION)
    if ref is None or ref.version == challenger:
        return None
    return ref.version, load_registered_bundle(registry, model_name, ref.version)


@dg.asset(group_name=GROUP, kinds={"mlflow", "python"}, owners=OWNERS)
def validation_reports(
    context: dg.AssetExecutionContext,
    grade_model: pl.DataFrame,
    cefr_model: pl.DataFrame,
    ielts_band_model: pl.DataFrame,
    skill_models: pl.DataFrame,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    swedish_grade_labels: pl.DataFrame,
    cefr_labels: pl.DataFrame,
    skill_labels: pl.DataFrame,
    raw_essays: pl.DataFrame,
    training: TrainingResource,
    validation: ValidationResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """Psychometric validation report per challenger (agreement, calibration, subgroups,
    distribution, ONNX parity, latency, champion comparison) with plots and gate verdicts."""
    cards = pl.concat([grade_model, cefr_model, ielts_band_model, skill_models]).filter(
        pl.col("status") == "registered"
    )
    holdout = Holdout(
        feature_table, training_splits, swedish_grade_labels, cefr_labels, skill_labels, raw_essays
    )
    bundles = {
        card["model_name"]: ModelBundle.load(Path(card["bundle_dir"]))
        for card in cards.iter_rows(named=True)
    }
    test_ids = training_splits.filter(pl.col("split") == "test")["essay_id"].to_list()
    X_test = feature_matrix(feature_table.filter(pl.col("essay_id").is_in(test_ids)))
    latency = measure_serving_latency(list(bundles.values()), X_test) if bundles else None
    oracle = _oracle_qwk(validation, test_ids, swedish_grade_labels)
    rows: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for card in cards.iter_rows(named=True):
        name, version = card["model_name"], card["version"]
        result = validate_version(
            model_name=name,
            version=version,
            bundle=bundles[name],
            holdout=holdout,
            champion=_champion_bundle(mlflow, name, version),
            latency=latency,
            thresholds=validation.thresholds(),
            seed=training.seed,
            high_skill_threshold=training.high_skill_threshold,
            reports_dir=validation.reports_root,
            oracle_qwk=oracle,
        )
        context.log.info(f"{name} v{version}: {result.verdict}")
        mlflow.log_run_artifacts(card["run_id"], result.report_path.parent, "validation_report")
        mlflow.log_run_metrics(
            card["run_id"],
            {f"validation_{k}": v for k, v in result.metrics.items() if np.isfinite(v)},
        )
        mlflow.set_version_tags(
            name,
            version,
            {
                "gate_verdict": "passed" if result.passed else "failed",
                "validation_report": str(result.report_path),
            },
        )
        rows.append(
            {
                "model_name": name,
                "version": version,
                "run_id": card["run_id"],
                "passed": result.passed,
                "verdict": result.verdict,
                "report_uri": str(result.report_path),
                "champion_version": result.champion_version,
                "gates": result.gates_json(),
            }
        )
        if name == GRADE_MODEL:
            metadata["grade_report"] = dg.MetadataValue.md(result.report_path.read_text())
            for title, path in result.plots.items():
                metadata[f"grade_plot/{title}"] = dg.MetadataValue.path(str(path))
    reports = pl.DataFrame(rows, schema=VALIDATION_SCHEMA)
    metadata |= {
        "dagster/row_count": dg.MetadataValue.int(reports.height),
        "verdicts": dg.MetadataValue.md(
            markdown_table(reports.select("model_name", "version", "passed", "verdict"), 20)
        ),
        "reports_dir": dg.MetadataValue.path(str(validation.reports_root)),
    }
    if latency is not None:
        metadata["latency_p95_single_ms"] = dg.MetadataValue.float(latency.p95_single_ms)
        metadata["latency_p95_batch50_ms"] = dg.MetadataValue.float(latency.p95_batch50_ms)
    if oracle is not None:
        metadata["oracle_qwk"] = dg.MetadataValue.float(float(oracle))
    return dg.Output(reports, metadata=metadata)


@dg.asset(group_name=GROUP, kinds={"mlflow", "sql"}, owners=OWNERS)
def promoted_models(
    context: dg.AssetExecutionContext,
    validation_reports: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """Champion moves: each challenger that passed every gate becomes `champion`, recorded in
    `model_promotions` with the previous champion, the verdict and the report location."""
    engine = warehouse.migrated_engine()
    rows = []
    for report in validation_reports.iter_rows(named=True):
        name, version = report["model_name"], report["version"]
        if not report["passed"]:
            action, previous = f"kept champion: {report['verdict']}", report["champion_version"]
        else:
            moved = move_champion(
                engine,
                mlflow,
                model_name=name,
                version=version,
                reason=report["verdict"],
                report_uri=report["report_uri"],
            )
            action = "promoted" if moved else "already champion"
            previous = moved["previous_version"] if moved else version
        context.log.info(f"{name} v{version}: {action}")
        rows.append(
            {"model_name": name, "version": version, "previous_version": previous, "action": action}
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "model_name": pl.String,
            "version": pl.String,
            "previous_version": pl.String,
            "action": pl.String,
        },
    )
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "promotions": dg.MetadataValue.md(markdown_table(frame, 20)),
            "promoted": dg.MetadataValue.int(int((frame["action"] == "promoted").sum())),
        },
    )
