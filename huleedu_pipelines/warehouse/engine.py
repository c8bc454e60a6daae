"""Engines and schema migrations for the warehouse (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> sa.Engine:
    """An engine with the settings both dialects need for concurrent, transactional writes.

    SQLite gets WAL (readers do not block the writer), a busy timeout and a created parent
    folder; `postgresql://` URLs use psycopg 3, which SQLAlchemy 2.1 maps them to.
    """
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@cache
def cached_engine(url: str) -> sa.Engine:
    """One engine (and connection pool) per URL per process."""
    return make_engine(url)


MIGRATION_LOCK_KEY = 0x48554C4545  # "HULEE": the PostgreSQL advisory lock of migrations


@contextmanager
def _sqlite_migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (a file lock beside it)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with Path(f"{database}.migrate.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the warehouse schema to `revision` with Alembic; a no-op when already there.

    Two processes migrating a new warehouse at once take turns (a file lock on SQLite, an
    advisory lock held by the migration's transaction on PostgreSQL), so neither fails with
    "table already exists".
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _sqlite_migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
