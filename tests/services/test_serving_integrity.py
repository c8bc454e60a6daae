"""What readers see follows the champion, and nothing unverified or unrecorded serves.

Service-level tests on SQLite and PostgreSQL: real LightGBM/ONNX bundles, real scoring and
promotion code, the `current_*` views of the real migrations, and an in-memory registry.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from fakes import FEATURE_VERSION, FakeRegistry, feature_rows, tiny_bundle

from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.services.promotion import PromotionError, move_alias, rollback_champion
from huleedu_pipelines.services.scoring import (
    SELECTED_MISSING,
    current_scores,
    expected_current_rows,
    load_serving_models,
    score_essays,
    select_essays,
)
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
    serving_versions,
)
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    model_promotions,
    serving_models,
    skill_assessments,
)

GRAMMAR = SKILL_MODELS["grammar"]
MODELS = (GRADE_MODEL, CEFR_MODEL, BAND_MODEL, GRAMMAR)
N_ESSAYS = 12


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(tmp_path / "registry")


def _promote_all(engine: sa.Engine, registry: FakeRegistry, seed: int = 0) -> None:
    for name in MODELS:
        version = registry.register(name, tiny_bundle(name, seed))
        move_alias(
            engine, registry, model_name=name, version=version, reason="test", report_uri=None
        )


def _score(engine: sa.Engine, registry: FakeRegistry, features: pl.DataFrame):
    with engine.connect() as connection:
        recorded = serving_versions(connection, CHAMPION)
    models = load_serving_models(
        registry, MODELS, recorded_champions=recorded, feature_version=FEATURE_VERSION
    )
    outcome = score_essays(
        engine, features, models, run_id="test-run", review_threshold=0.42, explain_scope="none"
    )
    return models, outcome


def _read(engine: sa.Engine, table: sa.Table) -> pl.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, table)


def test_rollback_serves_the_restored_versions_rows_at_once(warehouse: sa.Engine, registry) -> None:
    features = feature_rows(N_ESSAYS)
    _promote_all(warehouse, registry)
    _score(warehouse, registry, features)
    first = _read(warehouse, current_essay_grade_predictions)
    assert first.height == N_ESSAYS and set(first["grade_model_version"]) == {"1"}
    assert _read(warehouse, current_skill_assessments).height == N_ESSAYS

    # A new grade champion: its rows do not exist yet, so readers see no grade row rather
    # than the demoted version's, and the next night selects every essay as missing one.
    v2 = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=9))
    move_alias(warehouse, registry, model_name=GRADE_MODEL, version=v2, reason="r", report_uri=None)
    assert _read(warehouse, current_essay_grade_predictions).is_empty()
    with warehouse.connect() as connection:
        current = current_scores(connection)
        expected = expected_current_rows(serving_versions(connection, CHAMPION))
    hashed = features.select("essay_id", "feature_hash").with_columns(
        pl.lit(None, pl.Datetime("us", "UTC")).alias("submitted_at"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("updated_at"),
    )
    night = select_essays(hashed, current, dt.date(2026, 11, 1), expected)
    assert set(night["selected_because"]) == {SELECTED_MISSING} and night.height == N_ESSAYS
    _, outcome = _score(warehouse, registry, features)
    assert outcome.grade_rows == N_ESSAYS and outcome.skill_rows == 0  # skills were current
    second = _read(warehouse, current_essay_grade_predictions)
    assert set(second["grade_model_version"]) == {v2} and second.height == N_ESSAYS

    # Roll back: v1's rows exist, so readers see them immediately, with no scoring.
    row = rollback_champion(warehouse, registry, GRADE_MODEL)
    assert (row["version"], row["previous_version"]) == ("1", v2)
    assert registry.get_version(GRADE_MODEL, CHAMPION).version == "1"
    restored = _read(warehouse, current_essay_grade_predictions)
    assert set(restored["grade_model_version"]) == {"1"} and restored.height == N_ESSAYS
    assert restored.sort("essay_id")["grade"].to_list() == first.sort("essay_id")["grade"].to_list()
    assert restored["essay_id"].n_unique() == N_ESSAYS  # exactly one row per essay
    assert _read(warehouse, essay_grade_predictions).height == 2 * N_ESSAYS  # history kept
    audit = _read(warehouse, model_promotions).filter(pl.col("model_name") == GRADE_MODEL)
    assert audit.sort("promotion_id")["version"].to_list() == ["1", v2, "1"]
    with pytest.raises(PromotionError, match="replaced no earlier champion"):
        rollback_champion(warehouse, registry, GRADE_MODEL)


def test_a_tampered_bundle_is_refused_and_writes_no_rows(warehouse: sa.Engine, registry) -> None:
    _promote_all(warehouse, registry)
    manifest = registry.bundle_dir(GRADE_MODEL, "1") / "bundle.json"
    description = json.loads(manifest.read_text())
    description["class_labels"][0] = "A+"  # a one-label edit every per-file check would miss
    manifest.write_text(json.dumps(description, indent=2, sort_keys=True))
    models, outcome = _score(warehouse, registry, feature_rows(N_ESSAYS))
    assert GRADE_MODEL in models.refused and "sha256" in models.problems[GRADE_MODEL]
    assert outcome.grade_rows == 0 and _read(warehouse, essay_grade_predictions).is_empty()
    assert outcome.skill_rows == N_ESSAYS  # the other models still serve
    assert "no essay_grade_predictions rows" in models.problems["essay_grade_predictions"]


def test_a_missing_manifest_tag_is_an_error_not_a_skipped_check(warehouse, registry) -> None:
    _promote_all(warehouse, registry)
    del registry.versions[GRADE_MODEL]["1"]["bundle_manifest_sha256"]
    models, outcome = _score(warehouse, registry, feature_rows(4))
    assert "bundle_manifest_sha256" in models.problems[GRADE_MODEL]
    assert outcome.grade_rows == 0


def test_a_bundle_of_another_family_behind_the_alias_is_refused(warehouse, registry) -> None:
    _promote_all(warehouse, registry)
    impostor = tiny_bundle(GRADE_MODEL, seed=3, family_of=CEFR_MODEL)  # CEFR levels as grades
    version = registry.register(GRADE_MODEL, impostor)
    move_alias(
        warehouse, registry, model_name=GRADE_MODEL, version=version, reason="r", report_uri=None
    )
    models, outcome = _score(warehouse, registry, feature_rows(6))
    problem = models.problems[GRADE_MODEL]
    assert "is not that model" in problem and "'cefr'" in problem
    assert outcome.grade_rows == 0
    grades = _read(warehouse, essay_grade_predictions)
    assert not grades["grade"].is_in(["A1", "A2", "B1", "B2", "C1", "C2"]).any()


def test_a_bundle_for_another_feature_version_is_refused(warehouse, registry) -> None:
    _promote_all(warehouse, registry)
    with warehouse.connect() as connection:
        recorded = serving_versions(connection, CHAMPION)
    models = load_serving_models(
        registry, MODELS, recorded_champions=recorded, feature_version="text=v999"
    )
    assert models.refused == set(MODELS) and not models.champions


def test_an_alias_moved_outside_the_product_is_refused_until_recorded(warehouse, registry) -> None:
    _promote_all(warehouse, registry)
    version = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=4))
    registry.set_alias(GRADE_MODEL, CHAMPION, version)  # straight through the registry client
    models, outcome = _score(warehouse, registry, feature_rows(5))
    assert "moved outside the product" in models.problems[GRADE_MODEL]
    assert outcome.grade_rows == 0
    # Recording the move through the product names what happened and lets it serve.
    row = move_alias(
        warehouse, registry, model_name=GRADE_MODEL, version=version, reason="ok", report_uri=None
    )
    assert row["previous_version"] == "1" and "moved outside the product" in row["reason"]
    models, outcome = _score(warehouse, registry, feature_rows(5))
    assert GRADE_MODEL not in models.problems and outcome.grade_rows == 5


def test_a_failed_alias_move_records_nothing(warehouse: sa.Engine, registry) -> None:
    version = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL))
    registry.fail_set_alias = ConnectionError("registry unreachable")
    with pytest.raises(ConnectionError):
        move_alias(
            warehouse,
            registry,
            model_name=GRADE_MODEL,
            version=version,
            reason="r",
            report_uri=None,
        )
    assert _read(warehouse, model_promotions).is_empty()
    assert _read(warehouse, serving_models).is_empty()
    assert registry.get_version(GRADE_MODEL, CHAMPION) is None


def test_a_failed_commit_moves_the_alias_back(warehouse: sa.Engine, registry) -> None:
    first = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL))
    move_alias(
        warehouse, registry, model_name=GRADE_MODEL, version=first, reason="r", report_uri=None
    )
    second = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, seed=2))

    def refuse_commit(connection) -> None:
        raise RuntimeError("the database went away at commit")

    sa.event.listen(warehouse, "commit", refuse_commit)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            move_alias(
                warehouse,
                registry,
                model_name=GRADE_MODEL,
                version=second,
                reason="r",
                report_uri=None,
            )
    finally:
        sa.event.remove(warehouse, "commit", refuse_commit)
    assert registry.get_version(GRADE_MODEL, CHAMPION).version == first
    with warehouse.connect() as connection:
        assert serving_versions(connection, CHAMPION) == {GRADE_MODEL: first}
    assert _read(warehouse, model_promotions).height == 1


def test_skill_rows_of_a_demoted_version_leave_the_current_view(warehouse, registry) -> None:
    _promote_all(warehouse, registry)
    _score(warehouse, registry, feature_rows(N_ESSAYS))
    version = registry.register(GRAMMAR, tiny_bundle(GRAMMAR, seed=5))
    move_alias(
        warehouse, registry, model_name=GRAMMAR, version=version, reason="r", report_uri=None
    )
    assert _read(warehouse, current_skill_assessments).is_empty()
    assert _read(warehouse, skill_assessments).height == N_ESSAYS
    _score(warehouse, registry, feature_rows(N_ESSAYS))
    current = _read(warehouse, current_skill_assessments)
    assert set(current["model_version"]) == {version} and set(current["model_alias"]) == {CHAMPION}
    assert current.height == N_ESSAYS
