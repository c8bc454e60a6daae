"""The model registry: the protocol the services use, its MLflow implementation, and bundle
loading with verification. No Dagster here; MLflow is imported only when a registry is used.

``build_registry(settings)`` is the one place a registry is built from settings (definitions,
CLI, benchmarks and tests all call it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from huleedu_pipelines.registry.bundles import UNUSABLE_BUNDLE_ERRORS, load_registered_bundle
from huleedu_pipelines.registry.mlflow import MlflowRegistry
from huleedu_pipelines.registry.protocol import (
    ONNX_SHA256_TAG,
    RUN_ID_TAG,
    LoggedDataset,
    ModelRegistry,
    ModelVersionNotFoundError,
    ModelVersionRef,
)

if TYPE_CHECKING:
    from huleedu_pipelines.settings import Settings


def build_registry(settings: Settings) -> MlflowRegistry:
    """The registry at the settings' tracking URI (the embedded SQLite store by default)."""
    return MlflowRegistry(
        tracking_uri=settings.resolved_mlflow_tracking_uri,
        artifact_location=settings.mlflow_artifact_location,
    )


__all__ = [
    "ONNX_SHA256_TAG",
    "RUN_ID_TAG",
    "UNUSABLE_BUNDLE_ERRORS",
    "LoggedDataset",
    "MlflowRegistry",
    "ModelRegistry",
    "ModelVersionNotFoundError",
    "ModelVersionRef",
    "build_registry",
    "load_registered_bundle",
]
