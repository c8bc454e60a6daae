"""Which (day, shard) partition an essay's rows belong to: the day it was last written."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from huleedu_pipelines.domain.shards import shard_of
from huleedu_pipelines.warehouse.partition_rows import (
    PartitionRows,
    essay_days,
    first_essay_day,
    rows_by_partition,
)
from huleedu_pipelines.warehouse.tables import essays

DAY = dt.date(2026, 10, 30)


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _essay(essay_id: str, submitted: dt.datetime | None, updated: dt.datetime | None) -> dict:
    return {
        "essay_id": essay_id,
        "source": "t",
        "text": "x",
        "submitted_at": submitted,
        "updated_at": updated,
    }


def test_an_essay_belongs_to_the_day_it_was_last_written(warehouse) -> None:
    before, after = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    with warehouse.begin() as connection:
        assert first_essay_day(connection) is None
        connection.execute(
            sa.insert(essays),
            [
                _essay("new", _at(DAY, 23), None),
                _essay("edited", _at(before), _at(DAY, 0)),
                _essay("edited-later", _at(DAY), _at(after)),
                _essay("older", _at(before), None),
                _essay("undated", None, None),
            ],
        )
    with warehouse.connect() as connection:
        assert essay_days(connection, DAY, DAY) == {"new": DAY, "edited": DAY}
        assert essay_days(connection, before, after) == {
            "new": DAY,
            "edited": DAY,
            "edited-later": after,
            "older": before,
        }
        assert first_essay_day(connection) == before
        counts = rows_by_partition(connection, DAY, DAY, 4)
    # No scores yet: the partitions hold their essays and no rows.
    expected: dict = {}
    for essay_id in ("new", "edited"):
        key = (DAY, shard_of(essay_id, 4))
        expected[key] = PartitionRows(essays=expected.get(key, PartitionRows()).essays + 1)
    assert counts == expected
