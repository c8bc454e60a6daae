"""Run jobs in-process on the configured Dagster instance, and summarise what they did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from huleedu_pipelines.settings import Settings
from huleedu_pipelines.warehouse.engine import cached_engine
from huleedu_pipelines.warehouse.tables import quarantine
from huleedu_pipelines.warehouse.writes import rule_of

EMBEDDED_INSTANCE_YAML = """\
# Embedded Dagster instance: run and event storage are SQLite files in this folder.
telemetry:
  enabled: false
"""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME, so `dagster dev` shows the same runs."""
    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(home))


@dataclass
class RunSummary:
    success: bool
    run_id: str
    rows_by_asset: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scoring: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"run {self.run_id}: {'succeeded' if self.success else 'FAILED'}", "assets:"]
        lines += [f"  {name:<28} {rows:>8} rows" for name, rows in self.rows_by_asset.items()]
        passed = sum(self.checks.values())
        lines.append(f"checks: {passed} passed, {len(self.checks) - passed} failed")
        lines += [f"  FAILED {name}" for name, ok in self.checks.items() if not ok]
        total = sum(self.quarantined_by_rule.values())
        lines.append(f"quarantine: {total} rows")
        lines += [f"  {rule:<28} {n:>8}" for rule, n in sorted(self.quarantined_by_rule.items())]
        if self.scoring:
            lines.append(
                "scoring: " + ", ".join(f"{key} {value}" for key, value in self.scoring.items())
            )
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"failure: {failure}" for failure in self.failures]
        return "\n".join(lines)


def quarantine_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        reasons = connection.execute(sa.select(quarantine.c.reason)).scalars().all()
    return dict(Counter(rule_of(reason) for reason in reasons))


def run_job(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    settings: Settings,
    partition_key: str | None = None,
    log_level: str = "INFO",
    op_config: dict[str, dict] | None = None,
) -> RunSummary:
    """Execute a job in this process and collect rows per asset, check results and quarantine.

    `op_config` maps an asset (op) name to its config, e.g. `{"inference_features":
    {"backfill": True}}`.
    """
    job = defs.resolve_job_def(job_name)
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if op_config:
        run_config["ops"] = {name: {"config": config} for name, config in op_config.items()}
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
        run_config=run_config,
    )
    summary = RunSummary(success=result.success, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        rows = materialization.metadata.get("dagster/row_count")
        name = materialization.asset_key.to_user_string()
        summary.rows_by_asset[name] = int(rows.value) if rows is not None else 0
        summary.notes += [
            str(value.value)
            for key, value in materialization.metadata.items()
            if key.endswith("/skipped") or key == "summary"
        ]
        for key in ("essays_scored", "essays_skipped_unchanged", "essays_per_second"):
            if key in materialization.metadata and name == "essay_grade_predictions":
                summary.scoring[key] = materialization.metadata[key].value
    for evaluation in result.get_asset_check_evaluations():
        key = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        summary.checks[key] = evaluation.passed
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            summary.failures.append(f"{event.step_key}: {event.step_failure_data.error.message}")
    summary.quarantined_by_rule = quarantine_counts(cached_engine(settings.resolved_warehouse_url))
    return summary


def report_path(settings: Settings, name: str) -> Path:
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    return settings.reports_dir / name
