"""`new_labels_sensor`: retrain once enough labels have arrived since the last training.

The watermark is the newest `labelled_at` among the valid labels that the last successful
`training_job` run trained on; `raw_labels` records it as `label_watermark` metadata. A label is
new when its timestamp (`teacher_grades.graded_at`, `ielts_scores.scored_at`,
`skill_ratings.rated_at`) is strictly after the watermark: a label at exactly the watermark was
already in that snapshot.

- A NULL timestamp cannot be after anything, so such a label counts only while there is no
  watermark (no successful training yet, or one that read no valid label), when every label does.
- Labels are counted as the warehouse holds them, before validation: ones that ingest will
  quarantine count too (telling them apart here would mean repeating ingest's rules in SQL).
- A label written late with a timestamp at or before the watermark is never new; the weekly
  retrain picks it up.
- A label dated later than now by more than `HULEEDU_MAX_FUTURE_SKEW_SECONDS` is not counted
  (ingest quarantines it), so one label dated 2099 cannot keep the count up for ever or, as
  the watermark, hide every label after it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa

from huleedu_pipelines.assets.ingest import raw_labels
from huleedu_pipelines.assets.metadata import LABEL_WATERMARK_KEY
from huleedu_pipelines.jobs import training_job
from huleedu_pipelines.resources import WarehouseResource
from huleedu_pipelines.resources.retrain_trigger import RetrainTriggerResource
from huleedu_pipelines.warehouse.tables import ielts_scores, skill_ratings, teacher_grades

LABEL_TIMESTAMPS: tuple[sa.Column, ...] = (
    teacher_grades.c.graded_at,
    ielts_scores.c.scored_at,
    skill_ratings.c.rated_at,
)

NO_WATERMARK = "none"
"""How a missing watermark reads in run keys, tags and messages."""

RUN_PAGE_SIZE = 50

TAG_NEW_LABELS = "huleedu/new_labels"
TAG_LABEL_WATERMARK = "huleedu/label_watermark"
TAG_WATERMARK_RUN = "huleedu/watermark_run_id"


@dataclass(frozen=True)
class TrainingWatermark:
    """The newest label the last successful training read, and the run that recorded it."""

    watermark: dt.datetime | None
    run_id: str | None
    """The run whose `raw_labels` materialization holds the watermark (None: no training)."""

    @property
    def text(self) -> str:
        return self.watermark.isoformat() if self.watermark else NO_WATERMARK


@dataclass(frozen=True)
class SensorCursor:
    """What the sensor last requested a run for, stored as JSON in the sensor's cursor."""

    requested_watermark: str
    new_labels: int

    def dumps(self) -> str:
        return json.dumps(
            {"requested_watermark": self.requested_watermark, "new_labels": self.new_labels}
        )

    @classmethod
    def loads(cls, cursor: str | None) -> SensorCursor | None:
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
            return cls(str(data["requested_watermark"]), int(data["new_labels"]))
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(
                f"new_labels_sensor cursor {cursor!r} is not "
                '{"requested_watermark": "...", "new_labels": N}; clear it in the UI '
                "(the run key still prevents a duplicate request)"
            ) from error


def parse_watermark(text: str, run_id: str) -> dt.datetime | None:
    """The `label_watermark` text of run `run_id` as an aware UTC datetime ("" means none)."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(
            f"raw_labels in run {run_id} recorded {LABEL_WATERMARK_KEY}={text!r}, which is not "
            "an ISO-8601 timestamp; re-run training_job to record a new one"
        ) from error
    if value.tzinfo is None:
        raise ValueError(
            f"raw_labels in run {run_id} recorded {LABEL_WATERMARK_KEY}={text!r} without a "
            "timezone; re-run training_job to record a UTC one"
        )
    return value.astimezone(dt.UTC)


def _raw_labels_materialization(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> tuple[str, dg.AssetMaterialization] | None:
    """The `raw_labels` materialization a successful run trained on, with its run id.

    A re-execution from failure does not repeat steps that had succeeded, so when the run did
    not materialize `raw_labels` itself, its parent runs are searched.
    """
    current: dg.DagsterRun | None = run
    while current is not None:
        records = instance.get_records_for_run(
            current.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        found = [
            record.asset_materialization
            for record in records
            if record.asset_key == raw_labels.key and record.asset_materialization is not None
        ]
        if found:
            return current.run_id, found[-1]
        parent_id = current.parent_run_id
        current = instance.get_run_by_id(parent_id) if parent_id is not None else None
    return None


def last_training_watermark(instance: dg.DagsterInstance) -> TrainingWatermark:
    """The watermark of the newest successful `training_job` run that read labels.

    Runs that succeeded without `raw_labels` (a selection of later steps only) did not train on
    new labels, so the search goes on to older successful runs.
    """
    filters = dg.RunsFilter(job_name=training_job.name, statuses=[dg.DagsterRunStatus.SUCCESS])
    cursor: str | None = None
    while True:
        runs = instance.get_runs(filters=filters, cursor=cursor, limit=RUN_PAGE_SIZE)
        for run in runs:
            found = _raw_labels_materialization(instance, run)
            if found is None:
                continue
            run_id, materialization = found
            # A materialization recorded before the watermark existed reads as "no watermark":
            # every label counts once, and the training it triggers records one.
            entry = materialization.metadata.get(LABEL_WATERMARK_KEY)
            text = str(entry.value) if entry is not None else ""
            return TrainingWatermark(parse_watermark(text, run_id), run_id)
        if len(runs) < RUN_PAGE_SIZE:
            return TrainingWatermark(None, None)
        cursor = runs[-1].run_id


def count_labels_after(
    connection: sa.Connection, watermark: dt.datetime | None, until: dt.datetime | None = None
) -> dict[str, int]:
    """Labels per table with a timestamp after `watermark` (every label when it is None) and
    not after `until` (future-dated labels are ingest's to quarantine), in one round trip of
    COUNTs."""
    counts = []
    for column in LABEL_TIMESTAMPS:
        query = sa.select(sa.func.count()).select_from(column.table)
        if watermark is not None:
            query = query.where(column > watermark)
        if until is not None:
            query = query.where(sa.or_(column.is_(None), column <= until))
        counts.append(query.scalar_subquery().label(column.table.name))
    row = connection.execute(sa.select(*counts)).one()
    return {name: int(value) for name, value in row._mapping.items()}


def run_key_for(watermark: TrainingWatermark) -> str:
    """One training request per watermark: until a training succeeds and moves the watermark,
    every request carries the same key and Dagster launches it once."""
    return f"new_labels_after:{watermark.text}"


@dg.sensor(
    job=training_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests training_job when at least HULEEDU_RETRAIN_MIN_NEW_LABELS labels are newer "
        "than the label watermark of the last successful training run."
    ),
)
def new_labels_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    retrain_trigger: RetrainTriggerResource,
) -> dg.SensorResult:
    requested = SensorCursor.loads(context.cursor)
    basis = last_training_watermark(context.instance)
    with warehouse.migrated_engine().connect() as connection:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(
            seconds=retrain_trigger.max_future_skew_seconds
        )
        by_table = count_labels_after(connection, basis.watermark, until)
    new_labels = sum(by_table.values())
    threshold = retrain_trigger.min_new_labels
    counted = (
        f"{new_labels} new labels after watermark {basis.text} "
        f"({', '.join(f'{table} {n}' for table, n in by_table.items())}; "
        f"threshold {threshold})"
    )
    if new_labels < threshold:
        return dg.SensorResult(skip_reason=dg.SkipReason(counted))

    if requested is not None and requested.requested_watermark == basis.text:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"{counted}: training already requested for watermark {basis.text} "
                f"({requested.new_labels} labels then, run key {run_key_for(basis)}). The "
                "watermark moves when a training run succeeds; if one has and it did not, the "
                "new labels were quarantined by ingest."
            )
        )

    context.log.info(f"{counted}: requesting training_job")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key_for(basis),
                tags={
                    TAG_NEW_LABELS: str(new_labels),
                    TAG_LABEL_WATERMARK: basis.text,
                    TAG_WATERMARK_RUN: basis.run_id or NO_WATERMARK,
                },
            )
        ],
        cursor=SensorCursor(basis.text, new_labels).dumps(),
    )
