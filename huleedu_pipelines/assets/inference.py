"""Group `inference` (partitioned by day and shard, `assets/partitions.py`): the day's new or
changed essays of one shard scored with every champion model, challenger shadow scores beside
them, upserted into the warehouse tables the product reads (`skill_assessments`,
`essay_grade_predictions`)."""

import datetime as dt

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.inference_checks import (
    CHECK_SPECS,
    check_grade_predictions_current,
    check_skill_assessments_current,
)
from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata, k8s_step_resources
from huleedu_pipelines.assets.partitions import SCORING_SHARDS, day_and_shard, nightly_partitions
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    MlflowRegistryResource,
    ScoringResource,
    WarehouseResource,
)
from huleedu_pipelines.services.scoring import (
    NoChampionError,
    ScoredDay,
    features_for_day,
    score_day,
)
from huleedu_pipelines.settings import get_settings

GROUP = "inference"
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=get_settings().nightly_freshness_hours)
)
"""The nightly outputs fail freshness when no partition was scored for a night and its slack
(`HULEEDU_NIGHTLY_FRESHNESS_HOURS`, default 26 h): a missed or failed night shows in the UI."""
WAREHOUSE_WRITES_POOL = "warehouse_writes"
"""Steps that write the warehouse share this pool; the instance config limits how many run
at once (deploy/dagster.yaml), however many shard runs are in flight."""


class InferenceConfig(dg.Config):
    backfill: bool = False
    """Consider every essay that lacks a current score, not only the partition day's."""


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
    the shard in a backfill). Outside a backfill only those essays' text is read (indexed
    queries). Built by the same cached feature path as training; essays whose features cannot
    be computed are quarantined."""
    day, shard = day_and_shard(context.partition_key)
    built = features_for_day(
        warehouse.migrated_engine(),
        day,
        backfill=config.backfill,
        embedder=embedder.embedder(),
        cache_root=feature_store.root,
        max_essay_chars=get_settings().max_essay_chars,
        run_id=context.run_id,
        log=context.log,
        progress=_log_progress(context),
        shard=(shard, SCORING_SHARDS),
    )
    frame = built.table
    return dg.Output(
        frame,
        metadata=frame_metadata(frame.select(frame.columns[:8]))
        | {
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "selected_because": dg.MetadataValue.json(built.selected_because()),
            "backfill": dg.MetadataValue.bool(config.backfill),
            "shard": dg.MetadataValue.text(f"{shard} of {SCORING_SHARDS}"),
            "quarantined_essays": dg.MetadataValue.int(len(built.quarantined)),
            "embeddings_computed": dg.MetadataValue.int(built.embeddings_computed),
            "embeddings_reused": dg.MetadataValue.int(built.embeddings_reused),
            "essays_read": dg.MetadataValue.int(built.essays_read),
            "essay_text_bytes_read": dg.MetadataValue.int(built.text_bytes_read),
        },
    )


@dg.multi_asset(
    name="nightly_scores",
    specs=[
        dg.AssetSpec(
            "skill_assessments",
            deps=["inference_features"],
            group_name=GROUP,
            kinds={"onnx", "sql"},
            owners=OWNERS,
            freshness_policy=NIGHTLY_FRESHNESS,
            description=(
                "Per essay and skill: P(high skill), confidence and the five largest "
                "contributions, from the champion skill models (challenger rows beside them "
                "with model_alias 'challenger')."
            ),
        ),
        dg.AssetSpec(
            "essay_grade_predictions",
            deps=["inference_features"],
            group_name=GROUP,
            kinds={"onnx", "sql"},
            owners=OWNERS,
            freshness_policy=NIGHTLY_FRESHNESS,
            description=(
                "Per essay: Swedish grade with its 8 probabilities and confidence, CEFR with "
                "its probabilities, IELTS band, and `needs_review` when the grade model is "
                "unsure; from the champion versions (challenger shadow rows beside them)."
            ),
        ),
    ],
    ins={"inference_features": dg.AssetIn()},
    check_specs=CHECK_SPECS,
    partitions_def=nightly_partitions,
    can_subset=False,
    pool=WAREHOUSE_WRITES_POOL,
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
    yield dg.MaterializeResult(
        asset_key="skill_assessments",
        metadata=common
        | {
            "dagster/row_count": dg.MetadataValue.int(outcome.skill_rows),
            "rows_written": dg.MetadataValue.int(outcome.skill_rows),
            "rows_explained": dg.MetadataValue.int(outcome.explained_rows),
            "explain_scope": dg.MetadataValue.text(scoring.explain_scope),
        },
    )
    yield dg.MaterializeResult(
        asset_key="essay_grade_predictions",
        metadata=common
        | {
            "dagster/row_count": dg.MetadataValue.int(outcome.grade_rows),
            "rows_written": dg.MetadataValue.int(outcome.grade_rows),
            "shadow_rows_written": dg.MetadataValue.int(outcome.shadow_rows),
        },
    )
    yield check_skill_assessments_current(inference_features, warehouse)
    yield check_grade_predictions_current(inference_features, warehouse)


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
