"""Measuring a day: drift against the training reference, agreement with later teacher ratings
and champion–challenger agreement, from rows the scoring service wrote to a SQLite warehouse."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from fakes import FakeRegistry, feature_rows, tiny_bundle

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling.names import GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.services.monitoring import (
    N_DRIFT_FEATURES,
    MonitoringThresholds,
    measure_day,
)
from huleedu_pipelines.services.promotion import move_alias
from huleedu_pipelines.services.scoring import score_day
from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import skill_assessments, skill_ratings

GRAMMAR = SKILL_MODELS["grammar"]
N_ESSAYS = 40
THRESHOLDS = MonitoringThresholds(psi_warn=0.2, min_skill_r=0.5, min_rated_essays=10)
QUIET = logging.getLogger("test-monitoring")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@pytest.fixture
def scored_day(tmp_path):
    """A day of N_ESSAYS scored by grade and grammar champions, with a grade challenger in
    shadow; returns the warehouse, the registry and the day's feature rows."""
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    registry = FakeRegistry(tmp_path / "registry")
    for name in (GRADE_MODEL, GRAMMAR):
        version = registry.register(name, tiny_bundle(name))
        move_alias(engine, registry, model_name=name, version=version, reason="t", report_uri=None)
    registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=5))  # the challenger
    day = feature_rows(N_ESSAYS)
    score_day(
        engine,
        day,
        registry,
        run_id="run-1",
        shadow=True,
        review_threshold=0.42,
        explain_scope="none",
        chunk_size=100,
        n_jobs=1,
        log=QUIET,
    )
    yield engine, registry, day
    engine.dispose()


def _reference(shift: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Training feature table, split and grade labels (every essay on the train side)."""
    table = feature_rows(N_ESSAYS, seed=7).with_columns(
        pl.col("essay_id").str.replace("essay", "train"),
        *(pl.col(column) + shift for column in MODEL_FEATURE_COLUMNS),
    )
    ids = table["essay_id"].to_list()
    splits = pl.DataFrame({"essay_id": ids, "split": ["train"] * len(ids)})
    labels = pl.DataFrame(
        {"essay_id": ids, "grade": [SWEDISH_GRADES[i % 8] for i in range(N_ESSAYS)]}
    )
    return table, splits, labels


def _measure(engine, registry, day, shift: float = 0.0):
    feature_table, splits, labels = _reference(shift)
    return measure_day(
        engine,
        registry,
        day,
        feature_table=feature_table,
        training_splits=splits,
        grade_labels=labels,
        thresholds=THRESHOLDS,
    )


def _rate_grammar_after_scoring(engine: sa.Engine, rating_of) -> None:
    with engine.connect() as connection:
        scores = read_frame(connection, skill_assessments)
    later = scores["scored_at"].max() + dt.timedelta(days=1)
    rows = [
        {
            "essay_id": e,
            "skill": "grammar",
            "rating": rating_of(s),
            "rater_id": "t1",
            "rated_at": later,
        }
        for e, s in scores.select("essay_id", "score").iter_rows()
    ]
    with engine.begin() as connection:
        connection.execute(skill_ratings.insert(), rows)


def test_measure_day_reports_grade_and_feature_drift_and_shadow_agreement(scored_day) -> None:
    engine, registry, day = scored_day

    measured = _measure(engine, registry, day)

    frame = measured.frame
    assert measured.essays == N_ESSAYS
    grade_psi = frame.filter(pl.col("subject") == "predicted_grade").row(0, named=True)
    assert grade_psi["n"] == N_ESSAYS and grade_psi["value"] == measured.predicted_grade_psi
    assert grade_psi["value"] is not None and grade_psi["value"] >= 0
    features = frame.filter(pl.col("subject").str.starts_with("feature:"))
    assert features.height == N_DRIFT_FEATURES and set(features["n"]) == {N_ESSAYS}
    assert set(features["status"]) <= {"ok", "warn"}

    # Agreement of the champion and the challenger on the same essays, as their bundles say.
    X = feature_matrix(day)
    champion = tiny_bundle(GRADE_MODEL).predict(X).labels
    challenger = tiny_bundle(GRADE_MODEL, seed=5).predict(X).labels
    shadow = frame.filter(pl.col("metric") == "shadow_exact_agreement").row(0, named=True)
    assert (shadow["subject"], shadow["n"]) == ("grade", N_ESSAYS)
    assert shadow["value"] == pytest.approx(float(np.mean(champion == challenger)))
    assert measured.shadow_rows_compared == N_ESSAYS
    # No teacher rated anything yet: no agreement to measure.
    assert frame.filter(pl.col("metric") == "pearson_r_teacher_later").is_empty()
    assert measured.agreement.is_empty() and measured.weak_skills.is_empty()


def test_features_far_from_the_training_reference_are_reported_as_drifting(scored_day) -> None:
    engine, registry, day = scored_day

    measured = _measure(engine, registry, day, shift=5.0)

    drifting = measured.drifting.filter(pl.col("subject").str.starts_with("feature:"))
    assert drifting.height == N_DRIFT_FEATURES
    assert (drifting["value"] > THRESHOLDS.psi_warn).all()


@pytest.mark.parametrize(
    ("rating_of", "r", "status"),
    [(lambda score: 1.0 + 4.0 * score, 1.0, "ok"), (lambda score: 5.0 - 4.0 * score, -1.0, "fail")],
    ids=["following", "opposite"],
)
def test_agreement_with_teacher_ratings_that_arrived_after_scoring(
    scored_day, rating_of, r: float, status: str
) -> None:
    engine, registry, day = scored_day
    _rate_grammar_after_scoring(engine, rating_of)

    measured = _measure(engine, registry, day)

    grammar = measured.frame.filter(
        (pl.col("metric") == "pearson_r_teacher_later") & (pl.col("subject") == "grammar")
    ).row(0, named=True)
    assert (grammar["n"], grammar["status"]) == (N_ESSAYS, status)
    assert grammar["value"] == pytest.approx(r)
    weak = measured.weak_skills["subject"].to_list()
    assert weak == (["grammar"] if status == "fail" else [])
