"""The one place the Dagster Definitions are assembled."""

from __future__ import annotations

import dagster as dg

from huleedu_pipelines.assets import features, features_checks, ingest, ingest_checks, labels
from huleedu_pipelines.jobs import training_job
from huleedu_pipelines.resources import (
    EmbedderResource,
    FeatureStoreResource,
    PolarsParquetIOManager,
    WarehouseResource,
)
from huleedu_pipelines.settings import Settings, get_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to `settings` (tests pass their own; the code location uses the env)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([ingest, labels, features]),
        asset_checks=dg.load_asset_checks_from_modules([ingest_checks, features_checks]),
        jobs=[training_job],
        resources={
            "warehouse": WarehouseResource(url=settings.resolved_warehouse_url),
            "io_manager": PolarsParquetIOManager(base_dir=str(settings.storage_dir)),
            "feature_store": FeatureStoreResource(cache_dir=str(settings.feature_cache_dir)),
            "embedder": EmbedderResource(num_threads=settings.n_jobs),
        },
    )


defs = build_definitions(get_settings())
