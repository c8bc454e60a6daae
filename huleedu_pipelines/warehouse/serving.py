"""What serves now: the `serving_models` record and the `current_*` views readers use.

`serving_models` changes only together with its `model_promotions` audit row, in one
transaction (`record_alias_move`). The views (created by migration 0003) join the output
tables to it, so what readers see follows a promotion or rollback at once, with no rescoring
when the restored version's rows exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    model_promotions,
    serving_models,
    skill_assessments,
)
from huleedu_pipelines.warehouse.writes import upsert_rows

_views = sa.MetaData()
"""The views, declared for reading only (migrations create them; `metadata` holds tables)."""


def _view_of(table: sa.Table, name: str) -> sa.Table:
    return sa.Table(name, _views, *(sa.Column(c.name, c.type) for c in table.columns))


current_skill_assessments = _view_of(skill_assessments, "current_skill_assessments")
"""One row per essay and skill from the skill models that are champion now."""
current_essay_grade_predictions = _view_of(
    essay_grade_predictions, "current_essay_grade_predictions"
)
"""One row per essay from the grade, CEFR and band models that are champion now."""
CURRENT_VIEWS = (current_skill_assessments, current_essay_grade_predictions)


def serving_versions(connection: sa.Connection, alias: str) -> dict[str, str]:
    """model name -> the version `alias` points at, as recorded by the product."""
    rows = connection.execute(
        sa.select(serving_models.c.model_name, serving_models.c.version).where(
            serving_models.c.alias == alias
        )
    )
    return dict(rows.tuples().all())


def locked_serving_version(connection: sa.Connection, model_name: str, alias: str) -> str | None:
    """The recorded version, with its row locked until the transaction ends (PostgreSQL), so
    two promotions of one model cannot interleave."""
    query = sa.select(serving_models.c.version).where(
        serving_models.c.model_name == model_name, serving_models.c.alias == alias
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return connection.execute(query).scalar_one_or_none()


def record_alias_move(
    connection: sa.Connection,
    *,
    model_name: str,
    alias: str,
    version: str,
    previous_version: str | None,
    reason: str,
    report_uri: str | None,
    decided_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write the audit row and point `serving_models` at `version`, in the caller's
    transaction (so one never happens without the other)."""
    row = {
        "model_name": model_name,
        "version": version,
        "alias": alias,
        "previous_version": previous_version,
        "decided_at": decided_at or dt.datetime.now(dt.UTC),
        "reason": reason,
        "report_uri": report_uri,
    }
    connection.execute(sa.insert(model_promotions), [row])
    upsert_rows(
        connection,
        serving_models,
        [
            {
                "model_name": model_name,
                "alias": alias,
                "version": version,
                "since": row["decided_at"],
            }
        ],
        ["model_name", "alias"],
    )
    return row


__all__ = [
    "CURRENT_VIEWS",
    "current_essay_grade_predictions",
    "current_skill_assessments",
    "locked_serving_version",
    "record_alias_move",
    "serving_versions",
]
