"""`huleedu_nightly_*` gauges: read from a real SQLite warehouse and a real Dagster instance,
and a warehouse that cannot be reached leaves the scrape working with the failure gauge at 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from huleedu_pipelines.jobs.run_figures import read_nightly_run_figures
from huleedu_pipelines.serving.batch_metrics import (
    NightlyFiguresCollector,
    exporter_engine,
    read_warehouse_figures,
    run_gauges,
)
from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    serving_models,
    skill_assessments,
    skill_ratings,
)

T0 = dt.datetime(2026, 11, 1, 1, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
SKILL_MODEL = "huleedu-skill-vocabulary"


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _grade_row(essay_id: str, alias: str, run_id: str, scored_at: dt.datetime) -> dict:
    return {
        "essay_id": essay_id,
        "model_alias": alias,
        "grade": "C",
        "needs_review": False,
        "grade_model_version": "1" if alias == "champion" else "2",
        "cefr_model_version": "1",
        "ielts_band_model_version": "1",
        "feature_hash": "h",
        "run_id": run_id,
        "scored_at": scored_at,
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    scores = [0.2, 0.4, 0.5, 0.9]
    ratings = [2.0, 3.0, 3.5, 4.5]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(essay_grade_predictions),
            [
                _grade_row("e1", "champion", "run-old", T0),
                _grade_row("e2", "champion", "run-old", T0),
                _grade_row("e3", "champion", "run-new", T1),
                _grade_row("e4", "champion", "run-new", T1 + dt.timedelta(seconds=42)),
                _grade_row("e5", "champion", "run-new", T1),
                _grade_row("e6", "challenger", "run-new", T1 + dt.timedelta(hours=1)),
            ],
        )
        connection.execute(
            sa.insert(serving_models),
            [{"model_name": SKILL_MODEL, "alias": "champion", "version": "3", "since": T0}],
        )
        skill_rows = []
        for i, score in enumerate(scores):
            for version, value in (("3", score), ("2", 1 - score)):  # v2 serves no more
                skill_rows.append(
                    {
                        "essay_id": f"e{i + 1}",
                        "skill": "vocabulary",
                        "score": value,
                        "confidence": 0.9,
                        "model_name": SKILL_MODEL,
                        "model_version": version,
                        "model_alias": "champion",
                        "feature_hash": "h",
                        "run_id": "run-new",
                        "scored_at": T1,
                    }
                )
        connection.execute(sa.insert(skill_assessments), skill_rows)
        connection.execute(
            sa.insert(skill_ratings),
            [
                {
                    "essay_id": f"e{i + 1}",
                    "skill": "vocabulary",
                    "rating": rating,
                    "rater_id": "t1",
                    "rated_at": T1 + dt.timedelta(days=1),
                }
                for i, rating in enumerate(ratings)
            ]
            # A rating made before scoring does not count: the model could have seen it.
            + [
                {
                    "essay_id": "e5",
                    "skill": "vocabulary",
                    "rating": 1.0,
                    "rater_id": "t1",
                    "rated_at": T0,
                }
            ],
        )
    engine.expected_r = float(np.corrcoef(scores, ratings)[0, 1])  # type: ignore[attr-defined]
    return engine


def test_warehouse_figures_on_metrics(warehouse: sa.Engine) -> None:
    registry = CollectorRegistry()
    registry.register(
        NightlyFiguresCollector(
            {"warehouse": lambda: read_warehouse_figures(warehouse)}, cache_seconds=60
        )
    )
    samples = _samples(registry)
    assert samples[("huleedu_nightly_essays_scored", ())] == 3.0
    assert (
        samples[("huleedu_nightly_last_scored_timestamp_seconds", ())]
        == (T1 + dt.timedelta(seconds=42)).timestamp()
    )
    skill = (("skill", "vocabulary"),)
    assert samples[("huleedu_nightly_teacher_agreement_essays", skill)] == 4.0
    assert samples[("huleedu_nightly_teacher_agreement_r", skill)] == pytest.approx(
        warehouse.expected_r  # type: ignore[attr-defined]
    )
    assert samples[("huleedu_nightly_source_read_failed", (("source", "warehouse"),))] == 0.0
    assert samples[("huleedu_nightly_source_read_failures_total", (("source", "warehouse"),))] == 0


def test_unreachable_warehouse_keeps_the_scrape_and_sets_the_failure_gauge() -> None:
    engine = exporter_engine("postgresql://nobody@127.0.0.1:1/nowhere")
    now = [0.0]
    registry = CollectorRegistry()
    registry.register(
        NightlyFiguresCollector(
            {"warehouse": lambda: read_warehouse_figures(engine)},
            cache_seconds=60,
            clock=lambda: now[0],
        )
    )
    registry.register(
        NightlyFiguresCollector({"other": lambda: []}, cache_seconds=60, clock=lambda: now[0])
    )
    key = (("source", "warehouse"),)
    first = _samples(registry)
    assert first[("huleedu_nightly_source_read_failed", key)] == 1.0
    assert first[("huleedu_nightly_source_read_failures_total", key)] == 1.0
    assert first[("huleedu_nightly_source_read_failed", (("source", "other"),))] == 0.0
    assert not any(name == "huleedu_nightly_essays_scored" for name, _ in first)
    # Within the cache period the failure is not retried; after it, it is (and counted).
    assert _samples(registry)[("huleedu_nightly_source_read_failures_total", key)] == 1.0
    now[0] = 61.0
    assert _samples(registry)[("huleedu_nightly_source_read_failures_total", key)] == 2.0


def test_the_scoring_api_metrics_survive_unreachable_sources(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from huleedu_pipelines.cli.serve import add_dagster_run_figures
    from huleedu_pipelines.serving.app import create_app
    from huleedu_pipelines.settings import get_settings

    monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")
    settings = get_settings()
    app = create_app(settings)
    add_dagster_run_figures(app, settings)  # as `serve` does
    client = TestClient(app)  # no lifespan: no model loading
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("huleedu_nightly_source_read_failed", (("source", "warehouse"),))] == 1.0
    # No Dagster instance under the test's home either: reported, not raised, none created.
    assert samples[("huleedu_nightly_source_read_failed", (("source", "dagster"),))] == 1.0
    assert not (settings.resolved_dagster_home / "dagster.yaml").exists()
    assert ("huleedu_serving_ready", ()) in samples


@dg.asset(name="prediction_monitoring")
def _monitoring() -> dg.Output[None]:
    return dg.Output(None, metadata={"predicted_grade_psi": dg.MetadataValue.float(0.137)})


def test_dagster_figures_of_the_newest_successful_nightly_run() -> None:
    instance = dg.DagsterInstance.ephemeral()
    job = dg.define_asset_job("nightly_inference_job", selection=[_monitoring.key])
    defs = dg.Definitions(assets=[_monitoring], jobs=[job])
    assert run_gauges(read_nightly_run_figures(instance)) == []  # no run yet: nothing, not 0
    result = defs.resolve_job_def("nightly_inference_job").execute_in_process(instance=instance)
    assert result.success
    record = instance.get_run_record_by_id(result.run_id)
    registry = CollectorRegistry()
    registry.register(
        NightlyFiguresCollector(
            {"dagster": lambda: run_gauges(read_nightly_run_figures(instance))}, cache_seconds=0
        )
    )
    samples = _samples(registry)
    assert samples[("huleedu_nightly_last_success_timestamp_seconds", ())] == record.end_time
    assert samples[("huleedu_nightly_duration_seconds", ())] == pytest.approx(
        record.end_time - record.start_time
    )
    assert samples[
        ("huleedu_nightly_drift_psi", (("subject", "predicted_grade"),))
    ] == pytest.approx(0.137)
    assert samples[("huleedu_nightly_source_read_failed", (("source", "dagster"),))] == 0.0
