"""Loading rows into the platform's input tables (demo seeding and CSV import).

A loader refuses only what a column cannot hold (undecodable text, a NUL byte, a band that is
not a number, a second essay under an existing id); those rows go to `quarantine`. Everything
else is stored as it came, and the ingest assets judge it. Re-loading the same rows is a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.domain.ielts import InvalidBandError, parse_band
from huleedu_pipelines.domain.validation import Problem, decode_text
from huleedu_pipelines.warehouse.tables import TABLES_BY_NAME
from huleedu_pipelines.warehouse.writes import (
    QuarantineEntry,
    primary_key_columns,
    upsert_rows,
    write_quarantine,
)


def source_key(table: sa.Table, row: Mapping[str, Any]) -> str:
    """The key quarantine rows carry: the primary-key values joined by '|'."""
    return "|".join(str(row.get(name)) for name in primary_key_columns(table))


@dataclass
class LoadResult:
    table: str
    inserted: int = 0
    duplicates: int = 0
    quarantined: list[QuarantineEntry] = field(default_factory=list)

    def merge(self, other: LoadResult) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.quarantined.extend(other.quarantined)


def _storage_problem(table_name: str, row: dict[str, Any]) -> Problem | None:
    """Why `row` cannot be stored as typed, normalising what can be (bytes -> str, "6.5" -> 6.5)."""
    if table_name == "essays":
        text, problem = decode_text(row.get("text"))
        if problem is not None:
            return problem
        if text is not None and "\x00" in text:
            return Problem(
                "control_characters",
                f"essay text contains a NUL byte at offset {text.index(chr(0))}",
            )
        row["text"] = text
    elif table_name == "ielts_scores" and row.get("band") is not None:
        try:
            row["band"] = parse_band(row["band"])
        except InvalidBandError as error:
            return Problem("band_not_a_number", str(error))
    return None


def load_rows(
    connection: sa.Connection, table_name: str, rows: Iterable[Mapping[str, Any]]
) -> LoadResult:
    """Insert rows that are new; skip exact repeats; quarantine what cannot be stored.

    An essay id that already exists with different text is quarantined as `duplicate_essay_id`
    rather than overwriting the stored essay.
    """
    table = TABLES_BY_NAME[table_name]
    keys = primary_key_columns(table)
    result = LoadResult(table_name)
    candidates: dict[tuple[Any, ...], dict[str, Any]] = {}
    for original in rows:
        row = dict(original)
        problem = _storage_problem(table_name, row)
        key = tuple(row.get(name) for name in keys)
        if problem is None and key in candidates:
            if table_name == "essays" and candidates[key].get("text") != row.get("text"):
                problem = Problem(
                    "duplicate_essay_id",
                    f"essay id {key[0]!r} appears twice with different text; the first is kept",
                )
            else:
                result.duplicates += 1
                continue
        if problem is not None:
            result.quarantined.append(
                QuarantineEntry(
                    table_name, source_key(table, row), problem.rule, problem.detail, row
                )
            )
            continue
        candidates[key] = row

    stored = _stored_rows(connection, table, keys, list(candidates))
    new_rows = []
    for key, row in candidates.items():
        if key not in stored:
            new_rows.append(row)
        elif table_name == "essays" and stored[key] != row.get("text"):
            result.quarantined.append(
                QuarantineEntry(
                    table_name,
                    source_key(table, row),
                    "duplicate_essay_id",
                    f"essay id {key[0]!r} already exists with different text; the stored one "
                    "is kept",
                    row,
                )
            )
        else:
            result.duplicates += 1
    result.inserted = upsert_rows(connection, table, new_rows, keys, update=False)
    return result


def _stored_rows(
    connection: sa.Connection, table: sa.Table, keys: Sequence[str], wanted: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Any]:
    """Which of `wanted` keys are stored already (for essays: mapped to their text)."""
    if not wanted:
        return {}
    columns = [table.c[name] for name in keys]
    extra = [table.c.text] if table.name == "essays" else []
    found: dict[tuple[Any, ...], Any] = {}
    first = columns[0]
    first_values = sorted({key[0] for key in wanted})
    for start in range(0, len(first_values), 500):
        chunk = first_values[start : start + 500]
        for row in connection.execute(sa.select(*columns, *extra).where(first.in_(chunk))):
            key = tuple(row[: len(columns)])
            found[key] = row[-1] if extra else True
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
