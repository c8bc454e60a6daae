"""Dagster resources: warehouse, Parquet IO manager, feature cache, embedder, training knobs,
the MLflow registry and the scoring/monitoring knobs."""

from huleedu_pipelines.resources.features import EmbedderResource, FeatureStoreResource
from huleedu_pipelines.resources.mlflow_registry import MlflowRegistryResource
from huleedu_pipelines.resources.parquet_io import PolarsParquetIOManager
from huleedu_pipelines.resources.scoring import MonitoringResource, ScoringResource
from huleedu_pipelines.resources.training import TrainingResource
from huleedu_pipelines.resources.warehouse import WarehouseResource

__all__ = [
    "EmbedderResource",
    "FeatureStoreResource",
    "MlflowRegistryResource",
    "MonitoringResource",
    "PolarsParquetIOManager",
    "ScoringResource",
    "TrainingResource",
    "WarehouseResource",
]
