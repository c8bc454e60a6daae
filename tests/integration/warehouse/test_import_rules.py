"""CSV import rules (issue 11, sections 3 and 4), each on SQLite and PostgreSQL: labels stay on
their own essay, conflicts are quarantined, and no bad row, line or encoding costs good rows."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from huleedu_pipelines.warehouse.csv_import import CsvLayoutError, import_csv
from huleedu_pipelines.warehouse.tables import (
    essays,
    ielts_scores,
    quarantine,
    skill_ratings,
    teacher_grades,
)


def write(tmp_path: Path, content: str | bytes, name: str = "essays.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def quarantined(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(table, key, rule) of every quarantine row, sorted."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(quarantine.c.source_table, quarantine.c.source_key, quarantine.c.reason)
        ).all()
    return sorted((table, key, reason.split(":", 1)[0]) for table, key, reason in rows)


def table_rows(engine: sa.Engine, *columns: sa.Column) -> list[tuple]:
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(sa.select(*columns)).all())


# --- 3. labels stay on their own essay; conflicts are never dropped silently -----------------


def test_a_reused_essay_id_takes_its_labels_to_quarantine(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "essay_id,essay,band,grade,grammar\n"
        "x1,The first essay about tides.,6,C,\n"
        "x1,A different essay under the same id.,7,B,4\n"
        "x2,An essay about rivers.,5.5,,\n",
    )
    summary = import_csv(warehouse, path, source="school")

    assert (summary.essays_imported, summary.labels_imported) == (2, 3)
    assert quarantined(warehouse) == [
        ("essays", "x1", "duplicate_essay_id"),
        ("ielts_scores", "x1", "essay_refused"),
        ("skill_ratings", "x1|grammar|import:school", "essay_refused"),
        ("teacher_grades", "x1|import:school", "essay_refused"),
    ]
    assert table_rows(warehouse, ielts_scores.c.essay_id, ielts_scores.c.band) == [
        ("x1", 6.0),
        ("x2", 5.5),
    ]
    assert table_rows(warehouse, teacher_grades.c.essay_id, teacher_grades.c.grade) == [("x1", "C")]
    assert table_rows(warehouse, skill_ratings.c.essay_id) == []
    refused = next(e for e in summary.quarantined if e.rule == "essay_refused")
    assert "line 3" in refused.detail and "duplicate_essay_id" in refused.detail


def test_a_later_file_reusing_a_stored_id_stores_none_of_its_labels(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    first = write(tmp_path, "essay_id,essay,band\nx1,The stored essay.,6\n", "first.csv")
    import_csv(warehouse, first, source="school")
    second = write(
        tmp_path,
        "essay_id,essay,grade,grammar,syntax\nx1,Another text with the same id.,A,5,5\n",
        "second.csv",
    )
    summary = import_csv(warehouse, second, source="school")

    assert (summary.essays_imported, summary.labels_imported) == (0, 0)
    assert summary.describe().startswith("1 rows read: 0 essays and 0 labels imported")
    assert [e.rule for e in summary.quarantined].count("essay_refused") == 3
    with warehouse.connect() as connection:
        assert connection.execute(sa.select(essays.c.text)).scalars().all() == ["The stored essay."]
    assert table_rows(warehouse, teacher_grades.c.grade) == []
    assert table_rows(warehouse, skill_ratings.c.rating) == []


def test_the_same_text_twice_with_different_bands_is_a_conflict(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    # As in the real IELTS file: one essay listed twice, once with band 5 and once with 8.
    essay = "The advertising industry has undeniably thrived in recent decades."
    path = write(
        tmp_path,
        "prompt,essay,evaluation,band\n"
        f'Advertising,"{essay}",Fine.,"5\n\n"\n'
        f'Advertising,"{essay}",Fine.,"8\n\n"\n'
        'Cities,"Banning cars makes streets safer.",Clear.,6.5\n'
        'Cities,"Banning cars makes streets safer.",Clear.,"6.5\n"\n',
    )
    summary = import_csv(warehouse, path, source="ielts")

    assert (summary.essays_imported, summary.labels_imported) == (2, 1)
    assert summary.duplicates_skipped == 2
    conflicts = [e for e in summary.quarantined if e.rule == "label_conflict"]
    assert len(conflicts) == 1
    assert conflicts[0].source_table == "ielts_scores"
    assert [row["band"] for row in conflicts[0].payload["conflicting_rows"]] == [5.0, 8.0]
    assert "band 5.0" in conflicts[0].detail and "band 8.0" in conflicts[0].detail
    assert table_rows(warehouse, ielts_scores.c.band) == [(6.5,)]
    with warehouse.connect() as connection:
        payload = connection.execute(sa.select(quarantine.c.payload)).scalar_one()
    assert [row["band"] for row in payload["conflicting_rows"]] == [5.0, 8.0]


def test_a_reimport_with_a_corrected_band_is_quarantined_with_both_values(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    import_csv(warehouse, write(tmp_path, "essay_id,essay,band\nx1,An essay.,6\n"), "ielts")
    corrected = write(tmp_path, "essay_id,essay,band\nx1,An essay.,6.5\n", "corrected.csv")
    summary = import_csv(warehouse, corrected, source="ielts")

    assert (summary.essays_imported, summary.labels_imported) == (0, 0)
    [conflict] = summary.quarantined
    assert (conflict.source_table, conflict.source_key, conflict.rule) == (
        "ielts_scores",
        "x1",
        "label_conflict",
    )
    assert conflict.payload["stored"] == {"band": 6.0}
    assert conflict.payload["new"]["band"] == 6.5
    assert table_rows(warehouse, ielts_scores.c.band) == [(6.0,)]

    import_csv(warehouse, corrected, source="ielts")  # the same conflict is recorded once
    assert quarantined(warehouse) == [("ielts_scores", "x1", "label_conflict")]


def test_student_ids_are_trimmed_and_case_folded_on_import(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "essay_id,student_id,essay\n"
        "x1,s0032,First essay.\n"
        'x2,"s0032 ",Second essay.\n'
        "x3,S0032,Third essay.\n"
        "x4,  ,Fourth essay.\n",
    )
    import_csv(warehouse, path, source="school")
    assert table_rows(warehouse, essays.c.essay_id, essays.c.student_id) == [
        ("x1", "s0032"),
        ("x2", "s0032"),
        ("x3", "s0032"),
        ("x4", None),
    ]


# --- 4. imports never lose good rows -------------------------------------------------------


def test_values_a_column_cannot_hold_quarantine_only_their_row(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    long_id = "e" * 200
    path = write(
        tmp_path,
        "essay_id,student_id,essay,band\n"
        "good1,s1,A good essay.,6\n"
        f"{long_id},s2,An essay whose id is too long.,7\n"
        "bad\x00id,s3,An essay whose id holds a NUL byte.,5\n"
        f"good2,{'s' * 129},An essay whose student id is too long.,5\n"
        "good3,s4,Another good essay.,6.5\n",
    )
    summary = import_csv(warehouse, path, source="school")

    assert (summary.essays_imported, summary.labels_imported) == (2, 2)
    assert quarantined(warehouse) == [
        ("essays", "bad\\x00id", "nul_byte"),
        ("essays", long_id, "value_too_long"),
        ("essays", "good2", "value_too_long"),
        ("ielts_scores", "bad\\x00id", "essay_refused"),
        ("ielts_scores", long_id, "essay_refused"),
        ("ielts_scores", "good2", "essay_refused"),
    ]
    too_long = next(e for e in summary.quarantined if e.source_key == long_id)
    assert too_long.source_table == "essays"
    assert "200 characters" in too_long.detail and "at most 128" in too_long.detail
    assert table_rows(warehouse, essays.c.essay_id) == [("good1",), ("good3",)]


def test_a_source_longer_than_its_column_quarantines_the_rows(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, "essay_id,essay,band\nx1,An essay.,6\n")
    summary = import_csv(warehouse, path, source="s" * 65)
    assert (summary.essays_imported, summary.labels_imported) == (0, 0)
    assert [(e.source_table, e.rule) for e in summary.quarantined] == [
        ("essays", "value_too_long"),
        ("ielts_scores", "essay_refused"),
    ]
    assert "essays.source column holds at most 64" in summary.quarantined[0].detail


def test_malformed_lines_are_quarantined_and_the_rest_imports(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    content = (
        "essay_id,essay,band\n"
        "x1,A good essay.,6\n"
        "x2,An essay, with an unquoted comma,7\n"
        'x3,"An essay whose quote never ends,5\n'
        "x4,Another good essay.,6.5\n"
        'x5,"A quoted essay\n\nover two paragraphs.",8\n'
        "x6,A short line\n"
    )
    path = write(tmp_path, content)
    summary = import_csv(warehouse, path, source="school")

    assert summary.rows_read == 6
    assert table_rows(warehouse, essays.c.essay_id) == [("x1",), ("x4",), ("x5",)]
    assert table_rows(warehouse, ielts_scores.c.band) == [(6.0,), (6.5,), (8.0,)]
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    assert quarantined(warehouse) == [
        ("essays", f"essays.csv@{digest}:line{n}", "malformed_csv_line") for n in (3, 4, 9)
    ]
    by_line = {e.source_key.rsplit(":", 1)[1]: e for e in summary.quarantined}
    assert by_line["line3"].payload == {"line": "x2,An essay, with an unquoted comma,7\n"}
    assert "4 fields but the header has 3" in by_line["line3"].detail
    assert "cannot be parsed" in by_line["line4"].detail


def test_an_unterminated_quote_on_the_last_line_costs_only_that_line(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, 'essay_id,essay,band\nx1,Good.,6\nx2,"Never closed.,7\n')
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 1
    assert [e.rule for e in summary.quarantined] == ["malformed_csv_line"]


WINDOWS_TEXT = "It\u2019s \u201cclear\u201d \u2013 caf\u00e9s in Malm\u00f6 cost \u20ac5\u2026"
"""Curly quotes, an en dash, the euro sign and an ellipsis: bytes 0x80-0x9F in Windows-1252."""


@pytest.mark.parametrize(
    ("encode", "label"),
    [
        (lambda text: text.encode("cp1252"), "Windows-1252"),
        (lambda text: text.encode("utf-8-sig"), "UTF-8 with BOM"),
        (lambda text: text.encode("utf-16"), "UTF-16"),
        (lambda text: text.encode("utf-16-le"), "UTF-16 (little-endian, no BOM)"),
        (lambda text: text.encode("utf-16-be"), "UTF-16 (big-endian, no BOM)"),
        (lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"), "UTF-32"),
    ],
    ids=["cp1252", "utf8-bom", "utf16", "utf16le", "utf16be", "utf32"],
)
def test_encodings_are_detected_and_decoded_exactly(
    warehouse: sa.Engine, tmp_path: Path, encode, label: str
) -> None:
    content = f'essay_id,essay,band\r\nx1,"{WINDOWS_TEXT}",6\r\nx2,Plain essay.,7\r\n'
    path = write(tmp_path, encode(content))
    summary = import_csv(warehouse, path, source="school")

    assert summary.encoding == label
    assert f"read as {label}" in summary.describe()
    assert (summary.essays_imported, summary.labels_imported, summary.quarantined) == (2, 2, [])
    with warehouse.connect() as connection:
        texts = dict(connection.execute(sa.select(essays.c.essay_id, essays.c.text)).all())
    assert texts == {"x1": WINDOWS_TEXT, "x2": "Plain essay."}


def test_latin1_bytes_that_are_not_windows_1252_decode_as_latin1(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    """0x81 is undefined in Windows-1252: the file is Latin-1, where it is a C1 control that
    quarantines its essay (never a U+FFFD); the other essay keeps its accents."""
    content = b"essay_id,essay\nx1,Caf\xe9 in Malm\xf6.\nx2,Broken \x81 byte.\n"
    summary = import_csv(warehouse, write(tmp_path, content), source="school")
    assert summary.encoding == "Latin-1"
    assert [(e.source_key, e.rule) for e in summary.quarantined] == [("x2", "control_characters")]
    with warehouse.connect() as connection:
        assert connection.execute(sa.select(essays.c.text)).scalars().all() == [
            "Caf\u00e9 in Malm\u00f6."
        ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04" + bytes(200), "ZIP archive"),
        (bytes(range(256)) * 8, "binary file"),
        (codecs.BOM_UTF16_LE + "essay\n".encode("utf-16-le") + b"\x00\xd8", "UTF-16"),
        (b"essay,band,Band\nAn essay.,6,7\n", "column 'band' twice"),
        (b"", "is empty"),
    ],
    ids=["zip", "random-bytes", "broken-utf16", "duplicate-columns", "empty"],
)
def test_files_that_cannot_be_imported_are_refused_with_one_message(
    warehouse: sa.Engine, tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(CsvLayoutError, match=message):
        import_csv(warehouse, write(tmp_path, content), source="x")


@pytest.mark.parametrize("missing", [True, False], ids=["missing", "directory"])
def test_an_unreadable_path_is_a_layout_error(
    warehouse: sa.Engine, tmp_path: Path, missing: bool
) -> None:
    path = tmp_path / "nowhere.csv" if missing else tmp_path
    with pytest.raises(CsvLayoutError, match="cannot read"):
        import_csv(warehouse, path, source="x")


def test_overlong_and_letterless_essays_are_quarantined(
    warehouse: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HULEEDU_MAX_ESSAY_CHARS", "60")
    path = write(
        tmp_path,
        "essay_id,essay,band\n"
        "ok,A short essay within the limit.,6\n"
        f"long,{'word ' * 13},7\n"
        "dots,... !!! ???,5\n"
        "zw,\u200b\u200b\u200b,5\n"
        "emoji,\U0001f600\U0001f600 42,5\n",
    )
    summary = import_csv(warehouse, path, source="school")
    assert summary.essays_imported == 1
    assert sorted((e.source_key, e.rule) for e in summary.quarantined) == [
        ("dots", "no_letters"),
        ("emoji", "no_letters"),
        ("long", "text_too_long"),
        ("zw", "no_letters"),
    ]
    long = next(e for e in summary.quarantined if e.source_key == "long")
    assert "65 characters" in long.detail and "HULEEDU_MAX_ESSAY_CHARS" in long.detail


def test_quarantine_keys_of_two_files_with_the_same_name_do_not_collide(
    warehouse: sa.Engine, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", "essay,band\nGood essay one.,6\n   ,5\n")
    second = write(tmp_path / "b", "essay,band\nGood essay two.,7\n   ,4\n")
    import_csv(warehouse, first, source="school")
    import_csv(warehouse, second, source="school")
    rows = quarantined(warehouse)
    assert len(rows) == 2
    assert {rule for _, _, rule in rows} == {"empty_text"}
    assert all(key.startswith("essays.csv@") and key.endswith(":line3") for _, key, _ in rows)
