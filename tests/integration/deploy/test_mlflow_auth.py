"""MLflow's own authentication as the compose stack runs it: a real `mlflow server --app-name
basic-auth` with the shipped deploy/mlflow/basic_auth.ini (its SQLite path moved to a temporary
folder) and the admin from MLFLOW_AUTH_ADMIN_*: no request without a user, the admin gets in,
a user without a grant sees nothing, and the pipeline's registry signs in with
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD as the compose file sets them."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[3]
INI = REPO / "deploy" / "mlflow" / "basic_auth.ini"
ADMIN, ADMIN_PASSWORD = "admin", "admin-Secret-9"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow_auth")
    config = configparser.ConfigParser()
    config.read(INI)
    assert config["mlflow"]["database_uri"] == "sqlite:////mlflow/auth/basic_auth.db"
    config["mlflow"]["database_uri"] = f"sqlite:///{root / 'basic_auth.db'}"
    with (root / "basic_auth.ini").open("w") as handle:
        config.write(handle)

    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "HULEEDU_", "DAGSTER_"))
    }
    env |= {
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = (root / "mlflow.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, (root / "mlflow.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (root / "mlflow.log").read_text()[-3000:]
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


SEARCH = "/api/2.0/mlflow/experiments/search?max_results=10"


def test_compose_runs_mlflow_with_this_config() -> None:
    mlflow = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["mlflow"]
    command = mlflow["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert (
        mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
        == "/opt/huleedu/deploy/mlflow/basic_auth.ini"
    )
    assert "mlflow-auth:/mlflow/auth" in mlflow["volumes"]


def test_every_request_needs_a_user(mlflow_server: str) -> None:
    assert requests.get(f"{mlflow_server}{SEARCH}", timeout=30).status_code == 401
    wrong = requests.get(f"{mlflow_server}{SEARCH}", auth=(ADMIN, "wrong"), timeout=30)
    assert wrong.status_code == 401
    admin = requests.get(f"{mlflow_server}{SEARCH}", auth=(ADMIN, ADMIN_PASSWORD), timeout=30)
    assert admin.status_code == 200
    assert [e["name"] for e in admin.json()["experiments"]] == ["Default"]


def test_a_user_without_a_grant_sees_nothing(mlflow_server: str) -> None:
    created = requests.post(
        f"{mlflow_server}/api/2.0/mlflow/users/create",
        json={"username": "analyst", "password": "analyst-pw-1"},
        auth=(ADMIN, ADMIN_PASSWORD),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    experiment = requests.post(
        f"{mlflow_server}/api/2.0/mlflow/experiments/create",
        json={"name": "huleedu-private"},
        auth=(ADMIN, ADMIN_PASSWORD),
        timeout=30,
    )
    assert experiment.status_code == 200, experiment.text
    experiment_id = experiment.json()["experiment_id"]
    seen = requests.get(
        f"{mlflow_server}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}",
        auth=("analyst", "analyst-pw-1"),
        timeout=30,
    )
    assert seen.status_code == 403  # default_permission = NO_PERMISSIONS


def test_the_pipelines_registry_signs_in_with_the_tracking_credentials(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from huleedu_pipelines.registry import MlflowRegistry

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    client.create_registered_model("huleedu-auth-check")  # whatever registry URI is global
    models = MlflowRegistry(mlflow_server, None).list_models()
    assert [model["name"] for model in models] == ["huleedu-auth-check"]

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(MlflowException, match="401"):
        MlflowRegistry(mlflow_server, None).list_models()
