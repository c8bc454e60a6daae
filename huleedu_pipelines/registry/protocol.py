"""What the services need from a model registry, independent of MLflow.

Services, the CLI and benchmarks type against ``ModelRegistry``; ``MlflowRegistry`` is the
implementation and the tests' ``FakeRegistry`` an in-memory one. A registered version carries
the caller's tags plus ``run_id`` and ``onnx_sha256`` (and the bundle's manifest digest), which
bundle loading checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import polars as pl

RUN_ID_TAG = "run_id"
ONNX_SHA256_TAG = "onnx_sha256"
CHAMPION_REASON_TAG = "huleedu.champion_reason"
CHAMPION_SINCE_TAG = "huleedu.champion_since"
CHAMPION_REPORT_TAG = "huleedu.report_uri"
"""On the champion version only (moved with the alias): why it serves, since when (ISO 8601,
UTC) and the validation report it was promoted on, as recorded in `model_promotions`."""


class ModelVersionNotFoundError(LookupError):
    """The registered model or version does not exist."""


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered model version, as read from the registry."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoggedDataset:
    """A dataset a training run read, logged as one of the run's inputs.

    *context* says what the run did with it: ``training``, ``validation`` (early stopping,
    calibration, the validation metrics) or ``holdout`` (the test split behind ``test_*``).
    *frame* holds one row per essay (identifiers, label, feature hash): the features
    themselves follow from the feature hash and version, so they are not repeated."""

    name: str
    context: str
    frame: pl.DataFrame
    targets: str | None = None
    """The label column of *frame*."""


@runtime_checkable
class ModelRegistry(Protocol):
    """Registered model versions, their aliases and tags, and the runs that produced them."""

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
        """Record one training run with its ONNX model and bundle; register it under ``alias``.

        ``feature_example``: a few rows of the bundle's feature columns; when given, the
        registered version is servable as registered (decoded labels from feature columns).
        ``datasets``: the run's inputs (training, validation and holdout splits)."""
        ...

    def get_version(self, model_name: str, alias: str) -> ModelVersionRef | None:
        """The version ``alias`` points at; None when the model or the alias does not exist."""
        ...

    def get_version_by_number(self, model_name: str, version: str) -> ModelVersionRef:
        """The version, or ``ModelVersionNotFoundError``."""
        ...

    def set_alias(self, model_name: str, alias: str, version: str) -> None: ...

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove ``alias`` (a no-op when the model has no such alias)."""
        ...

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str | None]) -> None:
        """Set the version's tags; a tag whose value is None is removed (if present)."""
        ...

    def list_models(self, prefix: str = "huleedu-") -> list[dict]:
        """Registered models named ``prefix...`` with their versions (by version number)."""
        ...

    def download_bundle(self, model_name: str, version: str, destination: Path) -> Path:
        """Download the version's bundle; returns the folder holding ``bundle.json``."""
        ...

    def download_onnx(self, model_name: str, version: str) -> bytes:
        """The registered ONNX model's bytes, checked against the version's ``onnx_sha256``."""
        ...

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Latest value of every metric of the run."""
        ...

    def log_run_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        """Add a folder (e.g. a validation report) to an existing run, under ``artifact_path``."""
        ...

    def log_run_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Add metrics to an existing (also a finished) run; non-finite values are skipped."""
        ...
