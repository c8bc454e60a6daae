"""Layer 5: the new-labels sensor against a real warehouse (SQLite and PostgreSQL) and a real
Dagster instance, and the schedules through their cron and the run requests they yield."""

import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from huleedu_pipelines.assets.ingest import raw_essays, raw_labels
from huleedu_pipelines.assets.partitions import SCORING_SHARDS
from huleedu_pipelines.resources import PolarsParquetIOManager, WarehouseResource, build_resources
from huleedu_pipelines.schedules import (
    RetrainTriggerResource,
    new_labels_sensor,
    nightly_inference_schedule,
    schedules,
    sensors,
    weekly_retrain_schedule,
)
from huleedu_pipelines.schedules.sensors import SensorCursor, last_training_watermark
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.tables import essays, ielts_scores, skill_ratings, teacher_grades

THRESHOLD = 5
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
T0_TEXT = "2026-11-01T12:00:00+00:00"
MICROSECOND = dt.timedelta(microseconds=1)

_serial = itertools.count()

_LABEL_ROW: dict[str, Callable[[str, int, dt.datetime | None], dict]] = {
    "teacher_grades": lambda essay, n, at: {
        "essay_id": essay,
        "grade": "C",
        "teacher_id": f"teacher-{n}",
        "graded_at": at,
    },
    "ielts_scores": lambda essay, n, at: {"essay_id": essay, "band": 6.5, "scored_at": at},
    "skill_ratings": lambda essay, n, at: {
        "essay_id": essay,
        "skill": "grammar",
        "rating": 3.5,
        "rater_id": f"rater-{n}",
        "rated_at": at,
    },
}


def add_labels(
    engine: sa.Engine, table: sa.Table, timestamps: Sequence[dt.datetime | None]
) -> None:
    """One valid label per timestamp, each on its own (valid) essay."""
    essay_rows, label_rows = [], []
    for at in timestamps:
        n = next(_serial)
        essay_id = f"essay-{n:05d}"
        essay_rows.append({"essay_id": essay_id, "source": "test", "text": "An essay on tides."})
        label_rows.append(_LABEL_ROW[table.name](essay_id, n, at))
    with engine.begin() as connection:
        connection.execute(sa.insert(essays), essay_rows)
        connection.execute(sa.insert(table), label_rows)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def evaluate(
    instance: dg.DagsterInstance,
    warehouse: sa.Engine,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    """One tick of `new_labels_sensor` with `cursor` (its `SensorExecutionData`)."""
    monkeypatch.setenv("HULEEDU_RETRAIN_MIN_NEW_LABELS", str(THRESHOLD))
    resources = {
        "warehouse": WarehouseResource(url=warehouse_url),
        "retrain_trigger": build_resources(get_settings())["retrain_trigger"],
    }

    def tick(cursor: str | None = None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return new_labels_sensor.evaluate_tick(context)

    return tick


def only_request(tick) -> dg.RunRequest:
    assert tick.skip_message is None
    assert len(tick.run_requests) == 1
    return tick.run_requests[0]


def run_training_job(
    instance: dg.DagsterInstance, assets: list, resources: dict | None = None
) -> dg.ExecuteInProcessResult:
    """A real run named `training_job` on `instance`, over `assets`."""
    job = dg.define_asset_job("training_job", selection=dg.AssetSelection.assets(*assets))
    defs = dg.Definitions(assets=assets, jobs=[job], resources=resources or {})
    return defs.resolve_job_def("training_job").execute_in_process(
        instance=instance, raise_on_error=False
    )


def fake_raw_labels(watermark: str | None) -> dg.AssetsDefinition:
    """An asset keyed `raw_labels` that records `watermark` (None: no watermark entry)."""

    @dg.asset(name="raw_labels")
    def labels() -> dg.MaterializeResult:
        metadata = {} if watermark is None else {"label_watermark": watermark}
        return dg.MaterializeResult(metadata=metadata)

    return labels


@dg.asset(deps=["raw_labels"])
def failing_model() -> None:
    raise RuntimeError("training failed")


@dg.asset
def validation_only() -> None:
    """A later step run on its own: it does not read labels."""


# --- new_labels_sensor -------------------------------------------------------------------


def test_sensor_definition() -> None:
    assert sensors == [new_labels_sensor]
    assert new_labels_sensor.job_name == "training_job"
    assert new_labels_sensor.minimum_interval_seconds == 30
    assert new_labels_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert new_labels_sensor.required_resource_keys == {"warehouse", "retrain_trigger"}


def test_before_any_training_every_label_counts_and_one_run_is_requested(
    evaluate, warehouse: sa.Engine
) -> None:
    tick = evaluate()
    assert tick.run_requests == [] and tick.cursor is None
    assert tick.skip_message.startswith("0 new labels after watermark none")

    # Without a watermark, NULL timestamps count too.
    add_labels(warehouse, teacher_grades, [T0, None])
    add_labels(warehouse, ielts_scores, [T0 - dt.timedelta(days=400)])
    add_labels(warehouse, skill_ratings, [None])
    tick = evaluate()
    assert tick.run_requests == []
    assert tick.skip_message == (
        "4 new labels after watermark none "
        "(teacher_grades 2, ielts_scores 1, skill_ratings 1; threshold 5)"
    )

    add_labels(warehouse, skill_ratings, [T0 + dt.timedelta(days=1)])
    tick = evaluate()
    request = only_request(tick)
    assert request.run_key == "new_labels_after:none"
    assert request.tags == {
        "dagster/sensor_name": "new_labels_sensor",
        "huleedu/new_labels": "5",
        "huleedu/label_watermark": "none",
        "huleedu/watermark_run_id": "none",
    }
    assert json.loads(tick.cursor) == {"requested_watermark": "none", "new_labels": 5}

    # Without the cursor (e.g. reset in the UI) the same key comes back: Dagster launches once.
    assert only_request(evaluate(None)).run_key == "new_labels_after:none"

    # With it, the sensor does not ask again while that training has not succeeded.
    add_labels(warehouse, teacher_grades, [T0])
    again = evaluate(tick.cursor)
    assert again.run_requests == [] and again.cursor == tick.cursor
    assert again.skip_message.startswith(
        "6 new labels after watermark none "
        "(teacher_grades 3, ielts_scores 1, skill_ratings 2; threshold 5): "
        "training already requested for watermark none (5 labels then, "
        "run key new_labels_after:none)."
    )


def test_labels_dated_beyond_the_future_tolerance_are_not_counted(
    evaluate, warehouse: sa.Engine
) -> None:
    """A label dated 2099 neither fills the count nor, via ingest, becomes the watermark."""
    now = dt.datetime.now(dt.UTC)
    add_labels(warehouse, teacher_grades, [T0, T0, now + dt.timedelta(seconds=60)])
    add_labels(warehouse, ielts_scores, [dt.datetime(2099, 1, 1, tzinfo=dt.UTC)])
    add_labels(warehouse, skill_ratings, [now + dt.timedelta(days=2), T0])
    tick = evaluate()
    assert tick.run_requests == []
    assert tick.skip_message == (
        "4 new labels after watermark none "
        "(teacher_grades 3, ielts_scores 0, skill_ratings 1; threshold 5)"
    )


def test_only_labels_after_the_last_successful_training_count(
    evaluate, instance: dg.DagsterInstance, warehouse: sa.Engine, warehouse_url: str, tmp_path
) -> None:
    add_labels(warehouse, teacher_grades, [T0 - dt.timedelta(hours=1), None])
    add_labels(warehouse, ielts_scores, [T0])
    add_labels(warehouse, skill_ratings, [T0 - dt.timedelta(days=3)] * 2)
    before_training = evaluate()
    assert only_request(before_training).tags["huleedu/new_labels"] == "5"

    # A real run named training_job over the real ingest assets records the watermark.
    trained = run_training_job(
        instance,
        [raw_essays, raw_labels],
        {
            "warehouse": WarehouseResource(url=warehouse_url),
            "io_manager": PolarsParquetIOManager(base_dir=str(tmp_path / "storage")),
        },
    )
    assert trained.success
    [materialization] = trained.asset_materializations_for_node("raw_labels")
    assert materialization.metadata["label_watermark"].value == T0_TEXT
    assert last_training_watermark(instance).watermark == T0
    assert last_training_watermark(instance).run_id == trained.run_id

    add_labels(warehouse, teacher_grades, [T0, T0 + MICROSECOND])  # at the watermark: not new
    add_labels(warehouse, ielts_scores, [T0 + dt.timedelta(days=1)])
    add_labels(warehouse, skill_ratings, [None, T0 - dt.timedelta(days=1)])  # never new
    tick = evaluate(before_training.cursor)
    assert tick.skip_message == (
        f"2 new labels after watermark {T0_TEXT} "
        "(teacher_grades 1, ielts_scores 1, skill_ratings 0; threshold 5)"
    )

    add_labels(warehouse, skill_ratings, [T0 + dt.timedelta(hours=2)] * 3)
    # The cursor still names the request made before training; the watermark has moved since.
    tick = evaluate(before_training.cursor)
    request = only_request(tick)
    assert request.run_key == f"new_labels_after:{T0_TEXT}"
    assert request.tags == {
        "dagster/sensor_name": "new_labels_sensor",
        "huleedu/new_labels": "5",
        "huleedu/label_watermark": T0_TEXT,
        "huleedu/watermark_run_id": trained.run_id,
    }
    assert SensorCursor.loads(tick.cursor) == SensorCursor(T0_TEXT, 5)


def test_failed_and_label_free_training_runs_leave_the_watermark_where_it_was(
    evaluate, instance: dg.DagsterInstance, warehouse: sa.Engine
) -> None:
    first = run_training_job(instance, [fake_raw_labels(T0_TEXT)])
    later = (T0 + dt.timedelta(days=2)).isoformat()
    failed = run_training_job(instance, [fake_raw_labels(later), failing_model])
    label_free = run_training_job(instance, [validation_only])
    assert (first.success, failed.success, label_free.success) == (True, False, True)
    assert last_training_watermark(instance).run_id == first.run_id

    add_labels(warehouse, teacher_grades, [T0 + dt.timedelta(days=1)] * 4)
    add_labels(warehouse, ielts_scores, [T0, T0 + dt.timedelta(days=3)])
    request = only_request(evaluate())
    assert request.tags["huleedu/new_labels"] == "5"
    assert request.tags["huleedu/label_watermark"] == T0_TEXT


def test_a_training_without_a_recorded_watermark_counts_every_label(
    evaluate, instance: dg.DagsterInstance, warehouse: sa.Engine
) -> None:
    """raw_labels recorded before `label_watermark` existed, or one that read no label ("")."""
    for watermark in (None, ""):
        assert run_training_job(instance, [fake_raw_labels(watermark)]).success
        basis = last_training_watermark(instance)
        assert basis.watermark is None and basis.run_id is not None
    add_labels(warehouse, teacher_grades, [None, T0])
    assert evaluate().skip_message.startswith("2 new labels after watermark none")


def test_re_execution_from_failure_uses_the_watermark_its_parent_recorded(
    evaluate, instance: dg.DagsterInstance, warehouse: sa.Engine, tmp_path: Path
) -> None:
    gate = tmp_path / "model_may_succeed"
    run_config = {"ops": {"flaky_model": {"config": {"gate": str(gate)}}}}
    job = dg.reconstructable(flaky_training_job)
    with dg.execute_job(job, instance, run_config=run_config) as parent:
        assert not parent.success
    gate.touch()
    options = dg.ReexecutionOptions.from_failure(parent.run_id, instance)
    with dg.execute_job(job, instance, reexecution_options=options) as child:
        assert child.success
        assert child.asset_materializations_for_node("raw_labels") == []

    assert last_training_watermark(instance).run_id == parent.run_id
    add_labels(warehouse, ielts_scores, [T0, T0 + MICROSECOND])
    assert evaluate().skip_message.startswith(f"1 new labels after watermark {T0_TEXT}")


class FlakyModelConfig(dg.Config):
    gate: str


@dg.asset(name="raw_labels")
def watermarked_raw_labels() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"label_watermark": T0_TEXT})


@dg.asset(deps=["raw_labels"])
def flaky_model(config: FlakyModelConfig) -> None:
    if not Path(config.gate).exists():
        raise RuntimeError("training failed this time")


def flaky_training_job() -> dg.JobDefinition:
    job = dg.define_asset_job(
        "training_job",
        selection=dg.AssetSelection.assets(watermarked_raw_labels, flaky_model),
        executor_def=dg.in_process_executor,
    )
    defs = dg.Definitions(assets=[watermarked_raw_labels, flaky_model], jobs=[job])
    return defs.resolve_job_def("training_job")


def test_a_malformed_cursor_is_refused_with_what_to_do(evaluate) -> None:
    with pytest.raises(ValueError, match="clear it in the UI"):
        evaluate("42")


def test_the_retrain_threshold_defaults_to_100(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HULEEDU_RETRAIN_MIN_NEW_LABELS", raising=False)
    assert build_resources(get_settings())["retrain_trigger"].min_new_labels == 100


def test_a_retrain_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RetrainTriggerResource(min_new_labels=0)


# --- schedules ----------------------------------------------------------------------------


def test_weekly_retrain_runs_training_on_sunday_at_two_utc() -> None:
    assert weekly_retrain_schedule in schedules
    assert weekly_retrain_schedule.job_name == "training_job"
    assert weekly_retrain_schedule.cron_schedule == "0 2 * * 0"
    assert weekly_retrain_schedule.execution_timezone == "UTC"
    assert weekly_retrain_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sunday = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    assert sunday.strftime("%A") == "Sunday"
    context = dg.build_schedule_context(scheduled_execution_time=sunday)
    [request] = weekly_retrain_schedule.evaluate_tick(context).run_requests
    assert request.partition_key is None


@pytest.mark.parametrize(
    ("scheduled", "partition"),
    [
        (dt.datetime(2026, 11, 22, 1, 0, tzinfo=dt.UTC), "2026-11-21"),
        (dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC), "2026-11-30"),
        (dt.datetime(2027, 1, 1, 1, 0, tzinfo=dt.UTC), "2026-12-31"),
    ],
)
def test_nightly_inference_scores_the_previous_day_at_one_utc(
    scheduled: dt.datetime, partition: str
) -> None:
    assert nightly_inference_schedule in schedules
    assert nightly_inference_schedule.job_name == "nightly_inference_job"
    assert nightly_inference_schedule.cron_schedule == "0 1 * * *"
    assert nightly_inference_schedule.execution_timezone == "UTC"
    assert nightly_inference_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=scheduled)
    requests = nightly_inference_schedule.evaluate_tick(context).run_requests
    # One run per shard of the previous day (assets/partitions.py).
    keys = [f"{partition}|{shard}" for shard in range(SCORING_SHARDS)]
    assert [r.partition_key for r in requests] == keys
