"""The nightly job's partitions (day x shard), its warehouse-write pool and the freshness policy
of its outputs, read off the real Definitions."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from huleedu_pipelines.assets.partitions import (
    SCORING_SHARDS,
    day_and_shard,
    nightly_partition_key,
    nightly_partition_keys,
)
from huleedu_pipelines.definitions import build_definitions
from huleedu_pipelines.settings import Settings, get_settings

NIGHTLY_ASSETS = (
    "inference_features",
    "skill_assessments",
    "essay_grade_predictions",
    "prediction_monitoring",
)


def test_every_nightly_asset_is_partitioned_by_day_and_shard(home) -> None:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    for name in NIGHTLY_ASSETS:
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition), name
        assert {d.name for d in partitions.partitions_defs} == {"date", "shard"}
        shards = partitions.get_partitions_def_for_dimension("shard")
        assert shards.get_partition_keys() == [str(i) for i in range(SCORING_SHARDS)]


def test_partition_keys_of_a_day_name_every_shard_and_parse_back() -> None:
    keys = nightly_partition_keys(dt.date(2026, 11, 21))
    assert [str(k) for k in keys] == [f"2026-11-21|{s}" for s in range(SCORING_SHARDS)]
    assert day_and_shard("2026-11-21|3") == (dt.date(2026, 11, 21), 3)
    assert day_and_shard(nightly_partition_key("2026-11-21", 1)) == (dt.date(2026, 11, 21), 1)


def test_the_shard_count_comes_from_the_setting(home) -> None:
    # The module reads HULEEDU_SCORING_SHARDS once, when the definitions load.
    assert get_settings().scoring_shards == SCORING_SHARDS
    assert Settings.model_fields["scoring_shards"].default == 4


def test_steps_that_write_the_warehouse_share_the_pool(home) -> None:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    pools = {name: graph.get(dg.AssetKey(name)).pools for name in NIGHTLY_ASSETS}
    assert pools["skill_assessments"] == pools["essay_grade_predictions"] == {"warehouse_writes"}
    assert pools["prediction_monitoring"] == {"warehouse_writes"}
    assert not pools["inference_features"]  # embedding is CPU work, not a warehouse write


def test_the_nightly_outputs_must_be_fresh_within_26_hours(home) -> None:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    for name in ("skill_assessments", "essay_grade_predictions"):
        policy = graph.get(dg.AssetKey(name)).freshness_policy
        assert policy is not None, name
        assert policy.fail_window.to_timedelta() == dt.timedelta(hours=26)
    assert graph.get(dg.AssetKey("inference_features")).freshness_policy is None
