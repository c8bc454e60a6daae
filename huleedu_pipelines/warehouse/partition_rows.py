"""How many rows of the nightly output tables belong to each (day, shard) partition: the
`dagster/row_count` of `skill_assessments` and `essay_grade_predictions` per partition.

An essay belongs to the UTC day it was last written (its `updated_at`, else its
`submitted_at`) and to its shard (`domain.shards.shard_of`): the partition whose night scores
it as new or updated. A partition's rows are the `current_*` rows of its essays (one per skill
champion, one grade row), so each essay counts in exactly one partition and a rerun that
writes nothing reports the same count. Read through the indexes on both timestamps, then
per essay through the output tables' unique keys (which lead with `essay_id`); no text is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from huleedu_pipelines.domain.shards import shard_of
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
)
from huleedu_pipelines.warehouse.tables import essays


@dataclass(frozen=True)
class PartitionRows:
    essays: int = 0
    """Essays last written that day, in that shard."""
    skill_rows: int = 0
    """Their rows in `current_skill_assessments`."""
    grade_rows: int = 0
    """Their rows in `current_essay_grade_predictions`."""


def _window(first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    return start, dt.datetime.combine(last_day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)


def last_written_day(submitted_at: dt.datetime | None, updated_at: dt.datetime | None):
    """The UTC day an essay was last written (None when it has neither timestamp)."""
    stamps = [stamp for stamp in (submitted_at, updated_at) if stamp is not None]
    return max(stamps).astimezone(dt.UTC).date() if stamps else None


def essay_days(
    connection: sa.Connection, first_day: dt.date, last_day: dt.date
) -> dict[str, dt.date]:
    """essay_id -> the day it was last written, for essays last written in
    [first_day, last_day]: those submitted or updated in that window (one indexed range query
    per timestamp), kept when their latest write falls inside it."""
    start, end = _window(first_day, last_day)
    columns = (essays.c.essay_id, essays.c.submitted_at, essays.c.updated_at)
    rows = {
        row.essay_id: row
        for column in (essays.c.submitted_at, essays.c.updated_at)
        for row in connection.execute(sa.select(*columns).where(column >= start, column < end))
    }
    days = {
        essay_id: last_written_day(row.submitted_at, row.updated_at)
        for essay_id, row in rows.items()
    }
    return {
        essay_id: day
        for essay_id, day in days.items()
        if day is not None and first_day <= day <= last_day
    }


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), IN_LIST_LIMIT):
        yield values[start : start + IN_LIST_LIMIT]


def _current_counts(connection: sa.Connection, view: sa.Table, ids: Sequence[str]) -> dict:
    counts: dict[str, int] = {}
    for chunk in _chunks(ids):
        query = (
            sa.select(view.c.essay_id, sa.func.count())
            .where(view.c.essay_id.in_(chunk))
            .group_by(view.c.essay_id)
        )
        counts.update(connection.execute(query).tuples().all())
    return counts


def rows_by_partition(
    connection: sa.Connection,
    first_day: dt.date,
    last_day: dt.date,
    shards: int,
    only_shards: Iterable[int] | None = None,
) -> dict[tuple[dt.date, int], PartitionRows]:
    """(day, shard) -> its essays and current rows, for every partition of the days
    [first_day, last_day] (of `only_shards` when given) that holds an essay. A partition
    missing from the result holds none."""
    keep = None if only_shards is None else set(only_shards)
    located = {
        essay_id: (day, shard_of(essay_id, shards))
        for essay_id, day in essay_days(connection, first_day, last_day).items()
    }
    if keep is not None:
        located = {essay_id: key for essay_id, key in located.items() if key[1] in keep}
    ids = sorted(located)
    skills = _current_counts(connection, current_skill_assessments, ids)
    grades = _current_counts(connection, current_essay_grade_predictions, ids)
    totals: dict[tuple[dt.date, int], list[int]] = {}
    for essay_id, key in located.items():
        total = totals.setdefault(key, [0, 0, 0])
        total[0] += 1
        total[1] += skills.get(essay_id, 0)
        total[2] += grades.get(essay_id, 0)
    return {key: PartitionRows(*total) for key, total in totals.items()}


def first_essay_day(connection: sa.Connection) -> dt.date | None:
    """The earliest UTC day an essay was submitted or updated (None in an empty warehouse)."""
    earliest = [
        connection.execute(sa.select(sa.func.min(column))).scalar_one()
        for column in (essays.c.submitted_at, essays.c.updated_at)
    ]
    stamps = [stamp for stamp in earliest if stamp is not None]
    return min(stamps).astimezone(dt.UTC).date() if stamps else None
