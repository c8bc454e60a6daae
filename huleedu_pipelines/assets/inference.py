"""Group `inference` (partitioned by day and shard, `assets/partitions.py`): the day's new or
changed essays of one shard scored with every champion model, challenger shadow scores beside
them, upserted into the warehouse tables the product reads (`skill_assessments`,
`essay_grade_predictions`)."""

import datetime as dt
import warnings

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.inference_checks import (
    CHECK_SPECS,
    check_grade_predictions_current,
    check_skill_assessments_current,
)
from huleedu_pipelines.assets.metadata import (
    OWNERS,
    frame_metadata,
    k8s_step_resources,
    sql_table_schema,
)
from huleedu_pipelines.assets.partitions import SCORING_SHARDS, days_and_shards, nightly_partitions
from huleedu_pipelines.domain.shards import shard_of
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    MlflowRegistryResource,
    ScoringResource,
    WarehouseResource,
)
from huleedu_pipelines.services.scoring import (
    DayFeatures,
    NoChampionError,
    ScoredDay,
    features_for_day,
    score_day,
)
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.partition_rows import PartitionRows, essay_days, rows_by_partition
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions as essay_grade_predictions_table,
)
from huleedu_pipelines.warehouse.tables import skill_assessments as skill_assessments_table

GROUP = "inference"
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=get_settings().nightly_freshness_hours)
)
"""The nightly outputs fail freshness when no partition was scored for a night and its slack
(`HULEEDU_NIGHTLY_FRESHNESS_HOURS`, default 26 h): a missed or failed night shows in the UI."""
WAREHOUSE_WRITES_POOL = "warehouse_writes"
"""Steps that write the warehouse share this pool; the instance config limits how many run
at once (deploy/dagster.yaml), however many shard runs are in flight."""
SINGLE_RUN_BACKFILL = dg.BackfillPolicy.single_run()
"""A backfill over many days runs once per range of partitions (`score --backfill`: one run per
shard, every day of the range; the Dagster daemon does the same for a backfill launched in the
UI): the essays are selected and scored once, and Dagster records a materialization on every
partition of the range, with the row counts of each partition."""
# `backfill_policy` is a beta parameter of the asset decorators; every command that loads the
# definitions would print that on stderr.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


class InferenceConfig(dg.Config):
    backfill: bool = False
    """Consider every essay that lacks a current score, not only the partition day's. A run
    over several days always does."""


def _log_progress(context: dg.AssetExecutionContext):
    reported = [0]

    def progress(done: int, total: int) -> None:
        if done == total or done - reported[0] >= max(total // 10, 1):
            reported[0] = done
            context.log.info(f"embedded {done}/{total} chunks")

    return progress


@dg.asset(
    group_name=GROUP,
    partitions_def=nightly_partitions,
    kinds={"polars", "parquet"},
    owners=OWNERS,
    # Scores follow the champions: after a promotion the UI shows the day's scores as stale.
    deps=["promoted_models"],
    op_tags=k8s_step_resources(cpu="2", memory="4Gi"),
    backfill_policy=SINGLE_RUN_BACKFILL,
)
def inference_features(
    context: dg.AssetExecutionContext,
    config: InferenceConfig,
    warehouse: WarehouseResource,
    feature_store: FeatureStoreResource,
    embedder: EmbedderResource,
) -> dg.Output[pl.DataFrame]:
    """Model inputs of the partition's essays to score: of its shard, those submitted or
    updated that day, or whose features changed since they were last scored (every essay of
    the shard in a backfill, and in a run over several days). Outside a backfill only those
    essays' text is read (indexed queries). Built by the same cached feature path as training;
    essays whose features cannot be computed are quarantined. `dagster/row_count` is the
    partition's rows: all of a night's; in a run over a range, those of essays last written
    on the partition's day (`rows_in_run` counts them all)."""
    covered = days_and_shards(context.partition_keys)
    days = sorted({day for day, _ in covered})
    shards = sorted({shard for _, shard in covered})
    backfill = config.backfill or len(days) > 1
    engine = warehouse.migrated_engine()
    builds = [
        features_for_day(
            engine,
            days[-1],
            backfill=backfill,
            embedder=embedder.embedder(),
            cache_root=feature_store.root,
            max_essay_chars=get_settings().max_essay_chars,
            run_id=context.run_id,
            log=context.log,
            progress=_log_progress(context),
            shard=(shard, SCORING_SHARDS),
        )
        for shard in shards
    ]
    frame = pl.concat([b.table for b in builds], how="vertical_relaxed")
    metadata = frame_metadata(frame, preview_columns=8) | _features_metadata(builds)
    metadata |= {
        "backfill": dg.MetadataValue.bool(backfill),
        "shard": dg.MetadataValue.text(", ".join(map(str, shards)) + f" of {SCORING_SHARDS}"),
    }
    if len(covered) == 1:
        metadata["dagster/row_count"] = dg.MetadataValue.int(frame.height)
    else:
        metadata["rows_in_run"] = dg.MetadataValue.int(frame.height)
        with engine.connect() as connection:
            located = essay_days(connection, days[0], days[-1])
        per_partition: dict[tuple[dt.date, int], int] = {}
        for essay_id in frame["essay_id"].to_list():
            if essay_id in located:
                key = (located[essay_id], shard_of(essay_id, SCORING_SHARDS))
                per_partition[key] = per_partition.get(key, 0) + 1
        for key, (day, shard) in zip(context.partition_keys, covered, strict=True):
            context.add_asset_metadata(
                {"dagster/row_count": per_partition.get((day, shard), 0)}, partition_key=key
            )
    return dg.Output(frame, metadata=metadata)


def _features_metadata(builds: list[DayFeatures]) -> dict[str, dg.MetadataValue]:
    """What the feature builds of a run (one per shard it covers) selected, read and computed."""
    selected: dict[str, int] = {}
    for build in builds:
        for reason, n in build.selected_because().items():
            selected[reason] = selected.get(reason, 0) + n
    return {
        "selected_because": dg.MetadataValue.json(dict(sorted(selected.items()))),
        "quarantined_essays": dg.MetadataValue.int(sum(len(b.quarantined) for b in builds)),
        "embeddings_computed": dg.MetadataValue.int(sum(b.embeddings_computed for b in builds)),
        "embeddings_reused": dg.MetadataValue.int(sum(b.embeddings_reused for b in builds)),
        "essays_read": dg.MetadataValue.int(sum(b.essays_read for b in builds)),
        "essay_text_bytes_read": dg.MetadataValue.int(sum(b.text_bytes_read for b in builds)),
    }


@dg.multi_asset(
    name="nightly_scores",
    specs=[
        dg.AssetSpec(
            "skill_assessments",
            metadata={"dagster/column_schema": sql_table_schema(skill_assessments_table)},
            deps=["inference_features"],
            group_name=GROUP,
            kinds={"onnx", "sql"},
            owners=OWNERS,
            freshness_policy=NIGHTLY_FRESHNESS,
            description=(
                "Per essay and skill: P(high skill), confidence and the five largest "
                "contributions, from the champion skill models (challenger rows beside them "
                "with model_alias 'challenger'). `dagster/row_count` of a partition: the "
                "`current_skill_assessments` rows of the essays last written (updated, else "
                "submitted) on its day, in its shard; `rows_written`: the rows the run wrote."
            ),
        ),
        dg.AssetSpec(
            "essay_grade_predictions",
            metadata={"dagster/column_schema": sql_table_schema(essay_grade_predictions_table)},
            deps=["inference_features"],
            group_name=GROUP,
            kinds={"onnx", "sql"},
            owners=OWNERS,
            freshness_policy=NIGHTLY_FRESHNESS,
            description=(
                "Per essay: Swedish grade with its 8 probabilities and confidence, CEFR with "
                "its probabilities, IELTS band, and `needs_review` when the grade model is "
                "unsure; from the champion versions (challenger shadow rows beside them). "
                "`dagster/row_count` of a partition: the `current_essay_grade_predictions` "
                "rows of the essays last written (updated, else submitted) on its day, in its "
                "shard; `rows_written`: the rows the run wrote."
            ),
        ),
    ],
    ins={"inference_features": dg.AssetIn()},
    check_specs=CHECK_SPECS,
    partitions_def=nightly_partitions,
    can_subset=False,
    pool=WAREHOUSE_WRITES_POOL,
    backfill_policy=SINGLE_RUN_BACKFILL,
)
def nightly_scores(
    context: dg.AssetExecutionContext,
    inference_features: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
    scoring: ScoringResource,
):
    """Score the partition's essays with every champion (and differing challenger) model and
    upsert the rows, one transaction per table and chunk of essays."""
    try:
        scored = score_day(
            warehouse.migrated_engine(),
            inference_features,
            mlflow.registry(),
            run_id=context.run_id,
            shadow=scoring.shadow_scoring,
            review_threshold=scoring.review_confidence_threshold,
            explain_scope=scoring.explain_scope,
            chunk_size=scoring.chunk_size,
            n_jobs=scoring.n_jobs,
            log=context.log,
        )
    except NoChampionError as error:
        raise dg.Failure(
            description=str(error),
            metadata={"problems": dg.MetadataValue.json(error.problems)},
            allow_retries=False,  # no champion is no transient error: the job's retries skip it
        ) from error
    outcome = scored.outcome
    common = _scoring_metadata(scored)
    _record_partition_rows(context, warehouse)
    yield dg.MaterializeResult(
        asset_key="skill_assessments",
        metadata=common
        | {
            "rows_written": dg.MetadataValue.int(outcome.skill_rows),
            "rows_explained": dg.MetadataValue.int(outcome.explained_rows),
            "explain_scope": dg.MetadataValue.text(scoring.explain_scope),
        },
    )
    yield dg.MaterializeResult(
        asset_key="essay_grade_predictions",
        metadata=common
        | {
            "rows_written": dg.MetadataValue.int(outcome.grade_rows),
            "shadow_rows_written": dg.MetadataValue.int(outcome.shadow_rows),
        },
    )
    yield check_skill_assessments_current(inference_features, warehouse)
    yield check_grade_predictions_current(inference_features, warehouse)


def _record_partition_rows(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """`dagster/row_count` of each partition the run covers, on each score table: the current
    rows of that partition's essays (`warehouse.partition_rows`), counted after the writes."""
    covered = days_and_shards(context.partition_keys)
    days = [day for day, _ in covered]
    with warehouse.engine().connect() as connection:
        counts = rows_by_partition(
            connection,
            min(days),
            max(days),
            SCORING_SHARDS,
            only_shards={shard for _, shard in covered},
        )
    for key, located in zip(context.partition_keys, covered, strict=True):
        rows = counts.get(located, PartitionRows())
        for asset, n in (
            ("skill_assessments", rows.skill_rows),
            ("essay_grade_predictions", rows.grade_rows),
        ):
            context.add_asset_metadata(
                {
                    "dagster/row_count": dg.MetadataValue.int(n),
                    "partition_essays": dg.MetadataValue.int(rows.essays),
                },
                asset_key=asset,
                partition_key=key,
            )


def _scoring_metadata(scored: ScoredDay) -> dict[str, dg.MetadataValue]:
    """What both score tables record about the run: counts, timings and the versions served."""
    outcome, models = scored.outcome, scored.models
    return {
        "essays_considered": dg.MetadataValue.int(outcome.essays_considered),
        "essays_scored": dg.MetadataValue.int(outcome.essays_scored),
        "essays_skipped_unchanged": dg.MetadataValue.int(outcome.essays_unchanged),
        "essays_per_second": dg.MetadataValue.float(round(outcome.essays_per_second, 1)),
        "seconds_total": dg.MetadataValue.float(round(outcome.total_seconds, 3)),
        "seconds_writing": dg.MetadataValue.float(round(outcome.write_seconds, 3)),
        "seconds_loading_models": dg.MetadataValue.float(round(scored.load_seconds, 3)),
        "seconds_by_model": dg.MetadataValue.json(
            {name: round(seconds, 3) for name, seconds in sorted(outcome.seconds_by_model.items())}
        ),
        "champion_versions": dg.MetadataValue.json(
            {name: m.version for name, m in sorted(models.champions.items())}
        ),
        "challenger_versions": dg.MetadataValue.json(
            {name: m.version for name, m in sorted(models.challengers.items())}
        ),
        "models_not_served": dg.MetadataValue.json(models.problems),
    }
