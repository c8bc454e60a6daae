"""Import essays and labels from a CSV file (e.g. the public IELTS Task 2 layout).

Required column: `essay`. Optional: `essay_id`, `student_id`, `prompt` (prompt text),
`band`, `grade`, one rating column per skill (named after the skill), and any number of
`group_<name>` columns: subgroups for fairness analysis, stored in `essay_attributes` (see
`ATTRIBUTE_COLUMN_PREFIX`), and second raters' scores in `<label>_rater2` columns
(`grade_rater2`, `band_rater2`, `<skill>_rater2`), stored in `second_ratings` for human–human
agreement (`domain.second_ratings`). Other columns, such as the IELTS layout's `evaluation`,
are ignored. Missing essay ids are derived from a hash of the text, so importing the same file
twice adds nothing.

How a file is read:
- Encoding: a byte-order mark decides (UTF-8, UTF-16, UTF-32); UTF-16 without one is known by
  its zero bytes; otherwise strict UTF-8, then Windows-1252 (0x80-0x9F are curly quotes and
  dashes there), then Latin-1. No character is ever replaced by U+FFFD.
- The whole file is refused (`CsvLayoutError`, one line for the user) when it cannot be read,
  looks binary, does not decode in the encoding its byte-order mark names, has no `essay`
  column or names a column twice.
- A line the CSV grammar cannot parse (an unterminated quote) or with more or fewer fields than
  the header is quarantined as `malformed_csv_line`; the other lines import.
- Rows are judged by the rules ingest uses (`domain.validation`) and by what the columns can
  hold (`warehouse.loading`). A refused essay row takes its labels with it (`essay_refused`),
  and a label that disagrees with another value for the same key is a `label_conflict`.
- A `group_<name>` column whose name breaks `attribute_name_problem` is rejected whole (the
  summary says why); a bad cell is quarantined on its own and the essay still imports. An
  empty cell stores nothing; a changed value replaces the stored one (`warehouse.attributes`).
- A `<label>_rater2` column whose label is not `grade`, `band` or a skill is rejected whole
  (the summary says why). A cell is judged by the rules of the label it repeats; a bad one is
  quarantined on its own (the reason names line and column) and the essay still imports. A
  second rating is a label: a re-import with another value keeps the stored one
  (`label_conflict`), as for first ratings.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.domain.input_rules import (
    Problem,
    attribute_name_problem,
    attribute_value_problem,
    band_problem,
    essay_text_problem,
    grade_problem,
    rating_problem,
)
from huleedu_pipelines.domain.second_ratings import (
    RATER2_SUFFIX,
    canonical_second_rating,
    second_rating_label_problem,
    second_rating_problem,
)
from huleedu_pipelines.domain.skills import SKILLS
from huleedu_pipelines.warehouse.attributes import load_attributes
from huleedu_pipelines.warehouse.engine import migrate
from huleedu_pipelines.warehouse.loading import LoadResult, load_tables, source_key
from huleedu_pipelines.warehouse.tables import TABLES_BY_NAME
from huleedu_pipelines.warehouse.writes import QuarantineEntry, write_quarantine

LABEL_TABLES = ("teacher_grades", "ielts_scores", "skill_ratings")
ATTRIBUTE_TABLE = "essay_attributes"
ATTRIBUTE_COLUMN_PREFIX = "group_"
"""`group_gender` holds the essay's `gender` attribute."""
SECOND_RATING_TABLE = "second_ratings"

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .ods workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (an .xls workbook?)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"SQLite format 3\x00", "an SQLite database"),
)

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian mark starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BINARY_SHARE = 0.05
"""Share of C0 control characters above which a decoded file is taken to be binary: text has
almost none (a stray NUL in one id is a row problem), random bytes about 11 %."""

_LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")
_FIELD_SIZE_LIMIT = 2**31 - 1
"""The csv module's default of 131,072 characters would break a long essay mid-file; length is
judged later, per essay, against HULEEDU_MAX_ESSAY_CHARS."""


class CsvLayoutError(ValueError):
    """The file cannot be imported at all (e.g. no `essay` column)."""


@dataclass
class ImportSummary:
    rows_read: int = 0
    essays_imported: int = 0
    labels_imported: int = 0
    duplicates_skipped: int = 0
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    encoding: str = "UTF-8"
    attribute_names: list[str] = field(default_factory=list)
    """Attributes read from `group_<name>` columns."""
    attributes_imported: int = 0
    attributes_updated: int = 0
    rejected_columns: list[str] = field(default_factory=list)
    """One sentence per `group_<name>` or `<label>_rater2` column that was not imported,
    saying why."""
    second_rating_labels: list[str] = field(default_factory=list)
    """Labels read from `<label>_rater2` columns."""
    second_ratings_imported: int = 0

    def describe(self) -> str:
        text = (
            f"{self.rows_read} rows read: {self.essays_imported} essays and "
            f"{self.labels_imported} labels imported, {self.duplicates_skipped} rows skipped as "
            f"duplicates, {len(self.quarantined)} values quarantined (file read as "
            f"{self.encoding})"
        )
        if self.attribute_names:
            text += (
                f"; attributes {', '.join(self.attribute_names)}: {self.attributes_imported} "
                f"new, {self.attributes_updated} changed"
            )
        if self.second_rating_labels:
            text += (
                f"; second ratings of {', '.join(self.second_rating_labels)}: "
                f"{self.second_ratings_imported} new"
            )
        return "\n".join([text, *(f"  rejected {message}" for message in self.rejected_columns)])


@dataclass(frozen=True)
class CsvLine:
    """One record of the file: its fields by column name, or why it could not be parsed."""

    number: int
    """The physical line it starts on (the header is line 1)."""
    row: dict[str, str] | None
    raw: str
    problem: Problem | None = None


def _content_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha256(text.strip().encode('utf-8')).hexdigest()[:16]}"


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CsvLayoutError(
            f"cannot read {path}: {error.strerror or error}; check the path and its permissions"
        ) from error


def decode_csv_bytes(data: bytes, name: str) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read as (a name for people).

    Raises `CsvLayoutError` for binary files and for bytes that break the encoding their
    byte-order mark (or UTF-16 zero-byte pattern) names, instead of guessing.
    """
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise CsvLayoutError(f"{name} is {kind}, not a CSV file; export it as CSV (UTF-8)")
    codec, label = _marked_encoding(data)
    if codec is not None:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as error:
            raise CsvLayoutError(
                f"{name} looks like {label} but byte {error.start} does not decode "
                f"({error.reason}); re-save it as UTF-8"
            ) from error
    else:
        text, label = _decode_unmarked(data)
    sample = text[:65536]
    if sample and len(_BINARY_CONTROLS.findall(sample)) > _BINARY_SHARE * len(sample):
        raise CsvLayoutError(
            f"{name} looks like a binary file, not a CSV (read as {label}, it is full of control "
            "characters); export the data as CSV (UTF-8)"
        )
    return text, label


def _decode_unmarked(data: bytes) -> tuple[str, str]:
    """Strict UTF-8, else Windows-1252, else Latin-1 (which decodes any byte)."""
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1"


def _marked_encoding(data: bytes) -> tuple[str | None, str]:
    """The encoding a byte-order mark names, or UTF-16 recognised by its zero bytes."""
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            return codec, label
    sample = data[:4096]
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        zero_even, zero_odd = even.count(0) / len(even), odd.count(0) / len(odd)
        if zero_odd > 0.6 and zero_even < 0.1:
            return "utf-16-le", "UTF-16 (little-endian, no BOM)"
        if zero_even > 0.6 and zero_odd < 0.1:
            return "utf-16-be", "UTF-16 (big-endian, no BOM)"
    return None, ""


def _records(text: str) -> Iterator[tuple[int, list[str] | None, str, str | None]]:
    """(first line number, fields or None, raw text, parse error) per record.

    After a parse error (e.g. an unterminated quote that swallows the lines after it) parsing
    resumes on the line after the one the bad record started on, so one broken line costs
    only itself.
    """
    csv.field_size_limit(_FIELD_SIZE_LIMIT)
    lines = _LINES.findall(text)
    start = 0
    while start < len(lines):
        reader = csv.reader(itertools.islice(lines, start, None), strict=True)
        consumed = 0
        try:
            for fields in reader:
                first = start + consumed
                consumed = reader.line_num
                yield first + 1, fields, "".join(lines[first : start + consumed]), None
            return
        except csv.Error as error:
            first = start + consumed
            yield first + 1, None, lines[first], str(error)
            start = first + 1


def read_csv_lines(text: str, name: str) -> tuple[list[str], list[CsvLine]]:
    """The normalised column names and every data record of a decoded CSV."""
    records = _records(text)
    header_fields: list[str] | None = None
    for _, fields, _, error in records:
        if error is not None:
            raise CsvLayoutError(f"{name}: the header line cannot be parsed ({error})")
        if fields:
            header_fields = fields
            break
    if header_fields is None:
        raise CsvLayoutError(f"{name} is empty")
    columns = [column.strip().lower() for column in header_fields]
    seen: dict[str, int] = {}
    for position, column in enumerate(columns, start=1):
        if column and column in seen:
            raise CsvLayoutError(
                f"{name} names the column {column!r} twice (columns {seen[column]} and "
                f"{position}); rename or remove one"
            )
        seen[column] = position
    if "essay" not in columns:
        raise CsvLayoutError(
            f"{name} has no 'essay' column (columns: {', '.join(columns)}); the essay text "
            "column is required"
        )
    lines: list[CsvLine] = []
    for number, fields, raw, error in records:
        if error is not None:
            detail = f"line {number} cannot be parsed ({error}); it is skipped"
            lines.append(CsvLine(number, None, raw, Problem("malformed_csv_line", detail)))
        elif not fields:
            continue  # a blank line
        elif len(fields) != len(columns):
            detail = (
                f"line {number} has {len(fields)} fields but the header has {len(columns)} "
                "(an unquoted comma or line break?); it is skipped"
            )
            lines.append(CsvLine(number, None, raw, Problem("malformed_csv_line", detail)))
        else:
            lines.append(CsvLine(number, dict(zip(columns, fields, strict=True)), raw))
    return columns, lines


def _named_columns(
    columns: list[str], name_of: Callable[[str], str | None], problem_of: Callable[[str], Any]
) -> tuple[dict[str, str], list[str]]:
    """The name (`name_of`, None for columns of another kind) per usable column, and a sentence
    per column whose name `problem_of` rejects."""
    usable: dict[str, str] = {}
    rejected: list[str] = []
    for column in columns:
        name = name_of(column)
        if name is None:
            continue
        problem = problem_of(name)
        if problem is None:
            usable[column] = name
        else:
            rejected.append(
                f"column {column!r}: {problem.detail}; none of its values were imported. Rename "
                "the column and import the file again"
            )
    return usable, rejected


def attribute_columns(columns: list[str]) -> tuple[dict[str, str], list[str]]:
    """Attribute name per usable `group_<name>` column, and a sentence per rejected one."""
    return _named_columns(
        columns,
        lambda column: (
            column.removeprefix(ATTRIBUTE_COLUMN_PREFIX)
            if column.startswith(ATTRIBUTE_COLUMN_PREFIX)
            else None
        ),
        attribute_name_problem,
    )


def second_rating_columns(columns: list[str]) -> tuple[dict[str, str], list[str]]:
    """The label per usable `<label>_rater2` column, and a sentence per rejected one."""
    return _named_columns(
        columns,
        lambda column: (
            column.removesuffix(RATER2_SUFFIX) if column.endswith(RATER2_SUFFIX) else None
        ),
        second_rating_label_problem,
    )


@dataclass
class _EssayLine:
    """What one CSV line contributes: an essay (by its position in the load) and the rows
    that hang on it (labels and attributes), as (table, row) pairs."""

    number: int
    essay_position: int
    essay_id: str
    labels: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _attributes_of_line(
    entry: _EssayLine,
    row: dict[str, str],
    columns: dict[str, str],
    reject: Callable[[str, str, Problem, dict[str, Any]], None],
) -> None:
    """Add the line's attribute cells to `entry`; empty cells are skipped, bad ones rejected."""
    for column, name in columns.items():
        value = (row.get(column) or "").strip()
        if not value:
            continue
        attribute = {"essay_id": entry.essay_id, "name": name, "value": value}
        problem = attribute_value_problem(value)
        if problem is None:
            entry.labels.append((ATTRIBUTE_TABLE, attribute))
            continue
        located = Problem(problem.rule, f"line {entry.number}, column {column}: {problem.detail}")
        payload = attribute | {"line": entry.number, "column": column}
        reject(ATTRIBUTE_TABLE, f"{entry.essay_id}|{name}", located, payload)


def _second_ratings_of_line(
    entry: _EssayLine,
    row: dict[str, str],
    columns: dict[str, str],
    rated_at: dt.datetime,
    reject: Callable[[str, str, Problem, dict[str, Any]], None],
) -> None:
    """Add the line's second ratings to `entry`; empty cells are skipped, bad ones rejected."""
    for column, label in columns.items():
        value = _clean(row.get(column))
        if value is None:
            continue
        problem = second_rating_problem(label, value)
        if problem is None:
            rating = {
                "essay_id": entry.essay_id,
                "label": label,
                "value": canonical_second_rating(label, value),
                "rated_at": rated_at,
            }
            entry.labels.append((SECOND_RATING_TABLE, rating))
            continue
        located = Problem(problem.rule, f"line {entry.number}, column {column}: {problem.detail}")
        payload = {"essay_id": entry.essay_id, "label": label, "value": value}
        payload |= {"line": entry.number, "column": column}
        reject(SECOND_RATING_TABLE, f"{entry.essay_id}|{label}", located, payload)


def import_csv(
    engine: sa.Engine,
    path: Path,
    source: str,
    now: dt.datetime | None = None,
    max_essay_chars: int | None = None,
) -> ImportSummary:
    """Import `path` in one transaction; bad values go to quarantine, good ones are stored.

    `max_essay_chars` defaults to HULEEDU_MAX_ESSAY_CHARS.
    """
    if max_essay_chars is None:
        from huleedu_pipelines.settings import get_settings

        max_essay_chars = get_settings().max_essay_chars
    imported_at = now or dt.datetime.now(dt.UTC)
    data = _read_bytes(path)
    text, encoding = decode_csv_bytes(data, str(path))
    columns, lines = read_csv_lines(text, str(path))
    group_columns, rejected_columns = attribute_columns(columns)
    rater2_columns, rejected_rater2_columns = second_rating_columns(columns)
    # Keys of rows without an essay id name the file's content, not only its name, so two
    # different files called `essays.csv` never share a quarantine row.
    file_key = f"{path.name}@{hashlib.sha256(data).hexdigest()[:12]}"
    summary = ImportSummary(
        rows_read=len(lines),
        encoding=encoding,
        attribute_names=list(group_columns.values()),
        rejected_columns=rejected_columns + rejected_rater2_columns,
        second_rating_labels=list(rater2_columns.values()),
    )
    prompts: list[dict[str, Any]] = []
    essays: list[dict[str, Any]] = []
    essay_lines: list[_EssayLine] = []
    rater = f"import:{source}"

    def reject(table: str, key: str, problem: Problem, row: dict[str, Any]) -> None:
        summary.quarantined.append(QuarantineEntry(table, key, problem.rule, problem.detail, row))

    for line in lines:
        if line.row is None:
            problem = line.problem or Problem("malformed_csv_line", f"line {line.number}")
            reject("essays", f"{file_key}:line{line.number}", problem, {"line": line.raw})
            continue
        row = line.row
        text_value = row.get("essay")
        essay_id = _clean(row.get("essay_id"))
        problem = essay_text_problem(text_value, max_chars=max_essay_chars)
        if problem is not None:
            reject("essays", essay_id or f"{file_key}:line{line.number}", problem, row)
            continue
        essay_id = essay_id.strip() if essay_id else _content_id(source, text_value)
        prompt_text = _clean(row.get("prompt"))
        prompt_id = _content_id("prompt", prompt_text) if prompt_text else None
        if prompt_id:
            prompts.append(
                {"prompt_id": prompt_id, "title": prompt_text.strip()[:80], "text": prompt_text}
            )
        entry = _EssayLine(line.number, len(essays), essay_id)
        essay_lines.append(entry)
        _attributes_of_line(entry, row, group_columns, reject)
        _second_ratings_of_line(entry, row, rater2_columns, imported_at, reject)
        essays.append(
            {
                "essay_id": essay_id,
                "student_id": _clean(row.get("student_id")),
                "prompt_id": prompt_id,
                "source": source,
                "text": text_value,
                "language": "en",
                "submitted_at": imported_at,
                "updated_at": imported_at,
            }
        )
        band = _clean(row.get("band"))
        if band is not None:
            if (problem := band_problem(band)) is None:
                entry.labels.append(
                    ("ielts_scores", {"essay_id": essay_id, "band": band, "scored_at": imported_at})
                )
            else:
                reject("ielts_scores", essay_id, problem, row)
        grade = _clean(row.get("grade"))
        if grade is not None:
            grade = grade.strip()
            if (problem := grade_problem(grade)) is None:
                label = {
                    "essay_id": essay_id,
                    "grade": grade,
                    "teacher_id": rater,
                    "graded_at": imported_at,
                }
                entry.labels.append(("teacher_grades", label))
            else:
                reject("teacher_grades", f"{essay_id}|{rater}", problem, row)
        for skill in SKILLS:
            rating = _clean(row.get(skill))
            if rating is None:
                continue
            if (problem := rating_problem(skill, rating.strip())) is None:
                label = {
                    "essay_id": essay_id,
                    "skill": skill,
                    "rating": float(rating),
                    "rater_id": rater,
                    "rated_at": imported_at,
                }
                entry.labels.append(("skill_ratings", label))
            else:
                reject("skill_ratings", f"{essay_id}|{skill}|{rater}", problem, row)

    migrate(engine)
    with engine.begin() as connection:
        results = load_tables(
            connection, {"prompts": prompts, "essays": essays}, detected_at=imported_at
        )
        labels, refused_labels = _labels_of_stored_essays(essay_lines, results["essays"])
        write_quarantine(connection, refused_labels, run_id=None, detected_at=imported_at)
        attributes = load_attributes(
            connection, labels.pop(ATTRIBUTE_TABLE, []), detected_at=imported_at
        )
        results |= load_tables(connection, labels, detected_at=imported_at)
        write_quarantine(connection, summary.quarantined, run_id=None, detected_at=imported_at)
    summary.quarantined.extend(results["prompts"].quarantined + results["essays"].quarantined)
    summary.quarantined.extend(refused_labels + attributes.quarantined)
    summary.attributes_imported = attributes.inserted
    summary.attributes_updated = attributes.updated
    summary.essays_imported = results["essays"].inserted
    summary.duplicates_skipped = results["essays"].duplicates
    for name in LABEL_TABLES:
        summary.quarantined.extend(results[name].quarantined)
        summary.labels_imported += results[name].inserted
    if SECOND_RATING_TABLE in results:
        summary.quarantined.extend(results[SECOND_RATING_TABLE].quarantined)
        summary.second_ratings_imported = results[SECOND_RATING_TABLE].inserted
    return summary


def _labels_of_stored_essays(
    essay_lines: list[_EssayLine], essays_result: LoadResult
) -> tuple[dict[str, list[dict[str, Any]]], list[QuarantineEntry]]:
    """The labels (and attributes) to load by table, and `essay_refused` entries for those of
    refused essay rows (stored, they would land on the earlier essay that owns the id)."""
    labels: dict[str, list[dict[str, Any]]] = {name: [] for name in LABEL_TABLES}
    refused_labels: list[QuarantineEntry] = []
    for line in essay_lines:
        reason = essays_result.refused.get(line.essay_position)
        for table, label in line.labels:
            if reason is None:
                labels.setdefault(table, []).append(label)
                continue
            kind = {ATTRIBUTE_TABLE: "attribute", SECOND_RATING_TABLE: "second rating"}.get(
                table, "label"
            )
            detail = (
                f"the essay row on line {line.number} was refused ({reason.rule}), so this "
                f"{kind} is not stored on essay {line.essay_id!r}"
            )
            key = source_key(TABLES_BY_NAME[table], label)
            refused_labels.append(QuarantineEntry(table, key, "essay_refused", detail, label))
    return labels, refused_labels
