"""Migration 0003 on a home that already promoted models: readers keep the champions they had."""

import datetime as dt

import sqlalchemy as sa

from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
    serving_versions,
)
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    model_promotions,
    skill_assessments,
)

T = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _promotion(model: str, version: str, previous: str | None, minutes: int) -> dict:
    return {
        "model_name": model,
        "version": version,
        "alias": "champion",
        "previous_version": previous,
        "decided_at": T + dt.timedelta(minutes=minutes),
        "reason": "test",
        "report_uri": None,
    }


def _grade_row(essay: str, version: str) -> dict:
    return {
        "essay_id": essay,
        "model_alias": "champion",
        "grade": "C",
        "needs_review": False,
        "grade_model_version": version,
        "cefr_model_version": "",
        "ielts_band_model_version": "",
        "feature_hash": "h",
        "run_id": "r",
        "scored_at": T,
    }


def test_upgrade_records_the_latest_promotions_and_views_follow_them(warehouse_url: str) -> None:
    engine = make_engine(warehouse_url)
    migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            sa.insert(model_promotions),
            [
                _promotion("huleedu-grade-sv", "1", None, 0),
                _promotion("huleedu-grade-sv", "2", "1", 5),
                _promotion("huleedu-grade-sv", "1", "2", 9),  # a rollback, the latest row
                _promotion("huleedu-skill-grammar", "4", None, 1),
            ],
        )
        connection.execute(
            sa.insert(essay_grade_predictions), [_grade_row("e1", "1"), _grade_row("e1", "2")]
        )
        connection.execute(
            sa.insert(skill_assessments),
            [
                {
                    "essay_id": "e1",
                    "skill": "grammar",
                    "score": 0.7,
                    "confidence": 0.4,
                    "model_name": "huleedu-skill-grammar",
                    "model_version": version,
                    "model_alias": "challenger",  # scored as shadow before it was promoted
                    "feature_hash": "h",
                    "scored_at": T,
                }
                for version in ("3", "4")
            ],
        )
    migrate(engine)
    with engine.connect() as connection:
        assert serving_versions(connection, "champion") == {
            "huleedu-grade-sv": "1",
            "huleedu-skill-grammar": "4",
        }
        grades = connection.execute(sa.select(current_essay_grade_predictions)).mappings().all()
        skills = connection.execute(sa.select(current_skill_assessments)).mappings().all()
    assert [(g["essay_id"], g["grade_model_version"]) for g in grades] == [("e1", "1")]
    assert [(s["model_version"], s["model_alias"]) for s in skills] == [("4", "champion")]
    engine.dispose()


def test_two_processes_migrating_a_new_warehouse_take_turns(warehouse_url: str) -> None:
    """The first run of two commands on a new home must not fail with 'table already exists'."""
    import subprocess
    import sys

    from huleedu_pipelines.warehouse.engine import current_revision

    script = (
        "import sys; from huleedu_pipelines.warehouse.engine import make_engine, migrate; "
        "migrate(make_engine(sys.argv[1]))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, warehouse_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=300)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    engine = make_engine(warehouse_url)
    assert current_revision(engine) == "0008"
    engine.dispose()
