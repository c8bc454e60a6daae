"""The indexed reads behind a night's selection, so its cost follows the day's new work.

A night scores the essays whose features may have changed since they were last scored:
submitted or updated in the day's window, in a CJ batch that got comparisons since the day
began (the Bradley–Terry features are fitted per batch), or lacking a row from a model that is
champion now. Each of those is found by an indexed query that reads essay ids only; the text,
the comparisons and the current scores are then read for the selected essays alone.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.modeling.names import BAND_MODEL, CEFR_MODEL, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT, in_values, read_frame
from huleedu_pipelines.warehouse.serving import CURRENT_VIEWS
from huleedu_pipelines.warehouse.tables import (
    cj_comparison_pairs,
    essay_grade_predictions,
    essays,
    prompts,
    skill_assessments,
)

GRADE_VERSION_COLUMNS = {
    GRADE_MODEL: "grade_model_version",
    CEFR_MODEL: "cefr_model_version",
    BAND_MODEL: "ielts_band_model_version",
}
"""The grade row's key columns, by the registered model whose version each holds."""


def essays_with_prompts() -> sa.Select:
    """Essays with their prompt text (what the features depend on), in essay_id order."""
    return (
        sa.select(
            essays.c.essay_id,
            essays.c.student_id,
            essays.c.text,
            essays.c.submitted_at,
            essays.c.updated_at,
            prompts.c.text.label("prompt_text"),
        )
        .select_from(essays.outerjoin(prompts, essays.c.prompt_id == prompts.c.prompt_id))
        .order_by(essays.c.essay_id)
    )


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), IN_LIST_LIMIT):
        yield list(values[start : start + IN_LIST_LIMIT])


def _ids(connection: sa.Connection, query: sa.Select) -> set[str]:
    return {row[0] for row in connection.execute(query)}


def submitted_or_updated_between(
    connection: sa.Connection, start: dt.datetime, end: dt.datetime
) -> set[str]:
    """Essays submitted or updated in [start, end) (indexes on both timestamps)."""
    return _ids(
        connection,
        sa.select(essays.c.essay_id).where(
            essays.c.submitted_at >= start, essays.c.submitted_at < end
        ),
    ) | _ids(
        connection,
        sa.select(essays.c.essay_id).where(essays.c.updated_at >= start, essays.c.updated_at < end),
    )


def in_batches_compared_since(connection: sa.Connection, since: dt.datetime) -> set[str]:
    """Essays of every CJ batch with a comparison created at or after `since`: their
    Bradley–Terry features are refitted with it (index on `created_at`, then on `batch_id`)."""
    touched = (
        sa.select(cj_comparison_pairs.c.batch_id)
        .where(cj_comparison_pairs.c.created_at >= since)
        .distinct()
        .scalar_subquery()
    )
    pairs = cj_comparison_pairs.c
    return _ids(connection, sa.select(pairs.essay_a_id).where(pairs.batch_id.in_(touched))) | _ids(
        connection, sa.select(pairs.essay_b_id).where(pairs.batch_id.in_(touched))
    )


def _count(connection: sa.Connection, table: sa.Table, *where: Any) -> int:
    return int(
        connection.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    )


def _counts_among(
    connection: sa.Connection, table: sa.Table, ids: Sequence[str], key: Sequence[str]
) -> Counter[tuple]:
    """Rows of `table` whose essay is one of `ids`, counted by the values of the `key`
    columns (one grouped query per chunk, through the unique key's index)."""
    counts: Counter[tuple] = Counter()
    columns = [table.c[name] for name in key]
    for chunk in _chunks(ids):
        query = (
            sa.select(*columns, sa.func.count())
            .where(in_values(connection, table.c.essay_id, chunk))
            .group_by(*columns)
        )
        for *values, count in connection.execute(query):
            counts[tuple(values)] += count
    return counts


def _champion_outputs(champions: Mapping[str, str]) -> list[tuple[sa.Table, dict[str, str]]]:
    """The rows each champion output is made of, as its table and column values: one per
    skill champion, and one grade row keyed by the grade, CEFR and band champions together."""
    outputs = [
        (
            skill_assessments,
            {"skill": skill, "model_name": name, "model_version": champions[name]},
        )
        for skill, name in SKILL_MODELS.items()
        if name in champions
    ]
    if any(name in champions for name in GRADE_VERSION_COLUMNS):
        outputs.append(
            (
                essay_grade_predictions,
                {column: champions.get(name, "") for name, column in GRADE_VERSION_COLUMNS.items()},
            )
        )
    return outputs


def lacking_champion_rows(
    connection: sa.Connection, champions: Mapping[str, str], known: Iterable[str] = ()
) -> set[str]:
    """Essays outside `known` (candidates selected anyway) without a row from a model that is
    champion now. A new champion therefore selects every essay once.

    Counts settle most nights without a sweep: when a champion's rows outside `known` are as
    many as the essays outside it, every one of those essays has its row (the unique key
    allows one per essay, and essays are never deleted, so no row lacks its essay). Only
    otherwise does an anti-join on the table's covering index look for the missing essays."""
    known_ids = sorted(set(known))
    outputs = _champion_outputs(champions)
    if not outputs:
        return set()
    others = _count(connection, essays) - sum(
        _counts_among(connection, essays, known_ids, ()).values()
    )
    among: dict[str, Counter[tuple]] = {}
    missing: set[str] = set()
    for table, values in outputs:
        if table.name not in among:
            among[table.name] = _counts_among(connection, table, known_ids, list(values))
        where = [table.c[column] == value for column, value in values.items()]
        rows_outside = _count(connection, table, *where) - among[table.name][tuple(values.values())]
        if rows_outside == others:
            continue
        scored = sa.select(sa.literal(1)).where(table.c.essay_id == essays.c.essay_id, *where)
        missing |= _ids(connection, sa.select(essays.c.essay_id).where(~scored.exists()))
    return missing - set(known_ids)


def read_essays_by_id(connection: sa.Connection, essay_ids: Iterable[str]) -> pl.DataFrame:
    """`essays_with_prompts` for the given essays only (primary-key lookups in chunks)."""
    query = essays_with_prompts()
    ordered = sorted(set(essay_ids))
    frames = [
        read_frame(connection, query.where(in_values(connection, essays.c.essay_id, chunk)))
        for chunk in _chunks(ordered)
    ]
    return pl.concat(frames) if frames else read_frame(connection, query.where(sa.false()))


def read_batches_of(connection: sa.Connection, essay_ids: Iterable[str]) -> pl.DataFrame:
    """Every comparison of the CJ batches the given essays take part in (a batch's
    Bradley–Terry fit needs all of its comparisons)."""
    pairs = cj_comparison_pairs.c
    batches: set[str] = set()
    for chunk in _chunks(sorted(set(essay_ids))):
        batches |= _ids(
            connection,
            sa.select(pairs.batch_id).where(
                sa.or_(
                    in_values(connection, pairs.essay_a_id, chunk),
                    in_values(connection, pairs.essay_b_id, chunk),
                )
            ),
        )
    frames = [
        read_frame(
            connection,
            sa.select(cj_comparison_pairs).where(in_values(connection, pairs.batch_id, chunk)),
        )
        for chunk in _chunks(sorted(batches))
    ]
    return (
        pl.concat(frames)
        if frames
        else read_frame(connection, sa.select(cj_comparison_pairs).where(sa.false()))
    )


def read_current_scores_of(connection: sa.Connection, essay_ids: Iterable[str]) -> pl.DataFrame:
    """essay_id and feature_hash of the given essays' rows in both `current_*` views."""
    ordered = sorted(set(essay_ids))
    frames = [
        read_frame(
            connection,
            sa.select(view.c.essay_id, view.c.feature_hash).where(
                in_values(connection, view.c.essay_id, chunk)
            ),
        )
        for view in CURRENT_VIEWS
        for chunk in _chunks(ordered)
    ]
    if frames:
        return pl.concat(frames)
    view = CURRENT_VIEWS[0]
    return read_frame(connection, sa.select(view.c.essay_id, view.c.feature_hash).where(sa.false()))
