"""Group `features`: handcrafted text features, sentence embeddings and CJ features, joined
into `feature_table`. Text features and embeddings are computed once per essay content and
feature version; re-materializing recomputes only essays whose text changed."""

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata, k8s_step_resources
from huleedu_pipelines.features.build import (
    MODEL_FEATURE_COLUMNS,
    assemble_feature_table,
    cached_embeddings,
    cached_text_features,
    cj_feature_frame,
    feature_version,
)
from huleedu_pipelines.features.store import CONTENT_HASH, CachedResult, with_content_hash
from huleedu_pipelines.features.text import TEXT_FEATURES, FeatureSpec
from huleedu_pipelines.resources.features import EmbedderResource, FeatureStoreResource

GROUP = "features"


def _cache_metadata(computed: int, reused: int) -> dict:
    return {
        "computed_essays": dg.MetadataValue.int(computed),
        "reused_from_cache": dg.MetadataValue.int(reused),
    }


def _per_essay(keyed: pl.DataFrame, by_hash: pl.DataFrame) -> pl.DataFrame:
    return keyed.select("essay_id", CONTENT_HASH).join(
        by_hash, on=CONTENT_HASH, how="left", maintain_order="left"
    )


def _documented_output(
    context: dg.AssetExecutionContext,
    label: str,
    keyed: pl.DataFrame,
    result: CachedResult,
    specs: tuple[FeatureSpec, ...],
) -> dg.Output[pl.DataFrame]:
    """Cached features per essay, with cache counts and the features' definitions table."""
    context.log.info(f"{label}: {result.computed} computed, {result.reused} reused")
    frame = _per_essay(keyed, result.frame)
    rows = "\n".join(f"| {spec.name} | {spec.definition} | {spec.unit} |" for spec in specs)
    definitions = "| feature | definition | unit |\n|---|---|---|\n" + rows
    return dg.Output(
        frame,
        metadata=frame_metadata(frame)
        | _cache_metadata(result.computed, result.reused)
        | {"feature_definitions": dg.MetadataValue.md(definitions)},
    )


@dg.asset(group_name=GROUP, kinds={"polars", "parquet"}, owners=OWNERS)
def text_features(
    context: dg.AssetExecutionContext, raw_essays: pl.DataFrame, feature_store: FeatureStoreResource
) -> dg.Output[pl.DataFrame]:
    """Handcrafted text features per essay (length, syntax, vocabulary, errors, cohesion, prompt
    relevance); definitions and units are in `features/text.py`."""
    keyed = with_content_hash(raw_essays)
    result = cached_text_features(keyed, feature_store.root)
    return _documented_output(context, "text features", keyed, result, TEXT_FEATURES)


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    owners=OWNERS,
    op_tags=k8s_step_resources(cpu="2", memory="4Gi"),
)
def essay_embeddings(
    context: dg.AssetExecutionContext,
    raw_essays: pl.DataFrame,
    feature_store: FeatureStoreResource,
    embedder: EmbedderResource,
) -> dg.Output[pl.DataFrame]:
    """384-dimensional all-MiniLM-L6-v2 embeddings per essay (long essays chunked and
    mean-pooled), L2-normalised."""
    keyed = with_content_hash(raw_essays)
    reported = [0]

    def progress(done: int, total: int) -> None:
        if done == total or done - reported[0] >= max(total // 10, 1):
            reported[0] = done
            context.log.info(f"embedded {done}/{total} chunks")

    result = cached_embeddings(keyed, feature_store.root, embedder.embedder(), progress)
    context.log.info(f"embeddings: {result.computed} computed, {result.reused} reused")
    frame = _per_essay(keyed, result.frame)
    return dg.Output(
        frame,
        metadata=frame_metadata(frame, preview_columns=8)
        | _cache_metadata(result.computed, result.reused),
    )


@dg.asset(group_name=GROUP, kinds={"polars"}, owners=OWNERS)
def cj_features(raw_essays: pl.DataFrame, cj_comparisons: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Bradley–Terry ability, its standard error, rank, comparison count, win rate and
    comparison variance per essay from CJ comparisons; nulls and `cj_has_data = 0` otherwise."""
    frame = cj_feature_frame(raw_essays["essay_id"], cj_comparisons)
    return dg.Output(
        frame,
        metadata=frame_metadata(frame)
        | {"essays_with_cj": dg.MetadataValue.int(int(frame["cj_has_data"].sum()))},
    )


@dg.asset(group_name=GROUP, kinds={"polars", "parquet"}, owners=OWNERS)
def feature_table(
    text_features: pl.DataFrame,
    essay_embeddings: pl.DataFrame,
    cj_features: pl.DataFrame,
    embedder: EmbedderResource,
) -> dg.Output[pl.DataFrame]:
    """One row per essay with every model input, the feature version and a per-row
    `feature_hash` (changes exactly when the essay's features do)."""
    version = feature_version(embedder.embedder())
    table = assemble_feature_table(
        text_features.select("essay_id", CONTENT_HASH),
        text_features.drop("essay_id").unique(CONTENT_HASH, keep="first"),
        essay_embeddings.drop("essay_id").unique(CONTENT_HASH, keep="first"),
        cj_features,
        version,
    )
    return dg.Output(
        table,
        metadata=frame_metadata(table)
        | {
            "feature_version": dg.MetadataValue.text(version),
            "feature_columns": dg.MetadataValue.int(len(MODEL_FEATURE_COLUMNS)),
        },
    )
