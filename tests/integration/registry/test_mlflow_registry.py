"""MlflowRegistry against real MLflow: one migrated SQLite store for the module.

A new MLflow database runs its migrations on first use (~3-4 s), so every test shares the
module's store and uses its own registered model name. The `slow` test starts a real
`mlflow server` (~15 s to come up on 2 cores) and runs the same calls over HTTP.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from huleedu_pipelines.modeling.onnx_export import (
    ArtifactIntegrityError,
    OnnxRunner,
    booster_to_onnx,
)
from huleedu_pipelines.registry.mlflow import (
    MAX_PARAM_LENGTH,
    ONNX_SHA256_TAG,
    RUN_ID_TAG,
    SKIPPED_METRICS_TAG,
    MlflowRegistry,
    ModelVersionNotFoundError,
)

N_FEATURES = 5


@dataclass(frozen=True)
class TinyModel:
    booster: lgb.Booster
    onnx_bytes: bytes
    X: np.ndarray
    outputs: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def tiny_model() -> TinyModel:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, N_FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, 200) > 0).astype(int)
    params = {"objective": "binary", "num_threads": 1, "seed": 3, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=10)
    onnx_bytes = booster_to_onnx(booster, N_FEATURES, "binary")
    session = OnnxRunner(onnx_bytes).session
    names = [output.name for output in session.get_outputs()]
    values = session.run(None, {"features": X[:3].astype(np.float32)})
    return TinyModel(booster, onnx_bytes, X, dict(zip(names, values, strict=True)))


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def registry(store_dir: Path) -> MlflowRegistry:
    return MlflowRegistry(tracking_uri=f"sqlite:///{store_dir / 'mlflow.db'}")


@pytest.fixture
def bundle_dir(tmp_path: Path, tiny_model: TinyModel) -> Path:
    folder = tmp_path / "bundle"
    (folder / "native").mkdir(parents=True)
    (folder / "native" / "model_0.txt").write_text(tiny_model.booster.model_to_string())
    (folder / "bundle.json").write_text(json.dumps({"calibration": {"a": 1.0, "b": 0.0}}))
    (folder / "features.json").write_text(json.dumps([f"f{i}" for i in range(N_FEATURES)]))
    (folder / "manifest.json").write_text(json.dumps({"files": {}}))  # its digest becomes a tag
    return folder


def _log(registry: MlflowRegistry, model: TinyModel, bundle_dir: Path, name: str, **kw):
    arguments = {
        "model_name": name,
        "run_name": f"{name}-run",
        "onnx_bytes": model.onnx_bytes,
        "input_example": model.X[:3],  # float64: the resource casts to the ONNX input dtype
        "output_example": model.outputs,
        "bundle_dir": bundle_dir,
        "params": {"learning_rate": 0.05, "num_leaves": 15},
        "metrics": {"test_qwk": 0.81, "test_ece": 0.03},
        "tags": {"feature_version": "3", "git_commit": "abc123"},
    }
    return registry.log_model_version(**{**arguments, **kw})


def _client(registry: MlflowRegistry):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


def test_log_model_version_records_run_model_and_version(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path, tmp_path: Path
) -> None:
    plot = tmp_path / "calibration.png"
    plot.write_bytes(b"\x89PNG not really")
    ref = _log(
        registry,
        tiny_model,
        bundle_dir,
        "huleedu-t-first",
        params={"objective": "binary", "grid": {"b": [1, 2]}, "notes": "x" * 10_000},
        metrics={"test_qwk": 0.8, "test_auc": np.float32(0.9), "test_r": float("nan")},
        plots=[plot],
    )

    assert (ref.name, ref.version, ref.aliases) == ("huleedu-t-first", "1", ("challenger",))
    assert ref.tags["feature_version"] == "3" and ref.tags["git_commit"] == "abc123"
    assert ref.tags[RUN_ID_TAG] == ref.run_id
    assert ref.tags[ONNX_SHA256_TAG] == hashlib.sha256(tiny_model.onnx_bytes).hexdigest()

    run = _client(registry).get_run(ref.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "huleedu-t-first-run"
    assert run.data.params["objective"] == "binary"
    assert json.loads(run.data.params["grid"]) == {"b": [1, 2]}
    assert len(run.data.params["notes"]) == MAX_PARAM_LENGTH
    assert registry.run_metrics(ref.run_id) == pytest.approx({"test_qwk": 0.8, "test_auc": 0.9})
    assert "test_r=nan" in run.data.tags[SKIPPED_METRICS_TAG]
    assert run.data.tags["git_commit"] == "abc123"

    client = _client(registry)
    listed = {a.path for a in client.list_artifacts(ref.run_id)}
    assert listed == {"bundle", "plots"}
    assert {a.path for a in client.list_artifacts(ref.run_id, "plots")} == {"plots/calibration.png"}
    # Embedded mode: artifacts beside the SQLite file, never ./mlruns.
    artifacts = Path(registry.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    assert (artifacts / "huleedu-training" / ref.run_id / "artifacts" / "bundle").is_dir()

    import mlflow

    model = mlflow.models.get_model_info(ref.uri)
    assert model.signature.inputs.to_dict()[0]["tensor-spec"]["dtype"] == "float32"
    assert {o["name"] for o in model.signature.outputs.to_dict()} == {"label", "probabilities"}
    assert _client(registry).get_registered_model(ref.name).description


def test_second_version_takes_the_challenger_alias(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path
) -> None:
    first = _log(registry, tiny_model, bundle_dir, "huleedu-t-second")
    second = _log(registry, tiny_model, bundle_dir, "huleedu-t-second")

    assert (first.version, second.version) == ("1", "2")
    assert second.aliases == ("challenger",)
    assert registry.get_version_by_number("huleedu-t-second", "1").aliases == ()
    assert registry.get_version("huleedu-t-second", "challenger") == second
    assert first.run_id != second.run_id


def test_missing_model_or_alias(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path
) -> None:
    assert registry.get_version("huleedu-t-never-registered", "champion") is None
    _log(registry, tiny_model, bundle_dir, "huleedu-t-missing")
    assert registry.get_version("huleedu-t-missing", "champion") is None
    with pytest.raises(ModelVersionNotFoundError, match="version 7"):
        registry.get_version_by_number("huleedu-t-missing", "7")


def test_alias_moves_and_version_tags(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path
) -> None:
    name = "huleedu-t-alias"
    _log(registry, tiny_model, bundle_dir, name)
    _log(registry, tiny_model, bundle_dir, name)

    registry.set_alias(name, "champion", "1")
    champion = registry.get_version(name, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.aliases == ("champion",)
    registry.set_alias(name, "champion", "2")
    assert registry.get_version_by_number(name, "2").aliases == ("challenger", "champion")

    registry.delete_alias(name, "champion")
    assert registry.get_version(name, "champion") is None
    registry.delete_alias(name, "champion")  # already gone: no error

    registry.set_version_tags(name, "2", {"gate_verdict": "passed", "qwk": 0.8})
    tags = registry.get_version_by_number(name, "2").tags
    assert tags["gate_verdict"] == "passed" and tags["qwk"] == "0.8"
    assert tags["git_commit"] == "abc123"


def test_downloads_are_identical_and_onnx_runs(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path, tmp_path: Path
) -> None:
    ref = _log(registry, tiny_model, bundle_dir, "huleedu-t-download")

    local = registry.download_bundle(ref.name, ref.version, tmp_path / "downloaded")
    assert (local / "bundle.json").is_file()
    originals = sorted(p.relative_to(bundle_dir) for p in bundle_dir.rglob("*") if p.is_file())
    copies = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert copies == originals
    for relative in originals:
        assert (local / relative).read_bytes() == (bundle_dir / relative).read_bytes()

    onnx_bytes = registry.download_onnx(ref.name, ref.version)
    assert onnx_bytes == tiny_model.onnx_bytes
    served = OnnxRunner(onnx_bytes, expected_sha256=ref.tags[ONNX_SHA256_TAG]).raw(tiny_model.X)
    np.testing.assert_allclose(served, OnnxRunner(tiny_model.onnx_bytes).raw(tiny_model.X))
    np.testing.assert_allclose(served, tiny_model.booster.predict(tiny_model.X), atol=1e-5)


def test_download_onnx_refuses_bytes_that_do_not_match_the_tag(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path
) -> None:
    ref = _log(registry, tiny_model, bundle_dir, "huleedu-t-integrity")
    registry.set_version_tags(ref.name, ref.version, {ONNX_SHA256_TAG: "0" * 64})
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        registry.download_onnx(ref.name, ref.version)


def test_a_failure_inside_the_run_ends_it_failed(
    registry: MlflowRegistry,
    tiny_model: TinyModel,
    bundle_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    def broken_upload(*args, **kwargs):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(MlflowClient, "log_artifacts", broken_upload)
    with pytest.raises(OSError, match="unreachable"):
        _log(registry, tiny_model, bundle_dir, "huleedu-t-failed")

    assert mlflow.active_run() is None
    runs = _client(registry).search_runs(
        [_client(registry).get_experiment_by_name(registry.experiment_name).experiment_id],
        filter_string="attributes.run_name = 'huleedu-t-failed-run'",
    )
    assert [run.info.status for run in runs] == ["FAILED"]
    assert registry.get_version("huleedu-t-failed", "challenger") is None


def test_missing_bundle_manifest_is_refused_before_any_run(
    registry: MlflowRegistry, tiny_model: TinyModel, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match=r"bundle\.json"):
        _log(registry, tiny_model, tmp_path, "huleedu-t-nobundle")


def test_existing_run_gets_metrics_and_a_report(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path, tmp_path: Path
) -> None:
    ref = _log(registry, tiny_model, bundle_dir, "huleedu-t-report")
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.md").write_text("# Validation\n")

    registry.log_run_artifacts(ref.run_id, report, "validation")
    registry.log_run_metrics(ref.run_id, {"holdout_qwk": 0.77, "holdout_mae": float("inf")})

    metrics = registry.run_metrics(ref.run_id)
    assert metrics["holdout_qwk"] == pytest.approx(0.77)
    assert "holdout_mae" not in metrics and metrics["test_qwk"] == pytest.approx(0.81)
    run = _client(registry).get_run(ref.run_id)
    assert "holdout_mae=inf" in run.data.tags[SKIPPED_METRICS_TAG]
    artifacts = {a.path for a in _client(registry).list_artifacts(ref.run_id, "validation")}
    assert artifacts == {"validation/index.md"}


def test_list_models_shows_versions_and_aliases(
    registry: MlflowRegistry, tiny_model: TinyModel, bundle_dir: Path
) -> None:
    for _ in range(2):
        _log(registry, tiny_model, bundle_dir, "huleedu-t-list-a")
    _log(registry, tiny_model, bundle_dir, "huleedu-t-list-b")
    _log(registry, tiny_model, bundle_dir, "other-t-list")
    registry.set_alias("huleedu-t-list-a", "champion", "1")

    models = {m["name"]: m for m in registry.list_models(prefix="huleedu-t-list")}
    assert sorted(models) == ["huleedu-t-list-a", "huleedu-t-list-b"]
    listed = models["huleedu-t-list-a"]
    assert listed["aliases"] == {"challenger": "2", "champion": "1"}
    assert [v["version"] for v in listed["versions"]] == ["1", "2"]
    assert [v["aliases"] for v in listed["versions"]] == [["champion"], ["challenger"]]
    first = listed["versions"][0]
    assert first["tags"]["git_commit"] == "abc123" and first["run_id"] == first["tags"]["run_id"]
    assert first["created_at"].endswith("+00:00") and first["status"] == "READY"
    assert "other-t-list" in {m["name"] for m in registry.list_models(prefix="")}


@pytest.mark.parametrize(
    ("tracking_uri", "artifact_location", "expected"),
    [
        ("sqlite:////srv/h/mlflow.db", None, "file:///srv/h/mlartifacts/huleedu-training"),
        ("sqlite:////srv/h/mlflow.db", "/data/art/", "file:///data/art/huleedu-training"),
        ("http://mlflow:5000", None, None),
        ("http://mlflow:5000", "s3://bucket/mlflow", "s3://bucket/mlflow/huleedu-training"),
    ],
)
def test_artifact_location_for_new_experiments(
    tracking_uri: str, artifact_location: str | None, expected: str | None
) -> None:
    registry = MlflowRegistry(tracking_uri=tracking_uri, artifact_location=artifact_location)
    assert registry.resolved_artifact_location() == expected


def test_importing_the_registry_does_not_import_mlflow() -> None:
    code = "import sys, huleedu_pipelines.registry.mlflow; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- a real tracking server -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on a fresh SQLite store with proxied artifacts; stopped afterwards."""
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = (tmp_path / "server.log").open("wb")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no huey workers
    command = [
        str(mlflow_cli), "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        # The server runs uvicorn as a child: stop the session we started, by its id.
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass
        log.close()


@pytest.mark.slow
def test_against_a_tracking_server(
    mlflow_server: str,
    tiny_model: TinyModel,
    bundle_dir: Path,
    tmp_path: Path,
) -> None:
    remote = MlflowRegistry(tracking_uri=mlflow_server)
    first = _log(remote, tiny_model, bundle_dir, "huleedu-t-server")
    second = _log(remote, tiny_model, bundle_dir, "huleedu-t-server")
    assert (first.version, second.version) == ("1", "2")
    assert remote.get_version("huleedu-t-server", "challenger") == second
    assert remote.get_version("huleedu-t-server", "champion") is None
    remote.set_alias("huleedu-t-server", "champion", "1")

    local = remote.download_bundle(first.name, "1", tmp_path / "from-server")
    assert (local / "bundle.json").read_bytes() == (bundle_dir / "bundle.json").read_bytes()
    assert remote.download_onnx(first.name, "1") == tiny_model.onnx_bytes
    assert remote.run_metrics(second.run_id)["test_qwk"] == pytest.approx(0.81)
    [listed] = remote.list_models(prefix="huleedu-t-server")
    assert listed["aliases"] == {"challenger": "2", "champion": "1"}
    artifact_root = _client(remote).get_experiment_by_name(remote.experiment_name)
    assert artifact_root.artifact_location.startswith("mlflow-artifacts:")


# ---- names never reach a filter string; a new store is created once ---------------------


def test_list_models_reads_a_name_holding_a_quote(registry: MlflowRegistry, tmp_path: Path) -> None:
    """A registered name is data, not filter syntax: a quote in it (which used to end the
    `name = '...'` filter and break every listing) lists like any other name."""
    name = "huleedu-t-o'neil"
    client = _client(registry)
    client.create_registered_model(name)
    client.create_model_version(name, source=str(tmp_path))
    client.create_model_version(name, source=str(tmp_path))
    models = {m["name"]: m for m in registry.list_models(prefix="huleedu-t-o")}
    assert [v["version"] for v in models[name]["versions"]] == ["1", "2"]


@pytest.mark.parametrize("prefix", ["huleedu_", "huleedu-%", "x' OR '1'='1"])
def test_list_models_refuses_a_prefix_that_is_filter_syntax(
    registry: MlflowRegistry, prefix: str
) -> None:
    with pytest.raises(ValueError, match="only letters, digits and '-'"):
        registry.list_models(prefix=prefix)


def _open_new_store(tracking_uri: str, name: str, barrier) -> None:
    """One of two processes opening the same new SQLite store at the same moment."""
    registry = MlflowRegistry(tracking_uri=tracking_uri)
    barrier.wait(timeout=60)
    registry.list_models()
    _client(registry).create_registered_model(name)


def test_two_processes_creating_one_store_both_succeed(tmp_path: Path) -> None:
    """Without the creation lock both ran MLflow's migrations on the new database and one
    failed ("duplicate column name", "table experiments already exists")."""
    import multiprocessing

    tracking_uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=_open_new_store, args=(tracking_uri, name, barrier))
        for name in ("huleedu-t-race-a", "huleedu-t-race-b")
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    assert [process.exitcode for process in processes] == [0, 0]
    store = MlflowRegistry(tracking_uri=tracking_uri)
    assert [m["name"] for m in store.list_models()] == ["huleedu-t-race-a", "huleedu-t-race-b"]
