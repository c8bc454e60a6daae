from pathlib import Path

import pytest
import sqlalchemy as sa

from huleedu_pipelines.warehouse.csv_import import CsvLayoutError, import_csv
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import essays, ielts_scores, prompts, quarantine

IELTS_LAYOUT = """prompt,essay,evaluation,band
"Some people think that universities should provide graduates with the knowledge and skills needed in the workplace. To what extent do you agree?","Universities have long been seen as places of learning. However, many students now expect their degree to prepare them for a job.

In my opinion, both goals matter.",Good coherence.,"6.5
"
"Some people think that universities should provide graduates with the knowledge and skills needed in the workplace. To what extent do you agree?","I agree because job is important for everyone and university must teach it.",Limited vocabulary.,<4
"Many cities ban cars from their centres. Is this a positive development?","Banning cars improves air quality, reduces noise and makes streets safer for children. ",Clear position.,7 
"Many cities ban cars from their centres. Is this a positive development?","   ",Empty.,5
"Many cities ban cars from their centres. Is this a positive development?","Cars are useful but cities are crowded.",Off scale.,abc
"""


def write_csv(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "ielts.csv"
    path.write_text(content, encoding="utf-8")
    return path


def test_ielts_layout_imports_once(warehouse: sa.Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path, IELTS_LAYOUT)
    first = import_csv(warehouse, path, source="ielts")
    assert first.rows_read == 5
    assert first.essays_imported == 4
    assert first.labels_imported == 3
    assert sorted(e.rule for e in first.quarantined) == ["band_not_a_number", "empty_text"]

    with warehouse.connect() as connection:
        bands = read_frame(connection, ielts_scores)["band"].sort().to_list()
        stored_essays = read_frame(connection, essays)
        n_prompts = connection.execute(sa.select(sa.func.count()).select_from(prompts)).scalar()
        n_quarantined = connection.execute(
            sa.select(sa.func.count()).select_from(quarantine)
        ).scalar()
    assert bands == [3.5, 6.5, 7.0]  # "<4" is stored as 3.5, "6.5\n" and "7 " are cleaned
    assert set(stored_essays["source"]) == {"ielts"}
    assert all(essay_id.startswith("ielts-") for essay_id in stored_essays["essay_id"])
    assert stored_essays["prompt_id"].null_count() == 0
    assert n_prompts == 2
    assert n_quarantined == 2

    second = import_csv(warehouse, path, source="ielts")
    assert (second.essays_imported, second.labels_imported) == (0, 0)
    assert second.duplicates_skipped == 4
    with warehouse.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(essays)).scalar() == 4
        assert connection.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar() == 2


def test_grades_ratings_and_ids_from_columns(warehouse: sa.Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "essay_id,student_id,essay,grade,grammar,vocabulary\n"
        "x1,s1,An essay about school.,C+,4.5,7\n"
        "x2,s2,Another essay about school.,G,3,3.5\n",
    )
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 2
    assert summary.labels_imported == 4  # grade C+, grammar 4.5 and 3, vocabulary 3.5
    assert sorted((e.source_table, e.source_key, e.rule) for e in summary.quarantined) == [
        ("skill_ratings", "x1|vocabulary|import:school", "rating_out_of_range"),
        ("teacher_grades", "x2|import:school", "unknown_grade"),
    ]


def test_missing_essay_column_is_a_clear_error(warehouse: sa.Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "text,band\nhello,6\n")
    with pytest.raises(CsvLayoutError, match="no 'essay' column"):
        import_csv(warehouse, path, source="x")
