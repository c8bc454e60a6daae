"""Helpers shared by test modules and fixtures (importable as `support`: tests/ is on the
path). Kept out of conftest.py because several conftest modules share that name."""

from pathlib import Path

import pytest

from huleedu_pipelines.settings import get_settings


def isolate_environment(monkeypatch: pytest.MonkeyPatch, home: Path, cache: Path) -> None:
    for variable in ("HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HULEEDU_HOME", str(home))
    monkeypatch.setenv("HULEEDU_FEATURE_CACHE_DIR", str(cache))


def run_groups(instance, warehouse_url: str, *groups: str, raise_on_error: bool = True):
    """Materialize asset groups of the real Definitions against `warehouse_url`, in-process,
    with settings read from the current environment."""
    import dagster as dg

    from huleedu_pipelines.definitions import build_definitions

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HULEEDU_WAREHOUSE_URL", warehouse_url)
        job = dg.define_asset_job("test_groups_job", selection=dg.AssetSelection.groups(*groups))
        defs = dg.Definitions.merge(build_definitions(get_settings()), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("test_groups_job").execute_in_process(
        instance=instance, raise_on_error=raise_on_error
    )
