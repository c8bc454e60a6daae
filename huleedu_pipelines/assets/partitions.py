"""The partitions of the inference and monitoring groups: a UTC day times a static shard.

A `date` is one UTC calendar day (`YYYY-MM-DD`): the essays submitted or updated that day. A
`shard` (`0`..`HULEEDU_SCORING_SHARDS - 1`) is the part of those essays whose id hashes to it
(`domain.shards.shard_of`). Each (date, shard) is one partition, one run of
`nightly_inference_job`: a night fans out into independent runs that the run launcher may place
on other machines, and each run writes only its own essays. Dagster writes a key as
`<date>|<shard>`, e.g. `2026-11-21|0`.

A backfill over days is one run per shard over a range of that shard's partitions
(`nightly_partition_range`): the nightly assets have a single-run backfill policy, so Dagster
records a materialization on every (day, shard) partition of the range, and the Backfills page
shows the runs' partition statuses from their range tags.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from huleedu_pipelines.settings import get_settings

DAILY_START_DATE = "2024-01-01"
DATE_DIMENSION = "date"
SHARD_DIMENSION = "shard"

daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START_DATE, timezone="UTC")

SCORING_SHARDS = get_settings().scoring_shards
"""The shard count the definitions were loaded with (`HULEEDU_SCORING_SHARDS`)."""

shard_partitions = dg.StaticPartitionsDefinition([str(i) for i in range(SCORING_SHARDS)])

nightly_partitions = dg.MultiPartitionsDefinition(
    {DATE_DIMENSION: daily_partitions, SHARD_DIMENSION: shard_partitions}
)


def nightly_partition_key(day: dt.date | str, shard: int | str) -> dg.MultiPartitionKey:
    """The partition of `shard` on `day`."""
    date = day if isinstance(day, str) else day.isoformat()
    return dg.MultiPartitionKey({DATE_DIMENSION: date, SHARD_DIMENSION: str(shard)})


def nightly_partition_keys(day: dt.date | str) -> list[dg.MultiPartitionKey]:
    """Every shard's partition of `day`: what one night (or one day of a backfill) runs."""
    return [nightly_partition_key(day, shard) for shard in shard_partitions.get_partition_keys()]


def day_and_shard(partition_key: str | dg.MultiPartitionKey) -> tuple[dt.date, int]:
    """The day and shard of a nightly partition key (`2026-11-21|0` or a MultiPartitionKey)."""
    dimensions = (
        partition_key.keys_by_dimension
        if isinstance(partition_key, dg.MultiPartitionKey)
        else nightly_partitions.get_partition_key_from_str(partition_key).keys_by_dimension
    )
    return dt.date.fromisoformat(dimensions[DATE_DIMENSION]), int(dimensions[SHARD_DIMENSION])


def nightly_partition_range(
    first_day: dt.date, last_day: dt.date, shard: int
) -> dg.PartitionKeyRange:
    """`shard`'s partitions from `first_day` through `last_day`: what one run of a backfill
    covers (a range of a multi-partitioned asset is the box between its two corners)."""
    return dg.PartitionKeyRange(
        str(nightly_partition_key(first_day, shard)), str(nightly_partition_key(last_day, shard))
    )


def days_and_shards(
    partition_keys: Iterable[str | dg.MultiPartitionKey],
) -> list[tuple[dt.date, int]]:
    """The (day, shard) of each key a run targets: one for a night, a range's for a backfill."""
    return [day_and_shard(key) for key in partition_keys]
