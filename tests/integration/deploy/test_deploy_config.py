"""The production stack (docker-compose.yml, Dockerfile, deploy/), checked without Docker.

Docker may be missing where the tests run, so the compose file is checked statically against
what it relies on: console scripts and flags of the packages the image installs (parsed with
the same click commands the containers run), settings names, the databases the init script
creates, the workspace the webserver loads. One integration test builds the production Dagster
instance from deploy/dagster.yaml against real PostgreSQL and records a run in it.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import re
import shlex
import shutil
import subprocess
import warnings
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import sqlalchemy as sa
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from huleedu_pipelines.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
WORKSPACE_YAML = REPO / "deploy" / "workspace.yaml"
INIT_SCRIPT = REPO / "deploy" / "postgres" / "init-databases.sh"
PROMETHEUS_YAML = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"

PYTHON_SERVICES = ("mlflow", "code-server", "webserver", "daemon", "scoring-api")
MONITORING_SERVICES = ("prometheus", "grafana")
SERVICES = ("proxy", "postgres", *PYTHON_SERVICES, *MONITORING_SERVICES)
DAGSTER_SERVICES = ("code-server", "webserver", "daemon")
PROJECT = "huleedu-pipelines"

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<required>:?\?)[^}]*|:?-(?P<default>[^}]*))?\}"
)


def _substitute(match: re.Match[str]) -> str:
    if match[0] == "$$":
        return "$"  # an escaped dollar, left for the container's shell
    if match["required"]:
        # A variable the stack refuses to start without: the operator's value.
        return f"operator-set-{match['name'].lower().replace('_', '-')}"
    return match["default"] or ""


def interpolate(value: Any) -> Any:
    """Compose's `${NAME:-default}` interpolation with no optional variable set, as on a fresh
    host, and a value for each required `${NAME:?message}` (compose refuses to start without
    them; the rendered-config tests check that)."""
    if isinstance(value, str):
        return _VARIABLE.sub(_substitute, value)
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    kind, *rest = service["healthcheck"]["test"]
    if kind == "CMD-SHELL":
        return shlex.split(rest[0])
    assert kind == "CMD", f"healthcheck test must start with CMD or CMD-SHELL, not {kind}"
    return rest


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def option(args: list[str], *names: str) -> str:
    """The value after the first of `names` in a command line."""
    for index, arg in enumerate(args):
        if arg in names:
            return args[index + 1]
    raise AssertionError(f"none of {names} in {args}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (instruction.upper(), arguments.strip())
        for instruction, arguments in re.findall(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)
    ]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


# -- console scripts of the image ---------------------------------------------------------


@cache
def project_distributions() -> frozenset[str]:
    """The installed distributions `pip install .` brings in: the project and the closure of
    its runtime requirements (no extras), as the image gets them."""
    seen: set[str] = set()
    pending = [PROJECT]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            pending.append(requirement.name)
    return frozenset(seen)


@cache
def console_scripts() -> dict[str, importlib.metadata.EntryPoint]:
    return {
        entry_point.name: entry_point
        for entry_point in importlib.metadata.entry_points(group="console_scripts")
        if entry_point.dist is not None
        and canonicalize_name(entry_point.dist.name) in project_distributions()
    }


def click_command(script: str) -> click.Command:
    """The click command behind a console script (dagster's scripts wrap a module-level
    `cli` in a `main()` function)."""
    import typer

    entry_point = console_scripts()[script]
    target = entry_point.load()
    if isinstance(target, click.Command):
        return target
    if isinstance(target, typer.Typer):  # huleedu-pipelines itself
        return typer.main.get_command(target)
    command = getattr(importlib.import_module(entry_point.module), "cli", None)
    assert isinstance(command, click.Command), f"cannot find the click command of {script}"
    return command


def image_workdir() -> str:
    workdirs = [
        arguments
        for instruction, arguments in dockerfile_instructions()
        if instruction == "WORKDIR"
    ]
    return workdirs[-1]


def parse_command_line(args: list[str]) -> click.Context:
    """Parse a command line exactly as the container's CLI would, without running it: unknown
    subcommands, unknown options and bad values raise click.UsageError. Paths under the image's
    WORKDIR (where the Dockerfile copies deploy/) are read from this checkout instead."""
    prefix = image_workdir().rstrip("/") + "/"
    args = [f"{REPO}/{arg.removeprefix(prefix)}" if arg.startswith(prefix) else arg for arg in args]
    script, *rest = args
    command = click_command(script)
    context = command.make_context(script, list(rest))
    while isinstance(command, click.Group):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*context.protected_args, *context.args]
        name, subcommand, remaining = command.resolve_command(context, remaining)
        assert subcommand is not None and name is not None, f"no subcommand in {args}"
        command = subcommand
        context = command.make_context(name, remaining, parent=context)
    return context


# -- the compose file ---------------------------------------------------------------------


def test_compose_defines_every_service_with_a_healthcheck(services: dict[str, dict]) -> None:
    assert set(services) == set(SERVICES)
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert healthcheck_argv(service), f"{name}'s healthcheck runs nothing"


def test_python_services_run_the_project_image(services: dict[str, dict]) -> None:
    images = set()
    for name in PYTHON_SERVICES:
        service = services[name]
        build = service.get("build")
        assert build, f"{name} must build the project image"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
        assert (REPO / context).resolve() == REPO, f"{name} builds from {context}"
        assert (REPO / context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE
        images.add(service.get("image"))
    assert len(images) == 1 and None not in images, f"one image name for all: {images}"


def test_dockerfile_installs_the_project_with_cpu_torch() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    # An exact base image: a full version tag (or a digest), never a moving `3.11-slim`.
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", instructions[0][1])
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    locked = [run for run in runs if re.search(r"\bpip install\b.*-r requirements\.lock", run)]
    assert locked, "the Dockerfile must install the dependencies from requirements.lock"
    assert "download.pytorch.org/whl/cpu" in locked[0], "torch must come from the CPU index"
    installs = [run for run in runs if re.search(r"\bpip install --no-deps \.(\s|$)", run)]
    assert installs, "the Dockerfile must `pip install --no-deps .` the project after the lock"
    assert runs.index(locked[0]) < runs.index(installs[0])
    assert "pip check" in installs[0]
    copied = " ".join(arguments for instruction, arguments in instructions if instruction == "COPY")
    for needed in (
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "huleedu_pipelines",
        "deploy",
    ):
        assert needed in copied, f"the image needs {needed}"
    env = dockerfile_env()
    assert env.get("HF_HUB_OFFLINE") == "1"
    # The instance config: deploy/dagster.yaml followed by the compose stack's run launcher.
    instance_config = (
        "cat deploy/dagster.yaml deploy/run-launcher.docker.yaml > "
        f"{env['DAGSTER_HOME']}/dagster.yaml"
    )
    assert any(instance_config in run for run in runs), "the image's dagster.yaml"
    assert any(instruction == "USER" for instruction, _ in instructions), "run as non-root"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".huleedu", ".git"} <= ignored
    # Secrets stay out of the build context.
    assert {".env", "deploy/caddy/certs", "**/*.pem"} <= ignored


def test_service_commands_are_console_scripts_of_the_image(services: dict[str, dict]) -> None:
    expected = {
        "mlflow": "mlflow",
        "code-server": "dagster",
        "webserver": "dagster-webserver",
        "daemon": "dagster-daemon",
        "scoring-api": "huleedu-pipelines",
    }
    for name, script in expected.items():
        command = argv(services[name]["command"])
        assert command[0] == script, f"{name} runs {command[0]}, expected {script}"
        assert script in console_scripts(), f"{script} is not installed by `pip install .`"
        parse_command_line(command)


def test_healthchecks_use_what_the_image_has(services: dict[str, dict]) -> None:
    assert healthcheck_argv(services["postgres"])[0] == "pg_isready"
    for name in PYTHON_SERVICES:
        check = healthcheck_argv(services[name])
        if check[0] == "python":
            assert check[1] == "-c"
            compile(check[2], f"{name} healthcheck", "exec")
        else:
            assert check[0] in console_scripts(), f"{name}'s healthcheck runs {check[0]}"
            parse_command_line(check)
    for name in (*MONITORING_SERVICES, "proxy"):
        # prom/prometheus (busybox), grafana/grafana and caddy (Alpine) ship busybox's wget.
        assert healthcheck_argv(services[name])[:3] == ["wget", "-q", "--spider"], name


def test_healthchecks_probe_the_ports_the_services_serve(services: dict[str, dict]) -> None:
    mlflow_port = option(argv(services["mlflow"]["command"]), "--port", "-p")
    assert f"localhost:{mlflow_port}/health" in " ".join(healthcheck_argv(services["mlflow"]))
    webserver_port = option(argv(services["webserver"]["command"]), "--port", "-p")
    webserver_check = " ".join(healthcheck_argv(services["webserver"]))
    assert f"localhost:{webserver_port}/server_info" in webserver_check
    code_server_port = option(argv(services["code-server"]["command"]), "--port", "-p")
    assert option(healthcheck_argv(services["code-server"]), "--port", "-p") == code_server_port
    scoring_port = option(argv(services["scoring-api"]["command"]), "--port")
    assert f"localhost:{scoring_port}/readyz" in " ".join(healthcheck_argv(services["scoring-api"]))
    assert "http://localhost:9090/-/healthy" in healthcheck_argv(services["prometheus"])
    assert "http://localhost:3000/api/health" in healthcheck_argv(services["grafana"])


def test_only_the_proxy_is_published_on_loopback(services: dict[str, dict]) -> None:
    """The UIs and the API answer through the authenticating proxy only, on the host's
    loopback unless HULEEDU_BIND_ADDRESS says otherwise."""
    assert [name for name, service in services.items() if service.get("ports")] == ["proxy"]
    published = {
        str(port).rsplit(":", 1)[1]: str(port).rsplit(":", 1)[0]
        for port in services["proxy"]["ports"]
    }
    assert published == {
        "3000": "127.0.0.1:3000",
        "5000": "127.0.0.1:5000",
        "3001": "127.0.0.1:3001",
        "8000": "127.0.0.1:8000",
    }
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for port in raw["services"]["proxy"]["ports"]:
        assert str(port).startswith("${HULEEDU_BIND_ADDRESS:-127.0.0.1}:"), port


def test_depends_on_names_services_that_report_health(services: dict[str, dict]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {dependency: {} for dependency in depends_on}
        for dependency, condition in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert dependency != name
            if (condition or {}).get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck"), dependency
    assert set(services["code-server"]["depends_on"]) >= {"postgres", "mlflow"}
    for name in ("webserver", "daemon"):
        assert "code-server" in services[name]["depends_on"]


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


# -- settings and URLs ---------------------------------------------------------------------


def settings_env_names() -> set[str]:
    return {field.alias or name.upper() for name, field in Settings.model_fields.items()}


def test_project_env_vars_are_settings(services: dict[str, dict]) -> None:
    known = settings_env_names()
    for name, service in services.items():
        for variable in environment(service):
            if variable.startswith("HULEEDU_") or variable in (
                "MLFLOW_TRACKING_URI",
                "DAGSTER_HOME",
            ):
                assert variable in known, f"{name} sets {variable}, which settings.py never reads"


def test_code_server_has_the_production_stores(services: dict[str, dict]) -> None:
    env = environment(services["code-server"])
    for variable in ("HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "HULEEDU_HOME"):
        assert env.get(variable), f"code-server must set {variable}"
    home = env["HULEEDU_HOME"]
    mounts = [str(volume).split(":")[1] for volume in services["code-server"]["volumes"]]
    assert home in mounts, "HULEEDU_HOME must be on a volume (Parquet, feature cache, reports)"


def test_dagster_instance_env_is_set_wherever_the_instance_is_loaded(
    services: dict[str, dict],
) -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    referenced = set(re.findall(r"env:\s*([A-Z_][A-Z0-9_]*)", DAGSTER_YAML.read_text()))
    for name in DAGSTER_SERVICES:
        env = environment(services[name])
        for variable in referenced:
            assert env.get(variable), f"{name} loads the instance but does not set {variable}"
        assert (
            env.get("DAGSTER_HOME", dockerfile_env()["DAGSTER_HOME"])
            == (dockerfile_env()["DAGSTER_HOME"])
        ), f"{name}'s DAGSTER_HOME is not where the image puts dagster.yaml"


def database_urls(services: dict[str, dict]) -> dict[str, sa.engine.URL]:
    """Every PostgreSQL URL a service is given, in its environment or on its command line."""
    found: dict[str, sa.engine.URL] = {}
    for name, service in services.items():
        values = [*environment(service).items()]
        values += [(f"{name} command", arg) for arg in argv(service.get("command") or [])]
        for where, value in values:
            if value.startswith("postgresql"):
                found[f"{name}: {where}"] = sa.engine.make_url(value)
    return found


def test_init_script_creates_exactly_the_databases_the_urls_use(
    services: dict[str, dict],
) -> None:
    match = re.search(r"^DATABASES=\(([^)]*)\)", INIT_SCRIPT.read_text(), re.M)
    assert match, "init-databases.sh must list its databases as DATABASES=(...)"
    created = set(match[1].split())
    urls = database_urls(services)
    assert {url.database for url in urls.values()} == created
    assert {"huleedu", "dagster", "mlflow"} == created

    postgres_env = environment(services["postgres"])
    for where, url in urls.items():
        assert url.host == "postgres" and (url.port or 5432) == 5432, where
        assert url.username == postgres_env["POSTGRES_USER"], where
        assert url.password == postgres_env["POSTGRES_PASSWORD"], where
        url.get_dialect().import_dbapi()  # the driver the URL names is installed


def test_warehouse_url_uses_psycopg3(services: dict[str, dict]) -> None:
    """The warehouse's bulk upserts use psycopg 3's COPY API (warehouse/bulk.py)."""
    url = sa.engine.make_url(environment(services["code-server"])["HULEEDU_WAREHOUSE_URL"])
    assert url.get_dialect().driver == "psycopg"


def test_init_script_is_mounted_and_executable(services: dict[str, dict]) -> None:
    assert INIT_SCRIPT.stat().st_mode & 0o111, "init-databases.sh must be executable"
    mounts = [str(volume).split(":") for volume in services["postgres"]["volumes"]]
    assert any(
        (REPO / source).resolve() == INIT_SCRIPT
        and target.startswith("/docker-entrypoint-initdb.d/")
        for source, target, *_ in mounts
    )
    result = subprocess.run(["bash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_code_server_reaches_mlflow_by_a_host_it_accepts(services: dict[str, dict]) -> None:
    tracking = urlsplit(environment(services["code-server"])["MLFLOW_TRACKING_URI"])
    command = argv(services["mlflow"]["command"])
    assert tracking.hostname == "mlflow"
    assert str(tracking.port) == option(command, "--port", "-p")
    allowed = option(command, "--allowed-hosts").split(",")
    for host in (tracking.netloc, "localhost:5000", "127.0.0.1:5000"):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host
    assert environment(services["mlflow"]).get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false"


# -- workspace -----------------------------------------------------------------------------


def test_workspace_points_at_the_code_server(services: dict[str, dict]) -> None:
    workspace = yaml.safe_load(WORKSPACE_YAML.read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    code_server = argv(services["code-server"]["command"])
    assert grpc["host"] == "code-server"
    assert str(grpc["port"]) == option(code_server, "--port", "-p")
    assert option(code_server, "--host", "-h") == "0.0.0.0"
    assert grpc["location_name"] == "huleedu_pipelines"
    assert option(code_server, "-m", "--module-name") == "huleedu_pipelines.definitions"
    assert option(code_server, "-a", "--attribute") == "defs"

    workdir = image_workdir()
    for name in ("webserver", "daemon"):
        path = option(argv(services[name]["command"]), "-w", "--workspace")
        assert Path(path) == Path(workdir) / "deploy" / "workspace.yaml", name


# -- the production Dagster instance on real PostgreSQL -------------------------------------


@pytest.mark.integration
def test_production_instance_records_runs_in_postgres(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    url = sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg2")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url.render_as_string(hide_password=False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")

    @dg.asset
    def deploy_smoke_test() -> int:
        """One row's worth of proof that runs land in the production instance."""
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert 1 <= instance.get_concurrency_config().run_queue_config.max_concurrent_runs <= 4
        assert not instance.telemetry_enabled

        result = dg.materialize([deploy_smoke_test], instance=instance)
        assert result.success

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            status = connection.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :run_id"),
                {"run_id": result.run_id},
            ).scalar_one()
            materializations = connection.execute(
                sa.text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :run_id "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                ),
                {"run_id": result.run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert materializations == 1


# -- run queue rules, run monitoring and retries --------------------------------------------

EMBEDDED_DAGSTER_YAML = REPO / "dagster.yaml"


def test_embedded_instance_config_is_the_one_the_runner_writes() -> None:
    from huleedu_pipelines.cli.runs import EMBEDDED_INSTANCE_YAML

    assert yaml.safe_load(EMBEDDED_DAGSTER_YAML.read_text()) == yaml.safe_load(
        EMBEDDED_INSTANCE_YAML
    )


def test_job_tags_match_the_instance_rules(home: Path) -> None:
    """The queue limit is keyed on the tag training_job carries; retries come from job tags."""
    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.jobs import CONCURRENCY_GROUP_TAG
    from huleedu_pipelines.settings import get_settings

    defs = build_definitions(get_settings())
    training = defs.resolve_job_def("training_job").tags
    nightly = defs.resolve_job_def("nightly_inference_job").tags
    assert training["dagster/max_retries"] == "0"
    assert int(nightly["dagster/max_retries"]) >= 1
    assert CONCURRENCY_GROUP_TAG not in nightly
    for path in (DAGSTER_YAML, EMBEDDED_DAGSTER_YAML):
        config = yaml.safe_load(path.read_text())
        limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
        assert {
            "key": CONCURRENCY_GROUP_TAG,
            "value": training[CONCURRENCY_GROUP_TAG],
            "limit": 1,
        } in (limits), path.name
        assert config["run_monitoring"]["enabled"] is True, path.name
        assert config["run_monitoring"]["max_runtime_seconds"] > 0, path.name
        assert config["run_retries"] == {"enabled": True, "max_retries": 0}, path.name


def _queued_run(instance, defs, job_name: str, status):
    """A run as the UI, a schedule or a sensor submits it: the job's tags, a code location."""
    import dagster as dg
    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.utils import make_new_run_id

    location = GrpcServerCodeLocationOrigin(host="code-server", port=4000, location_name="huleedu")
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=location, repository_name="__repository__"
        ),
        job_name=job_name,
    )
    run = dg.DagsterRun(
        job_name=job_name,
        run_id=make_new_run_id(),
        status=status,
        tags=dict(defs.resolve_job_def(job_name).tags),
        remote_job_origin=origin,
    )
    return instance.add_run(run)


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def test_the_queue_holds_a_second_training_until_the_first_ends(
    store: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request
) -> None:
    """The daemon's own dequeue step on each instance config: while a training run is in
    progress, a second one stays queued (a nightly run is not held); once the first ends,
    the second starts. A crashed worker's run is marked failed by run monitoring, which
    frees the queue the same way."""
    import dagster as dg
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.settings import get_settings

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    if store == "sqlite":
        shutil.copy(EMBEDDED_DAGSTER_YAML, dagster_home / "dagster.yaml")
    else:
        url = sa.engine.make_url(request.getfixturevalue("postgres_url"))
        url = url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
        shutil.copy(DAGSTER_YAML, dagster_home / "dagster.yaml")
    defs = build_definitions(get_settings())
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    Status = dg.DagsterRunStatus

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.run_monitoring_enabled and instance.run_retries_enabled

        def dequeued() -> list[str]:
            runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            return [run.run_id for run in runs]

        first = _queued_run(instance, defs, "training_job", Status.STARTED)
        second = _queued_run(instance, defs, "training_job", Status.QUEUED)
        nightly = _queued_run(instance, defs, "nightly_inference_job", Status.QUEUED)
        assert dequeued() == [nightly.run_id]

        instance.report_run_failed(first, "worker died")  # what run monitoring records
        assert dequeued() == [second.run_id, nightly.run_id]


# -- the scoring API and its monitoring (Prometheus, Grafana) -------------------------------


def mounts(service: dict[str, Any]) -> dict[str, Path | str]:
    """Container path -> host path (a file or folder of this checkout) or volume name."""
    found: dict[str, Path | str] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        found[target] = (REPO / source).resolve() if source.startswith(".") else source
    return found


def test_scoring_api_serves_the_stores_the_nightly_job_writes(services: dict[str, dict]) -> None:
    api, code_server = environment(services["scoring-api"]), environment(services["code-server"])
    for variable in ("HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "HULEEDU_HOME"):
        assert api.get(variable) == code_server[variable], variable
    # The same volume at the same home: the nightly job's feature cache is the disk layer.
    assert mounts(services["scoring-api"])[api["HULEEDU_HOME"]] == "huleedu-data"
    assert mounts(services["code-server"])[code_server["HULEEDU_HOME"]] == "huleedu-data"
    # The huleedu_nightly_* gauges read the production Dagster instance.
    assert api["DAGSTER_POSTGRES_URL"] == code_server["DAGSTER_POSTGRES_URL"]
    assert (
        api.get("DAGSTER_HOME", dockerfile_env()["DAGSTER_HOME"])
        == (dockerfile_env()["DAGSTER_HOME"])
    )
    command = argv(services["scoring-api"]["command"])
    assert command[:2] == ["huleedu-pipelines", "serve"]
    assert option(command, "--host") == "0.0.0.0"  # reachable by Prometheus in the network


def test_third_party_images_are_pinned(services: dict[str, dict]) -> None:
    for name in MONITORING_SERVICES:
        image = services[name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name} runs {image}"
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", services["postgres"]["image"])


URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|[^:/@\s]*):(\$\{[^}]*\}|[^@\s/]*)@")
ENV_REQUIRED = re.compile(r"\$\{[A-Z_]+:\?[^}]+\}")
ENV_DEFAULT = ENV_REQUIRED  # every secret is required: no default password anywhere


def test_no_password_is_written_in_the_compose_file() -> None:
    """Passwords come from the environment (or a .env file), each a required
    `${NAME:?message}`: no default, so the stack never starts with a known password."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    checked = 0
    for name, service in raw["services"].items():
        values = list(environment(service).items())
        values += [("command", arg) for arg in argv(service.get("command") or [])]
        for variable, value in values:
            if "PASSWORD" in variable or "SECRET" in variable:
                assert ENV_DEFAULT.fullmatch(value), f"{name}: {variable}"
            for password in URL_PASSWORD.findall(value):
                assert ENV_DEFAULT.fullmatch(password), f"{name}: {variable} {value}"
                checked += 1
    assert checked >= 5  # mlflow's store, the Dagster instance (3 services), the warehouse (2)


def test_prometheus_scrapes_the_scoring_api(services: dict[str, dict]) -> None:
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_arg.split("=", 1)[1]
    assert mounts(prometheus)[config_path] == PROMETHEUS_YAML
    config = yaml.safe_load(PROMETHEUS_YAML.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "scoring-api"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    port = option(argv(services["scoring-api"]["command"]), "--port")
    assert job["static_configs"][0]["targets"] == [f"scoring-api:{port}"]
    storage = next(a for a in prometheus["command"] if a.startswith("--storage.tsdb.path="))
    assert mounts(prometheus)[storage.split("=", 1)[1]] == "prometheus-data"


def test_grafana_is_provisioned_from_deploy(services: dict[str, dict]) -> None:
    grafana = services["grafana"]
    grafana_mounts = mounts(grafana)
    assert grafana_mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = datasources["datasources"]
    url = urlsplit(datasource["url"])
    assert datasource["type"] == "prometheus" and url.hostname == "prometheus"
    assert url.port == 9090  # Prometheus's own port, inside the compose network only
    assert not services["prometheus"].get("ports")

    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "huleedu.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert grafana_mounts[provider["options"]["path"]] == GRAFANA_DASHBOARDS
    assert sorted(GRAFANA_DASHBOARDS.glob("*.json")), "no dashboard to provision"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA_DASHBOARDS / Path(home).relative_to(provider["options"]["path"])).is_file()
