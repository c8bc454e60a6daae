"""Two `training_job` runs submitted together run one after the other, under the queue rules
shipped in deploy/dagster.yaml: a real DagsterInstance with the QueuedRunCoordinator and the
file's `concurrency` section, runs submitted as the UI submits them (the job's tags), and the
daemon's own dequeue iteration with a launcher that records launches instead of starting
containers."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from huleedu_pipelines.jobs import CONCURRENCY_GROUP_TAG, TRAINING_CONCURRENCY_GROUP

REPO = Path(__file__).resolve().parents[3]
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
Status = dg.DagsterRunStatus


def shipped_instance_config(dagster_home: Path) -> dict:
    """deploy/dagster.yaml's queue rules on local storage, with a launcher that only records."""
    shipped = yaml.safe_load(DAGSTER_YAML.read_text())
    config = {
        "run_coordinator": shipped["run_coordinator"],
        "concurrency": shipped["concurrency"],
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
        "telemetry": {"enabled": False},
    }
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return shipped


@pytest.fixture
def instance(tmp_path: Path, home: Path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shipped_instance_config(dagster_home)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


def submit(instance: dg.DagsterInstance, job: dg.JobDefinition, workspace) -> str:
    """A run as the UI, a schedule or a sensor submits it: the job's tags, from the code
    server's location (docker-compose.yml's workspace), into the queue."""
    location = GrpcServerCodeLocationOrigin(
        host="code-server", port=4000, location_name="huleedu_pipelines"
    )
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=location, repository_name="__repository__"
        ),
        job_name=job.name,
    )
    code_origin = JobPythonOrigin(
        job_name=job.name,
        repository_origin=RepositoryPythonOrigin(
            executable_path="python",
            code_pointer=ModuleCodePointer("huleedu_pipelines.definitions", "defs", None),
            container_image="huleedu-pipelines:latest",
        ),
    )
    run = instance.create_run_for_job(
        job_def=job,
        tags=dict(job.run_tags),
        remote_job_origin=origin,
        job_code_origin=code_origin,
    )
    instance.submit_run(run.run_id, workspace)
    return run.run_id


def test_shipped_limits_hold_training_to_one_run(tmp_path: Path) -> None:
    shipped = yaml.safe_load(DAGSTER_YAML.read_text())
    assert shipped["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = shipped["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": CONCURRENCY_GROUP_TAG, "value": TRAINING_CONCURRENCY_GROUP, "limit": 1} in limits
    # Steps that write the warehouse share a pool with a limit.
    assert shipped["concurrency"]["pools"]["default_limit"] >= 1


def test_two_training_runs_submitted_together_run_one_after_the_other(
    instance: dg.DagsterInstance,
) -> None:
    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.settings import get_settings

    job = build_definitions(get_settings()).resolve_job_def("training_job")
    assert job.run_tags[CONCURRENCY_GROUP_TAG] == TRAINING_CONCURRENCY_GROUP
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:
        workspace = context.create_request_context()
        first = submit(instance, job, workspace)
        second = submit(instance, job, workspace)
        assert {instance.get_run_by_id(r).status for r in (first, second)} == {Status.QUEUED}

        list(daemon.run_iteration(context))
        launched = [run.run_id for run in instance.run_launcher.queue()]
        assert launched == [first]
        assert instance.get_run_by_id(first).status == Status.STARTING
        assert instance.get_run_by_id(second).status == Status.QUEUED

        # Another iteration while the first is in progress changes nothing.
        list(daemon.run_iteration(context))
        assert [run.run_id for run in instance.run_launcher.queue()] == [first]
        assert instance.get_run_by_id(second).status == Status.QUEUED

        # The first run succeeds; the next iteration starts the second.
        instance.report_dagster_event(
            DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=job.name),
            run_id=first,
        )
        assert instance.get_run_by_id(first).status == Status.SUCCESS
        list(daemon.run_iteration(context))
        assert [run.run_id for run in instance.run_launcher.queue()] == [first, second]
        assert instance.get_run_by_id(second).status == Status.STARTING
