"""`<label>_rater2` CSV columns become second ratings, on SQLite and PostgreSQL: stored in their
label's notation apart from the training labels, bad cells quarantined alone naming line and
column, unknown labels rejected whole, re-imports idempotent."""

from pathlib import Path

import sqlalchemy as sa

from huleedu_pipelines.warehouse.csv_import import import_csv
from huleedu_pipelines.warehouse.tables import (
    ielts_scores,
    quarantine,
    second_ratings,
    skill_ratings,
    teacher_grades,
)

HEADER = (
    "essay_id,essay,grade,grade_rater2,band,band_rater2,grammar,grammar_rater2,grammer_rater2\n"
)
LINES = (
    "e1,An essay about trees.,C,C+, 6.5 ,7,3,3.5,4\n"
    "e2,An essay about rain.,B,Q,6,<4,2.5,2.50,\n"  # an unknown grade; '<4' is band 3.5
    "e3,An essay about snow.,A,,7.5,7.25,4,9,\n"  # no second grade; band and rating off-scale
)


def write(tmp_path: Path, content: str, name: str = "rated.csv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def stored(engine: sa.Engine, table: sa.Table) -> list[tuple]:
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(sa.select(table)))


def second(engine: sa.Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(second_ratings)).all()
    return {(row.essay_id, row.label): row.value for row in rows}


def quarantined(engine: sa.Engine) -> dict[tuple[str, str], tuple[str, dict]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(quarantine).where(quarantine.c.source_table == "second_ratings")
        ).all()
    return {(row.source_key, row.reason.split(":")[0]): row.payload for row in rows}


def test_second_ratings_are_stored_apart_from_the_labels_and_bad_cells_are_quarantined(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + LINES)
    summary = import_csv(warehouse, path, source="school")

    assert summary.essays_imported == 3 and summary.labels_imported == 9
    assert summary.second_rating_labels == ["grade", "band", "grammar"]
    assert summary.second_ratings_imported == 5
    assert summary.rejected_columns == [
        "column 'grammer_rater2': 'grammer' is not a label a second rating can repeat; the "
        "labels are grade, band, task_response, coherence_cohesion, vocabulary, phraseology, "
        "syntax, grammar, conventions; none of its values were imported. Rename the column and "
        "import the file again"
    ]
    assert "; second ratings of grade, band, grammar: 5 new" in summary.describe()
    expected = {
        ("e1", "grade"): "C+",
        ("e1", "band"): "7",
        ("e1", "grammar"): "3.5",
        ("e2", "band"): "3.5",
        ("e2", "grammar"): "2.5",
    }
    assert second(warehouse) == expected

    # The training labels hold the first raters' values only.
    assert [(row[0], row[1]) for row in stored(warehouse, teacher_grades)] == [
        ("e1", "C"),
        ("e2", "B"),
        ("e3", "A"),
    ]
    assert [(row[0], row[1]) for row in stored(warehouse, ielts_scores)] == [
        ("e1", 6.5),
        ("e2", 6.0),
        ("e3", 7.5),
    ]
    assert [(row[0], row[2]) for row in stored(warehouse, skill_ratings)] == [
        ("e1", 3.0),
        ("e2", 2.5),
        ("e3", 4.0),
    ]

    bad = quarantined(warehouse)
    assert set(bad) == {
        ("e2|grade", "unknown_grade"),
        ("e3|band", "band_out_of_range"),
        ("e3|grammar", "rating_out_of_range"),
    }
    assert bad[("e3|band", "band_out_of_range")] == {
        "essay_id": "e3",
        "label": "band",
        "value": "7.25",
        "line": 4,
        "column": "band_rater2",
    }
    with warehouse.connect() as connection:
        reasons = dict(
            connection.execute(
                sa.select(quarantine.c.source_key, quarantine.c.reason).where(
                    quarantine.c.source_table == "second_ratings"
                )
            ).all()
        )
    assert reasons["e2|grade"].startswith("unknown_grade: line 3, column grade_rater2: grade 'Q'")
    assert reasons["e3|grammar"].startswith("rating_out_of_range: line 4, column grammar_rater2:")
    # The essay with the bad second grade still imported, with its first grade.
    assert summary.quarantined and {entry.source_key for entry in summary.quarantined} >= {
        "e2|grade",
        "e3|band",
        "e3|grammar",
    }

    again = import_csv(warehouse, path, source="school")
    assert (again.essays_imported, again.labels_imported, again.second_ratings_imported) == (
        0,
        0,
        0,
    )
    assert second(warehouse) == expected
    assert set(quarantined(warehouse)) == set(bad)


def test_a_changed_second_rating_keeps_the_stored_one_as_labels_do(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    header = "essay_id,essay,grade,grade_rater2\n"
    import_csv(warehouse, write(tmp_path, header + "e1,An essay.,C,C+\n"), source="school")
    summary = import_csv(
        warehouse, write(tmp_path, header + "e1,An essay.,C,B\n", "changed.csv"), source="school"
    )
    assert summary.second_ratings_imported == 0
    assert second(warehouse) == {("e1", "grade"): "C+"}
    (entry,) = [e for e in summary.quarantined if e.source_table == "second_ratings"]
    assert (entry.source_key, entry.rule) == ("e1|grade", "label_conflict")
    assert "stored with value 'C+' and arrives with value 'B'" in entry.reason


def test_a_refused_essay_takes_its_second_ratings_with_it(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, "essay_id,essay,grade_rater2\ne1,An essay.,B\ne1,Another text.,C\n")
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 1 and summary.second_ratings_imported == 1
    assert second(warehouse) == {("e1", "grade"): "B"}
    refused = [e for e in summary.quarantined if e.rule == "essay_refused"]
    assert [(e.source_table, e.source_key) for e in refused] == [("second_ratings", "e1|grade")]
    assert "this second rating is not stored on essay 'e1'" in refused[0].reason
