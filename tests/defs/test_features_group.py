"""Layer 3: the features group computes once, and inference's `build_features` agrees with it."""

import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa

from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, build_features
from huleedu_pipelines.features.embeddings import SentenceEmbedder
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.tables import essays

pytestmark = pytest.mark.slow

N_ESSAYS = 200


def metadata_of(result, asset: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == asset
    ]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_features_are_computed_once_and_shared_with_inference(
    home, tmp_path, materialize_groups, as_of, monkeypatch
) -> None:
    monkeypatch.setenv("HULEEDU_FEATURE_CACHE_DIR", str(tmp_path / "own_cache"))  # count all
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    seed_demo_warehouse(
        engine,
        n_essays=N_ESSAYS,
        seed=3,
        as_of=as_of,
        bad_rows=0,
        latent_truth_path=tmp_path / "truth.parquet",
    )
    first = materialize_groups(url, "ingest", "features")
    assert first.success
    assert metadata_of(first, "text_features")["computed_essays"] == N_ESSAYS
    assert metadata_of(first, "essay_embeddings")["computed_essays"] == N_ESSAYS
    before = first.output_for_node("feature_table")
    assert before.height == N_ESSAYS
    assert before.select(MODEL_FEATURE_COLUMNS).columns == list(MODEL_FEATURE_COLUMNS)
    assert all(c.passed for c in first.get_asset_check_evaluations())

    changed = before["essay_id"].sort().head(N_ESSAYS // 100).to_list()  # 1% of essays
    with engine.begin() as connection:
        for essay_id in changed:
            connection.execute(
                sa.update(essays)
                .where(essays.c.essay_id == essay_id)
                .values(
                    text=essays.c.text + " I have revised this essay after feedback.",
                    updated_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                )
            )
    second = materialize_groups(url, "ingest", "features")
    for asset in ("text_features", "essay_embeddings"):
        meta = metadata_of(second, asset)
        assert (meta["computed_essays"], meta["reused_from_cache"]) == (
            len(changed),
            N_ESSAYS - len(changed),
        ), asset
    after = second.output_for_node("feature_table")
    moved = after.join(before, on="essay_id", suffix="_before").filter(
        pl.col("feature_hash") != pl.col("feature_hash_before")
    )
    assert sorted(moved["essay_id"].to_list()) == sorted(changed)

    # Inference's path: the very same function, served from the same cache.
    raw_essays = second.output_for_node("raw_essays")
    comparisons = second.output_for_node("cj_comparisons")
    built = build_features(
        raw_essays, comparisons, get_settings().feature_cache_dir, SentenceEmbedder(num_threads=2)
    )
    assert (built.text_computed, built.embeddings_computed) == (0, 0)
    assert built.table.sort("essay_id").equals(after.sort("essay_id"))
