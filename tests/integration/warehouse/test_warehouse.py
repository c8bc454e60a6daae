import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from huleedu_pipelines.warehouse.engine import current_revision, migrate
from huleedu_pipelines.warehouse.loading import load_tables
from huleedu_pipelines.warehouse.queries import count_rows, read_frame
from huleedu_pipelines.warehouse.tables import essays, ielts_scores, metadata, quarantine
from huleedu_pipelines.warehouse.writes import QuarantineEntry, upsert_rows, write_quarantine

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def essay(essay_id: str, text: str = "A short essay.", **extra) -> dict:
    return {
        "essay_id": essay_id,
        "student_id": "s1",
        "prompt_id": None,
        "source": "test",
        "text": text,
        "language": "en",
        "submitted_at": T0,
        "updated_at": T0,
    } | extra


def test_migrations_create_exactly_the_declared_schema(warehouse: sa.Engine) -> None:
    assert current_revision(warehouse) == "0008"
    with warehouse.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []
    migrate(warehouse)  # a second run is a no-op
    assert current_revision(warehouse) == "0008"


def test_timestamps_round_trip_as_utc(warehouse: sa.Engine) -> None:
    stockholm = dt.timezone(dt.timedelta(hours=1))
    local = dt.datetime(2026, 3, 1, 10, 30, tzinfo=stockholm)
    with warehouse.begin() as connection:
        upsert_rows(connection, essays, [essay("e1", submitted_at=local)], ["essay_id"])
    with warehouse.connect() as connection:
        frame = read_frame(connection, essays)
    assert frame["submitted_at"][0] == T0
    with warehouse.begin() as connection, pytest.raises(sa.exc.StatementError, match="no timezone"):
        upsert_rows(
            connection, essays, [essay("e2", submitted_at=dt.datetime(2026, 1, 1))], ["essay_id"]
        )


def test_upsert_is_idempotent_and_updates_on_conflict(warehouse: sa.Engine) -> None:
    with warehouse.begin() as connection:
        upsert_rows(connection, essays, [essay("e1"), essay("e2")], ["essay_id"])
        upsert_rows(connection, essays, [essay("e1"), essay("e2")], ["essay_id"])
    with warehouse.begin() as connection:
        upsert_rows(connection, essays, [essay("e1", text="Edited essay.")], ["essay_id"])
        upsert_rows(connection, essays, [essay("e2", text="Ignored.")], ["essay_id"], update=False)
    with warehouse.connect() as connection:
        texts = dict(connection.execute(sa.select(essays.c.essay_id, essays.c.text)).all())
    assert texts == {"e1": "Edited essay.", "e2": "A short essay."}


def test_quarantine_records_each_problem_once(warehouse: sa.Engine) -> None:
    entry = QuarantineEntry("essays", "e9", "empty_text", "essay text is empty", {"text": " "})
    with warehouse.begin() as connection:
        write_quarantine(connection, [entry, entry], run_id="r1")
    with warehouse.begin() as connection:
        write_quarantine(connection, [entry], run_id="r2")
    with warehouse.connect() as connection:
        rows = connection.execute(sa.select(quarantine)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["reason"] == "empty_text: essay text is empty"
    assert rows[0]["payload"] == {"text": " "}
    assert rows[0]["run_id"] == "r1"


def test_loader_refuses_what_columns_cannot_hold_and_keeps_good_rows(warehouse: sa.Engine) -> None:
    tables = {
        "essays": [
            essay("e1"),
            essay("e2", text=b"broken \xff bytes"),
            essay("e3", text="nul \x00 inside"),
            essay("e1", text="Another essay under the same id."),
            essay("e4", text=b"valid utf-8 bytes \xc3\xa5"),
        ],
        "ielts_scores": [
            {"essay_id": "e1", "band": "abc", "scored_at": T0},
            {"essay_id": "e4", "band": "6.5\n", "scored_at": T0},
        ],
    }
    with warehouse.begin() as connection:
        results = load_tables(connection, tables, run_id="load")
    assert results["essays"].inserted == 2
    assert results["ielts_scores"].inserted == 1
    rules = sorted(entry.rule for r in results.values() for entry in r.quarantined)
    assert rules == [
        "band_not_a_number",
        "control_characters",
        "duplicate_essay_id",
        "invalid_utf8",
    ]
    with warehouse.connect() as connection:
        assert count_rows(connection, quarantine) == 4
        stored = dict(connection.execute(sa.select(essays.c.essay_id, essays.c.text)).all())
        bands = connection.execute(sa.select(ielts_scores.c.band)).scalars().all()
    assert stored == {"e1": "A short essay.", "e4": "valid utf-8 bytes å"}
    assert bands == [6.5]

    with warehouse.begin() as connection:
        again = load_tables(connection, tables, run_id="load-again")
    assert again["essays"].inserted == 0 and again["essays"].duplicates == 2
    with warehouse.connect() as connection:
        assert count_rows(connection, essays) == 2
        assert count_rows(connection, quarantine) == 4


def test_values_longer_than_their_column_or_holding_nul_are_refused_on_every_dialect(
    warehouse: sa.Engine,
) -> None:
    """PostgreSQL would raise DataError and roll back the good rows; SQLite would store them."""
    long_id = "e" * 200
    tables = {
        "essays": [
            essay("e1"),
            essay(long_id),
            essay("e2", student_id="s\x00"),
            essay("e3", language="x" * 17),
            essay("e4"),
        ],
        "teacher_grades": [
            {"essay_id": "e1", "grade": "C", "teacher_id": "t1", "graded_at": T0},
            {"essay_id": "e4", "grade": "B", "teacher_id": "t" * 129, "graded_at": T0},
            {"essay_id": "e4", "grade": "B\x00", "teacher_id": "t2", "graded_at": T0},
        ],
    }
    with warehouse.begin() as connection:
        results = load_tables(connection, tables, run_id="load")
    assert (results["essays"].inserted, results["teacher_grades"].inserted) == (2, 1)
    assert sorted(results["essays"].refused) == [1, 2, 3]
    with warehouse.connect() as connection:
        stored = connection.execute(sa.select(essays.c.essay_id)).scalars().all()
        reasons = sorted(
            (row.source_table, row.source_key, row.reason)
            for row in connection.execute(sa.select(quarantine))
        )
    assert sorted(stored) == ["e1", "e4"]
    too_long = "value_too_long: {} has {} characters; the {} column holds at most {}"
    assert reasons == [
        ("essays", "e2", "nul_byte: student_id contains a NUL byte at offset 1"),
        ("essays", "e3", too_long.format("language", 17, "essays.language", 16)),
        ("essays", long_id, too_long.format("essay_id", 200, "essays.essay_id", 128)),
        ("teacher_grades", "e4|t2", "nul_byte: grade contains a NUL byte at offset 1"),
        (
            "teacher_grades",
            f"e4|{'t' * 129}",
            too_long.format("teacher_id", 129, "teacher_grades.teacher_id", 128),
        ),
    ]


def test_label_conflicts_are_quarantined_not_dropped(warehouse: sa.Engine) -> None:
    with warehouse.begin() as connection:
        load_tables(
            connection,
            {
                "essays": [essay("e1"), essay("e2")],
                "ielts_scores": [{"essay_id": "e1", "band": 6.0, "scored_at": T0}],
            },
        )
    later = T0 + dt.timedelta(days=1)
    with warehouse.begin() as connection:
        results = load_tables(
            connection,
            {
                "ielts_scores": [
                    {"essay_id": "e1", "band": "6.5", "scored_at": later},  # stored: 6.0
                    {"essay_id": "e2", "band": 5.0, "scored_at": later},
                    {"essay_id": "e2", "band": 7.0, "scored_at": later},  # same load: 5.0
                    {"essay_id": "e2", "band": 5.0, "scored_at": later},
                ],
                "skill_ratings": [
                    {
                        "essay_id": "e1",
                        "skill": "grammar",
                        "rating": "4",
                        "rater_id": "r",
                        "rated_at": T0,
                    },
                    {
                        "essay_id": "e1",
                        "skill": "grammar",
                        "rating": 4.0,
                        "rater_id": "r",
                        "rated_at": later,
                    },
                ],
            },
        )
    bands = results["ielts_scores"]
    assert (bands.inserted, bands.duplicates) == (0, 0)
    assert sorted(bands.refused) == [0, 1, 2, 3]
    assert [(e.source_key, e.rule) for e in bands.quarantined] == [
        ("e2", "label_conflict"),
        ("e1", "label_conflict"),
    ]
    in_load, against_stored = bands.quarantined
    assert [row["band"] for row in in_load.payload["conflicting_rows"]] == [5.0, 7.0, 5.0]
    assert against_stored.payload["stored"] == {"band": 6.0}
    assert against_stored.payload["new"]["band"] == 6.5
    # The same rating twice (once as text) is a repeat, not a conflict.
    assert (results["skill_ratings"].inserted, results["skill_ratings"].duplicates) == (1, 1)
    with warehouse.connect() as connection:
        stored = dict(
            connection.execute(sa.select(ielts_scores.c.essay_id, ielts_scores.c.band)).all()
        )
        assert count_rows(connection, quarantine) == 2
    assert stored == {"e1": 6.0}


def test_the_loader_stores_student_ids_trimmed_and_case_folded(warehouse: sa.Engine) -> None:
    rows = [
        essay("e1", student_id="S0032"),
        essay("e2", student_id=" s0032 "),
        essay("e3", student_id=" "),
    ]
    with warehouse.begin() as connection:
        load_tables(connection, {"essays": rows})
    with warehouse.connect() as connection:
        ids = dict(connection.execute(sa.select(essays.c.essay_id, essays.c.student_id)).all())
    assert ids == {"e1": "s0032", "e2": "s0032", "e3": None}
