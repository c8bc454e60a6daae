"""A night reads only its candidates, and selects exactly what a full read of the warehouse
would: new or updated essays, essays whose CJ batch got comparisons, essays lacking a row from
a champion. On SQLite and PostgreSQL, with the real embedder on a small demo warehouse."""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl
import pytest
import sqlalchemy as sa

from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.features.build import current_feature_hashes, feature_version
from huleedu_pipelines.modeling.names import CHAMPION, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.resources import build_resources
from huleedu_pipelines.services.scoring import (
    SELECTED_CHANGED,
    SELECTED_MISSING,
    SELECTED_NEW,
    current_scores,
    expected_current_rows,
    features_for_day,
    read_comparisons,
    read_essays,
    select_essays,
)
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse import nightly_selection
from huleedu_pipelines.warehouse.serving import serving_versions
from huleedu_pipelines.warehouse.tables import (
    cj_comparison_pairs,
    essay_grade_predictions,
    essays,
    serving_models,
    skill_assessments,
)

AS_OF = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 3)  # after every generated essay: nothing is new unless a test says so
N_ESSAYS = 600  # enough for the generator to form CJ batches
GRAMMAR = SKILL_MODELS["grammar"]
LOG = logging.getLogger("test-nightly-selection")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _record_champions(engine: sa.Engine, champions: dict[str, str]) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.insert(serving_models),
            [
                {"model_name": name, "alias": CHAMPION, "version": version, "since": _at(AS_OF)}
                for name, version in champions.items()
            ],
        )


def _write_current_rows(engine: sa.Engine, hashes: pl.DataFrame, champions: dict[str, str]):
    """Rows as a night's scoring would leave them: one grammar row and one grade row per essay
    from the champions, under each essay's feature hash."""
    now = _at(AS_OF)
    skill_rows = [
        {
            "student_id": None,
            "essay_id": essay_id,
            "skill": "grammar",
            "score": 3.0,
            "confidence": 0.9,
            "model_name": GRAMMAR,
            "model_version": champions[GRAMMAR],
            "model_alias": CHAMPION,
            "feature_hash": feature_hash,
            "scored_at": now,
        }
        for essay_id, feature_hash in hashes.select("essay_id", "feature_hash").iter_rows()
    ]
    grade_rows = [
        {
            "essay_id": row["essay_id"],
            "model_alias": CHAMPION,
            "grade": "C",
            "needs_review": False,
            "grade_model_version": champions[GRADE_MODEL],
            "cefr_model_version": "",
            "ielts_band_model_version": "",
            "feature_hash": row["feature_hash"],
            "scored_at": now,
        }
        for row in hashes.iter_rows(named=True)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(skill_assessments), skill_rows)
        connection.execute(sa.insert(essay_grade_predictions), grade_rows)


def _full_read_selection(engine: sa.Engine, embedder_version: str) -> dict[str, str]:
    """The selection as a full read of the warehouse makes it: every essay hashed and compared
    with every current row (what a night did before its reads were indexed)."""
    with engine.connect() as connection:
        every = read_essays(connection)
        comparisons = read_comparisons(connection)
        current = current_scores(connection)
        champions = serving_versions(connection, CHAMPION)
    hashes = current_feature_hashes(
        every.select("essay_id", "text", "prompt_text"), comparisons, embedder_version
    )
    selected = select_essays(
        every.join(hashes.select("essay_id", "feature_hash"), on="essay_id"),
        current,
        DAY,
        expected_current_rows(champions),
    )
    return dict(selected.select("essay_id", "selected_because").iter_rows())


@pytest.fixture
def scored_warehouse(warehouse: sa.Engine, home, tmp_path):
    """A small demo warehouse whose every essay has current rows from two champions."""
    seed_demo_warehouse(
        warehouse,
        n_essays=N_ESSAYS,
        seed=13,
        as_of=AS_OF,
        bad_rows=0,
        latent_truth_path=tmp_path / "latent.parquet",
    )
    champions = {GRAMMAR: "3", GRADE_MODEL: "5"}
    _record_champions(warehouse, champions)
    resources = build_resources(get_settings())
    embedder = resources["embedder"].embedder()
    with warehouse.connect() as connection:
        every = read_essays(connection)
        comparisons = read_comparisons(connection)
    hashes = current_feature_hashes(
        every.select("essay_id", "text", "prompt_text"), comparisons, feature_version(embedder)
    )
    _write_current_rows(warehouse, hashes, champions)
    return warehouse, embedder, resources["feature_store"].root, comparisons


def _night(engine: sa.Engine, embedder, cache_root):
    return features_for_day(
        engine,
        DAY,
        backfill=False,
        embedder=embedder,
        cache_root=cache_root,
        max_essay_chars=100_000,
        run_id="night",
        log=LOG,
    )


def test_a_quiet_night_reads_no_essay_text(scored_warehouse) -> None:
    engine, embedder, cache_root, _ = scored_warehouse

    night = _night(engine, embedder, cache_root)

    assert night.table.height == 0
    assert (night.essays_read, night.text_bytes_read) == (0, 0)


def test_a_night_selects_what_a_full_read_would_and_reads_only_those_essays(
    scored_warehouse,
) -> None:
    engine, embedder, cache_root, comparisons = scored_warehouse
    ids = sorted(read_frame_ids(engine))
    updated, missing = ids[0], ids[1]
    batch = comparisons.row(0, named=True)
    batch_essays = set(
        comparisons.filter(pl.col("batch_id") == batch["batch_id"])
        .select(pl.concat_list("essay_a_id", "essay_b_id").explode())
        .to_series()
        .to_list()
    )
    with engine.begin() as connection:
        connection.execute(
            sa.update(essays)
            .where(essays.c.essay_id == updated)
            .values(text="A rewritten essay about the same topic. " * 20, updated_at=_at(DAY))
        )
        connection.execute(
            sa.insert(cj_comparison_pairs),
            {
                "comparison_id": "night-comparison",
                "batch_id": batch["batch_id"],
                "essay_a_id": batch["essay_b_id"],
                "essay_b_id": batch["essay_a_id"],
                "winner_essay_id": batch["essay_b_id"],
                "created_at": _at(DAY, 3),
            },
        )
        connection.execute(
            sa.delete(skill_assessments).where(skill_assessments.c.essay_id == missing)
        )

    night = _night(engine, embedder, cache_root)

    selected = dict(night.table.select("essay_id", "selected_because").iter_rows())
    assert selected == _full_read_selection(engine, feature_version(embedder))
    assert selected[updated] == SELECTED_NEW
    assert selected[missing] in {SELECTED_MISSING, SELECTED_CHANGED}
    assert {essay for essay, why in selected.items() if why == SELECTED_CHANGED} <= batch_essays
    assert any(selected.get(essay) == SELECTED_CHANGED for essay in batch_essays)
    # The candidates and their CJ batch-mates only, never the whole warehouse.
    candidates = {updated, missing} | batch_essays
    touching = comparisons.filter(
        pl.col("essay_a_id").is_in(candidates) | pl.col("essay_b_id").is_in(candidates)
    )["batch_id"]
    mates = comparisons.filter(pl.col("batch_id").is_in(touching.implode()))
    assert night.essays_read == len(
        candidates | set(mates["essay_a_id"]) | set(mates["essay_b_id"])
    )
    assert night.essays_read < N_ESSAYS
    assert night.text_bytes_read > 0


def test_a_new_champion_selects_every_essay_once(scored_warehouse) -> None:
    engine, embedder, cache_root, _ = scored_warehouse
    with engine.begin() as connection:
        connection.execute(
            sa.update(serving_models)
            .where(serving_models.c.model_name == GRAMMAR)
            .values(version="4")
        )

    night = _night(engine, embedder, cache_root)

    assert night.table.height == N_ESSAYS
    assert set(night.table["selected_because"]) == {SELECTED_MISSING}
    with engine.connect() as connection:
        assert (
            nightly_selection.lacking_champion_rows(connection, {GRAMMAR: "3", GRADE_MODEL: "5"})
            == set()
        )


def test_reads_by_id_go_in_chunks(scored_warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, *_ = scored_warehouse
    monkeypatch.setattr(nightly_selection, "IN_LIST_LIMIT", 3)
    ids = sorted(read_frame_ids(engine))[:10]
    with engine.connect() as connection:
        read = nightly_selection.read_essays_by_id(connection, ids)
        current = nightly_selection.read_current_scores_of(connection, ids)
    assert sorted(read["essay_id"]) == ids
    assert sorted(current["essay_id"]) == sorted(ids * 2)  # a grammar and a grade row each


def test_candidates_come_from_the_window_the_batches_and_missing_rows(warehouse) -> None:
    old, on_day, tomorrow = _at(AS_OF), _at(DAY), _at(DAY + dt.timedelta(days=1))
    with warehouse.begin() as connection:
        connection.execute(
            sa.insert(essays),
            [
                {
                    "essay_id": "new",
                    "source": "t",
                    "text": "x",
                    "submitted_at": on_day,
                    "updated_at": None,
                },
                {
                    "essay_id": "edited",
                    "source": "t",
                    "text": "x",
                    "submitted_at": old,
                    "updated_at": on_day,
                },
                {
                    "essay_id": "late",
                    "source": "t",
                    "text": "x",
                    "submitted_at": tomorrow,
                    "updated_at": None,
                },
                *(
                    {
                        "essay_id": name,
                        "source": "t",
                        "text": "x",
                        "submitted_at": old,
                        "updated_at": None,
                    }
                    for name in ("a", "b", "c", "d")
                ),
            ],
        )
        connection.execute(
            sa.insert(cj_comparison_pairs),
            [
                {
                    "comparison_id": "1",
                    "batch_id": "touched",
                    "essay_a_id": "a",
                    "essay_b_id": "b",
                    "winner_essay_id": "a",
                    "created_at": old,
                },
                {
                    "comparison_id": "2",
                    "batch_id": "touched",
                    "essay_a_id": "b",
                    "essay_b_id": "new",
                    "winner_essay_id": "b",
                    "created_at": on_day,
                },
                {
                    "comparison_id": "3",
                    "batch_id": "quiet",
                    "essay_a_id": "c",
                    "essay_b_id": "d",
                    "winner_essay_id": "c",
                    "created_at": old,
                },
            ],
        )
        start, end = _at(DAY, 0), _at(DAY + dt.timedelta(days=1), 0)
        assert nightly_selection.submitted_or_updated_between(connection, start, end) == {
            "new",
            "edited",
        }
        assert nightly_selection.in_batches_compared_since(connection, start) == {"a", "b", "new"}
        batches = nightly_selection.read_batches_of(connection, {"a"})
        assert sorted(batches["comparison_id"]) == ["1", "2"]
        assert nightly_selection.lacking_champion_rows(connection, {}) == set()
        every = {"new", "edited", "late", "a", "b", "c", "d"}
        assert nightly_selection.lacking_champion_rows(connection, {GRAMMAR: "1"}) == every
        assert nightly_selection.lacking_champion_rows(
            connection, {GRAMMAR: "1"}, known={"new", "a", "not-an-essay"}
        ) == every - {"new", "a"}


def test_counts_spare_the_sweep_only_when_every_essay_outside_the_candidates_has_its_row(
    warehouse,
) -> None:
    names = ["new", "edited", "a", "b", "c"]
    with warehouse.begin() as connection:
        connection.execute(
            sa.insert(essays),
            [
                {"essay_id": n, "source": "t", "text": "x", "submitted_at": _at(AS_OF)}
                for n in names
            ],
        )
        connection.execute(
            sa.insert(skill_assessments),
            [
                {
                    "student_id": None,
                    "essay_id": essay_id,
                    "skill": "grammar",
                    "score": 3.0,
                    "confidence": 0.9,
                    "model_name": GRAMMAR,
                    "model_version": version,
                    "model_alias": CHAMPION,
                    "feature_hash": "h",
                    "scored_at": _at(AS_OF),
                }
                for essay_id, version in [("a", "1"), ("b", "1"), ("c", "1"), ("new", "0")]
            ],
        )
    sweeps: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if "EXISTS" in statement.upper():
            sweeps.append(statement)

    sa.event.listen(warehouse, "before_cursor_execute", record)
    try:
        with warehouse.connect() as connection:
            champions = {GRAMMAR: "1"}
            lacking = nightly_selection.lacking_champion_rows
            assert lacking(connection, champions, known={"new", "edited", "a"}) == set()
            assert sweeps == []  # the counts proved it
            assert lacking(connection, champions, known={"new"}) == {"edited"}
            assert lacking(connection, champions) == {"new", "edited"}
            assert len(sweeps) == 2
    finally:
        sa.event.remove(warehouse, "before_cursor_execute", record)


def read_frame_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.select(essays.c.essay_id))]
