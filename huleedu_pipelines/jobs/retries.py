"""Step retries for transient registry and database errors (Dagster's own retry policies).

Only the nightly job's steps get one: everything they write is an upsert on a natural key
(`skill_assessments`, `essay_grade_predictions`, `quarantine`; see services/scoring.py and
warehouse/bulk.py), so a retried step rewrites the same rows. Training steps are not retried:
they register model versions and move aliases, and a gate failure is a decision, not an
accident. A `dg.Failure(allow_retries=False)` (no champion to score with) is not retried.
"""

from __future__ import annotations

import dagster as dg

from huleedu_pipelines.settings import Settings


def transient_retry_policy(settings: Settings) -> dg.RetryPolicy:
    """Up to `retry_max_retries` retries, the n-th after `retry_delay_seconds * 2**(n-1)`
    seconds plus or minus a random share (jitter), so that runs retried together spread out."""
    return dg.RetryPolicy(
        max_retries=settings.retry_max_retries,
        delay=settings.retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
