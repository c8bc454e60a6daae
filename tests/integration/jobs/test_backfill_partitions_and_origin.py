"""Layers 3/4: a backfill over days through the CLI's in-process runner materializes every
(day, shard) partition it covers, with per-partition row counts that a no-op rerun of a night
keeps; its runs and the backfill record are listed under the job the way the UI asks.

One trained home (real training job, real MLflow store) and one persistent Dagster instance
under its DAGSTER_HOME; the tests run in file order and build on each other's runs.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from huleedu_pipelines.assets.partitions import (
    SCORING_SHARDS,
    day_and_shard,
    nightly_partition_key,
    nightly_partition_keys,
    nightly_partition_range,
)
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.partition_rows import PartitionRows, rows_by_partition

pytestmark = pytest.mark.slow

JOB = "nightly_inference_job"
DAY = dt.date(2026, 10, 31)
FIRST = DAY - dt.timedelta(days=4)
COVERED_DAYS = [FIRST + dt.timedelta(days=n) for n in range((DAY - FIRST).days + 1)]
NIGHTLY_ASSETS = (
    "inference_features",
    "skill_assessments",
    "essay_grade_predictions",
    "prediction_monitoring",
)
SCORE_TABLES = {"skill_assessments": "skill_rows", "essay_grade_predictions": "grade_rows"}


class Home:
    def __init__(self, url: str) -> None:
        from huleedu_pipelines.cli.runs import dagster_instance
        from huleedu_pipelines.definitions import build_definitions

        self.settings = get_settings()
        self.defs = build_definitions(self.settings)
        self.instance = dagster_instance(self.settings)
        self.engine = make_engine(url)

    def partition_rows(self) -> dict[tuple[dt.date, int], PartitionRows]:
        with self.engine.connect() as connection:
            return rows_by_partition(connection, FIRST, DAY, SCORING_SHARDS)

    def latest(self, asset: str, partition: str):
        import dagster as dg

        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
            limit=1,
        ).records
        return records[0].asset_materialization.metadata


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_feature_cache):
    """A trained home (champions promoted) with an empty Dagster instance under DAGSTER_HOME."""
    import dagster as dg
    from support import TRAINING_GROUPS, run_groups, seed_small_trainable_home

    root = tmp_path_factory.mktemp("backfill_partitions")
    with pytest.MonkeyPatch.context() as patch:
        url = seed_small_trainable_home(patch, root, shared_feature_cache, n_essays=420)
        assert run_groups(dg.DagsterInstance.ephemeral(), url, *TRAINING_GROUPS).success
        yield Home(url)


def test_a_backfill_materializes_every_day_and_shard_it_covers(home: Home) -> None:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        BACKFILL_ID_TAG,
    )

    from huleedu_pipelines.cli.runs import run_backfill

    ranges = [nightly_partition_range(FIRST, DAY, shard) for shard in range(SCORING_SHARDS)]
    summary = run_backfill(
        home.defs,
        JOB,
        home.instance,
        home.settings,
        ranges,
        op_config={"inference_features": {"backfill": True}},
    )
    assert summary.success, summary.failures

    covered = {
        str(nightly_partition_key(d, s)) for d in COVERED_DAYS for s in range(SCORING_SHARDS)
    }
    for asset in NIGHTLY_ASSETS:
        assert home.instance.get_materialized_partitions(dg.AssetKey(asset)) == covered, asset

    # Row counts are the current rows of each partition's essays, whatever the run wrote.
    counts = home.partition_rows()
    assert counts and {day for day, _ in counts} <= set(COVERED_DAYS)
    for key in covered:
        expected = counts.get(day_and_shard(key), PartitionRows())
        for asset, field in SCORE_TABLES.items():
            metadata = home.latest(asset, key)
            assert metadata["dagster/row_count"].value == getattr(expected, field), (asset, key)
            assert metadata["partition_essays"].value == expected.essays
        assert home.latest("inference_features", key)["dagster/row_count"].value == (
            expected.essays
        )
    assert sum(rows.skill_rows for rows in counts.values()) > 0
    # The run summary reports the rows written (every essay of the warehouse: a backfill).
    with home.engine.connect() as connection:
        essays = connection.execute(sa.text("SELECT count(*) FROM essays")).scalar_one()
    assert summary.rows_by_asset["essay_grade_predictions"] == essays

    # One backfill record, completed, whose runs are the ranges (one per shard).
    (backfill,) = home.instance.get_backfills()
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    assert backfill.job_name == JOB and set(backfill.partition_names) == covered
    runs = home.instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
    assert sorted(
        (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
        for r in runs
    ) == sorted((r.start, r.end) for r in ranges)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_a_noop_rerun_of_a_night_keeps_its_row_count_and_writes_nothing(home: Home) -> None:
    from huleedu_pipelines.cli.runs import run_partitions

    keys = [str(key) for key in nightly_partition_keys(DAY)]
    before = {key: home.latest("skill_assessments", key) for key in keys}
    summary = run_partitions(
        home.defs,
        JOB,
        home.instance,
        home.settings,
        keys,
        op_config={"inference_features": {"backfill": False}},
    )
    assert summary.success, summary.failures
    assert summary.rows_by_asset["skill_assessments"] == 0
    assert summary.rows_by_asset["essay_grade_predictions"] == 0
    counts = home.partition_rows()
    for key in keys:
        expected = counts.get(day_and_shard(key), PartitionRows())
        for asset, field in SCORE_TABLES.items():
            metadata = home.latest(asset, key)
            assert metadata["rows_written"].value == 0
            assert metadata["dagster/row_count"].value == getattr(expected, field)
        assert (
            home.latest("skill_assessments", key)["dagster/row_count"]
            == before[key]["dagster/row_count"]
        )
    assert any(counts.get(day_and_shard(key), PartitionRows()).skill_rows for key in keys)


def test_cli_runs_and_the_backfill_are_listed_under_their_job(home: Home) -> None:
    """The job's runs page asks for runs of the job carrying the code location's repository
    label (and, in its default view, for the backfills of the job with that label)."""
    from pathlib import Path

    import dagster as dg
    import yaml
    from dagster._core.execution.backfill import BulkActionsFilter
    from dagster._core.storage.tags import BACKFILL_ID_TAG, REPOSITORY_LABEL_TAG

    workspace = yaml.safe_load((Path(__file__).parents[3] / "workspace.yaml").read_text())
    location = workspace["load_from"][0]["python_module"]["location_name"]
    label = f"__repository__@{location}"

    listed = home.instance.get_runs(dg.RunsFilter(job_name=JOB, tags={REPOSITORY_LABEL_TAG: label}))
    assert len(listed) == 2 * SCORING_SHARDS  # the backfill's ranges and the night's shards
    for run in listed:
        assert run.remote_job_origin is not None
        assert run.remote_job_origin.job_name == JOB
        assert run.remote_job_origin.repository_origin.get_label() == label
    nights = [run for run in listed if BACKFILL_ID_TAG not in run.tags]
    assert sorted(run.tags["dagster/partition"] for run in nights) == sorted(
        str(key) for key in nightly_partition_keys(DAY)
    )

    backfills = home.instance.get_backfills(
        filters=BulkActionsFilter(job_name=JOB, tags={REPOSITORY_LABEL_TAG: label})
    )
    assert len(backfills) == 1
    assert backfills[0].partition_set_origin.repository_origin.get_label() == label
    # The job's Partitions tab lists the backfills of its partition set by selector id.
    from dagster._core.definitions.selector import PartitionSetSelector
    from dagster._serdes import create_snapshot_id

    selector = PartitionSetSelector(
        location_name=location,
        repository_name="__repository__",
        partition_set_name=f"{JOB}_partition_set",
    )
    by_selector = home.instance.get_backfills(
        filters=BulkActionsFilter(selector_id=create_snapshot_id(selector))
    )
    assert [b.backfill_id for b in by_selector] == [backfills[0].backfill_id]
