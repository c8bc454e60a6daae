"""Two trainings never interleave in-process (layer 3: real runs in two processes).

The in-process runner (`huleedu-pipelines train`, `demo`) takes the lock of a job's
`huleedu/concurrency_group` tag under HULEEDU_HOME. A tiny job carrying the training tag
stands in for training_job (a real training takes minutes): both processes start it at the
same moment, and the journal the assets write shows one run ending before the other begins.
"""

import multiprocessing
import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from typer.testing import CliRunner

from huleedu_pipelines.cli.commands import EXIT_TRAINING_IN_PROGRESS, app
from huleedu_pipelines.cli.runs import concurrency_lock, dagster_instance, run_job
from huleedu_pipelines.definitions import build_definitions
from huleedu_pipelines.jobs import CONCURRENCY_GROUP_TAG, TRAINING_CONCURRENCY_GROUP
from huleedu_pipelines.resources.parquet_io import PolarsParquetIOManager
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import cached_engine, migrate

JOURNAL = "JOURNAL_PATH"


def _journal(line: str) -> None:
    with open(os.environ[JOURNAL], "a") as handle:
        handle.write(line + "\n")


class TrainConfig(dg.Config):
    version: str


@dg.asset
def tiny_model(context: dg.AssetExecutionContext, config: TrainConfig) -> pl.DataFrame:
    """Stands for the training group: records that this run started and what it trained."""
    _journal(f"start {config.version}")
    return pl.DataFrame({"version": [config.version]})


@dg.asset
def tiny_validation(tiny_model: pl.DataFrame) -> pl.DataFrame:
    """Stands for validation and promotion: records what this run validated."""
    _journal(f"validated {tiny_model['version'][0]}")
    return tiny_model


def tiny_definitions(storage: Path) -> dg.Definitions:
    job = dg.define_asset_job(
        "tiny_training_job",
        selection=[tiny_model, tiny_validation],
        tags={CONCURRENCY_GROUP_TAG: TRAINING_CONCURRENCY_GROUP},
    )
    return dg.Definitions(
        assets=[tiny_model, tiny_validation],
        jobs=[job],
        resources={"io_manager": PolarsParquetIOManager(base_dir=str(storage))},
    )


def _train_in_a_process(version: str, environment: dict[str, str]) -> None:
    os.environ.update(environment)
    settings = get_settings()
    summary = run_job(
        tiny_definitions(settings.storage_dir),
        "tiny_training_job",
        dagster_instance(settings),
        settings,
        op_config={"tiny_model": {"version": version}},
        on_wait=lambda message: _journal(f"waited {version}"),
    )
    _journal(f"end {version} {'ok' if summary.success else 'FAILED'}")


def _wait_for_lines(path: Path, prefix: str, count: int, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if sum(line.startswith(prefix) for line in lines) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} {prefix!r} lines in {path}")


def test_two_trainings_started_together_run_one_after_the_other(home: Path, tmp_path: Path):
    """Both trainings are started while the lock is held, so both are certainly contending
    when it is released: one runs, the other waits for it to end."""
    settings = get_settings()
    migrate(cached_engine(settings.resolved_warehouse_url))  # run_job reads quarantine
    dagster_instance(settings).dispose()  # the instance exists before the race
    journal = tmp_path / "journal.txt"
    environment = {"HULEEDU_HOME": str(home), JOURNAL: str(journal)}
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_train_in_a_process, args=(version, environment))
        for version in ("A", "B")
    ]
    with concurrency_lock(settings, TRAINING_CONCURRENCY_GROUP):
        for process in processes:
            process.start()
        _wait_for_lines(journal, "waited", 2)  # both started and both wait
    for process in processes:
        process.join(timeout=180)
    assert [process.exitcode for process in processes] == [0, 0]

    lines = journal.read_text().splitlines()
    assert sorted(lines[:2]) == ["waited A", "waited B"]
    runs = lines[2:]
    first, second = runs[0].split()[1], runs[3].split()[1]
    assert {first, second} == {"A", "B"}
    # No interleaving: each run starts, validates its own model and ends before the next.
    assert runs == [
        f"start {first}",
        f"validated {first}",
        f"end {first} ok",
        f"start {second}",
        f"validated {second}",
        f"end {second} ok",
    ]
    # The instance records the same order: the second run started after the first ended.
    with dagster_instance(settings) as instance:
        records = sorted(
            instance.get_run_records(dg.RunsFilter(job_name="tiny_training_job")),
            key=lambda record: record.start_time,
        )
    assert len(records) == 2
    assert records[0].end_time <= records[1].start_time


def test_train_no_wait_is_refused_while_a_training_runs(home: Path) -> None:
    """The real training_job carries the training tag; with --no-wait a second `train`
    exits 4 at once and starts no run."""
    settings = get_settings()
    training = build_definitions(settings).resolve_job_def("training_job")
    assert training.tags[CONCURRENCY_GROUP_TAG] == TRAINING_CONCURRENCY_GROUP

    with concurrency_lock(settings, TRAINING_CONCURRENCY_GROUP):
        result = CliRunner().invoke(app, ["train", "--no-wait"])
    assert result.exit_code == EXIT_TRAINING_IN_PROGRESS, result.output
    assert "another training run is in progress" in result.output
    assert f"pid {os.getpid()}" in result.output  # names the holder
    with dagster_instance(settings) as instance:
        assert instance.get_runs_count(dg.RunsFilter(job_name="training_job")) == 0


def test_a_killed_holder_releases_the_lock(home: Path) -> None:
    """The operating system drops the lock with its process: a crashed training never
    blocks the next one."""
    settings = get_settings()
    context = multiprocessing.get_context("spawn")
    holder = context.Process(target=_hold_lock_and_die, args=(str(home),))
    holder.start()
    holder.join(timeout=60)
    assert holder.exitcode == 9
    with concurrency_lock(settings, TRAINING_CONCURRENCY_GROUP, wait=False) as path:
        assert path == settings.home / "locks" / "training.lock"


def _hold_lock_and_die(home: str) -> None:
    os.environ["HULEEDU_HOME"] = home
    with concurrency_lock(get_settings(), TRAINING_CONCURRENCY_GROUP):
        os._exit(9)


@pytest.fixture(autouse=True)
def _no_inherited_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JOURNAL, raising=False)


def _launched_training_run(instance, tags: dict[str, str]):
    """A training run as the daemon records one it launched (no in-process tag)."""
    from dagster._core.utils import make_new_run_id

    run = dg.DagsterRun(
        job_name="training_job",
        run_id=make_new_run_id(),
        status=dg.DagsterRunStatus.STARTED,
        tags=tags,
    )
    return instance.add_run(run)


def test_an_in_process_training_waits_for_one_the_daemon_launched(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train` on a deployment whose daemon is training: refused with --no-wait, else it
    waits until the launched run ends. A stale in-process run (its process was killed)
    blocks nothing."""
    import huleedu_pipelines.cli.runs as runner

    monkeypatch.setattr(runner, "LAUNCHED_RUN_POLL_SECONDS", 0.05)
    monkeypatch.setenv(JOURNAL, str(tmp_path / "journal.txt"))
    settings = get_settings()
    migrate(cached_engine(settings.resolved_warehouse_url))
    defs = tiny_definitions(settings.storage_dir)
    tags = dict(defs.resolve_job_def("tiny_training_job").tags)
    with dagster_instance(settings) as instance:
        _launched_training_run(instance, {**tags, runner.IN_PROCESS_TAG: "true"})  # stale
        launched = _launched_training_run(instance, tags)

        result = CliRunner().invoke(app, ["train", "--no-wait"])
        assert result.exit_code == EXIT_TRAINING_IN_PROGRESS, result.output
        assert f"training run {launched.run_id} (launched by the Dagster daemon)" in result.output

        told: list[str] = []

        def launched_run_ends(message: str) -> None:
            told.append(message)
            instance.report_run_failed(launched, "ended while the in-process run waited")

        summary = run_job(
            defs,
            "tiny_training_job",
            instance,
            settings,
            op_config={"tiny_model": {"version": "C"}},
            on_wait=launched_run_ends,
        )
        assert summary.success
        assert told == [
            f"training run {launched.run_id} (launched by the Dagster daemon) is in progress; "
            "waiting for it to finish"
        ]
        run = instance.get_run_by_id(summary.run_id)
        assert run.tags[CONCURRENCY_GROUP_TAG] == TRAINING_CONCURRENCY_GROUP
        assert run.tags[runner.IN_PROCESS_TAG] == "true"


def _open_instance(home: str, barrier) -> None:
    os.environ["HULEEDU_HOME"] = home
    settings = get_settings()
    barrier.wait(timeout=60)
    with dagster_instance(settings) as instance:
        instance.get_runs_count()


def test_two_commands_opening_a_new_home_both_succeed(home: Path) -> None:
    """The first open of the embedded instance creates its SQLite tables; two at once used to
    fail one of them ("table secondary_indexes already exists")."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=_open_instance, args=(str(home), barrier)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    with dagster_instance(get_settings()) as instance:
        assert instance.get_runs_count() == 0
