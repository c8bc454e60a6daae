"""Dagster resources: warehouse, Parquet IO manager, feature cache, embedder, training knobs,
the MLflow registry, the scoring/monitoring knobs and the retrain trigger.

Resources declare their fields without defaults: `build_resources(settings)` fills every one
from `Settings`, the only place a default lives (the launchpad can still override a field).

A URL that carries credentials (a password, or a token or key in its query) is passed as
`dg.EnvVar(NAME)` when it comes from the environment: Dagster reads it when a run or a sensor
starts, and the UI's Resources page shows the variable's name, never its value. URLs without
secrets (the embedded SQLite files under HULEEDU_HOME, a server reached by trust or peer auth)
are passed as they are, so definitions built in one environment still run in another.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import dagster as dg

from huleedu_pipelines.registry import build_registry
from huleedu_pipelines.resources.features import EmbedderResource, FeatureStoreResource
from huleedu_pipelines.resources.mlflow_registry import MlflowRegistryResource
from huleedu_pipelines.resources.parquet_io import PolarsParquetIOManager
from huleedu_pipelines.resources.retrain_trigger import RetrainTriggerResource
from huleedu_pipelines.resources.scoring import MonitoringResource, ScoringResource
from huleedu_pipelines.resources.training import TrainingResource
from huleedu_pipelines.resources.validation import ValidationResource
from huleedu_pipelines.resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from huleedu_pipelines.settings import Settings


_SECRET_QUERY_KEY = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)


def holds_credentials(url: str) -> bool:
    """Whether `url` carries a secret: a password in its user part, or a query parameter whose
    name says password, secret, token, key or credential."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # an unparsable netloc: assume the worst
        return True
    return bool(password) or any(
        _SECRET_QUERY_KEY.search(name) for name, _ in parse_qsl(parts.query)
    )


def from_environment(variable: str, value: str) -> str | dg.EnvVar:
    """`dg.EnvVar(variable)` when `value` carries credentials and is what the environment holds
    under `variable`, so the secret is read at run time and never stored in the definitions'
    config (nor shown by the UI); else `value` itself."""
    if holds_credentials(value) and os.environ.get(variable) == value:
        return dg.EnvVar(variable)
    return value


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource of the code location, by resource key, wired to `settings`."""
    registry = build_registry(settings)
    return {
        "warehouse": WarehouseResource(
            url=from_environment("HULEEDU_WAREHOUSE_URL", settings.resolved_warehouse_url)
        ),
        "io_manager": PolarsParquetIOManager(base_dir=str(settings.storage_dir)),
        "feature_store": FeatureStoreResource(cache_dir=str(settings.feature_cache_dir)),
        "embedder": EmbedderResource(
            num_threads=settings.n_jobs,
            runtime=settings.embedding_runtime,
            min_cosine=settings.embedding_min_cosine,
            model_cache_dir=str(settings.embedding_model_cache_dir),
        ),
        "training": TrainingResource(
            seed=settings.seed,
            n_jobs=settings.n_jobs,
            min_labels_to_train=settings.min_labels_to_train,
            high_skill_threshold=settings.high_skill_threshold,
            models_dir=str(settings.models_dir),
            review_target_share=settings.review_target_share,
        ),
        "validation": ValidationResource(
            **dataclasses.asdict(settings.gate_thresholds()),
            gaming_tolerance_sd=settings.gaming_tolerance_sd,
            gaming_essays=settings.gaming_essays,
            reports_dir=str(settings.reports_dir),
            latent_truth_path=str(settings.demo_latent_truth_path),
        ),
        "scoring": ScoringResource(
            review_confidence_threshold=settings.review_confidence_threshold,
            explain_scope=settings.explain_scope,
            shadow_scoring=settings.shadow_scoring,
            chunk_size=settings.scoring_chunk_size,
            n_jobs=settings.n_jobs,
        ),
        "monitoring": MonitoringResource(
            psi_warn=settings.monitor_psi_warn,
            min_skill_r=settings.monitor_min_skill_r,
            min_rated_essays=settings.monitor_min_rated_essays,
        ),
        "retrain_trigger": RetrainTriggerResource(
            min_new_labels=settings.retrain_min_new_labels,
            max_future_skew_seconds=settings.max_future_skew_seconds,
        ),
        "mlflow": MlflowRegistryResource(
            tracking_uri=from_environment("MLFLOW_TRACKING_URI", registry.tracking_uri),
            artifact_location=registry.artifact_location,
        ),
    }


__all__ = [
    "EmbedderResource",
    "FeatureStoreResource",
    "MlflowRegistryResource",
    "MonitoringResource",
    "PolarsParquetIOManager",
    "RetrainTriggerResource",
    "ScoringResource",
    "TrainingResource",
    "ValidationResource",
    "WarehouseResource",
    "build_resources",
    "from_environment",
    "holds_credentials",
]
