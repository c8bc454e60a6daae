"""Time-based automation: a weekly retrain and the nightly scoring of the previous day.

Both start RUNNING: a deployment that loads these definitions should retrain and score without
someone switching them on in the UI (the sensor does the same). Times are UTC, like the daily
partitions.
"""

import dagster as dg

from huleedu_pipelines.jobs import nightly_inference_job, training_job

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job=training_job,
    cron_schedule="0 2 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Retrains every Sunday at 02:00 UTC, whatever the label count: picks up labels the "
        "new-labels sensor cannot see (late rows with old timestamps) and retries a failed "
        "sensor-requested training."
    ),
)

nightly_inference_schedule = dg.build_schedule_from_partitioned_job(
    nightly_inference_job,
    name="nightly_inference_schedule",
    hour_of_day=1,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Scores the previous UTC day at 01:00 UTC, once that day is complete: one run per "
        "shard of the day (HULEEDU_SCORING_SHARDS), which the run queue places on workers."
    ),
)
