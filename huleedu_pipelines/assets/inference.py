"""Group `inference` (daily partitions): the day's new or changed essays scored with every
champion model, challenger shadow scores beside them, upserted into the warehouse tables the
product reads (`skill_assessments`, `essay_grade_predictions`)."""

import datetime as dt
import time

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.inference_checks import (
    CHECK_SPECS,
    check_grade_predictions_current,
    check_skill_assessments_current,
)
from huleedu_pipelines.assets.ingest import split_valid_rows
from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata
from huleedu_pipelines.assets.partitions import daily_partitions
from huleedu_pipelines.domain.input_rules import comparison_problem, essay_text_problem
from huleedu_pipelines.features.build import current_feature_hashes, feature_version
from huleedu_pipelines.modeling.names import CHAMPION
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    MlflowRegistryResource,
    ScoringResource,
    WarehouseResource,
)
from huleedu_pipelines.services.scoring import (
    build_scoring_features,
    current_scores,
    expected_current_rows,
    load_serving_models,
    read_comparisons,
    read_essays,
    score_essays,
    select_essays,
    submitted_or_updated_on,
)
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.serving import serving_versions
from huleedu_pipelines.warehouse.tables import cj_comparison_pairs, essays
from huleedu_pipelines.warehouse.writes import write_quarantine

GROUP = "inference"


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
    partitions_def=daily_partitions,
    kinds={"polars", "parquet"},
    owners=OWNERS,
    # Scores follow the champions: after a promotion the UI shows the day's scores as stale.
    deps=["promoted_models"],
)
def inference_features(
    context: dg.AssetExecutionContext,
    config: InferenceConfig,
    warehouse: WarehouseResource,
    feature_store: FeatureStoreResource,
    embedder: EmbedderResource,
) -> dg.Output[pl.DataFrame]:
    """Model inputs of the essays to score for the day: submitted or updated that day, or
    whose features changed since they were last scored (every essay in a backfill). Built by
    the same cached feature path as training; essays whose features cannot be computed are
    quarantined."""
    day = dt.date.fromisoformat(context.partition_key)
    # Ingest's length limit applies here too: no essay costs minutes of embedding every night.
    max_chars = get_settings().max_essay_chars
    engine = warehouse.migrated_engine()
    with engine.connect() as connection:
        all_essays = read_essays(connection)
        comparisons = read_comparisons(connection)
        current = current_scores(connection)
        champions = serving_versions(connection, CHAMPION)
    valid, bad_essays = split_valid_rows(
        all_essays, essays, lambda row: essay_text_problem(row["text"], max_chars)
    )
    if not config.backfill:
        on_day = set(all_essays.filter(submitted_or_updated_on(day))["essay_id"].to_list())
        bad_essays = [entry for entry in bad_essays if entry.source_key in on_day]
    known = set(valid["essay_id"].to_list())
    comparisons, _ = split_valid_rows(
        comparisons,
        cj_comparison_pairs,
        lambda r: comparison_problem(r["essay_a_id"], r["essay_b_id"], r["winner_essay_id"], known),
    )
    sentence_embedder = embedder.embedder()
    hashes = current_feature_hashes(
        valid.select("essay_id", "text", "prompt_text"),
        comparisons,
        feature_version(sentence_embedder),
    )
    selected = select_essays(
        valid.join(hashes.select("essay_id", "feature_hash"), on="essay_id"),
        current,
        None if config.backfill else day,
        expected_current_rows(champions),
    )
    context.log.info(
        f"{selected.height} essays to consider for {day} "
        f"({'backfill' if config.backfill else 'new, updated or changed'}); building features"
    )
    build = build_scoring_features(
        selected, comparisons, feature_store.root, sentence_embedder, _log_progress(context)
    )
    with engine.begin() as connection:
        write_quarantine(connection, bad_essays + build.failures, run_id=context.run_id)
    for entry in (bad_essays + build.failures)[:20]:
        context.log.warning(f"quarantined essay {entry.source_key}: {entry.reason}")
    frame = build.table
    reasons = dict(frame.group_by("selected_because").len().sort("selected_because").iter_rows())
    return dg.Output(
        frame,
        metadata=frame_metadata(frame.select(frame.columns[:8]))
        | {
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "selected_because": dg.MetadataValue.json(reasons),
            "backfill": dg.MetadataValue.bool(config.backfill),
            "quarantined_essays": dg.MetadataValue.int(len(bad_essays) + len(build.failures)),
            "embeddings_computed": dg.MetadataValue.int(build.embeddings_computed),
            "embeddings_reused": dg.MetadataValue.int(build.embeddings_reused),
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
            description=(
                "Per essay and skill: P(high skill), confidence and the five largest TreeSHAP "
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
            description=(
                "Per essay: Swedish grade with its 8 probabilities and confidence, CEFR with "
                "its probabilities, IELTS band, and `needs_review` when the grade model is "
                "unsure; from the champion versions (challenger shadow rows beside them)."
            ),
        ),
    ],
    ins={"inference_features": dg.AssetIn()},
    check_specs=CHECK_SPECS,
    partitions_def=daily_partitions,
    can_subset=False,
)
def nightly_scores(
    context: dg.AssetExecutionContext,
    inference_features: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
    scoring: ScoringResource,
):
    """Score the day's essays with every champion (and differing challenger) model and upsert
    the rows, one transaction per table and chunk of essays."""
    loading = time.perf_counter()
    engine = warehouse.migrated_engine()
    with engine.connect() as connection:
        recorded = serving_versions(connection, CHAMPION)
    versions = inference_features["feature_version"].unique().to_list()
    models = load_serving_models(
        mlflow,
        recorded_champions=recorded,
        feature_version=versions[0] if len(versions) == 1 else None,
        shadow=scoring.shadow_scoring,
    )
    load_seconds = time.perf_counter() - loading
    for problem in models.problems.values():
        context.log.error(problem)
    if not models.champions:
        raise dg.Failure(
            description=(
                "No champion can serve, so nothing was scored: "
                + (
                    f"{len(models.refused)} champions were refused (see problems)"
                    if models.refused
                    else "no model has a champion version; run training_job (or "
                    "`huleedu-pipelines train`) until models pass their gates"
                )
            ),
            metadata={"problems": dg.MetadataValue.json(models.problems)},
        )
    outcome = score_essays(
        engine,
        inference_features,
        models,
        run_id=context.run_id,
        review_threshold=scoring.review_confidence_threshold,
        explain_scope=scoring.explain_scope,
        chunk_size=scoring.chunk_size,
        n_jobs=scoring.n_jobs,
        log=context.log.info,
    )
    context.log.info(
        f"scored {outcome.essays_scored} essays ({outcome.essays_unchanged} unchanged) in "
        f"{outcome.total_seconds:.1f} s: {outcome.skill_rows} skill rows, "
        f"{outcome.grade_rows} grade rows ({outcome.shadow_rows} shadow)"
    )
    common = {
        "essays_considered": dg.MetadataValue.int(outcome.essays_considered),
        "essays_scored": dg.MetadataValue.int(outcome.essays_scored),
        "essays_skipped_unchanged": dg.MetadataValue.int(outcome.essays_unchanged),
        "essays_per_second": dg.MetadataValue.float(round(outcome.essays_per_second, 1)),
        "seconds_total": dg.MetadataValue.float(round(outcome.total_seconds, 3)),
        "seconds_writing": dg.MetadataValue.float(round(outcome.write_seconds, 3)),
        "seconds_loading_models": dg.MetadataValue.float(round(load_seconds, 3)),
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
