import datetime as dt
import json
import random
import time

import pytest
import sqlalchemy as sa

from huleedu_pipelines.warehouse.bulk import bulk_upsert
from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.queries import count_rows
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    quarantine,
    skill_assessments,
)
from huleedu_pipelines.warehouse.writes import upsert_rows

SKILLS = (
    "task_response",
    "coherence_cohesion",
    "vocabulary",
    "phraseology",
    "syntax",
    "grammar",
    "conventions",
)
SKILL_KEY = ["essay_id", "skill", "model_name", "model_version"]
GRADE_KEY = ["essay_id", "grade_model_version", "cefr_model_version", "ielts_band_model_version"]
T0 = dt.datetime(2026, 3, 1, 1, 0, 0, 123456, tzinfo=dt.UTC)
STOCKHOLM = dt.timezone(dt.timedelta(hours=1))


def skill_rows(count: int, seed: int = 0) -> list[dict]:
    """Scoring outputs with full-precision floats, nested JSON, NULLs, and timestamps given in
    UTC and in another zone (stored and read back as the same instant in UTC)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        skill = SKILLS[index % len(SKILLS)]
        scored_at = T0 + dt.timedelta(seconds=index, microseconds=index % 997)
        rows.append(
            {
                "student_id": None if index % 11 == 0 else f"student-{index // 70}",
                "essay_id": f"essay-{index // len(SKILLS):05d}",
                "skill": skill,
                "score": rng.uniform(1.0, 5.0),
                "confidence": rng.random(),
                "top_features": None
                if index % 13 == 0
                else [
                    {"feature": f"f{k}", "contribution": rng.gauss(0.0, 1.0), "rank": k}
                    for k in range(3)
                ]
                + [{"note": 'tab\tnewline\nquote"backslash\\ åäö', "flag": index % 2 == 0}],
                "model_name": f"huleedu-skill-{skill}",
                "model_version": "3",
                "model_alias": "champion",
                "feature_hash": f"{index:064x}",
                "run_id": None if index % 5 == 0 else "run-1",
                "scored_at": scored_at.astimezone(STOCKHOLM) if index % 2 else scored_at,
            }
        )
    return rows


def read_rows(engine: sa.Engine, table: sa.Table, key: list[str]) -> list[dict]:
    with engine.connect() as connection:
        result = connection.execute(sa.select(table).order_by(*(table.c[name] for name in key)))
        return [dict(row._mapping) for row in result]


def by_key(rows: list[dict], key: list[str]) -> list[dict]:
    return sorted(rows, key=lambda row: tuple(row[name] for name in key))


def assert_same_rows(stored: list[dict], expected: list[dict], key: list[str]) -> None:
    assert len(stored) == len(expected)
    for got, want in zip(stored, by_key(expected, key), strict=True):
        assert {name: got[name] for name in want} == want
        for name, value in want.items():
            if isinstance(value, dt.datetime):
                assert got[name].utcoffset() == dt.timedelta(0)
                assert got[name] == value.astimezone(dt.UTC)


def test_rows_round_trip_exactly(warehouse: sa.Engine) -> None:
    rows = skill_rows(12_345)
    assert bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY) == 12_345
    assert_same_rows(read_rows(warehouse, skill_assessments, SKILL_KEY), rows, SKILL_KEY)


def test_writing_the_same_rows_twice_leaves_the_same_table(warehouse: sa.Engine) -> None:
    rows = skill_rows(3_000)
    bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=700)
    first = read_rows(warehouse, skill_assessments, SKILL_KEY)
    assert bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=700) == 3_000
    assert read_rows(warehouse, skill_assessments, SKILL_KEY) == first


def test_reupserting_changed_scores_updates_exactly_those(warehouse: sa.Engine) -> None:
    rows = skill_rows(2_000)
    bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=500)
    changed = {index for index in range(0, 2_000, 37)}
    later = T0 + dt.timedelta(days=1)
    rescored = [
        row | {"score": row["score"] + 0.5, "top_features": {"changed": True}, "scored_at": later}
        if index in changed
        else row
        for index, row in enumerate(rows)
    ]
    bulk_upsert(warehouse, skill_assessments, rescored, SKILL_KEY, chunk_size=500)
    stored = read_rows(warehouse, skill_assessments, SKILL_KEY)
    assert_same_rows(stored, rescored, SKILL_KEY)
    updated = [row for row in stored if row["scored_at"] == later]
    assert len(updated) == len(changed)
    assert all(row["top_features"] == {"changed": True} for row in updated)


def test_duplicate_keys_in_one_call_keep_the_last_row(warehouse: sa.Engine) -> None:
    rows = skill_rows(20)
    duplicates = [rows[3] | {"score": 1.25}, rows[3] | {"score": 4.75, "run_id": "last"}]
    written = bulk_upsert(
        warehouse, skill_assessments, [*rows, *duplicates], SKILL_KEY, chunk_size=6
    )
    assert written == 20
    stored = read_rows(warehouse, skill_assessments, SKILL_KEY)
    assert_same_rows(stored, [*rows[:3], duplicates[1], *rows[4:]], SKILL_KEY)


def test_grade_predictions_round_trip(warehouse: sa.Engine) -> None:
    grades = ["F", "E", "D", "D+", "C", "C+", "B", "A"]
    rows = [
        {
            "essay_id": f"essay-{index:04d}",
            "model_alias": "champion",
            "grade": None if index % 17 == 0 else grades[index % 8],
            "grade_probabilities": {grade: (index + k) / 997 for k, grade in enumerate(grades)},
            "confidence": 1 / (index + 3),
            "cefr": "B2",
            "cefr_probabilities": None if index % 3 == 0 else {"B1": 0.25, "B2": 0.75},
            "ielts_band": None if index % 4 == 0 else 0.5 * (index % 19),
            "needs_review": index % 2 == 0,
            "grade_model_version": "7",
            "cefr_model_version": "" if index % 5 == 0 else "2",
            "ielts_band_model_version": "2",
            "feature_hash": "ab" * 32,
            "run_id": "run-1",
            "scored_at": T0.astimezone(STOCKHOLM),
        }
        for index in range(1_000)
    ]
    assert bulk_upsert(warehouse, essay_grade_predictions, rows, GRADE_KEY, chunk_size=300) == 1_000
    stored = read_rows(warehouse, essay_grade_predictions, GRADE_KEY)
    assert_same_rows(stored, rows, GRADE_KEY)
    assert sum(row["needs_review"] is True for row in stored) == 500
    assert sum(row["needs_review"] is False for row in stored) == 500


def test_columns_the_rows_omit_get_the_table_defaults(warehouse: sa.Engine) -> None:
    """Server defaults and serial ids apply to what the rows leave out, on both dialects."""
    rows = [
        {
            "essay_id": f"essay-{index}",
            "model_alias": "champion",
            "needs_review": False,
            "grade_model_version": "7",
            "cefr_model_version": "",
            "ielts_band_model_version": "",
            "feature_hash": "f" * 64,
            "scored_at": T0,
        }
        for index in range(5)
    ]
    bulk_upsert(warehouse, essay_grade_predictions, rows, GRADE_KEY)
    stored = read_rows(warehouse, essay_grade_predictions, GRADE_KEY)
    assert len(stored) == 5
    assert {(row["grade"], row["grade_probabilities"], row["run_id"]) for row in stored} == {
        (None, None, None)
    }

    entries = [
        {
            "source_table": "essays",
            "source_key": f"essay-{index}",
            "reason": "empty_text: the essay has no text",
            "payload": {"essay_id": f"essay-{index}"},
            "detected_at": T0,
            "run_id": "run-1",
        }
        for index in range(4)
    ]
    quarantine_key = ["source_table", "source_key", "reason"]
    bulk_upsert(warehouse, quarantine, entries, quarantine_key, chunk_size=3)
    bulk_upsert(warehouse, quarantine, entries, quarantine_key, chunk_size=3)
    stored = read_rows(warehouse, quarantine, ["quarantine_id"])
    assert [row["source_key"] for row in stored] == [f"essay-{index}" for index in range(4)]
    assert len({row["quarantine_id"] for row in stored}) == 4


def test_a_missing_column_is_named_and_nothing_is_written(warehouse: sa.Engine) -> None:
    rows = skill_rows(10)
    del rows[6]["confidence"]
    with pytest.raises(ValueError, match=r"row 6 lacks column 'confidence'"):
        bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=2)
    with warehouse.connect() as connection:
        assert count_rows(connection, skill_assessments) == 0


def test_bad_columns_and_keys_are_refused(warehouse: sa.Engine) -> None:
    rows = skill_rows(3)
    with pytest.raises(ValueError, match=r"row 1 has column 'extra'"):
        bulk_upsert(warehouse, skill_assessments, [rows[0], rows[1] | {"extra": 1}], SKILL_KEY)
    with pytest.raises(ValueError, match=r"skill_assessments has no column 'scoer'"):
        bulk_upsert(warehouse, skill_assessments, [{"scoer": 1.0, **rows[0]}], SKILL_KEY)
    with pytest.raises(ValueError, match=r"not a unique constraint or primary key"):
        bulk_upsert(warehouse, skill_assessments, rows, ["essay_id", "skill"])
    with pytest.raises(ValueError, match=r"key column 'model_version' is missing"):
        bulk_upsert(
            warehouse,
            skill_assessments,
            [{k: v for k, v in row.items() if k != "model_version"} for row in rows],
            SKILL_KEY,
        )
    with pytest.raises(ValueError, match="chunk_size"):
        bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=0)
    naive = [rows[0] | {"scored_at": T0.replace(tzinfo=None)}]
    with pytest.raises((ValueError, sa.exc.StatementError), match="no timezone"):
        bulk_upsert(warehouse, skill_assessments, naive, SKILL_KEY)
    assert bulk_upsert(warehouse, skill_assessments, [], SKILL_KEY) == 0


def test_chunks_smaller_than_the_rows_write_every_row(warehouse: sa.Engine) -> None:
    rows = skill_rows(101)
    assert bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=7) == 101
    assert_same_rows(read_rows(warehouse, skill_assessments, SKILL_KEY), rows, SKILL_KEY)


def test_a_failed_chunk_leaves_whole_chunks_and_a_rerun_completes(warehouse: sa.Engine) -> None:
    rows = skill_rows(30)
    broken = [*rows[:25], rows[25] | {"score": None}, *rows[26:]]
    with pytest.raises(sa.exc.IntegrityError):
        bulk_upsert(warehouse, skill_assessments, broken, SKILL_KEY, chunk_size=10)
    assert_same_rows(read_rows(warehouse, skill_assessments, SKILL_KEY), rows[:20], SKILL_KEY)
    bulk_upsert(warehouse, skill_assessments, rows, SKILL_KEY, chunk_size=10)
    assert_same_rows(read_rows(warehouse, skill_assessments, SKILL_KEY), rows, SKILL_KEY)


@pytest.mark.integration
def test_copy_throughput_against_row_by_row_inserts(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prints (does not assert) rows/s, to re-measure the rates quoted in warehouse/bulk.py."""
    engine = make_engine(postgres_url)
    migrate(engine)
    try:
        rows = skill_rows(50_000, seed=1)
        started = time.perf_counter()
        bulk_upsert(engine, skill_assessments, rows, SKILL_KEY)
        insert_rate = len(rows) / (time.perf_counter() - started)

        rescored = [row | {"score": row["score"] / 2} for row in rows]
        started = time.perf_counter()
        bulk_upsert(engine, skill_assessments, rescored, SKILL_KEY)
        update_rate = len(rows) / (time.perf_counter() - started)

        others = [row | {"model_version": "4"} for row in rows[:10_000]]
        started = time.perf_counter()
        with engine.begin() as connection:
            upsert_rows(connection, skill_assessments, others, SKILL_KEY)
        executemany_rate = len(others) / (time.perf_counter() - started)

        singles = [row | {"model_version": "5"} for row in rows[:2_000]]
        started = time.perf_counter()
        with engine.begin() as connection:
            insert = skill_assessments.insert()
            for row in singles:
                connection.execute(insert, row)
        row_by_row_rate = len(singles) / (time.perf_counter() - started)

        with engine.connect() as connection:
            assert count_rows(connection, skill_assessments) == 62_000
    finally:
        engine.dispose()
    figures = {
        "bulk_upsert_insert_rows_per_s": round(insert_rate),
        "bulk_upsert_update_rows_per_s": round(update_rate),
        "executemany_upsert_rows_per_s": round(executemany_rate),
        "row_by_row_insert_rows_per_s": round(row_by_row_rate),
        "speedup_vs_row_by_row": round(insert_rate / row_by_row_rate, 1),
    }
    with capsys.disabled():
        print("\nbulk_upsert throughput:", json.dumps(figures))


def _skill_frame(rows: list[dict]):
    import polars as pl

    return pl.DataFrame(
        [
            row
            | {
                "top_features": None
                if row["top_features"] is None
                else json.dumps(row["top_features"]),
                "scored_at": row["scored_at"].astimezone(dt.UTC),
            }
            for row in rows
        ],
        schema_overrides={"scored_at": pl.Datetime("us", "UTC"), "top_features": pl.String},
    )


def test_frames_copy_new_rows_and_upsert_known_ones(warehouse: sa.Engine) -> None:
    from huleedu_pipelines.warehouse.bulk import write_frame

    rows = skill_rows(700, seed=3)
    for row in rows[:50]:  # SQL NULL, not JSON null, when the frame says null
        row["top_features"] = None
    with warehouse.begin() as connection:
        assert (
            write_frame(
                connection, skill_assessments, _skill_frame(rows), SKILL_KEY, new=[True] * 700
            )
            == 700
        )
    stored = read_rows(warehouse, skill_assessments, SKILL_KEY)
    assert_same_rows(stored, rows, SKILL_KEY)
    with warehouse.connect() as connection:
        nulls = connection.execute(
            sa.select(sa.func.count())
            .select_from(skill_assessments)
            .where(skill_assessments.c.top_features.is_(None))
        ).scalar_one()
    assert nulls >= 50

    # Rows wrongly flagged new (another writer got there first) are upserted, not duplicated.
    rescored = [row | {"score": row["score"] + 1.0} for row in rows[:300]]
    brand_new = [row | {"model_version": "9"} for row in rows[:100]]
    with warehouse.begin() as connection:
        write_frame(
            connection,
            skill_assessments,
            _skill_frame(rescored + brand_new),
            SKILL_KEY,
            new=[True] * 400,
        )
    stored = read_rows(warehouse, skill_assessments, SKILL_KEY)
    assert len(stored) == 800
    assert_same_rows(stored, rescored + rows[300:] + brand_new, SKILL_KEY)


def test_frames_keep_empty_strings_apart_from_nulls(warehouse: sa.Engine) -> None:
    import polars as pl

    from huleedu_pipelines.warehouse.bulk import write_frame

    frame = pl.DataFrame(
        {
            "essay_id": ["a", "b"],
            "model_alias": ["champion", "champion"],
            "grade": ["C", None],
            "grade_probabilities": ['{"C": 1.0}', None],
            "confidence": [0.5, None],
            "cefr": [None, "B1"],
            "cefr_probabilities": [None, '{"B1": 0.75, "tab\\t": 0.25}'],
            "ielts_band": [None, 6.5],
            "needs_review": [False, True],
            "grade_model_version": ["3", ""],
            "cefr_model_version": ["", "2"],
            "ielts_band_model_version": ["", "2"],
            "feature_hash": ["h1", "h2"],
            "run_id": [None, 'run, with "quotes"\nand a newline'],
            "scored_at": pl.Series([T0, T0], dtype=pl.Datetime("us", "UTC")),
        }
    )
    with warehouse.begin() as connection:
        write_frame(connection, essay_grade_predictions, frame, GRADE_KEY, new=[True, False])
    stored = {r["essay_id"]: r for r in read_rows(warehouse, essay_grade_predictions, GRADE_KEY)}
    assert stored["a"]["cefr_model_version"] == "" and stored["a"]["cefr"] is None
    assert stored["a"]["grade_probabilities"] == {"C": 1.0}
    assert stored["b"]["grade_model_version"] == "" and stored["b"]["grade_probabilities"] is None
    assert stored["b"]["cefr_probabilities"] == {"B1": 0.75, "tab\t": 0.25}
    assert stored["b"]["run_id"] == 'run, with "quotes"\nand a newline'
    assert stored["a"]["scored_at"] == T0 and stored["b"]["needs_review"] is True
