"""Jobs are asset selections, not hand-wired graphs.

Run tags carry the operational rules, so they hold however a run starts (UI, schedule,
sensor, CLI):

- `huleedu/concurrency_group: training` — at most one training run at a time. The instance
  config (`concurrency.runs.tag_concurrency_limits` in dagster.yaml and deploy/dagster.yaml)
  keeps a second one queued, and the in-process runner (`huleedu-pipelines train`, `demo`)
  takes a lock per group under HULEEDU_HOME. Two trainings that interleave would validate and
  promote each other's models.
- `dagster/max_retries` — a failed nightly run is retried (its writes are idempotent upserts);
  a failed training run is not: a gate failure is a decision, and a crash needs a look.

The nightly job's steps also retry in place with backoff and jitter (`op_retry_policy`, from
`HULEEDU_RETRY_MAX_RETRIES` and `HULEEDU_RETRY_DELAY_SECONDS`; see jobs/retries.py), so a
registry or database hiccup costs a step, not a run.
"""

import dagster as dg

from huleedu_pipelines.assets.partitions import nightly_partitions
from huleedu_pipelines.jobs.retries import transient_retry_policy
from huleedu_pipelines.settings import get_settings

TRAINING_GROUPS = ("ingest", "labels", "features", "training", "validation")
NIGHTLY_GROUPS = ("inference", "monitoring")

CONCURRENCY_GROUP_TAG = "huleedu/concurrency_group"
"""Runs sharing a value of this tag never run at the same time (limit 1 per value)."""
TRAINING_CONCURRENCY_GROUP = "training"
MAX_RETRIES_TAG = "dagster/max_retries"
NIGHTLY_MAX_RETRIES = 2

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups(*TRAINING_GROUPS),
    description="Ingest, labels, features, training, validation and promotion, in order.",
    tags={CONCURRENCY_GROUP_TAG: TRAINING_CONCURRENCY_GROUP, MAX_RETRIES_TAG: "0"},
)

nightly_inference_job = dg.define_asset_job(
    "nightly_inference_job",
    selection=dg.AssetSelection.groups(*NIGHTLY_GROUPS),
    partitions_def=nightly_partitions,
    description=(
        "Score one shard of one day's new or changed essays with every champion model "
        "(challenger shadow scores beside them) and monitor the predictions against the "
        "training reference. A night is one run per shard (partition `<date>|<shard>`)."
    ),
    tags={MAX_RETRIES_TAG: str(NIGHTLY_MAX_RETRIES)},
    op_retry_policy=transient_retry_policy(get_settings()),
)

__all__ = [
    "CONCURRENCY_GROUP_TAG",
    "NIGHTLY_GROUPS",
    "TRAINING_CONCURRENCY_GROUP",
    "TRAINING_GROUPS",
    "nightly_inference_job",
    "training_job",
]
