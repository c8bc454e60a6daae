"""No UI page shows a secret: a real `dagster-webserver` on the code location, with a warehouse
URL and an MLflow tracking URI that carry passwords in the environment, answers the Resources
page's GraphQL query with the variables' names, never their values."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import stop_process

REPO = Path(__file__).resolve().parents[3]
WAREHOUSE_PASSWORD = "s3cretpw"
MLFLOW_PASSWORD = "mlfl0wpw"
ENV = {
    "HULEEDU_WAREHOUSE_URL": f"postgresql://user:{WAREHOUSE_PASSWORD}@127.0.0.1:5432/x",
    "MLFLOW_TRACKING_URI": f"http://admin:{MLFLOW_PASSWORD}@127.0.0.1:5999",
}

REPOSITORIES = """
query { repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""

RESOURCES = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results { name resourceType configuredValues { key value type } }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> tuple[dict, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    return json.loads(body), body


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[int]:
    """`dagster-webserver` on the definitions, on 127.0.0.1 and a free port, with its own
    DAGSTER_HOME and HULEEDU_HOME and the secret-bearing variables set."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HULEEDU_", "MLFLOW_", "DAGSTER_"))
    }
    env |= ENV | {"DAGSTER_HOME": str(dagster_home), "HULEEDU_HOME": str(tmp_path / "home")}
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "huleedu_pipelines.definitions",
            "-a",
            "defs",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                nodes = graphql(port, REPOSITORIES)[0]["data"]["repositoriesOrError"]["nodes"]
                if nodes:
                    break
            except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "webserver.log").read_text()[-3000:]
            time.sleep(0.5)
        yield port
    finally:
        stop_process(process)
        log.close()


def test_resources_page_shows_env_var_names_not_passwords(webserver: int) -> None:
    (repository,) = graphql(webserver, REPOSITORIES)[0]["data"]["repositoriesOrError"]["nodes"]
    selector = {
        "repositoryName": repository["name"],
        "repositoryLocationName": repository["location"]["name"],
    }
    data, body = graphql(webserver, RESOURCES, {"selector": selector})

    assert WAREHOUSE_PASSWORD not in body
    assert MLFLOW_PASSWORD not in body
    result = data["data"]["allTopLevelResourceDetailsOrError"]
    assert result["__typename"] == "ResourceDetailsList", result
    values = {
        (resource["name"], value["key"]): (value["type"], value["value"])
        for resource in result["results"]
        for value in resource["configuredValues"]
    }
    assert values[("warehouse", "url")] == ("ENV_VAR", "HULEEDU_WAREHOUSE_URL")
    assert values[("mlflow", "tracking_uri")] == ("ENV_VAR", "MLFLOW_TRACKING_URI")
    # The other settings still show their values (they hold no secret).
    assert values[("training", "seed")] == ("VALUE", "42")


def test_only_urls_with_credentials_become_env_vars(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from huleedu_pipelines.resources import build_resources
    from huleedu_pipelines.settings import get_settings

    # The embedded default and a server reached without a password: plain values.
    resources = build_resources(get_settings())
    assert resources["warehouse"].url == f"sqlite:///{home.resolve() / 'warehouse.db'}"
    monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", "postgresql://reader@db.internal:5432/huleedu")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    resources = build_resources(get_settings())
    assert resources["warehouse"].url == "postgresql://reader@db.internal:5432/huleedu"
    assert resources["mlflow"].tracking_uri == "http://mlflow:5000"

    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    resources = build_resources(get_settings())
    assert resources["warehouse"].url == dg.EnvVar("HULEEDU_WAREHOUSE_URL")
    assert isinstance(resources["warehouse"].url, dg.EnvVar)
    assert isinstance(resources["mlflow"].tracking_uri, dg.EnvVar)
    assert resources["warehouse"].url.get_value() == ENV["HULEEDU_WAREHOUSE_URL"]


@pytest.mark.integration
def test_a_run_reads_the_warehouse_url_from_the_environment(
    home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, as_of
) -> None:
    """The production path end to end: a URL with a password reaches the resource as an EnvVar
    and the run resolves it when it starts (the test server trusts local connections, so any
    password signs in)."""
    import dagster as dg
    import sqlalchemy as sa

    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.engine import make_engine, migrate

    url = sa.engine.make_url(postgres_url).set(password="unused-pw")
    url = url.render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        migrate(engine)
        seed_demo_warehouse(
            engine,
            n_essays=40,
            seed=3,
            as_of=as_of,
            bad_rows=0,
            latent_truth_path=home / "truth.parquet",
        )
        with engine.connect() as connection:
            essays = connection.execute(sa.text("SELECT count(*) FROM essays")).scalar_one()
    finally:
        engine.dispose()

    monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", url)
    defs = build_definitions(get_settings())
    assert isinstance(defs.resources["warehouse"].url, dg.EnvVar)
    job = dg.define_asset_job("secret_url_job", selection=dg.AssetSelection.assets("raw_essays"))
    result = (
        dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        .resolve_job_def("secret_url_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral())
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == essays == 40
