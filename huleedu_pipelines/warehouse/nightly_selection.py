"""The indexed reads behind a night's selection, so its cost follows the day's new work.

A night scores the essays whose features may have changed since they were last scored:
submitted or updated in the day's window, in a CJ batch that got comparisons since the day
began (the Bradley–Terry features are fitted per batch), or lacking a row from a model that is
champion now. Each of those is found by an indexed query that reads essay ids only; the text,
the comparisons and the current scores are then read for the selected essays alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.modeling.names import BAND_MODEL, CEFR_MODEL, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT, read_frame
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


def lacking_champion_rows(connection: sa.Connection, champions: Mapping[str, str]) -> set[str]:
    """Essays without a row from a model that is champion now: one anti-join per skill
    champion, and one for the grade row, each on its table's unique key (an index-only probe
    per essay, no text read). A new champion therefore selects every essay once."""
    missing: set[str] = set()
    for skill, name in SKILL_MODELS.items():
        if name not in champions:
            continue
        scored = sa.select(sa.literal(1)).where(
            skill_assessments.c.essay_id == essays.c.essay_id,
            skill_assessments.c.skill == skill,
            skill_assessments.c.model_name == name,
            skill_assessments.c.model_version == champions[name],
        )
        missing |= _ids(connection, sa.select(essays.c.essay_id).where(~scored.exists()))
    if any(name in champions for name in GRADE_VERSION_COLUMNS):
        table = essay_grade_predictions
        scored = sa.select(sa.literal(1)).where(
            table.c.essay_id == essays.c.essay_id,
            *(
                table.c[column] == champions.get(name, "")
                for name, column in GRADE_VERSION_COLUMNS.items()
            ),
        )
        missing |= _ids(connection, sa.select(essays.c.essay_id).where(~scored.exists()))
    return missing


def read_essays_by_id(connection: sa.Connection, essay_ids: Iterable[str]) -> pl.DataFrame:
    """`essays_with_prompts` for the given essays only (primary-key lookups in chunks)."""
    query = essays_with_prompts()
    ordered = sorted(set(essay_ids))
    frames = [
        read_frame(connection, query.where(essays.c.essay_id.in_(chunk)))
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
                sa.or_(pairs.essay_a_id.in_(chunk), pairs.essay_b_id.in_(chunk))
            ),
        )
    frames = [
        read_frame(connection, sa.select(cj_comparison_pairs).where(pairs.batch_id.in_(chunk)))
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
            sa.select(view.c.essay_id, view.c.feature_hash).where(view.c.essay_id.in_(chunk)),
        )
        for view in CURRENT_VIEWS
        for chunk in _chunks(ordered)
    ]
    if frames:
        return pl.concat(frames)
    view = CURRENT_VIEWS[0]
    return read_frame(connection, sa.select(view.c.essay_id, view.c.feature_hash).where(sa.false()))
