"""Run jobs in-process on the configured Dagster instance, and summarise what they did."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.repository_definition.valid_definitions import (
    SINGLETON_REPOSITORY_NAME,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemotePartitionSetOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.remote_representation.external_data import (
    partition_set_snap_name_for_job_name,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    REPOSITORY_LABEL_TAG,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from huleedu_pipelines.jobs import CONCURRENCY_GROUP_TAG
from huleedu_pipelines.settings import Settings
from huleedu_pipelines.warehouse.engine import cached_engine
from huleedu_pipelines.warehouse.tables import quarantine
from huleedu_pipelines.warehouse.writes import rule_of

EMBEDDED_INSTANCE_YAML = """\
# Embedded Dagster instance: run and event storage are SQLite files in this folder.
# Runs launched from the UI, schedules and sensors queue; one training run at a time.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: huleedu/concurrency_group
        value: training
        limit: 1
# A run whose worker died (a restarted `dagster dev`) is marked failed after the limit.
run_monitoring:
  enabled: true
  max_runtime_seconds: 14400
# A failed nightly run is retried (nightly_inference_job's tag dagster/max_retries).
run_retries:
  enabled: true
  max_retries: 0
telemetry:
  enabled: false
"""

CODE_LOCATION_NAME = "huleedu_pipelines"
"""The code location `workspace.yaml` (and deploy/workspace.yaml) loads the definitions as:
in-process runs are recorded under it, so the UI lists them under their job."""
REPOSITORY_NAME = SINGLETON_REPOSITORY_NAME
"""The repository name Dagster gives a module's single `Definitions` (`__repository__`)."""

GATE_CHECK_PREFIX = "gate_"
"""Promotion gates are the asset checks named `gate_<gate>` (assets/validation_checks.py)."""


PREVIOUS_EMBEDDED_INSTANCE_YAMLS = (
    """\
# Embedded Dagster instance: run and event storage are SQLite files in this folder.
telemetry:
  enabled: false
""",
)
"""Instance configs earlier releases wrote; a home still holding one gets the current one."""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME, so `dagster dev` shows the same runs.

    Opened under a file lock (`DAGSTER_HOME/.instance.lock`): the first open creates the
    SQLite storages, and two commands doing that at once (two `train` on a new home) both
    create the same tables and one fails.
    """
    import fcntl

    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".instance.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            config = home / "dagster.yaml"
            if not config.exists() or config.read_text() in PREVIOUS_EMBEDDED_INSTANCE_YAMLS:
                config.write_text(EMBEDDED_INSTANCE_YAML)
            instance = dg.DagsterInstance.from_config(str(home))
            instance.get_runs_count()  # creates the run storage's tables if new
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return instance


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
    gate_failures: list[str] = field(default_factory=list)
    """One line per failed promotion gate: gate, then each failing model with value and
    threshold (the check's description)."""
    blocked_by_gates: bool = False
    """The run failed only because promotion gates failed: nothing crashed, no champion moved."""

    def to_json(self) -> str:
        """The summary as one JSON object (`--json`), field for field."""
        import dataclasses
        import json

        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    def render(self) -> str:
        """The summary for people: tables of rows per asset, checks per asset and quarantined
        rows per rule (plain text, no escape codes), then notes and failures one per line."""
        from huleedu_pipelines.cli.output import table, table_text

        lines = [f"run {self.run_id}: {'succeeded' if self.success else 'FAILED'}"]
        lines.append(f"assets: {len(self.rows_by_asset)} materialized")
        if self.rows_by_asset:
            assets = table("asset", "rows", numeric=["rows"])
            for name, rows in self.rows_by_asset.items():
                assets.add_row(name, str(rows))
            lines.append(table_text(assets))
        passed = sum(self.checks.values())
        lines.append(f"checks: {passed} passed, {len(self.checks) - passed} failed")
        by_asset: dict[str, list[int]] = {}
        for key, ok in self.checks.items():
            by_asset.setdefault(key.split(":", 1)[0], [0, 0])[0 if ok else 1] += 1
        if len(by_asset) > 1:
            checks = table("asset", "passed", "failed", numeric=["passed", "failed"])
            for name, (ok, failed) in by_asset.items():
                checks.add_row(name, str(ok), str(failed))
            lines.append(table_text(checks))
        lines += [f"  FAILED {name}" for name, ok in self.checks.items() if not ok]
        total = sum(self.quarantined_by_rule.values())
        lines.append(f"quarantine: {total} rows")
        if total:
            rules = table("rule", "rows", numeric=["rows"])
            for rule, n in sorted(self.quarantined_by_rule.items()):
                rules.add_row(rule, str(n))
            lines.append(table_text(rules))
        if self.scoring:
            lines.append(
                "scoring: " + ", ".join(f"{key} {value}" for key, value in self.scoring.items())
            )
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"failure: {failure}" for failure in self.failures]
        if self.blocked_by_gates:
            lines.append("promotion blocked by gates (no champion moved):")
            lines += [f"  {line}" for line in self.gate_failures]
        return "\n".join(lines)


def quarantine_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        reasons = connection.execute(sa.select(quarantine.c.reason)).scalars().all()
    return dict(Counter(rule_of(reason) for reason in reasons))


class RunInProgressError(RuntimeError):
    """Another run of the same concurrency group is executing on this home."""


@contextmanager
def concurrency_lock(
    settings: Settings,
    group: str,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold `<HULEEDU_HOME>/locks/<group>.lock` while a run of `group` executes in-process.

    The in-process twin of the instance's `tag_concurrency_limits`: a second run waits for
    the first (telling `on_wait` who holds the lock), or with `wait=False` raises
    `RunInProgressError`. The operating system releases the lock when its holder exits,
    however it ends, so a killed run never leaves it held.
    """
    import fcntl

    path = settings.home / "locks" / f"{group}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "holder unknown"
            message = f"another {group} run is in progress on {settings.home} ({holder})"
            if not wait:
                raise RunInProgressError(
                    f"{message}; wait for it to finish, or run without --no-wait to queue"
                ) from None
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    settings: Settings,
    partition_key: str | None = None,
    log_level: str = "INFO",
    op_config: dict[str, dict] | None = None,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    partition_key_range: dg.PartitionKeyRange | None = None,
    tags: dict[str, str] | None = None,
) -> RunSummary:
    """Execute a job in this process and collect rows per asset, check results and quarantine.

    `op_config` maps an asset (op) name to its config, e.g. `{"inference_features":
    {"backfill": True}}`. `partition_key_range` runs the job once over a range of partitions
    (the assets' single-run backfill policy), instead of `partition_key`. A job tagged
    `huleedu/concurrency_group` runs under that group's lock (`concurrency_lock`), and after
    any run of the group the daemon launched on this instance: with `wait` it waits for them;
    without, `RunInProgressError` is raised and nothing runs.
    """
    job = defs.resolve_job_def(job_name)
    group = job.tags.get(CONCURRENCY_GROUP_TAG)
    run_tags = dict(tags or {})
    if partition_key_range is not None:
        run_tags[ASSET_PARTITION_RANGE_START_TAG] = partition_key_range.start
        run_tags[ASSET_PARTITION_RANGE_END_TAG] = partition_key_range.end
    if group is None:
        return _execute(job, instance, settings, partition_key, log_level, op_config, run_tags)
    with concurrency_lock(settings, group, wait=wait, on_wait=on_wait):
        _wait_for_launched_runs(instance, group, wait=wait, on_wait=on_wait)
        return _execute(job, instance, settings, partition_key, log_level, op_config, run_tags)


def run_partitions(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    settings: Settings,
    partition_keys: list[str],
    op_config: dict[str, dict] | None = None,
    log_level: str = "INFO",
) -> RunSummary:
    """Run `job_name` once per partition key, one after the other, and merge what they did
    (`merge_summaries`). A failed partition does not stop the others: each one's writes are
    its own, and a rerun of the failed one completes the set. With several partitions each
    failure line starts with its partition key."""
    summaries = []
    for key in partition_keys:
        summary = run_job(
            defs,
            job_name,
            instance,
            settings,
            partition_key=key,
            log_level=log_level,
            op_config=op_config,
        )
        if len(partition_keys) > 1:
            summary.failures = [f"partition {key}: {line}" for line in summary.failures]
        summaries.append(summary)
    return merge_summaries(summaries)


def run_backfill(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    settings: Settings,
    ranges: list[dg.PartitionKeyRange],
    op_config: dict[str, dict] | None = None,
    log_level: str = "INFO",
) -> RunSummary:
    """Run `job_name` once per range of partitions (a single-run backfill of each range) and
    record the runs as one backfill on the instance, as the Backfills page shows it.

    The runs carry the backfill's id (`dagster/backfill`) and their range; the backfill record
    (a job backfill of the partitions the ranges cover) is written when the last run has ended,
    as completed, or as failed when a run failed or did not run. It is never written as
    requested: the daemon would launch the runs a second time. A failed range does not stop
    the others."""
    import time

    job = defs.resolve_job_def(job_name)
    partitions_def = job.partitions_def
    if partitions_def is None:
        raise ValueError(f"{job_name} is not partitioned: there is nothing to backfill")
    backfill_id = new_backfill_id()
    started = time.time()
    summaries: list[RunSummary] = []
    try:
        for covered in ranges:
            summary = run_job(
                defs,
                job_name,
                instance,
                settings,
                log_level=log_level,
                op_config=op_config,
                partition_key_range=covered,
                tags={BACKFILL_ID_TAG: backfill_id},
            )
            if len(ranges) > 1:
                summary.failures = [
                    f"partitions {covered.start}...{covered.end}: {line}"
                    for line in summary.failures
                ]
            summaries.append(summary)
    finally:
        succeeded = len(summaries) == len(ranges) and all(s.success for s in summaries)
        keys = [
            key for covered in ranges for key in partitions_def.get_partition_keys_in_range(covered)
        ]
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                status=BulkActionStatus.COMPLETED_SUCCESS
                if succeeded
                else BulkActionStatus.COMPLETED_FAILED,
                from_failure=False,
                tags={
                    REPOSITORY_LABEL_TAG: repository_origin().get_label(),
                    IN_PROCESS_TAG: "true",
                },
                backfill_timestamp=started,
                title=f"{job_name} backfill (in-process)",
                description=f"{len(keys)} partitions in {len(ranges)} runs, by huleedu-pipelines",
                partition_set_origin=RemotePartitionSetOrigin(
                    repository_origin=repository_origin(),
                    partition_set_name=partition_set_snap_name_for_job_name(job_name),
                ),
                partition_names=keys,
                backfill_end_timestamp=time.time(),
            )
        )
    merged = merge_summaries(summaries)
    merged.notes.append(
        f"backfill {backfill_id}: {len(keys)} partitions "
        f"({ranges[0].start} ... {ranges[-1].end}) in {len(ranges)} runs"
    )
    return merged


def new_backfill_id() -> str:
    """Eight random lowercase letters, the form of the ids Dagster gives backfills."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


def repository_origin() -> RemoteRepositoryOrigin:
    """The repository the webserver loads from `workspace.yaml` (a Python module in a managed
    gRPC server, location `CODE_LOCATION_NAME`): in-process runs and backfills are recorded
    with it, so the UI lists them under their job, as it lists the runs it launches."""
    import sys

    return RemoteRepositoryOrigin(
        code_location_origin=ManagedGrpcPythonEnvCodeLocationOrigin(
            loadable_target_origin=LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name="huleedu_pipelines.definitions",
                attribute="defs",
            ),
            location_name=CODE_LOCATION_NAME,
        ),
        repository_name=REPOSITORY_NAME,
    )


def merge_summaries(summaries: list[RunSummary]) -> RunSummary:
    """One summary for runs that split a piece of work (the shards of a night): rows and
    scored essays are summed, a check passes only if it passed in every run, failures and notes
    keep every run's; the quarantine counts are the warehouse's after the last run."""
    if len(summaries) == 1:
        return summaries[0]
    merged = RunSummary(
        success=all(s.success for s in summaries),
        run_id=", ".join(s.run_id for s in summaries),
    )
    seconds = 0.0
    for summary in summaries:
        for name, rows in summary.rows_by_asset.items():
            merged.rows_by_asset[name] = merged.rows_by_asset.get(name, 0) + rows
        for key, passed in summary.checks.items():
            merged.checks[key] = merged.checks.get(key, True) and passed
        merged.failures += summary.failures
        merged.notes += [note for note in summary.notes if note not in merged.notes]
        merged.gate_failures += summary.gate_failures
        for key in ("essays_scored", "essays_skipped_unchanged"):
            if key in summary.scoring:
                merged.scoring[key] = merged.scoring.get(key, 0) + summary.scoring[key]
        rate = summary.scoring.get("essays_per_second", 0)
        if rate:
            seconds += summary.scoring.get("essays_scored", 0) / rate
    if "essays_scored" in merged.scoring:
        merged.scoring["essays_per_second"] = (
            round(merged.scoring["essays_scored"] / seconds, 1) if seconds else 0.0
        )
    merged.quarantined_by_rule = summaries[-1].quarantined_by_rule if summaries else {}
    merged.blocked_by_gates = (
        bool(summaries)
        and all(s.blocked_by_gates or s.success for s in summaries)
        and not merged.success
    )
    return merged


IN_PROCESS_TAG = "huleedu/in_process"
"""Marks runs started by `run_job`, which the lock (not the instance) keeps apart."""
LAUNCHED_RUN_POLL_SECONDS = 10.0


def _launched_runs_in_progress(instance: dg.DagsterInstance, group: str) -> list[str]:
    """Runs of `group` the daemon launched (UI, schedule, sensor) that are executing now.

    In-process runs are left out: under the lock none of them is alive, so one still
    recorded as started is a run whose process was killed.
    """
    records = instance.get_run_records(
        dg.RunsFilter(
            tags={CONCURRENCY_GROUP_TAG: group},
            statuses=[
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ],
        )
    )
    return [
        record.dagster_run.run_id
        for record in records
        if IN_PROCESS_TAG not in record.dagster_run.tags
    ]


def _wait_for_launched_runs(
    instance: dg.DagsterInstance,
    group: str,
    *,
    wait: bool,
    on_wait: Callable[[str], None] | None,
) -> None:
    """The other half of one-run-at-a-time: the queue holds a launched run while an
    in-process run is started (it counts the run's tag); here an in-process run waits for
    (or, without `wait`, refuses next to) a launched one."""
    import time

    running = _launched_runs_in_progress(instance, group)
    told = False
    while running:
        message = (
            f"{group} run {', '.join(running)} (launched by the Dagster daemon) is in progress"
        )
        if not wait:
            raise RunInProgressError(f"{message}; wait for it to finish, or run without --no-wait")
        if on_wait is not None and not told:
            on_wait(f"{message}; waiting for it to finish")
            told = True
        time.sleep(LAUNCHED_RUN_POLL_SECONDS)
        running = _launched_runs_in_progress(instance, group)


def _execute(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    settings: Settings,
    partition_key: str | None,
    log_level: str,
    op_config: dict[str, dict] | None,
    tags: dict[str, str] | None = None,
) -> RunSummary:
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if op_config:
        run_config["ops"] = {name: {"config": config} for name, config in op_config.items()}
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
        run_config=run_config,
        # The label the UI's job page filters on, there from the run's start.
        tags={
            IN_PROCESS_TAG: "true",
            REPOSITORY_LABEL_TAG: repository_origin().get_label(),
            **(tags or {}),
        },
    )
    _record_job_origin(instance, result.run_id, job.name)
    summary = RunSummary(success=result.success, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        name = materialization.asset_key.to_user_string()
        # A run over a range records one event per partition: the work is counted once.
        summary.rows_by_asset[name] = max(
            summary.rows_by_asset.get(name, 0), rows_produced(materialization.metadata)
        )
        summary.notes += [
            str(value.value)
            for key, value in materialization.metadata.items()
            if (key.endswith("/skipped") or key == "summary")
            and str(value.value) not in summary.notes
        ]
        for key in ("essays_scored", "essays_skipped_unchanged", "essays_per_second"):
            if key in materialization.metadata and name == "essay_grade_predictions":
                summary.scoring[key] = materialization.metadata[key].value
    failed_checks_by_step: dict[str, list[str]] = {}
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.asset_check_evaluation_data
        key = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN:
            summary.notes.append(f"warning (not blocking) {key}: {evaluation.description}")
            continue
        summary.checks[key] = evaluation.passed
        if not evaluation.passed:
            failed_checks_by_step.setdefault(event.step_key or "", []).append(evaluation.check_name)
            if evaluation.check_name.startswith(GATE_CHECK_PREFIX):
                gate = evaluation.check_name.removeprefix(GATE_CHECK_PREFIX)
                summary.gate_failures.append(f"gate {gate}: {evaluation.description or key}")
    blocked_by_checks_only = True
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            # A raising asset's message only names the op; the cause says what went wrong.
            cause = f" ({error.cause.message.strip()})" if error.cause else ""
            summary.failures.append(f"{event.step_key}: {error.message.strip()}{cause}")
            failed_checks = failed_checks_by_step.get(event.step_key or "", [])
            blocked_by_checks_only &= (
                error.cls_name == "DagsterAssetCheckFailedError"
                and bool(failed_checks)
                and all(name.startswith(GATE_CHECK_PREFIX) for name in failed_checks)
            )
    summary.blocked_by_gates = (
        not result.success
        and bool(summary.failures)
        and bool(summary.gate_failures)
        and blocked_by_checks_only
    )
    summary.quarantined_by_rule = quarantine_counts(cached_engine(settings.resolved_warehouse_url))
    return summary


ROWS_PRODUCED_KEYS = ("rows_written", "rows_in_run", "dagster/row_count")
"""Where a materialization says how many rows its run produced: rows written to a warehouse
table (`dagster/row_count` there counts the rows the partition holds, written now or before),
else the rows of a run's output over a range, else the output's rows."""


def rows_produced(metadata) -> int:
    for key in ROWS_PRODUCED_KEYS:
        if key in metadata:
            return int(metadata[key].value)
    return 0


def _record_job_origin(instance: dg.DagsterInstance, run_id: str, job_name: str) -> None:
    """Give a finished in-process run the job origin of the code location the UI loads
    (`execute_in_process` records none), as `dagster run migrate-repository` does: the run page
    then links the run to its job and code location."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.remote_job_origin is not None:
        return
    instance.run_storage.replace_job_origin(
        run, RemoteJobOrigin(repository_origin=repository_origin(), job_name=job_name)
    )


def report_path(settings: Settings, name: str) -> Path:
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    return settings.reports_dir / name
