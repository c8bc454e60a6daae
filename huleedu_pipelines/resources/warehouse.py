"""The warehouse as a Dagster resource."""

import dagster as dg
import sqlalchemy as sa

from huleedu_pipelines.warehouse.engine import cached_engine, migrate


class WarehouseResource(dg.ConfigurableResource):
    """SQLAlchemy access to the warehouse (SQLite file embedded, PostgreSQL in production)."""

    url: str

    def engine(self) -> sa.Engine:
        return cached_engine(self.url)

    def migrated_engine(self) -> sa.Engine:
        """The engine after bringing the schema to the latest migration (idempotent)."""
        engine = self.engine()
        migrate(engine)
        return engine
