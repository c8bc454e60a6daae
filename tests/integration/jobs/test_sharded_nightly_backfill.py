"""Layer 4: a night fanned out into its shards, two runs at a time against one PostgreSQL
warehouse, leaves exactly the `current_*` rows of one unsharded run.

The unsharded run is the scoring service itself (`features_for_day` without a shard, then
`score_day`); the sharded one is the real `nightly_inference_job`, one run per
`<date>|<shard>` partition, executed by two threads at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from huleedu_pipelines.assets.partitions import SCORING_SHARDS, nightly_partition_keys
from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.domain.shards import shard_of
from huleedu_pipelines.registry import build_registry
from huleedu_pipelines.resources import build_resources
from huleedu_pipelines.services.scoring import features_for_day, score_day
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
)
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    monitoring_measurements,
    serving_models,
    skill_assessments,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

AS_OF = dt.date(2026, 11, 1)
DAY = dt.date(2026, 10, 31)
N_ESSAYS = 420
LOG = logging.getLogger("test-sharded-backfill")

SKILL_COLUMNS = ("essay_id", "skill", "score", "model_name", "model_version")
GRADE_COLUMNS = (
    "essay_id",
    "grade",
    "cefr",
    "ielts_band",
    "needs_review",
    "grade_model_version",
    "cefr_model_version",
    "ielts_band_model_version",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_feature_cache):
    """A home whose champions were trained and promoted by the real training job (SQLite
    warehouse, MLflow store); yields its warehouse URL."""
    import dagster as dg
    from support import TRAINING_GROUPS, run_groups, seed_small_trainable_home

    root = tmp_path_factory.mktemp("sharded")
    with pytest.MonkeyPatch.context() as patch:
        url = seed_small_trainable_home(patch, root, shared_feature_cache, n_essays=N_ESSAYS)
        assert run_groups(dg.DagsterInstance.ephemeral(), url, *TRAINING_GROUPS).success
        yield url


def _serving_warehouse(trained_url: str, url: str, latent_truth: Path) -> sa.Engine:
    """The same generated essays on PostgreSQL, serving the trained home's champions (recorded
    as promotion records them)."""
    engine = make_engine(url)
    seed_demo_warehouse(
        engine, n_essays=N_ESSAYS, seed=5, as_of=AS_OF, bad_rows=0, latent_truth_path=latent_truth
    )
    with make_engine(trained_url).connect() as connection:
        recorded = [dict(r) for r in connection.execute(sa.select(serving_models)).mappings()]
    with engine.begin() as connection:
        connection.execute(sa.insert(serving_models), recorded)
    return engine


def _current(engine: sa.Engine) -> dict[str, list[tuple]]:
    """What readers see: the `current_*` rows without run ids and times. Scores are rounded to
    12 places: ONNX Runtime may differ in the last bits between batch sizes (a shard scores a
    quarter of the essays at once)."""
    with engine.connect() as connection:
        skills = connection.execute(
            sa.select(*(current_skill_assessments.c[c] for c in SKILL_COLUMNS))
        ).all()
        grades = connection.execute(
            sa.select(*(current_essay_grade_predictions.c[c] for c in GRADE_COLUMNS))
        ).all()
    skills = [(*row[:2], round(row[2], 12), *row[3:]) for row in skills]
    return {"skills": sorted(skills), "grades": sorted(map(tuple, grades))}


def _score_unsharded(engine: sa.Engine) -> None:
    settings = get_settings()
    resources = build_resources(settings)
    scoring = resources["scoring"]
    built = features_for_day(
        engine,
        DAY,
        backfill=True,
        embedder=resources["embedder"].embedder(),
        cache_root=resources["feature_store"].root,
        max_essay_chars=settings.max_essay_chars,
        run_id="unsharded",
        log=LOG,
    )
    assert built.table.height == N_ESSAYS
    score_day(
        engine,
        built.table,
        build_registry(settings),
        run_id="unsharded",
        shadow=scoring.shadow_scoring,
        review_threshold=scoring.review_confidence_threshold,
        explain_scope=scoring.explain_scope,
        chunk_size=scoring.chunk_size,
        n_jobs=scoring.n_jobs,
        log=LOG,
    )


def test_a_sharded_backfill_two_runs_at_a_time_leaves_the_rows_of_one_unsharded_run(
    trained: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from huleedu_pipelines.definitions import build_definitions

    assert SCORING_SHARDS >= 2
    engine = _serving_warehouse(trained, postgres_url, tmp_path / "latent_truth.parquet")
    monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", postgres_url)
    migrate(engine)

    _score_unsharded(engine)
    unsharded = _current(engine)
    assert len(unsharded["skills"]) == N_ESSAYS * 7 and len(unsharded["grades"]) == N_ESSAYS

    with engine.begin() as connection:
        connection.execute(sa.delete(skill_assessments))
        connection.execute(sa.delete(essay_grade_predictions))
    assert _current(engine) == {"skills": [], "grades": []}

    job = build_definitions(get_settings()).resolve_job_def("nightly_inference_job")
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster"))
    running, most_at_once, lock = [0], [0], threading.Lock()

    def run(key):
        with lock:
            running[0] += 1
            most_at_once[0] = max(most_at_once[0], running[0])
        try:
            return job.execute_in_process(
                instance=instance,
                partition_key=str(key),
                run_config={"ops": {"inference_features": {"config": {"backfill": True}}}},
                raise_on_error=False,
            )
        finally:
            with lock:
                running[0] -= 1

    keys = nightly_partition_keys(DAY)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, keys))
    assert most_at_once[0] == 2
    assert all(result.success for result in results)

    # Each run scored exactly its shard's essays: together every essay, once.
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT essay_id FROM essays")).scalars().all()
    for shard, result in enumerate(results):
        features = result.output_for_node("inference_features")
        expected = {e for e in ids if shard_of(e, SCORING_SHARDS) == shard}
        assert set(features["essay_id"]) == expected and expected
    assert _current(engine) == unsharded
    with engine.connect() as connection:
        written = connection.execute(
            sa.select(sa.func.count()).select_from(skill_assessments)
        ).scalar_one()
        monitored = connection.execute(
            sa.select(monitoring_measurements.c.shard, monitoring_measurements.c.run_id).distinct()
        ).all()
    assert written == N_ESSAYS * 7
    assert sorted(monitored) == sorted((s, r.run_id) for s, r in enumerate(results))
    engine.dispose()
