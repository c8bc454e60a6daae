"""Group `training`: splits, then every model trained, exported to ONNX and registered in MLflow
with alias `challenger`. Each model asset outputs a small "model card" table (one row per
model: status, registered version, bundle location, test metrics); the validation group reads
it. A model with too few labels is skipped with the reason, and the others still train."""

import json
from typing import Any

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.metadata import (
    OWNERS,
    frame_metadata,
    k8s_step_resources,
    markdown_table,
)
from huleedu_pipelines.modeling.families import FAMILIES, Family, models_of
from huleedu_pipelines.modeling.splits import grouped_stratified_split, leaking_groups
from huleedu_pipelines.resources.mlflow_registry import MlflowRegistryResource
from huleedu_pipelines.resources.training import TrainingResource
from huleedu_pipelines.services.training import (
    MODEL_CARD_SCHEMA,
    TrainingRun,
    train_and_register,
)

GROUP = "training"


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


def _training_run(context: dg.AssetExecutionContext, training: TrainingResource) -> TrainingRun:
    return TrainingRun(
        config=training.config(),
        min_labels_to_train=training.min_labels_to_train,
        high_skill_threshold=training.high_skill_threshold,
        models_dir=training.models_dir,
        run_id=context.run_id,
        review_target_share=training.review_target_share,
    )


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


def model_asset(family: Family) -> dg.AssetsDefinition:
    """The asset that trains and registers every model of `family` (one card row each), from
    the feature table, the split and the family's label table."""

    @dg.asset(
        name=family.training_asset,
        group_name=GROUP,
        kinds={"lightgbm", "onnx", "mlflow"},
        owners=OWNERS,
        description=family.description,
        op_tags=k8s_step_resources(cpu="2", memory="4Gi"),
        ins={
            "feature_table": dg.AssetIn(),
            "training_splits": dg.AssetIn(),
            "labels": dg.AssetIn(family.label_asset),
        },
    )
    def train_family(
        context: dg.AssetExecutionContext,
        feature_table: pl.DataFrame,
        training_splits: pl.DataFrame,
        labels: pl.DataFrame,
        training: TrainingResource,
        mlflow: MlflowRegistryResource,
    ) -> dg.Output[pl.DataFrame]:
        run, registry = _training_run(context, training), mlflow.registry()
        rows = [
            train_and_register(
                model, feature_table, training_splits, labels, run, registry, context.log
            )
            for model in models_of(family)
        ]
        return model_cards_output(rows)

    return train_family


MODEL_ASSETS: dict[str, dg.AssetsDefinition] = {
    family.name: model_asset(family) for family in FAMILIES
}
"""The training asset of each family, by family name (`grade_model`, `cefr_model`,
`ielts_band_model`, `skill_models`)."""
model_assets = list(MODEL_ASSETS.values())
