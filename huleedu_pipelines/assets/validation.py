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
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, markdown_table
from huleedu_pipelines.modeling.names import GRADE_MODEL
from huleedu_pipelines.modeling.report_html import inline_images
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    MlflowRegistryResource,
    TrainingResource,
    WarehouseResource,
)
from huleedu_pipelines.resources.validation import ValidationResource
from huleedu_pipelines.services.gaming import GamingCheck, featurizer
from huleedu_pipelines.services.promotion import (
    ChallengerValidations,
    Holdout,
    ValidationPolicy,
    promote,
    validate_challengers,
)

GROUP = "validation"


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
    essay_attributes: pl.DataFrame,
    second_ratings: pl.DataFrame,
    training: TrainingResource,
    validation: ValidationResource,
    mlflow: MlflowRegistryResource,
    feature_store: FeatureStoreResource,
    embedder: EmbedderResource,
) -> dg.Output[pl.DataFrame]:
    """Psychometric validation report per challenger (agreement, calibration, distribution,
    fairness across subgroups, resistance to gaming, human–human agreement where essays were
    scored twice, ONNX parity, latency, champion comparison) with plots and gate verdicts."""
    validated = validate_challengers(
        pl.concat([grade_model, cefr_model, ielts_band_model, skill_models]),
        Holdout(
            feature_table,
            training_splits,
            swedish_grade_labels,
            cefr_labels,
            skill_labels,
            raw_essays,
            essay_attributes,
            second_ratings=second_ratings,
        ),
        mlflow.registry(),
        ValidationPolicy(
            thresholds=validation.thresholds(),
            seed=training.seed,
            high_skill_threshold=training.high_skill_threshold,
            dagster_run_id=context.run_id,
            reports_dir=validation.reports_root,
            gaming=GamingCheck(
                featurize=featurizer(feature_store.root, embedder.embedder()),
                max_essays=validation.gaming_essays,
                tolerance_sd=validation.gaming_tolerance_sd,
            ),
        ),
        latent_truth_path=Path(validation.latent_truth_path)
        if validation.latent_truth_path
        else None,
        log=context.log,
    )
    return dg.Output(validated.reports, metadata=_validation_metadata(validated, validation))


def _validation_metadata(
    validated: ChallengerValidations, validation: ValidationResource
) -> dict[str, Any]:
    """Each model's report with its plots inline (``report/<model>``, the grade model first),
    every verdict, latency and the oracle QWK.

    The reports' PNGs are embedded as ``data:`` URIs from compact (256-colour) copies, so the
    UI shows the plots without reaching the report folder; the files on disk are unchanged.
    """
    metadata: dict[str, Any] = {}
    ordered = sorted(validated.results, key=lambda result: result.model_name != GRADE_MODEL)
    for result in ordered:
        markdown = result.report_path.read_text(encoding="utf-8")
        inlined = inline_images(markdown, result.report_path.parent, compact=True)
        metadata[f"report/{result.model_name}"] = dg.MetadataValue.md(inlined)
    reports = validated.reports
    metadata |= {
        "dagster/row_count": dg.MetadataValue.int(reports.height),
        "verdicts": dg.MetadataValue.md(
            markdown_table(reports.select("model_name", "version", "passed", "verdict"), 20)
        ),
        "reports_dir": dg.MetadataValue.path(str(validation.reports_root)),
    }
    if validated.latency is not None:
        latency = validated.latency
        metadata["latency_p95_single_ms"] = dg.MetadataValue.float(latency.p95_single_ms)
        metadata["latency_p95_batch50_ms"] = dg.MetadataValue.float(latency.p95_batch50_ms)
    if validated.gamed is not None:
        metadata["gaming_check_seconds"] = dg.MetadataValue.float(validated.gamed.seconds)
    if validated.oracle_qwk is not None:
        metadata["oracle_qwk"] = dg.MetadataValue.float(float(validated.oracle_qwk))
    return metadata


PROMOTIONS_SCHEMA = {
    "model_name": pl.String,
    "version": pl.String,
    "previous_version": pl.String,
    "action": pl.String,
}


@dg.asset(group_name=GROUP, kinds={"mlflow", "sql"}, owners=OWNERS)
def promoted_models(
    context: dg.AssetExecutionContext,
    validation_reports: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
) -> dg.Output[pl.DataFrame]:
    """Champion moves: each challenger that passed every gate becomes `champion`, recorded in
    `model_promotions` with the previous champion, the verdict and the report location."""
    engine, registry = warehouse.migrated_engine(), mlflow.registry()
    rows = []
    for report in validation_reports.iter_rows(named=True):
        decision = promote(engine, registry, report)
        context.log.info(f"{decision.model_name} v{decision.version}: {decision.action}")
        rows.append(
            {
                "model_name": decision.model_name,
                "version": decision.version,
                "previous_version": decision.previous_version,
                "action": decision.action,
            }
        )
    frame = pl.DataFrame(rows, schema=PROMOTIONS_SCHEMA)
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "promotions": dg.MetadataValue.md(markdown_table(frame, 20)),
            "promoted": dg.MetadataValue.int(int((frame["action"] == "promoted").sum())),
        },
    )
