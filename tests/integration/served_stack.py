"""The production topology as local processes, for tests where Docker does not run.

`served_stack()` creates three fresh databases on the test PostgreSQL server (warehouse,
Dagster instance, MLflow), starts an MLflow tracking server on one of them with served
artifacts, and `dagster-daemon` + `dagster-webserver` on a temporary DAGSTER_HOME whose
`dagster.yaml` is the repository's `deploy/dagster.yaml` (dagster-postgres storage read from
`DAGSTER_POSTGRES_URL`, queued runs). Every server listens on a free loopback port, in its
own process group, logging to a file under the stack's folder. On exit, everything it
started is stopped (SIGTERM to the group, SIGKILL after a grace period) and the databases
are dropped, also when the body raised.

`ServedStack` talks to the servers as a user would: GraphQL to the webserver (launch a run,
poll its status, list a job's runs, start a sensor), HTTP to MLflow, the console script for
the CLI. Its waits poll with generous limits (a busy 2-core machine) and fail with the tails
of the server logs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import sqlalchemy as sa
from dagster_graphql import DagsterGraphQLClient

from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.engine import migrate as migrate_warehouse

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
DEPLOY_DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
VENV_BIN = Path(sys.executable).parent
LOCATION_NAME = "huleedu_pipelines"  # workspace.yaml's location_name

TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Daemons a served deployment relies on: sensors/schedules tick, queued runs get launched.
REQUIRED_DAEMONS = ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR")
# Passed to every process the stack starts; variables of the caller's environment with
# these prefixes are dropped so the stack never writes to a developer's stores.
ISOLATED_PREFIXES = ("HULEEDU_", "DAGSTER_", "MLFLOW_")

T = TypeVar("T")


class StackError(RuntimeError):
    """A server did not start, died, or a wait ran out; the message carries the log tails."""


# ---- processes --------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it for a bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """One started server: its own process group (so its children stop with it) and log."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, args: list[str], env: Mapping[str, str], cwd: Path, logs: Path
    ) -> ServerProcess:
        log_path = logs / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                args,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, popen, log_path)

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def raise_if_exited(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{self.tail()}"
            )

    def stop(self, grace_seconds: float = 30.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever of the group is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_seconds)
        # Children (code servers, run workers) may outlive the leader: kill the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


# ---- databases --------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_databases(
    admin_url: str, prefix: str, roles: tuple[str, ...]
) -> Iterator[dict[str, str]]:
    """One new database per role on the server of `admin_url`; yields role -> URL (no
    driver in the scheme), and drops them afterwards, terminating open connections first."""
    url = sa.engine.make_url(admin_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    names = {role: f"{prefix}_{role}" for role in roles}
    created: list[str] = []
    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
                created.append(name)
        yield {
            role: url.set(drivername="postgresql", database=name).render_as_string(
                hide_password=False
            )
            for role, name in names.items()
        }
    finally:
        with admin.connect() as connection:
            for name in created:
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def with_driver(url: str, driver: str) -> str:
    parsed = sa.engine.make_url(url)
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


# ---- the stack --------------------------------------------------------------------------


@dataclass
class ServedStack:
    root: Path
    env: dict[str, str]
    warehouse_url: str
    mlflow_uri: str
    dagster_url: str
    artifacts_dir: Path
    processes: list[ServerProcess] = field(default_factory=list)
    repository_name: str = "__repository__"

    # -- waiting ---------------------------------------------------------------------

    def diagnostics(self, lines: int = 40) -> str:
        return "\n".join(
            f"---- {process.name} ({process.log_path}) ----\n{process.tail(lines)}"
            for process in self.processes
        )

    def wait_for(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout: float,
        interval: float = 2.0,
    ) -> T:
        """Poll `probe` until it returns something other than None (or False); every server
        must stay alive meanwhile. A refused or timed-out request, an HTTP error status or a
        refused database connection count as "not yet" (a busy server); other errors fail."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            for process in self.processes:
                process.raise_if_exited()
            try:
                value = probe()
                if value is not None and value is not False:
                    return value
            except (requests.RequestException, sa.exc.OperationalError) as error:
                last_error = error
            if time.monotonic() > deadline:
                raise StackError(
                    f"timed out after {timeout:.0f}s waiting for {what}"
                    + (f" (last error: {last_error})" if last_error else "")
                    + "\n"
                    + self.diagnostics()
                )
            time.sleep(interval)

    # -- GraphQL ---------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.dagster_url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=120,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise StackError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    @functools.cached_property
    def graphql_client(self) -> DagsterGraphQLClient:
        host, port = self.dagster_url.removeprefix("http://").split(":")
        return DagsterGraphQLClient(host, port_number=int(port), timeout=120)

    def submit_job(self, job_name: str, tags: Mapping[str, str] | None = None) -> str:
        """Launch a run through the webserver (queued; the daemon dequeues it)."""
        return self.graphql_client.submit_job_execution(
            job_name,
            repository_location_name=LOCATION_NAME,
            repository_name=self.repository_name,
            tags=dict(tags or {}),
        )

    def run_status(self, run_id: str) -> str:
        """The run's status, e.g. QUEUED, STARTED, SUCCESS. (Not the client's get_run_status,
        which wraps a busy webserver and an unknown run in the same error.)"""
        data = self.graphql(
            """
            query Status($runId: ID!) {
              runOrError(runId: $runId) {
                __typename
                ... on Run { status }
                ... on RunNotFoundError { message }
                ... on PythonError { message }
              }
            }
            """,
            {"runId": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            raise StackError(f"run {run_id}: {data}")
        return data["status"]

    def wait_for_run(self, run_id: str, timeout: float) -> str:
        """The terminal status of a run (SUCCESS, FAILURE or CANCELED)."""
        return self.wait_for(
            f"run {run_id} to finish",
            lambda: (
                status if (status := self.run_status(run_id)) in TERMINAL_RUN_STATUSES else None
            ),
            timeout=timeout,
            interval=5.0,
        )

    def runs_of_job(self, job_name: str) -> list[dict[str, Any]]:
        """Runs of `job_name`, newest first, with status and tags as a dict."""
        data = self.graphql(
            """
            query Runs($filter: RunsFilter) {
              runsOrError(filter: $filter) {
                __typename
                ... on Runs { results { runId status tags { key value } } }
                ... on PythonError { message }
              }
            }
            """,
            {"filter": {"pipelineName": job_name}},
        )["runsOrError"]
        if data["__typename"] != "Runs":
            raise StackError(f"runsOrError: {data}")
        return [
            {**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}
            for run in data["results"]
        ]

    def run_failures(self, run_id: str) -> list[str]:
        """Step and run failure messages of a run, to explain a FAILURE in an assertion."""
        data = self.graphql(
            """
            query Events($runId: ID!) {
              runOrError(runId: $runId) {
                ... on Run {
                  eventConnection(limit: 5000) {
                    events {
                      __typename
                      ... on MessageEvent { message }
                      ... on StepEvent { stepKey }
                      ... on ErrorEvent { error { message } }
                    }
                  }
                }
              }
            }
            """,
            {"runId": run_id},
        )["runOrError"]
        events = data.get("eventConnection", {}).get("events", [])
        return [
            f"{event['__typename']} {event.get('stepKey') or ''}: "
            f"{(event.get('error') or {}).get('message') or event.get('message')}"
            for event in events
            if event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}
        ]

    def sensor_status(self, sensor_name: str) -> str:
        data = self.graphql(
            """
            query Sensor($selector: SensorSelector!) {
              sensorOrError(sensorSelector: $selector) {
                __typename
                ... on Sensor { sensorState { status } }
                ... on SensorNotFoundError { message }
                ... on PythonError { message }
              }
            }
            """,
            {"selector": self._sensor_selector(sensor_name)},
        )["sensorOrError"]
        if data["__typename"] != "Sensor":
            raise StackError(f"sensor {sensor_name!r}: {data}")
        return data["sensorState"]["status"]

    def ensure_sensor_running(self, sensor_name: str) -> None:
        """Start the sensor through GraphQL unless it runs by default (`default_status`)."""
        if self.sensor_status(sensor_name) == "RUNNING":
            return
        data = self.graphql(
            """
            mutation Start($selector: SensorSelector!) {
              startSensor(sensorSelector: $selector) {
                __typename
                ... on Sensor { sensorState { status } }
                ... on PythonError { message }
              }
            }
            """,
            {"selector": self._sensor_selector(sensor_name)},
        )["startSensor"]
        if data.get("__typename") != "Sensor" or data["sensorState"]["status"] != "RUNNING":
            raise StackError(f"could not start sensor {sensor_name!r}: {data}")

    def _sensor_selector(self, sensor_name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": self.repository_name,
            "sensorName": sensor_name,
        }

    # -- the command line --------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`huleedu-pipelines ARGS` with the stack's environment; fails with its output."""
        result = subprocess.run(
            [str(VENV_BIN / "huleedu-pipelines"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"huleedu-pipelines {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    # -- start-up --------------------------------------------------------------------

    def _wait_until_ready(self, timeout: float) -> None:
        self.wait_for("MLflow /health", lambda: _http_ok(f"{self.mlflow_uri}/health"), timeout)
        self.wait_for(
            "dagster-webserver /server_info",
            lambda: _http_ok(f"{self.dagster_url}/server_info"),
            timeout,
        )
        self.repository_name = self.wait_for(
            f"code location {LOCATION_NAME!r} to load", self._loaded_repository, timeout
        )
        self.wait_for("the daemon's heartbeats", self._daemons_healthy, timeout)

    def _loaded_repository(self) -> str | None:
        data = self.graphql(
            """
            query {
              workspaceOrError {
                __typename
                ... on Workspace {
                  locationEntries {
                    name
                    loadStatus
                    locationOrLoadError {
                      __typename
                      ... on RepositoryLocation { repositories { name } }
                      ... on PythonError { message stack }
                    }
                  }
                }
              }
            }
            """
        )["workspaceOrError"]
        entries = {entry["name"]: entry for entry in data.get("locationEntries", [])}
        entry = entries.get(LOCATION_NAME)
        if entry is None or entry["loadStatus"] != "LOADED":
            return None
        location = entry["locationOrLoadError"] or {}
        if location.get("__typename") == "PythonError":
            raise StackError(  # not retried: a broken code location does not heal itself
                f"code location {LOCATION_NAME!r} failed to load: {location['message']}\n"
                + "".join(location.get("stack") or [])
            )
        repositories = location.get("repositories") or []
        return repositories[0]["name"] if repositories else None

    def _daemons_healthy(self) -> bool:
        data = self.graphql(
            "query { instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        )
        statuses = {
            status["daemonType"]: status["healthy"]
            for status in data["instance"]["daemonHealth"]["allDaemonStatuses"]
        }
        return all(statuses.get(daemon) for daemon in REQUIRED_DAEMONS)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _http_ok(url: str) -> bool:
    return requests.get(url, timeout=10).ok


def stack_environment(
    root: Path,
    *,
    warehouse_url: str,
    dagster_url: str,
    mlflow_uri: str,
    feature_cache: Path,
    extra: Mapping[str, str],
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED_PREFIXES)}
    env.update(
        {
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DAGSTER_POSTGRES_URL": dagster_url,
            "HULEEDU_HOME": str(root / "home"),
            "HULEEDU_WAREHOUSE_URL": warehouse_url,
            "HULEEDU_FEATURE_CACHE_DIR": str(feature_cache),
            "MLFLOW_TRACKING_URI": mlflow_uri,
            # mlflow 3.x: no server-side job execution (not used here; its backend is not set up).
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DAGSTER_DISABLE_TELEMETRY": "true",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "HULEEDU_N_JOBS": "2",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def served_stack(
    admin_postgres_url: str,
    root: Path,
    *,
    feature_cache: Path,
    dagster_yaml: Path = DEPLOY_DAGSTER_YAML,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 300.0,
) -> Iterator[ServedStack]:
    """Start PostgreSQL databases, MLflow server, Dagster daemon and webserver; stop them all.

    `dagster_yaml` becomes `$DAGSTER_HOME/dagster.yaml` unchanged: the instance the
    deployment uses, not one written for the test.
    """
    if not dagster_yaml.is_file():
        raise StackError(
            f"{dagster_yaml} is missing: the served stack runs the deployment's Dagster "
            "instance config (dagster-postgres storage from DAGSTER_POSTGRES_URL, "
            "QueuedRunCoordinator); add it before running this test"
        )
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copyfile(dagster_yaml, dagster_home / "dagster.yaml")
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)

    prefix = f"huleedu_stack_{uuid.uuid4().hex[:10]}"
    with fresh_databases(admin_postgres_url, prefix, ("warehouse", "dagster", "mlflow")) as dbs:
        mlflow_port, webserver_port = free_port(), free_port()
        stack = ServedStack(
            root=root,
            env=stack_environment(
                root,
                warehouse_url=dbs["warehouse"],  # psycopg 3, as the README documents
                dagster_url=with_driver(dbs["dagster"], "psycopg2"),
                mlflow_uri=f"http://127.0.0.1:{mlflow_port}",
                feature_cache=feature_cache,
                extra=extra_env or {},
            ),
            warehouse_url=dbs["warehouse"],
            mlflow_uri=f"http://127.0.0.1:{mlflow_port}",
            dagster_url=f"http://127.0.0.1:{webserver_port}",
            artifacts_dir=artifacts,
        )
        try:
            # A deployed warehouse has its schema; migrating here also keeps the sensor's
            # first tick and the test's seeding from racing to create it.
            warehouse = make_engine(stack.warehouse_url)
            try:
                migrate_warehouse(warehouse)
            finally:
                warehouse.dispose()
            # Create the instance schema once, as a deployment does before starting its
            # services, so the daemon and the webserver do not race to create the tables.
            migrate = subprocess.run(
                [str(VENV_BIN / "dagster"), "instance", "migrate"],
                env=stack.env,
                cwd=root,
                capture_output=True,
                text=True,
                timeout=startup_timeout,
                check=False,
            )
            if migrate.returncode != 0:
                raise StackError(
                    f"dagster instance migrate failed:\n{migrate.stdout}\n{migrate.stderr}"
                )
            commands = {
                "mlflow": [
                    str(VENV_BIN / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    with_driver(dbs["mlflow"], "psycopg2"),
                    "--serve-artifacts",
                    "--artifacts-destination",
                    str(artifacts),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                ],
                "dagster-daemon": [
                    str(VENV_BIN / "dagster-daemon"),
                    "run",
                    "-w",
                    str(WORKSPACE_YAML),
                ],
                "dagster-webserver": [
                    str(VENV_BIN / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(webserver_port),
                    "-w",
                    str(WORKSPACE_YAML),
                ],
            }
            for name, args in commands.items():
                stack.processes.append(ServerProcess.start(name, args, stack.env, root, logs))
            stack._wait_until_ready(startup_timeout)
            yield stack
        finally:
            stack.stop()
