"""The one place the Dagster Definitions are assembled."""

from __future__ import annotations

import dagster as dg

from huleedu_pipelines.assets import (
    coherence,
    features,
    features_checks,
    inference,
    ingest,
    ingest_checks,
    labels,
    monitoring,
    training,
    training_checks,
    validation,
    validation_checks,
)
from huleedu_pipelines.jobs import nightly_inference_job, training_job
from huleedu_pipelines.resources import build_resources
from huleedu_pipelines.schedules import schedules, sensors
from huleedu_pipelines.schedules.alerts import build_run_failure_alert_sensor
from huleedu_pipelines.settings import Settings, get_settings


def run_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor every job runs its steps with (`HULEEDU_RUN_EXECUTOR`); None keeps
    Dagster's default, a process per step."""
    if settings.run_executor == "k8s_job":
        from dagster_k8s import k8s_job_executor  # the image's `deploy` extra

        return k8s_job_executor
    return None


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to `settings` (tests pass their own; the code location uses the env)."""
    return dg.Definitions(
        executor=run_executor(settings),
        assets=dg.load_assets_from_modules(
            [ingest, labels, features, training, validation, coherence, inference, monitoring]
        ),
        asset_checks=dg.load_asset_checks_from_modules(
            [ingest_checks, features_checks, training_checks, validation_checks]
        ),
        jobs=[training_job, nightly_inference_job],
        schedules=schedules,
        sensors=[*sensors, build_run_failure_alert_sensor(settings)],
        resources=build_resources(settings),
    )


defs = build_definitions(get_settings())
