"""`group_<name>` CSV columns become essay attributes, on SQLite and PostgreSQL: stored once,
corrected by a re-import, bad cells quarantined alone, bad column names reported."""

import csv
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from huleedu_pipelines.warehouse.attributes import load_attributes
from huleedu_pipelines.warehouse.csv_import import import_csv
from huleedu_pipelines.warehouse.engine import current_revision, make_engine, migrate
from huleedu_pipelines.warehouse.tables import essay_attributes, essays, quarantine, skill_ratings

ELLIPSE = (Path(__file__).parents[3] / "../shared/data/ellipse_skills_dev.csv").resolve()
"""The team's shared sample of the ELLIPSE corpus: 795 essays, two `group_` columns."""


def stored_attributes(engine: sa.Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(essay_attributes)).all()
    return {(row.essay_id, row.name): row.value for row in rows}


def quarantined(engine: sa.Engine, table: str) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(quarantine.c.source_key, quarantine.c.reason).where(
                quarantine.c.source_table == table
            )
        ).all()
    return {key: reason for key, reason in rows}


def write(tmp_path: Path, content: str, name: str = "groups.csv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.skipif(not ELLIPSE.exists(), reason=f"{ELLIPSE} is not on this machine")
def test_the_ellipse_file_stores_gender_and_economic_status(warehouse: sa.Engine) -> None:
    with ELLIPSE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    summary = import_csv(warehouse, ELLIPSE, source="ellipse", max_essay_chars=50_000)
    assert summary.essays_imported == len(rows) == 795
    assert summary.attribute_names == ["gender", "economic_status"]
    assert (summary.attributes_imported, summary.attributes_updated) == (2 * 795, 0)
    assert summary.rejected_columns == [] and summary.quarantined == []
    assert "attributes gender, economic_status: 1590 new, 0 changed" in summary.describe()

    stored = stored_attributes(warehouse)
    assert len(stored) == 2 * 795
    for name in ("gender", "economic_status"):
        values = Counter(value for (_, stored_name), value in stored.items() if stored_name == name)
        assert values == Counter(row[f"group_{name}"].strip() for row in rows)
    assert Counter(v for (_, n), v in stored.items() if n == "gender") == {
        "Male": 466,
        "Female": 329,
    }
    first = rows[0]
    assert stored[(first["essay_id"], "gender")] == first["group_gender"]
    assert stored[(first["essay_id"], "economic_status")] == first["group_economic_status"]

    again = import_csv(warehouse, ELLIPSE, source="ellipse", max_essay_chars=50_000)
    assert (again.attributes_imported, again.attributes_updated) == (0, 0)
    assert stored_attributes(warehouse) == stored


def test_a_changed_value_replaces_the_stored_one_and_an_empty_cell_stores_nothing(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    header = "essay_id,essay,group_school,group_Gender\n"
    first = write(
        tmp_path,
        header + "e1,An essay about trees.,Ekskolan,Female\ne2,An essay about rain., Aspskolan ,\n",
    )
    summary = import_csv(warehouse, first, source="school")
    assert summary.attribute_names == ["school", "gender"]  # header names are lower-cased
    assert (summary.attributes_imported, summary.attributes_updated) == (3, 0)
    expected = {
        ("e1", "school"): "Ekskolan",
        ("e1", "gender"): "Female",
        ("e2", "school"): "Aspskolan",  # stripped
    }
    assert stored_attributes(warehouse) == expected

    moved = write(
        tmp_path,
        header + "e1,An essay about trees.,Lindskolan,\ne2,An essay about rain.,Aspskolan,Male\n",
        "moved.csv",
    )
    summary = import_csv(warehouse, moved, source="school")
    assert summary.essays_imported == 0 and summary.duplicates_skipped == 2
    assert (summary.attributes_imported, summary.attributes_updated) == (1, 1)
    assert stored_attributes(warehouse) == {
        ("e1", "school"): "Lindskolan",  # corrected
        ("e1", "gender"): "Female",  # an empty cell leaves the stored value
        ("e2", "school"): "Aspskolan",
        ("e2", "gender"): "Male",
    }
    assert quarantined(warehouse, "essay_attributes") == {}


def test_a_bad_value_is_quarantined_alone_and_the_essay_imports(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    long_school = "S" * 101
    path = write(
        tmp_path,
        "essay_id,essay,grammar,group_school,group_gender\n"
        f"e1,An essay about trees.,4,{long_school},Female\n"
        'e2,An essay about rain.,3,"Eks\nkolan",Male\n'
        "e3,An essay about snow.,3.5,Ekskolan,Male\n",
    )
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 3 and summary.labels_imported == 3
    assert (summary.attributes_imported, summary.attributes_updated) == (4, 0)
    by_key = {entry.source_key: entry for entry in summary.quarantined}
    assert set(by_key) == {"e1|school", "e2|school"}
    assert by_key["e1|school"].rule == "attribute_value_too_long"
    assert by_key["e1|school"].detail.startswith("line 2, column group_school: attribute value")
    assert by_key["e1|school"].payload["value"] == long_school
    assert by_key["e2|school"].rule == "attribute_value_control_characters"
    assert by_key["e2|school"].detail.startswith("line 3, column group_school:")

    assert stored_attributes(warehouse) == {
        ("e1", "gender"): "Female",
        ("e2", "gender"): "Male",
        ("e3", "school"): "Ekskolan",
        ("e3", "gender"): "Male",
    }
    reasons = quarantined(warehouse, "essay_attributes")
    assert reasons["e1|school"].startswith("attribute_value_too_long: line 2, column group_school")
    with warehouse.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(essays)).scalar() == 3
        ratings = connection.execute(sa.select(sa.func.count()).select_from(skill_ratings))
        assert ratings.scalar() == 3

    import_csv(warehouse, path, source="school")  # quarantined once, however often imported
    assert len(quarantined(warehouse, "essay_attributes")) == 2


def test_a_bad_column_name_rejects_the_column_and_says_why(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "essay,group_economic status,group_source,group_,group_gender\n"
        "An essay about trees.,Disadvantaged,school,x,Female\n",
    )
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 1
    assert summary.attribute_names == ["gender"]
    assert len(summary.rejected_columns) == 3
    economic, source, empty = summary.rejected_columns
    assert economic.startswith("column 'group_economic status': attribute name 'economic status'")
    assert "(e.g. 'economic_status')" in economic
    assert "none of its values were imported" in economic
    assert "is a built-in group" in source
    assert empty.startswith("column 'group_': attribute name ''")
    lines = summary.describe().splitlines()
    assert lines[1:] == [f"  rejected {message}" for message in summary.rejected_columns]
    assert set(stored_attributes(warehouse).values()) == {"Female"}


def test_one_essay_given_two_values_in_one_file_stores_neither(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "essay_id,essay,group_school\n"
        "e1,An essay about trees.,Ekskolan\n"
        "e1,An essay about trees.,Aspskolan\n"
        "e2,An essay about rain.,Ekskolan\n"
        "e2,An essay about rain.,Ekskolan\n",
    )
    summary = import_csv(warehouse, path, source="school")
    assert stored_attributes(warehouse) == {("e2", "school"): "Ekskolan"}
    conflict = next(e for e in summary.quarantined if e.source_key == "e1|school")
    assert conflict.rule == "attribute_conflict"
    assert "'Aspskolan', 'Ekskolan'" in conflict.detail


def test_attributes_of_a_refused_essay_row_are_quarantined(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    import_csv(warehouse, write(tmp_path, "essay_id,essay\ne1,The first text.\n"), "school")
    path = write(tmp_path, "essay_id,essay,group_school\ne1,Another text.,Ekskolan\n", "b.csv")
    summary = import_csv(warehouse, path, source="school")
    assert stored_attributes(warehouse) == {}
    refused = next(e for e in summary.quarantined if e.source_table == "essay_attributes")
    assert (refused.source_key, refused.rule) == ("e1|school", "essay_refused")
    assert "so this attribute is not stored on essay 'e1'" in refused.detail


def test_load_attributes_upserts_and_counts(warehouse: sa.Engine) -> None:
    rows = [
        {"essay_id": "e1", "name": "school", "value": "Ekskolan"},
        {"essay_id": "e2", "name": "school", "value": "Aspskolan"},
    ]
    with warehouse.begin() as connection:
        first = load_attributes(connection, rows)
    with warehouse.begin() as connection:
        second = load_attributes(connection, [rows[0] | {"value": "Lindskolan"}, rows[1]])
    assert (first.inserted, first.updated, first.duplicates) == (2, 0, 0)
    assert (second.inserted, second.updated, second.duplicates) == (0, 1, 1)
    assert stored_attributes(warehouse) == {
        ("e1", "school"): "Lindskolan",
        ("e2", "school"): "Aspskolan",
    }


def test_a_home_created_before_attributes_gets_the_table(warehouse_url: str, tmp_path) -> None:
    engine = make_engine(warehouse_url)
    migrate(engine, "0003")
    assert "essay_attributes" not in sa.inspect(engine).get_table_names()
    summary = import_csv(
        engine, write(tmp_path, "essay,group_school\nAn essay.,Ekskolan\n"), source="school"
    )
    assert current_revision(engine) == "0008"
    assert summary.attributes_imported == 1
    assert list(stored_attributes(engine).values()) == ["Ekskolan"]
    engine.dispose()


def test_the_command_prints_attributes_rejected_columns_and_bad_cells(
    home: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from huleedu_pipelines.cli import app

    path = write(
        tmp_path,
        "essay_id,essay,group_school,group_first language\n"
        f"e1,An essay about trees.,{'S' * 101},sv\n"
        "e2,An essay about rain.,Ekskolan,en\n",
    )
    result = CliRunner().invoke(app, ["import-csv", str(path), "--source", "school"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "2 rows read: 2 essays and 0 labels imported, 0 rows skipped as duplicates, 1 values "
        "quarantined (file read as UTF-8); attributes school: 1 new, 0 changed"
    )
    assert lines[1].startswith(
        "  rejected column 'group_first language': attribute name 'first language' must be "
        "lowercase letters, digits and underscores (e.g. 'first_language')"
    )
    assert lines[2].startswith(
        "  quarantined essay_attributes e1|school: attribute_value_too_long: line 2, column "
        "group_school: attribute value has 101 characters"
    )
