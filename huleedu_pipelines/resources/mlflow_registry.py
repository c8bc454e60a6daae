"""The model registry as a Dagster resource: configuration only, the work is in `registry/`.

Assets take ``mlflow: MlflowRegistryResource`` and hand ``mlflow.registry()`` (a
``ModelRegistry``) to a service; the resource itself holds only the configuration.
"""

from __future__ import annotations

import dagster as dg

from huleedu_pipelines.registry.mlflow import MlflowRegistry


class MlflowRegistryResource(dg.ConfigurableResource):
    """MLflow tracking + model registry (SQLite store embedded; a tracking server in production)."""

    tracking_uri: str
    artifact_location: str | None
    """Root for new experiments' artifacts; None: beside a SQLite store, else the server's."""

    def registry(self) -> MlflowRegistry:
        return MlflowRegistry(self.tracking_uri, self.artifact_location)
