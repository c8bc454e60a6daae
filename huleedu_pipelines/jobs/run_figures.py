"""The nightly job's figures that only the Dagster instance holds: when its newest successful
run ended, how long it took (start to end, step retries included), and the predicted-grade PSI
that the newest `prediction_monitoring` materialization recorded (the PSI needs the training
split, which lives in the Parquet store, not the warehouse).

The scoring API shows them on /metrics (`serving/batch_metrics.py`); `huleedu-pipelines serve`
wires this reader in, so the `serving` package itself never imports Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from huleedu_pipelines.settings import Settings

NIGHTLY_JOB = "nightly_inference_job"
MONITORING_ASSET = "prediction_monitoring"
PSI_METADATA_KEY = "predicted_grade_psi"


@dataclass(frozen=True)
class NightlyRunFigures:
    last_success_end: float | None
    """Unix time the newest successful nightly run ended (None: none has)."""
    duration_seconds: float | None
    """That run's wall time, start to end."""
    predicted_grade_psi: float | None
    """The newest monitored day's predicted-grade PSI (None: not monitored, or no champion)."""


def read_nightly_run_figures(
    instance: dg.DagsterInstance, job_name: str = NIGHTLY_JOB
) -> NightlyRunFigures:
    end = duration = psi = None
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1,
    )
    if records and records[0].end_time is not None:
        end = float(records[0].end_time)
        if records[0].start_time is not None:
            duration = end - float(records[0].start_time)
    events = instance.fetch_materializations(dg.AssetKey(MONITORING_ASSET), limit=1).records
    materialization = events[0].asset_materialization if events else None
    entry = materialization.metadata.get(PSI_METADATA_KEY) if materialization else None
    value = entry.value if entry is not None else None
    if isinstance(value, int | float) and math.isfinite(value):
        psi = float(value)
    return NightlyRunFigures(end, duration, psi)


def nightly_run_figures_reader(settings: Settings) -> Callable[[], NightlyRunFigures]:
    """Reads the instance under DAGSTER_HOME, opened on first use and never created here (a
    home without `dagster.yaml` raises, which the exporter reports as a failed read)."""
    opened: list[dg.DagsterInstance] = []

    def read() -> NightlyRunFigures:
        if not opened:
            home = settings.resolved_dagster_home
            if not (home / "dagster.yaml").exists():
                raise FileNotFoundError(f"no Dagster instance (dagster.yaml) under {home}")
            opened.append(dg.DagsterInstance.from_config(str(home)))
        return read_nightly_run_figures(opened[0])

    return read
