"""The one feature path: training assets and nightly inference both go through here.

`build_features` = cached text features + cached embeddings + CJ features, assembled into one
row per essay with the feature version and a per-row `feature_hash` (what the row's features
depend on: a changed hash means the essay must be scored again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from huleedu_pipelines.features.bradley_terry import (
    CJ_FEATURE_COLUMNS,
    attach_cj_features,
    cj_features,
)
from huleedu_pipelines.features.embeddings import EMBEDDING_DIM, SentenceEmbedder
from huleedu_pipelines.features.store import (
    CONTENT_HASH,
    CachedResult,
    FeatureCache,
    with_content_hash,
)
from huleedu_pipelines.features.text import (
    TEXT_FEATURE_VERSION,
    TEXT_FEATURES,
    compute_text_features,
)

CJ_FEATURE_VERSION = "cj-bt-map-v1"
EMBEDDING_COLUMNS: tuple[str, ...] = tuple(f"emb_{i:03d}" for i in range(EMBEDDING_DIM))
TEXT_FEATURE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in TEXT_FEATURES)
MODEL_FEATURE_COLUMNS: tuple[str, ...] = (
    *TEXT_FEATURE_COLUMNS,
    *CJ_FEATURE_COLUMNS,
    *EMBEDDING_COLUMNS,
)
"""Columns every model reads, in this order (the ONNX input layout)."""

ProgressCallback = Callable[[int, int], None]


def feature_matrix(frame: pl.DataFrame) -> np.ndarray:
    """The model input matrix in MODEL_FEATURE_COLUMNS order, missing values as NaN."""
    return frame.select(pl.col(MODEL_FEATURE_COLUMNS).cast(pl.Float64)).to_numpy()


def feature_version(embedder: SentenceEmbedder) -> str:
    return f"text={TEXT_FEATURE_VERSION};emb={embedder.version};cj={CJ_FEATURE_VERSION}"


def cached_text_features(essays: pl.DataFrame, cache_root: Path) -> CachedResult:
    """Text features per distinct content hash; `essays` needs text, prompt_text, content_hash."""
    cache = FeatureCache(cache_root, "text", TEXT_FEATURE_VERSION)
    return cache.get_or_compute(
        essays,
        lambda rows: compute_text_features(rows["text"].to_list(), rows["prompt_text"].to_list()),
    )


def cached_embeddings(
    essays: pl.DataFrame,
    cache_root: Path,
    embedder: SentenceEmbedder,
    progress: ProgressCallback | None = None,
) -> CachedResult:
    """384-d embeddings per distinct content hash, computed only for unseen essays."""
    cache = FeatureCache(cache_root, "embeddings", embedder.version)

    def compute(rows: pl.DataFrame) -> pl.DataFrame:
        vectors = embedder.embed(rows["text"].to_list(), progress=progress)
        return pl.DataFrame(vectors.astype(np.float32), schema=list(EMBEDDING_COLUMNS))

    return cache.get_or_compute(essays, compute)


def cj_feature_frame(essay_ids: pl.Series, comparisons: pl.DataFrame) -> pl.DataFrame:
    """CJ features for every essay (nulls and `cj_has_data = 0` where it was never compared)."""
    fitted = cj_features(
        comparisons.select("batch_id", "essay_a_id", "essay_b_id", "winner_essay_id")
    )
    return attach_cj_features(essay_ids, fitted)


def _row_hashes(version: str, frame: pl.DataFrame) -> list[str]:
    cj_values = frame.select(CJ_FEATURE_COLUMNS).rows()
    return [
        hashlib.sha256(f"{version}|{content}|{cj!r}".encode()).hexdigest()[:32]
        for content, cj in zip(frame[CONTENT_HASH].to_list(), cj_values, strict=True)
    ]


def assemble_feature_table(
    essays: pl.DataFrame,
    text: pl.DataFrame,
    embeddings: pl.DataFrame,
    cj: pl.DataFrame,
    version: str,
) -> pl.DataFrame:
    """One row per essay: ids, the model's feature columns, `feature_version`, `feature_hash`.

    `essays` has essay_id and content_hash; `text` and `embeddings` are keyed by content_hash;
    `cj` by essay_id.
    """
    table = (
        essays.select("essay_id", CONTENT_HASH)
        .join(text, on=CONTENT_HASH, how="left", maintain_order="left")
        .join(embeddings, on=CONTENT_HASH, how="left", maintain_order="left")
        .join(cj, on="essay_id", how="left", maintain_order="left")
    )
    table = table.with_columns(
        pl.lit(version).alias("feature_version"),
        pl.Series("feature_hash", _row_hashes(version, table), dtype=pl.String),
    )
    return table.select(
        "essay_id", CONTENT_HASH, "feature_version", "feature_hash", *MODEL_FEATURE_COLUMNS
    )


def current_feature_hashes(
    essays: pl.DataFrame, comparisons: pl.DataFrame, version: str
) -> pl.DataFrame:
    """essay_id, content_hash and feature_hash for `essays` (essay_id, text, prompt_text),
    without computing text features or embeddings: equal to the `feature_hash` that
    `build_features` would give each row, so scoring can tell cheaply which essays changed."""
    keyed = with_content_hash(essays).select("essay_id", CONTENT_HASH)
    table = keyed.join(
        cj_feature_frame(keyed["essay_id"], comparisons),
        on="essay_id",
        how="left",
        maintain_order="left",
    )
    return table.select(
        "essay_id",
        CONTENT_HASH,
        pl.Series("feature_hash", _row_hashes(version, table), dtype=pl.String),
    )


@dataclass(frozen=True)
class FeatureBuild:
    table: pl.DataFrame
    text_computed: int
    text_reused: int
    embeddings_computed: int
    embeddings_reused: int


def build_features(
    essays: pl.DataFrame,
    comparisons: pl.DataFrame,
    cache_root: Path,
    embedder: SentenceEmbedder,
    progress: ProgressCallback | None = None,
) -> FeatureBuild:
    """Features for `essays` (essay_id, text, prompt_text) from the compute-once caches."""
    keyed = with_content_hash(essays)
    text = cached_text_features(keyed, cache_root)
    embeddings = cached_embeddings(keyed, cache_root, embedder, progress)
    cj = cj_feature_frame(keyed["essay_id"], comparisons)
    table = assemble_feature_table(
        keyed, text.frame, embeddings.frame, cj, feature_version(embedder)
    )
    return FeatureBuild(table, text.computed, text.reused, embeddings.computed, embeddings.reused)
