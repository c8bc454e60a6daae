"""Scoring a day: the serving models, the rows written, and a second run that writes nothing;
on a fake registry and a SQLite warehouse with tiny real bundles."""

from __future__ import annotations

import logging

import polars as pl
import pytest
import sqlalchemy as sa
from fakes import FEATURE_VERSION, FakeRegistry, feature_rows, tiny_bundle

from huleedu_pipelines.modeling.names import (
    CEFR_MODEL,
    CHALLENGER,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.services.promotion import move_alias
from huleedu_pipelines.services.scoring import NoChampionError, load_serving_models, score_day
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import essay_grade_predictions, skill_assessments

GRAMMAR = SKILL_MODELS["grammar"]
N_ESSAYS = 15
LOG = logging.getLogger("test-scoring")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def _champion(engine: sa.Engine, registry: FakeRegistry, name: str, bundle=None) -> str:
    version = registry.register(name, bundle or tiny_bundle(name))
    move_alias(engine, registry, model_name=name, version=version, reason="test", report_uri=None)
    return version


def _score(engine: sa.Engine, registry: FakeRegistry, features: pl.DataFrame):
    return score_day(
        engine,
        features,
        registry,
        run_id="run-1",
        shadow=True,
        review_threshold=0.42,
        explain_scope="all",
        chunk_size=4,
        n_jobs=1,
        log=LOG,
    )


def _rows(engine: sa.Engine, table: sa.Table) -> pl.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, table)


def test_score_day_writes_one_row_per_essay_and_model_then_nothing_on_a_second_run(
    sqlite_warehouse: sa.Engine, fake_registry: FakeRegistry
) -> None:
    grade = _champion(sqlite_warehouse, fake_registry, GRADE_MODEL)
    _champion(sqlite_warehouse, fake_registry, GRAMMAR)
    features = feature_rows(N_ESSAYS)

    first = _score(sqlite_warehouse, fake_registry, features)

    assert set(first.models.champions) == {GRADE_MODEL, GRAMMAR}
    assert first.outcome.essays_scored == N_ESSAYS
    assert (first.outcome.grade_rows, first.outcome.skill_rows) == (N_ESSAYS, N_ESSAYS)
    assert first.outcome.explained_rows == N_ESSAYS  # explain_scope "all"
    grades = _rows(sqlite_warehouse, essay_grade_predictions)
    assert sorted(grades["essay_id"]) == sorted(features["essay_id"])
    assert set(grades["grade_model_version"]) == {grade}
    assert set(grades["model_alias"]) == {CHAMPION} and set(grades["run_id"]) == {"run-1"}
    expected = tiny_bundle(GRADE_MODEL).predict(
        features.sort("essay_id").select(tiny_bundle(GRADE_MODEL).feature_columns).to_numpy()
    )
    probabilities = grades.sort("essay_id")["grade_probabilities"][0]  # JSON, read as a dict
    assert list(probabilities.values()) == pytest.approx(expected.probabilities[0], abs=1e-6)
    skills = _rows(sqlite_warehouse, skill_assessments)
    assert skills.height == N_ESSAYS and set(skills["skill"]) == {"grammar"}
    assert skills["score"].is_between(0, 1).all()
    assert skills.join(features, on=["essay_id", "feature_hash"]).height == N_ESSAYS

    second = _score(sqlite_warehouse, fake_registry, features)

    assert second.outcome.essays_scored == 0
    assert second.outcome.essays_unchanged == N_ESSAYS
    assert (second.outcome.grade_rows, second.outcome.skill_rows) == (0, 0)
    assert _rows(sqlite_warehouse, essay_grade_predictions).height == N_ESSAYS
    assert _rows(sqlite_warehouse, skill_assessments).height == N_ESSAYS


def test_a_differing_challenger_writes_shadow_rows_beside_the_champions(
    sqlite_warehouse: sa.Engine, fake_registry: FakeRegistry
) -> None:
    _champion(sqlite_warehouse, fake_registry, GRADE_MODEL)
    challenger = fake_registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=3))

    scored = _score(sqlite_warehouse, fake_registry, feature_rows(N_ESSAYS))

    assert scored.models.challengers[GRADE_MODEL].version == challenger
    assert scored.outcome.shadow_rows == N_ESSAYS
    grades = _rows(sqlite_warehouse, essay_grade_predictions)
    counts = dict(grades.group_by("model_alias").len().iter_rows())
    assert counts == {CHAMPION: N_ESSAYS, CHALLENGER: N_ESSAYS}


def test_score_day_without_a_champion_fails_and_writes_nothing(
    sqlite_warehouse: sa.Engine, fake_registry: FakeRegistry
) -> None:
    fake_registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL))  # a challenger only

    with pytest.raises(NoChampionError, match="no model has a champion version") as error:
        _score(sqlite_warehouse, fake_registry, feature_rows(N_ESSAYS))

    assert "registry promote" in error.value.problems[GRADE_MODEL]
    assert _rows(sqlite_warehouse, essay_grade_predictions).is_empty()
    assert _rows(sqlite_warehouse, skill_assessments).is_empty()


def test_load_serving_models_refuses_a_bundle_of_another_family_and_serves_the_rest(
    sqlite_warehouse: sa.Engine, fake_registry: FakeRegistry
) -> None:
    wrong = tiny_bundle(GRADE_MODEL, family_of=CEFR_MODEL)  # a CEFR model named as the grade's
    version = _champion(sqlite_warehouse, fake_registry, GRADE_MODEL, wrong)
    _champion(sqlite_warehouse, fake_registry, GRAMMAR)

    models = load_serving_models(
        fake_registry,
        (GRADE_MODEL, GRAMMAR),
        recorded_champions={GRADE_MODEL: version, GRAMMAR: "1"},
        feature_version=FEATURE_VERSION,
    )

    assert models.refused == {GRADE_MODEL}
    assert set(models.champions) == {GRAMMAR}
    assert models.problems[GRADE_MODEL].startswith(
        f"{GRADE_MODEL} champion v{version} cannot serve"
    )


def test_load_serving_models_refuses_a_champion_moved_outside_the_product(
    sqlite_warehouse: sa.Engine, fake_registry: FakeRegistry
) -> None:
    _champion(sqlite_warehouse, fake_registry, GRADE_MODEL)
    moved = fake_registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=4))
    fake_registry.set_alias(GRADE_MODEL, CHAMPION, moved)  # straight through the registry

    models = load_serving_models(
        fake_registry, (GRADE_MODEL,), recorded_champions={GRADE_MODEL: "1"}
    )

    assert models.refused == {GRADE_MODEL} and not models.champions
    problem = models.problems[GRADE_MODEL]
    assert f"points at v{moved} but the product recorded v1" in problem
    assert f"registry promote {GRADE_MODEL} {moved} --force" in problem
