"""Idempotent writes that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.warehouse.tables import quarantine


def _dialect_insert(connection: sa.Connection, table: sa.Table):
    name = connection.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"upserts are implemented for SQLite and PostgreSQL, not {name}")
    return insert(table)


def upsert_rows(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
    *,
    update: bool = True,
) -> int:
    """Insert rows; on a key conflict update the other columns (or keep the old row if not
    `update`). Runs as one executemany inside the caller's transaction. Returns rows sent."""
    if not rows:
        return 0
    statement = _dialect_insert(connection, table)
    update_columns = [name for name in rows[0] if name not in key_columns]
    if update and update_columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(key_columns),
            set_={name: statement.excluded[name] for name in update_columns},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key_columns))
    connection.execute(statement, list(rows))
    return len(rows)


def primary_key_columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


@dataclass(frozen=True)
class QuarantineEntry:
    """One bad input row. `rule` is a short code (e.g. `band_out_of_range`) that summaries
    group by; `detail` is the sentence a person reads."""

    source_table: str
    source_key: str
    rule: str
    detail: str
    payload: Mapping[str, Any] | None = None

    @property
    def reason(self) -> str:
        return f"{self.rule}: {self.detail}"


def rule_of(reason: str) -> str:
    """The rule code of a stored quarantine reason."""
    return reason.split(":", 1)[0]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {_json_safe(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def write_quarantine(
    connection: sa.Connection,
    entries: Iterable[QuarantineEntry],
    run_id: str | None,
    detected_at: dt.datetime | None = None,
) -> int:
    """Record bad rows once per (table, key, reason); re-detecting them is a no-op."""
    now = detected_at or dt.datetime.now(dt.UTC)
    rows = [
        {
            "source_table": entry.source_table,
            # A key or reason can quote the bad value itself; PostgreSQL refuses NUL in text.
            "source_key": _json_safe(entry.source_key)[:512],
            "reason": _json_safe(entry.reason),
            "payload": _json_safe(dict(entry.payload)) if entry.payload is not None else None,
            "detected_at": now,
            "run_id": run_id,
        }
        for entry in entries
    ]
    return upsert_rows(
        connection, quarantine, rows, ["source_table", "source_key", "reason"], update=False
    )
