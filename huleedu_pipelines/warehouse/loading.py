"""Loading rows into the platform's input tables (demo seeding and CSV import).

A loader refuses what a column cannot hold (undecodable text, a NUL byte, a value longer than
its column, a band or rating that is not a number, a second essay under an existing id) and
conflicting labels; those rows go to `quarantine`. Everything else is stored as it came, and
the ingest assets judge it. Re-loading the same rows is a no-op. Column limits are read from
the table definitions, so SQLite (which would store an over-long id) and PostgreSQL (which
would refuse it and roll back the whole load) refuse the same rows.

Label conflicts: a label is keyed by (essay_id, teacher_id) for teacher grades, essay_id for
IELTS bands, (essay_id, skill, rater_id) for skill ratings and (essay_id, label) for second
ratings. When one key arrives with two different values, nothing is overwritten and nothing
is dropped silently:
- within one load (e.g. the same essay text twice in a CSV with different bands), neither
  value is stored; one `label_conflict` quarantine row holds all the values;
- against the warehouse (e.g. a re-import with a corrected band), the stored value is kept and
  the new one is quarantined as `label_conflict` with both values. To apply a correction,
  change or delete the stored label first (at the source), then load again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.domain.ielts import InvalidBandError, parse_band
from huleedu_pipelines.domain.input_rules import Problem, decode_text, normalise_student_id
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT
from huleedu_pipelines.warehouse.tables import TABLES_BY_NAME
from huleedu_pipelines.warehouse.writes import (
    QuarantineEntry,
    primary_key_columns,
    upsert_rows,
    write_quarantine,
)

LABEL_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "teacher_grades": ("grade",),
    "ielts_scores": ("band",),
    "skill_ratings": ("rating",),
    "second_ratings": ("value",),
}
"""The columns whose disagreement under one key is a label conflict (a second rating is a
label too: a re-import with another value keeps the stored one)."""

CONFLICT_RULE = "label_conflict"


def source_key(table: sa.Table, row: Mapping[str, Any]) -> str:
    """The key quarantine rows carry: the primary-key values joined by '|'."""
    return "|".join(str(row.get(name)) for name in primary_key_columns(table))


@dataclass
class LoadResult:
    table: str
    inserted: int = 0
    duplicates: int = 0
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    refused: dict[int, QuarantineEntry] = field(default_factory=dict)
    """Input positions (0-based) of the rows that were not stored, with the entry saying why,
    so a caller can quarantine what depended on them (a refused essay row's labels)."""

    def merge(self, other: LoadResult) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.quarantined.extend(other.quarantined)


def column_problem(table: sa.Table, row: Mapping[str, Any]) -> Problem | None:
    """What a column of `table` cannot hold, judged the same on every dialect: a NUL byte
    (PostgreSQL refuses it in any text) or a string longer than its `String(n)` column."""
    for column in table.columns:
        value = row.get(column.name)
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return Problem(
                "nul_byte", f"{column.name} contains a NUL byte at offset {value.index(chr(0))}"
            )
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            return Problem(
                "value_too_long",
                f"{column.name} has {len(value)} characters; the {table.name}.{column.name} "
                f"column holds at most {length}",
            )
    return None


def _storage_problem(table: sa.Table, row: dict[str, Any]) -> Problem | None:
    """Why `row` cannot be stored as typed, normalising what can be (bytes -> str, "6.5" -> 6.5,
    " S0032" -> "s0032")."""
    if table.name == "essays":
        text, problem = decode_text(row.get("text"))
        if problem is not None:
            return problem
        if text is not None and "\x00" in text:
            return Problem(
                "control_characters",
                f"essay text contains a NUL byte at offset {text.index(chr(0))}",
            )
        row["text"] = text
        if "student_id" in row:
            row["student_id"] = normalise_student_id(row["student_id"])
    elif table.name == "ielts_scores" and row.get("band") is not None:
        try:
            row["band"] = parse_band(row["band"])
        except InvalidBandError as error:
            return Problem("band_not_a_number", str(error))
    elif table.name == "skill_ratings" and isinstance(row.get("rating"), str):
        try:
            row["rating"] = float(row["rating"])
        except ValueError:
            return Problem("rating_not_a_number", f"rating {row['rating']!r} is not a number")
    return column_problem(table, row)


def _same(left: Sequence[Any], right: Sequence[Any]) -> bool:
    """Equal label values, with NaN equal to NaN (a missing band repeated is no conflict)."""
    for a, b in zip(left, right, strict=True):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            continue
        if a != b:
            return False
    return True


def _describe_values(names: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in zip(names, values, strict=True))


def load_rows(
    connection: sa.Connection, table_name: str, rows: Iterable[Mapping[str, Any]]
) -> LoadResult:
    """Insert rows that are new; skip exact repeats; quarantine what cannot be stored.

    An essay id that already exists with different text is quarantined as `duplicate_essay_id`
    rather than overwriting the stored essay; a label whose key arrives with another value is
    a `label_conflict` (see the module docstring).
    """
    table = TABLES_BY_NAME[table_name]
    keys = primary_key_columns(table)
    compared = ("text",) if table_name == "essays" else LABEL_VALUE_COLUMNS.get(table_name, ())
    result = LoadResult(table_name)
    candidates: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    conflicts: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = {}

    def refuse(positions: Iterable[int], entry: QuarantineEntry) -> None:
        result.quarantined.append(entry)
        for position in positions:
            result.refused[position] = entry

    for position, original in enumerate(rows):
        row = dict(original)
        problem = _storage_problem(table, row)
        if problem is not None:
            entry = QuarantineEntry(
                table_name, source_key(table, row), problem.rule, problem.detail, row
            )
            refuse([position], entry)
            continue
        key = tuple(row.get(name) for name in keys)
        if key in conflicts:
            conflicts[key].append((position, row))
            continue
        if key not in candidates:
            candidates[key] = (position, row)
            continue
        first = candidates[key][1]
        if _same([first.get(c) for c in compared], [row.get(c) for c in compared]):
            result.duplicates += 1
        elif table_name == "essays":
            problem = Problem(
                "duplicate_essay_id",
                f"essay id {key[0]!r} appears twice with different text; the first is kept",
            )
            entry = QuarantineEntry(
                table_name, source_key(table, row), problem.rule, problem.detail, row
            )
            refuse([position], entry)
        else:
            conflicts[key] = [candidates.pop(key), (position, row)]

    for rows_of_key in conflicts.values():
        first = rows_of_key[0][1]
        values = sorted(
            {_describe_values(compared, [r.get(c) for c in compared]) for _, r in rows_of_key}
        )
        entry = QuarantineEntry(
            table_name,
            source_key(table, first),
            CONFLICT_RULE,
            f"{len(rows_of_key)} rows in one load give {table_name} {source_key(table, first)!r} "
            f"different values ({'; '.join(values)}); none is stored. Keep one and load again",
            {"conflicting_rows": [r for _, r in rows_of_key]},
        )
        refuse([position for position, _ in rows_of_key], entry)

    stored = stored_values(connection, table, keys, compared, list(candidates))
    new_rows = []
    for key, (position, row) in candidates.items():
        if key not in stored:
            new_rows.append(row)
            continue
        incoming = [row.get(c) for c in compared]
        if _same(stored[key], incoming):
            result.duplicates += 1
        elif table_name == "essays":
            detail = (
                f"essay id {key[0]!r} already exists with different text; the stored one is kept"
            )
            refuse(
                [position],
                QuarantineEntry(
                    table_name, source_key(table, row), "duplicate_essay_id", detail, row
                ),
            )
        else:
            detail = (
                f"{table_name} {source_key(table, row)!r} is stored with "
                f"{_describe_values(compared, stored[key])} and arrives with "
                f"{_describe_values(compared, incoming)}; the stored value is kept. To correct "
                "it, change or delete the stored label at the source, then load again"
            )
            payload = {"stored": dict(zip(compared, stored[key], strict=True)), "new": row}
            refuse(
                [position],
                QuarantineEntry(table_name, source_key(table, row), CONFLICT_RULE, detail, payload),
            )
    result.inserted = upsert_rows(connection, table, new_rows, keys, update=False)
    return result


def stored_values(
    connection: sa.Connection,
    table: sa.Table,
    keys: Sequence[str],
    compared: Sequence[str],
    wanted: list[tuple[Any, ...]],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Which of `wanted` keys are stored already, mapped to their `compared` column values."""
    if not wanted:
        return {}
    columns = [table.c[name] for name in keys]
    extra = [table.c[name] for name in compared]
    wanted_keys = set(wanted)
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    first = columns[0]
    first_values = sorted({key[0] for key in wanted})
    for start in range(0, len(first_values), IN_LIST_LIMIT):
        chunk = first_values[start : start + IN_LIST_LIMIT]
        for row in connection.execute(sa.select(*columns, *extra).where(first.in_(chunk))):
            key = tuple(row[: len(columns)])
            if key in wanted_keys:
                found[key] = tuple(row[len(columns) :])
    return found


def load_tables(
    connection: sa.Connection,
    tables: Mapping[str, Iterable[Mapping[str, Any]]],
    run_id: str | None = None,
    detected_at: dt.datetime | None = None,
) -> dict[str, LoadResult]:
    """Load several tables in one transaction (the caller's) and quarantine refused rows."""
    results = {name: load_rows(connection, name, rows) for name, rows in tables.items()}
    entries = [entry for result in results.values() for entry in result.quarantined]
    write_quarantine(connection, entries, run_id=run_id, detected_at=detected_at)
    return results
