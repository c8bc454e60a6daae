"""Storing essay attributes (the subgroups fairness reports compare, e.g. `gender`, `school`).

Unlike a label, an attribute describes the essay's writer or setting rather than judging the
essay, and sources correct them (a student changes school, a typo in a register is fixed):
a later load with another value for an (essay, name) replaces the stored one. Only a key
given two different values within one load is a conflict: neither is stored, and one
`attribute_conflict` quarantine row holds both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.warehouse.loading import (
    LoadResult,
    column_problem,
    source_key,
    stored_values,
)
from huleedu_pipelines.warehouse.tables import essay_attributes
from huleedu_pipelines.warehouse.writes import QuarantineEntry, upsert_rows, write_quarantine

ATTRIBUTE_KEY = ("essay_id", "name")
CONFLICT_RULE = "attribute_conflict"


@dataclass
class AttributeLoadResult(LoadResult):
    updated: int = 0
    """Stored attributes whose value this load replaced."""


def _one_value_per_key(
    rows: Iterable[Mapping[str, Any]], result: AttributeLoadResult
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The row to store per key; rows a column cannot hold and keys given two values in this
    load go to `result.quarantined` instead, repeats to `result.duplicates`."""
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for position, original in enumerate(rows):
        row = {name: original.get(name) for name in (*ATTRIBUTE_KEY, "value")}
        problem = column_problem(essay_attributes, row)
        if problem is not None:
            key = source_key(essay_attributes, row)
            entry = QuarantineEntry(essay_attributes.name, key, problem.rule, problem.detail, row)
            result.quarantined.append(entry)
            result.refused[position] = entry
            continue
        by_key.setdefault((row["essay_id"], row["name"]), []).append(row)
    chosen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, rows_of_key in by_key.items():
        values = sorted({row["value"] for row in rows_of_key})
        if len(values) == 1:
            chosen[key] = rows_of_key[0]
            result.duplicates += len(rows_of_key) - 1
            continue
        detail = (
            f"essay {key[0]!r} is given {len(values)} values of attribute {key[1]!r} in one load "
            f"({', '.join(map(repr, values))}); none is stored. Keep one and load again"
        )
        payload = {"conflicting_rows": rows_of_key}
        result.quarantined.append(
            QuarantineEntry(essay_attributes.name, "|".join(key), CONFLICT_RULE, detail, payload)
        )
    return chosen


def load_attributes(
    connection: sa.Connection,
    rows: Iterable[Mapping[str, Any]],
    run_id: str | None = None,
    detected_at: dt.datetime | None = None,
) -> AttributeLoadResult:
    """Upsert `essay_id, name, value` rows in the caller's transaction (see the module
    docstring) and quarantine the refused ones. Loading the same rows again changes nothing."""
    result = AttributeLoadResult(essay_attributes.name)
    chosen = _one_value_per_key(rows, result)
    stored = stored_values(connection, essay_attributes, ATTRIBUTE_KEY, ("value",), list(chosen))
    to_write = []
    for key, row in chosen.items():
        if key not in stored:
            result.inserted += 1
        elif stored[key][0] != row["value"]:
            result.updated += 1
        else:
            result.duplicates += 1
            continue
        to_write.append(row)
    upsert_rows(connection, essay_attributes, to_write, ATTRIBUTE_KEY, update=True)
    write_quarantine(connection, result.quarantined, run_id=run_id, detected_at=detected_at)
    return result
