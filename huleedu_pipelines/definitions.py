"""The one place the Dagster Definitions are assembled."""

from __future__ import annotations

import dagster as dg

from huleedu_pipelines.assets import (
    features,
    features_checks,
    inference,
    ingest,
    ingest_checks,
    labels,
    monitoring,
    training,
    training_checks,
    validation,
    validation_checks,
)
from huleedu_pipelines.jobs import nightly_inference_job, training_job
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    MlflowRegistryResource,
    MonitoringResource,
    PolarsParquetIOManager,
    ScoringResource,
    TrainingResource,
    WarehouseResource,
)
from huleedu_pipelines.resources.validation import ValidationResource
from huleedu_pipelines.schedules import RetrainTriggerResource, schedules, sensors
from huleedu_pipelines.settings import Settings, get_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to `settings` (tests pass their own; the code location uses the env)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(
            [ingest, labels, features, training, validation, inference, monitoring]
        ),
        asset_checks=dg.load_asset_checks_from_modules(
            [ingest_checks, features_checks, training_checks, validation_checks]
        ),
        jobs=[training_job, nightly_inference_job],
        schedules=schedules,
        sensors=sensors,
        resources={
            "warehouse": WarehouseResource(url=settings.resolved_warehouse_url),
            "io_manager": PolarsParquetIOManager(base_dir=str(settings.storage_dir)),
            "feature_store": FeatureStoreResource(cache_dir=str(settings.feature_cache_dir)),
            "embedder": EmbedderResource(num_threads=settings.n_jobs),
            "training": TrainingResource(
                seed=settings.seed,
                n_jobs=settings.n_jobs,
                optuna_trials=settings.optuna_trials,
                min_labels_to_train=settings.min_labels_to_train,
                high_skill_threshold=settings.high_skill_threshold,
                models_dir=str(settings.models_dir),
            ),
            "validation": ValidationResource.from_settings(settings),
            "scoring": ScoringResource.from_settings(settings),
            "monitoring": MonitoringResource.from_settings(settings),
            "retrain_trigger": RetrainTriggerResource.from_settings(settings),
            "mlflow": MlflowRegistryResource(
                tracking_uri=settings.resolved_mlflow_tracking_uri,
                artifact_location=None
                if settings.mlflow_tracking_uri
                else settings.mlflow_artifact_root.as_uri(),
            ),
        },
    )


defs = build_definitions(get_settings())
