"""`ModelRegistry` on MLflow: training runs, registered model versions and their aliases.

Not dagster-mlflow: every method names its run or model version explicitly, and a run this
registry starts always ends (FINISHED, or FAILED when anything inside raises).

One training run per model holds its params, metrics, plots (``plots/``), the native
bundle (``bundle/``: LightGBM text models, ``bundle.json``, feature list) and, as dataset
inputs, the splits it read (contexts ``training``, ``validation``, ``holdout``). The model is
an MLflow 3 *logged model* (``models:/m-...``, stored under the experiment's
``models/`` folder, not among the run's artifacts) with two flavors: ``onnx`` (the graph
scoring loads) and ``python_function`` (the bundle decoding it, ``registry.pyfunc_bundle``),
so ``mlflow models predict -m models:/<name>@champion`` returns decoded labels. It is
registered as a new version of the registered model, and an alias (``challenger``/``champion``)
points at the serving version. Each version carries the caller's tags plus ``run_id`` and
``onnx_sha256``, which ``download_onnx`` checks. The experiment is tagged as classic ML
(``mlflow.experimentKind``), so MLflow's UI opens it on runs and models, not GenAI traces.

MLflow is imported inside methods only, so loading the code location stays fast. The fluent
API (``start_run``, ``log_model``, ``register_model``) reads MLflow's process-global URIs:
every method first points them at this registry's ``tracking_uri``.
"""

import hashlib
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from huleedu_pipelines.modeling.bundle import MANIFEST_FILE, MANIFEST_TAG
from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError
from huleedu_pipelines.registry.protocol import (
    ONNX_SHA256_TAG,
    RUN_ID_TAG,
    LoggedDataset,
    ModelVersionNotFoundError,
    ModelVersionRef,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

ONNX_MODEL_NAME = "model"
ONNX_FILE = "model.onnx"  # the mlflow.onnx flavor's data file inside the logged model
BUNDLE_ARTIFACT_PATH = "bundle"
BUNDLE_MANIFEST = "bundle.json"
PLOTS_ARTIFACT_PATH = "plots"
PIP_REQUIREMENTS = ("onnx", "onnxruntime")
"""What the onnx flavor alone needs (a version logged without a feature example)."""
SERVED_REQUIREMENTS = ("huleedu-pipelines", "numpy", "pandas", "onnx", "onnxruntime")
"""What the python_function flavor needs: it imports this package to decode. Explicit, so
MLflow does not infer requirements (seconds per model); `--env-manager local` serves it from
an environment with the package installed."""

EXPERIMENT_NAME = "huleedu-training"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML_KIND = "custom_model_development"
"""MLflow 3's experiment kind for classic ML (the UI shows runs and models, not GenAI)."""
MODEL_NAME_RUN_TAG = "huleedu.model_name"
SKIPPED_METRICS_TAG = "huleedu.skipped_metrics"

# mlflow.utils.validation: MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH (same on a server).
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
TRUNCATED_SUFFIX = "...[truncated]"

_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
_PAGE_SIZE = 100


class MlflowRegistry:
    """MLflow tracking + model registry (SQLite store embedded; a tracking server in production).

    ``artifact_location`` is the root for the artifacts of experiments this registry creates
    (each experiment gets a sub-folder named after it). None: beside the DB file for a SQLite
    tracking URI, else the server's default (proxied ``mlflow-artifacts:/``).
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_location: str | None = None,
        experiment_name: str = EXPERIMENT_NAME,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.experiment_name = experiment_name

    def __repr__(self) -> str:
        return (
            f"MlflowRegistry(tracking_uri={self.tracking_uri!r}, "
            f"artifact_location={self.artifact_location!r})"
        )

    # ---- training -------------------------------------------------------------------

    def log_model_version(
        self,
        *,
        model_name: str,
        run_name: str,
        onnx_bytes: bytes,
        input_example: np.ndarray,
        output_example: dict[str, np.ndarray] | np.ndarray,
        bundle_dir: Path,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        plots: Sequence[Path] = (),
        alias: str = "challenger",
        feature_example: np.ndarray | None = None,
        datasets: Sequence[LoggedDataset] = (),
    ) -> ModelVersionRef:
        """Log one training run with its ONNX model and bundle; register it under ``alias``.

        ``input_example`` is a few rows of the ONNX input (cast to its dtype);
        ``output_example`` the ONNX outputs for them, by output name. ``feature_example``
        (the same rows as the bundle's feature columns) makes the version servable as
        registered: its signature is then feature columns in, decoded labels and
        probabilities out, computed by the bundle (see ``registry.pyfunc_bundle``); without
        it the signature is the ONNX graph's. ``datasets`` are logged as the run's inputs.
        Non-finite metrics are skipped and named in the run tag ``huleedu.skipped_metrics``.
        Long param values are truncated to MLflow's limit.
        """
        bundle_dir = Path(bundle_dir)
        for required in (BUNDLE_MANIFEST, MANIFEST_FILE):
            if not (bundle_dir / required).is_file():
                raise FileNotFoundError(
                    f"{bundle_dir} has no {required}; save the model bundle before logging it"
                )
        plot_paths = [Path(plot) for plot in plots]
        missing = [str(path) for path in plot_paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"plot files not found: {missing}")

        client = self._client()
        import mlflow
        import onnx
        from mlflow.models import Model, infer_signature

        from huleedu_pipelines.registry import pyfunc_bundle

        onnx_model = onnx.load_from_string(onnx_bytes)
        example: Any = _as_onnx_input_dtype(onnx_model, input_example)
        served_output: Any = output_example
        requirements = list(PIP_REQUIREMENTS)
        if feature_example is not None:
            example, served_output = pyfunc_bundle.served_example(bundle_dir, feature_example)
            requirements = _served_requirements()
        signature = infer_signature(example, served_output)
        finite, skipped = _split_finite(metrics)
        run_tags = {**_string_tags(tags), MODEL_NAME_RUN_TAG: model_name}
        if skipped:
            run_tags[SKIPPED_METRICS_TAG] = _skipped_text(skipped)
        experiment_id = self._experiment_id(client)

        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
            run_id = run.info.run_id
            self._log_batch(client, run_id, params=params, metrics=finite)
            _log_datasets(datasets)
            model_info = Model.log(
                artifact_path=None,  # deprecated in MLflow 3 in favour of name, still required
                name=ONNX_MODEL_NAME,
                flavor=pyfunc_bundle,
                flavor_name="onnx",
                onnx_model=onnx_model,  # saved byte-identical to onnx_bytes
                bundle_dir=str(bundle_dir),
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
                # The served example is checked by the tests; an ONNX-only example would be
                # refused by the python_function flavor's feature-column input.
                validate_serving_input=False,
            )
            client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT_PATH)
            for plot in plot_paths:
                client.log_artifact(run_id, str(plot), PLOTS_ARTIFACT_PATH)

            self._ensure_registered_model(client, model_name)
            version_tags = {
                **_string_tags(tags),
                RUN_ID_TAG: run_id,
                ONNX_SHA256_TAG: hashlib.sha256(onnx_bytes).hexdigest(),
                MANIFEST_TAG: hashlib.sha256((bundle_dir / MANIFEST_FILE).read_bytes()).hexdigest(),
            }
            created = mlflow.register_model(model_info.model_uri, model_name, tags=version_tags)
            client.set_registered_model_alias(model_name, alias, str(created.version))
        return self.get_version_by_number(model_name, str(created.version))

    # ---- registry reads and alias moves -------------------------------------------

    def get_version(self, model_name: str, alias: str) -> ModelVersionRef | None:
        """The version ``alias`` points at; None when the model or the alias does not exist."""
        client = self._client()
        from mlflow.exceptions import MlflowException

        try:
            registered = client.get_registered_model(model_name)
        except MlflowException as error:
            if error.error_code == _DOES_NOT_EXIST:
                return None
            raise
        version = registered.aliases.get(alias)
        if version is None:
            return None
        return self.get_version_by_number(model_name, str(version))

    def get_version_by_number(self, model_name: str, version: str) -> ModelVersionRef:
        client = self._client()
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_model_version(model_name, str(version))
        except MlflowException as error:
            if error.error_code == _DOES_NOT_EXIST:
                raise ModelVersionNotFoundError(
                    f"{model_name} version {version} is not registered at {self.tracking_uri}; "
                    "`huleedu-pipelines registry list` shows the registered versions"
                ) from error
            raise
        return _ref(found)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self._client().set_registered_model_alias(model_name, alias, str(version))

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove ``alias`` (a no-op when the model has no such alias)."""
        self._client().delete_registered_model_alias(model_name, alias)

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str | None]) -> None:
        """Set the version's tags; a tag whose value is None is removed (if present)."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        for key, value in tags.items():
            if value is not None:
                text = _truncate(str(value), MAX_TAG_LENGTH)
                client.set_model_version_tag(model_name, str(version), str(key), text)
                continue
            try:
                client.delete_model_version_tag(model_name, str(version), str(key))
            except MlflowException as error:
                if error.error_code != _DOES_NOT_EXIST:
                    raise

    def list_models(self, prefix: str = "huleedu-") -> list[dict]:
        """Registered models named ``prefix...`` with their versions (by version number).

        Each model: ``name``, ``description``, ``aliases`` ({alias: version}) and
        ``versions``, each with ``version``, ``aliases``, ``run_id``, ``created_at`` (ISO
        8601, UTC), ``status`` and ``tags``.
        """
        if not _SAFE_PREFIX.fullmatch(prefix):
            raise ValueError(
                f"prefix {prefix!r} may hold only letters, digits and '-' (it is placed in a "
                "registry search filter)"
            )
        client = self._client()
        filter_string = f"name LIKE '{prefix}%'" if prefix else None
        # One search for all versions under the prefix, grouped here: no model name (a value
        # read from the store) is ever placed in a filter string.
        versions_by_name: dict[str, list] = {}
        for found in _paged(client.search_model_versions, filter_string=filter_string):
            versions_by_name.setdefault(found.name, []).append(found)
        models = []
        for registered in _paged(client.search_registered_models, filter_string=filter_string):
            if not registered.name.startswith(prefix):
                continue  # LIKE is case-insensitive on some stores
            aliases = {alias: str(version) for alias, version in registered.aliases.items()}
            # search_model_versions leaves ModelVersion.aliases empty: use the model's map.
            versions = [
                {
                    "version": str(found.version),
                    "aliases": sorted(a for a, v in aliases.items() if v == str(found.version)),
                    "run_id": found.run_id,
                    "created_at": _iso_utc(found.creation_timestamp),
                    "status": found.status,
                    "tags": dict(found.tags),
                }
                for found in versions_by_name.get(registered.name, [])
            ]
            versions.sort(key=lambda entry: int(entry["version"]))
            models.append(
                {
                    "name": registered.name,
                    "description": registered.description or "",
                    "aliases": aliases,
                    "versions": versions,
                }
            )
        return sorted(models, key=lambda model: model["name"])

    # ---- artifacts ------------------------------------------------------------------

    def download_bundle(self, model_name: str, version: str, destination: Path) -> Path:
        """Download the version's ``bundle/`` run artifacts; returns the folder with bundle.json."""
        ref = self.get_version_by_number(model_name, version)
        client = self._client()
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        local = Path(client.download_artifacts(ref.run_id, BUNDLE_ARTIFACT_PATH, str(destination)))
        if not (local / BUNDLE_MANIFEST).is_file():
            raise FileNotFoundError(
                f"{model_name} version {version} (run {ref.run_id}) has no "
                f"{BUNDLE_ARTIFACT_PATH}/{BUNDLE_MANIFEST}; it was not logged by "
                "log_model_version — retrain or register a complete version"
            )
        return local

    def download_onnx(self, model_name: str, version: str) -> bytes:
        """The registered ONNX model's bytes, checked against the version's ``onnx_sha256``."""
        ref = self.get_version_by_number(model_name, version)
        self._use_uri()
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="huleedu-onnx-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{ref.uri}/{ONNX_FILE}",
                dst_path=tmp,
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
            data = Path(local).read_bytes()
        expected = ref.tags.get(ONNX_SHA256_TAG)
        actual = hashlib.sha256(data).hexdigest()
        if expected is not None and actual != expected:
            raise ArtifactIntegrityError(
                f"{model_name} version {version}: {ONNX_FILE} has sha256 {actual}, the version "
                f"tag says {expected}; the artifact store copy was changed — re-register the model"
            )
        return data

    # ---- existing runs --------------------------------------------------------------

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Latest value of every metric of the run."""
        return dict(self._client().get_run(run_id).data.metrics)

    def log_run_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        """Add a folder (e.g. a validation report) to an existing run, under ``artifact_path``.

        The PNG plots at the folder's top level are also logged as the run's images (key
        ``<artifact_path>/<file stem>``), which the run page shows as pictures.
        """
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise FileNotFoundError(f"{local_dir} is not a folder")
        client = self._client()
        client.log_artifacts(run_id, str(local_dir), artifact_path)
        _log_images(client, run_id, sorted(local_dir.glob("*.png")), artifact_path)

    def log_run_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Add metrics to an existing (also a finished) run; non-finite values are skipped."""
        client = self._client()
        finite, skipped = _split_finite(metrics)
        tags = {}
        if skipped:
            earlier = client.get_run(run_id).data.tags.get(SKIPPED_METRICS_TAG)
            text = _skipped_text(skipped)
            tags[SKIPPED_METRICS_TAG] = f"{earlier}, {text}" if earlier else text
        self._log_batch(client, run_id, metrics=finite, tags=tags)

    # ---- internals ------------------------------------------------------------------

    def _use_uri(self) -> None:
        """Point MLflow's process-global URIs (read by the fluent API) at this registry."""
        _quiet_mlflow()
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def _client(self) -> "MlflowClient":
        self._use_uri()
        from mlflow import MlflowClient

        def build() -> "MlflowClient":
            return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

        return _created_store_client(build, self.tracking_uri)

    def resolved_artifact_location(self) -> str | None:
        """Artifact URI for a new experiment; None leaves it to the tracking server."""
        root = self.artifact_location
        if root is None and urlparse(self.tracking_uri).scheme.startswith("sqlite"):
            import sqlalchemy as sa

            database = sa.engine.make_url(self.tracking_uri).database
            if database and database != ":memory:":
                root = str(Path(database).expanduser().resolve().parent / "mlartifacts")
        if root is None:
            return None
        if len(urlparse(root).scheme) <= 1:  # a plain (or Windows drive) path
            root = Path(root).expanduser().resolve().as_uri()
        return f"{root.rstrip('/')}/{_safe_folder_name(self.experiment_name)}"

    def _experiment_id(self, client: "MlflowClient") -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return client.create_experiment(
                    self.experiment_name,
                    artifact_location=self.resolved_artifact_location(),
                    tags={EXPERIMENT_KIND_TAG: CLASSIC_ML_KIND},
                )
            except MlflowException as error:  # created meanwhile by another process
                if error.error_code not in _ALREADY_EXISTS:
                    raise
                experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None or experiment.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {self.experiment_name!r} is deleted at {self.tracking_uri}; "
                "restore it (`mlflow experiments restore`) or set another experiment_name"
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # created before the kind was set
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND
            )
        return experiment.experiment_id

    @staticmethod
    def _ensure_registered_model(client: "MlflowClient", model_name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(model_name)
            return
        except MlflowException as error:
            if error.error_code != _DOES_NOT_EXIST:
                raise
        try:
            client.create_registered_model(
                model_name,
                description=(
                    f"HuleEdu essay model {model_name}: ONNX (LightGBM) with native bundle in "
                    "the training run's bundle/ artifacts. Aliases: challenger (latest trained), "
                    "champion (serving)."
                ),
            )
        except MlflowException as error:  # created meanwhile by another process
            if error.error_code not in _ALREADY_EXISTS:
                raise

    @staticmethod
    def _log_batch(
        client: "MlflowClient",
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """One log_batch call (MLflow splits it into chunks within its per-request limits)."""
        from mlflow.entities import Metric, Param, RunTag

        timestamp = int(datetime.now(UTC).timestamp() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(key, value, timestamp, 0) for key, value in (metrics or {}).items()],
            params=[Param(key, _param_text(value)) for key, value in (params or {}).items()],
            tags=[RunTag(key, value) for key, value in _string_tags(tags or {}).items()],
        )


def _quiet_mlflow() -> None:
    """Defaults that keep MLflow quiet in pipeline logs; an explicit env setting wins.

    Telemetry is read when mlflow is first imported, so this only takes effect if this
    registry imports mlflow first in the process.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _served_requirements() -> list[str]:
    """``SERVED_REQUIREMENTS`` pinned to the installed versions (no inference)."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in SERVED_REQUIREMENTS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def _log_datasets(datasets: Sequence[LoggedDataset]) -> None:
    """Log each dataset as an input of the active run, with its context."""
    if not datasets:
        return
    import mlflow
    from mlflow.data.polars_dataset import from_polars

    mlflow.log_inputs(
        datasets=[
            from_polars(dataset.frame, targets=dataset.targets, name=dataset.name)
            for dataset in datasets
        ],
        contexts=[dataset.context for dataset in datasets],
        tags_list=[None] * len(datasets),
    )


def _log_images(client: "MlflowClient", run_id: str, pngs: Sequence[Path], prefix: str) -> None:
    """Log each PNG as a run image (``MlflowClient.log_image`` with a key, step 0).

    Keyed images are what MLflow's run page draws (its image charts; the files land under the
    run's ``images/`` artifacts with a thumbnail); a plain artifact shows only in the
    artifact tree. The PNGs are already drawn, so they are logged as images rather than
    re-rendered with ``log_figure``.
    """
    if not pngs:
        return
    import mlflow

    for png in pngs:
        key = _image_key(f"{prefix}/{Path(png).stem}")
        client.log_image(run_id, mlflow.Image(str(png)), key=key, step=0)


def _image_key(text: str) -> str:
    """``text`` with the characters an image key may not hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)


def _as_onnx_input_dtype(onnx_model: Any, example: np.ndarray) -> np.ndarray:
    """The example in the dtype of the model's first input (float64 rows -> float32)."""
    from onnx import helper

    array = np.asarray(example)
    inputs = onnx_model.graph.input
    if not inputs or not inputs[0].type.HasField("tensor_type"):
        return array
    dtype = helper.tensor_dtype_to_np_dtype(inputs[0].type.tensor_type.elem_type)
    return np.ascontiguousarray(array, dtype=dtype)


def _split_finite(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    finite: dict[str, float] = {}
    skipped: dict[str, float] = {}
    for key, value in metrics.items():
        number = float(value)
        (finite if math.isfinite(number) else skipped)[key] = number
    return finite, skipped


def _skipped_text(skipped: Mapping[str, float]) -> str:
    text = ", ".join(f"{key}={value}" for key, value in sorted(skipped.items()))
    return _truncate(f"not logged (non-finite): {text}", MAX_TAG_LENGTH)


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return _truncate(text, MAX_PARAM_LENGTH)


def _string_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): _truncate(str(value), MAX_TAG_LENGTH) for key, value in tags.items()}


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED_SUFFIX)] + TRUNCATED_SUFFIX


def _safe_folder_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


def _iso_utc(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()


def _ref(found: "ModelVersion") -> ModelVersionRef:
    return ModelVersionRef(
        name=found.name,
        version=str(found.version),
        run_id=found.run_id or "",
        aliases=tuple(sorted(found.aliases or ())),
        tags=dict(found.tags or {}),
    )


def _paged(search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(max_results=_PAGE_SIZE, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


_SAFE_PREFIX = re.compile(r"[A-Za-z0-9-]*")
"""Registered-name prefixes safe to place in a filter (no quotes, no LIKE wildcards)."""

_CREATED_STORES: set[str] = set()
_CREATED_STORES_LOCK = threading.Lock()


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for servers and ``:memory:``.

    Read-only commands check it exists first: opening a missing one creates an empty store.
    """
    if not urlparse(tracking_uri).scheme.startswith("sqlite"):
        return None
    import sqlalchemy as sa

    database = sa.engine.make_url(tracking_uri).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def _created_store_client(build: Callable[[], "MlflowClient"], tracking_uri: str) -> "MlflowClient":
    """``build()``, creating a SQLite store's schema under a file lock the first time.

    MLflow creates and migrates a new SQLite database when a client first opens it (the
    client's constructor does). Two processes doing that at once (a training run and a CLI
    command, two run workers) both migrate and one fails. The lock (``<database>.lock``) lets
    the first create the schema while the other waits, then finds the tables there. Once per
    process and store; servers need no lock.
    """
    database = sqlite_database(tracking_uri)
    if database is None or tracking_uri in _CREATED_STORES:
        return build()
    import fcntl

    with _CREATED_STORES_LOCK:
        if tracking_uri in _CREATED_STORES:
            return build()
        database.parent.mkdir(parents=True, exist_ok=True)
        lock_path = database.with_name(f"{database.name}.lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                client = build()  # opens (and if new, creates) the tracking store
                client.search_registered_models(max_results=1)  # and the registry store
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _CREATED_STORES.add(tracking_uri)
        return client
