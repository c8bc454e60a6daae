"""Dagster resources: the warehouse and the Parquet IO manager feature cache and embedder."""

from huleedu_pipelines.resources.features import EmbedderResource, FeatureStoreResource
from huleedu_pipelines.resources.parquet_io import PolarsParquetIOManager
from huleedu_pipelines.resources.warehouse import WarehouseResource

__all__ = [
    "EmbedderResource",
    "FeatureStoreResource",
    "PolarsParquetIOManager",
    "WarehouseResource",
]
