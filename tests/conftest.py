"""Shared fixtures: an isolated HULEEDU_HOME per test, and warehouses on SQLite and PostgreSQL.

PostgreSQL tests use the server named by HULEEDU_TEST_POSTGRES_URL (CI's `.ci/run` provides
it); each test gets a fresh database that is dropped afterwards. Without a reachable server
those tests are skipped with the reason, and `.ci/run` fails on such skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import isolate_environment, run_groups

from huleedu_pipelines.settings import Settings, get_settings
from huleedu_pipelines.warehouse.engine import make_engine, migrate

POSTGRES_SKIP_PREFIX = "PostgreSQL not available"


@pytest.fixture(scope="session")
def shared_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the session: entries are keyed by essay content and feature
    version, so tests that generate the same essays embed them once."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_feature_cache: Path) -> Path:
    """An empty HULEEDU_HOME; every other location defaults inside it."""
    isolate_environment(monkeypatch, tmp_path / "home", shared_feature_cache)
    return tmp_path / "home"


def _admin_url() -> str:
    url = get_settings().test_postgres_url
    if not url:
        pytest.skip(f"{POSTGRES_SKIP_PREFIX}: HULEEDU_TEST_POSTGRES_URL is not set")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    admin_url = sa.engine.make_url(_admin_url())
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"huleedu_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.skip(f"{POSTGRES_SKIP_PREFIX} at {admin_url.render_as_string()}: {error.orig}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the embedded SQLite warehouse and on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[sa.Engine]:
    """A migrated, empty warehouse engine."""
    engine = make_engine(warehouse_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings_for(home: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for `home` with the given warehouse URL (env set as a user would)."""

    def build(url: str | None = None) -> Settings:
        if url:
            monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", url)
        return get_settings()

    return build


@pytest.fixture
def as_of():
    """The fixed last day of generated demo data, so tests never depend on today's date."""
    import datetime

    return datetime.date(2026, 11, 1)


@pytest.fixture
def materialize_groups(home: Path):
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    return lambda url, *groups, **kwargs: run_groups(instance, url, *groups, **kwargs)
