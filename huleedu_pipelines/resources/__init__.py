"""Dagster resources: the warehouse and the Parquet IO manager (MLflow and embeddings follow)."""

from huleedu_pipelines.resources.parquet_io import PolarsParquetIOManager
from huleedu_pipelines.resources.warehouse import WarehouseResource

__all__ = ["PolarsParquetIOManager", "WarehouseResource"]
