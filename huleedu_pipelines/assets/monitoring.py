"""Group `monitoring` (partitioned like `inference`, by day and shard): how the partition's
predictions compare with the training reference, with teacher ratings that arrived after
scoring, and with the challenger. Each run's measurements are also appended to the warehouse
table `monitoring_measurements`, so the history of a day survives reruns.

A shard's essays are a uniform sample of the day's (by a hash of the essay id), so its drift
figures estimate the day's; `GROUP BY partition_date` over the table gives the whole night.

A run over a range of partitions (a backfill) measures every essay it scored once, and records
that under the range's last day (as shard 0 of 1 when the run covers several shards); its
`dagster/row_count` is on that day's partitions, 0 on the others.
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.inference import SINGLE_RUN_BACKFILL, WAREHOUSE_WRITES_POOL
from huleedu_pipelines.assets.metadata import OWNERS, markdown_table
from huleedu_pipelines.assets.partitions import SCORING_SHARDS, days_and_shards, nightly_partitions
from huleedu_pipelines.resources import (
    MlflowRegistryResource,
    MonitoringResource,
    WarehouseResource,
)
from huleedu_pipelines.services.monitoring import (
    DayMeasurements,
    MonitoringThresholds,
    measure_day,
    record_measurements,
)

GROUP = "monitoring"
DRIFT_CHECK = "check_prediction_drift"
AGREEMENT_CHECK = "check_skill_agreement_with_teachers"


@dg.asset(
    group_name=GROUP,
    partitions_def=nightly_partitions,
    pool=WAREHOUSE_WRITES_POOL,
    kinds={"polars", "sql"},
    owners=OWNERS,
    ins={
        "inference_features": dg.AssetIn(),
        "feature_table": dg.AssetIn(),
        "training_splits": dg.AssetIn(),
        "swedish_grade_labels": dg.AssetIn(),
    },
    deps=["skill_assessments", "essay_grade_predictions"],
    backfill_policy=SINGLE_RUN_BACKFILL,
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="prediction_monitoring",
            description="Warns when the predicted grade distribution or one of the 10 most "
            "important features drifts from the training reference (PSI above the threshold).",
        ),
        dg.AssetCheckSpec(
            AGREEMENT_CHECK,
            asset="prediction_monitoring",
            description="Fails when a skill's scores correlate with teacher ratings that "
            "arrived after scoring below the threshold, on enough rated essays.",
        ),
    ],
)
def prediction_monitoring(
    context: dg.AssetExecutionContext,
    inference_features: pl.DataFrame,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    swedish_grade_labels: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
    monitoring: MonitoringResource,
) -> Iterator:
    """Drift of the partition's predicted grades and top-10 features against the training
    split, Pearson r of skill scores with teacher ratings that arrived after scoring (all
    scored essays so far), and champion–challenger agreement on the partition's shadow rows."""
    thresholds = MonitoringThresholds(
        psi_warn=monitoring.psi_warn,
        min_skill_r=monitoring.min_skill_r,
        min_rated_essays=monitoring.min_rated_essays,
    )
    measured = measure_day(
        warehouse.engine(),
        mlflow.registry(),
        inference_features,
        feature_table=feature_table,
        training_splits=training_splits,
        grade_labels=swedish_grade_labels,
        thresholds=thresholds,
    )
    frame, psi = measured.frame, measured.predicted_grade_psi
    covered = days_and_shards(context.partition_keys)
    day = max(day for day, _ in covered)
    shards = sorted({shard for _, shard in covered})
    shard, shard_count = (shards[0], SCORING_SHARDS) if len(shards) == 1 else (0, 1)
    recorded = record_measurements(
        warehouse.migrated_engine(),
        frame,
        day=day,
        shard=shard,
        shards=shard_count,
        run_id=context.run_id,
    )
    if len(covered) > 1:
        for key, (covered_day, _) in zip(context.partition_keys, covered, strict=True):
            rows = frame.height if covered_day == day else 0
            context.add_asset_metadata({"dagster/row_count": rows}, partition_key=key)
    context.log.info(
        f"monitoring {day} shard {', '.join(map(str, shards))}: {measured.essays} essays, "
        f"{measured.drifting.height} drifting, {measured.weak_skills.height} skills below r "
        f"{thresholds.min_skill_r}"
    )
    yield dg.Output(
        frame,
        metadata={
            **(
                {"dagster/row_count": dg.MetadataValue.int(frame.height)}
                if len(covered) == 1
                else {}
            ),
            "recorded_under": dg.MetadataValue.text(f"{day}, shard {shard} of {shard_count}"),
            "essays": dg.MetadataValue.int(measured.essays),
            "predicted_grade_psi": dg.MetadataValue.float(psi if psi is not None else float("nan")),
            "shadow_rows_compared": dg.MetadataValue.int(measured.shadow_rows_compared),
            "history_rows_recorded": dg.MetadataValue.int(recorded),
            "measurements": dg.MetadataValue.md(markdown_table(frame, max_rows=40)),
        },
    )
    yield _drift_check(measured, thresholds)
    yield _agreement_check(measured, thresholds)


def _drift_check(
    measured: DayMeasurements, thresholds: MonitoringThresholds
) -> dg.AssetCheckResult:
    drifted = measured.drifting
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=drifted.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"PSI above {thresholds.psi_warn}: " + ", ".join(drifted["subject"].to_list())
            if drifted.height
            else None
        ),
        metadata={
            "drifting": dg.MetadataValue.json(dict(drifted.select("subject", "value").rows()))
        },
    )


def _agreement_check(
    measured: DayMeasurements, thresholds: MonitoringThresholds
) -> dg.AssetCheckResult:
    weak = measured.weak_skills
    return dg.AssetCheckResult(
        check_name=AGREEMENT_CHECK,
        passed=weak.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"Pearson r below {thresholds.min_skill_r} on at least {thresholds.min_rated_essays} "
            "essays rated after scoring: "
            + ", ".join(
                f"{s} r={v:.2f} (n={n})" for s, v, n in weak.select("subject", "value", "n").rows()
            )
            + "; inspect the skill model and retrain"
            if weak.height
            else None
        ),
        metadata={
            "agreement": dg.MetadataValue.md(markdown_table(measured.agreement, max_rows=10)),
        },
    )
