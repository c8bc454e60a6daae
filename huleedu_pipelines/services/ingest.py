"""Ingest: rows checked against the input rules; a row that breaks one becomes a quarantine
entry (its table, key, rule and a sentence saying what is wrong) instead of flowing on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain.input_rules import (
    Problem,
    attribute_name_problem,
    attribute_value_problem,
    band_problem,
    essay_text_problem,
    future_timestamp_problem,
    grade_problem,
    normalise_student_id,
    rating_problem,
    unknown_essay_problem,
)
from huleedu_pipelines.domain.second_ratings import second_rating_problem
from huleedu_pipelines.warehouse.loading import source_key
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import (
    essay_attributes,
    essays,
    ielts_scores,
    prompts,
    second_ratings,
    skill_ratings,
    teacher_grades,
)
from huleedu_pipelines.warehouse.writes import QuarantineEntry

RAW_LABEL_SCHEMA = {
    "essay_id": pl.String,
    "label_kind": pl.String,
    "skill": pl.String,
    "grade": pl.String,
    "value": pl.Float64,
    "rater_id": pl.String,
    "labelled_at": pl.Datetime("us", "UTC"),
}
"""Long format: one row per label. `label_kind` is teacher_grade, ielts_band or skill_rating."""


def split_valid_rows(
    frame: pl.DataFrame, table: sa.Table, problem_of: Callable[[dict[str, Any]], Problem | None]
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Rows for which `problem_of` is None, and quarantine entries for the others."""
    keep: list[bool] = []
    entries: list[QuarantineEntry] = []
    for row in frame.iter_rows(named=True):
        problem = problem_of(row)
        keep.append(problem is None)
        if problem is not None:
            entries.append(
                QuarantineEntry(
                    table.name, source_key(table, row), problem.rule, problem.detail, row
                )
            )
    return frame.filter(pl.Series(keep, dtype=pl.Boolean)), entries


def valid_essays(
    connection: sa.Connection,
    *,
    max_essay_chars: int,
    max_future_skew: dt.timedelta,
    now: dt.datetime,
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Essays joined with their prompt text, student ids normalised; essays whose text breaks a
    rule or whose timestamps lie in the future become quarantine entries."""
    query = sa.select(*essays.columns, prompts.c.text.label("prompt_text")).select_from(
        essays.outerjoin(prompts, essays.c.prompt_id == prompts.c.prompt_id)
    )
    frame = read_frame(connection, query.order_by(essays.c.essay_id))
    # Rows already in the warehouse may carry " S0032" and "s0032": one student for splits.
    frame = frame.with_columns(
        pl.Series(
            "student_id",
            [normalise_student_id(s) for s in frame["student_id"].to_list()],
            dtype=pl.String,
        )
    )

    def essay_problem(row: dict[str, Any]) -> Problem | None:
        return (
            essay_text_problem(row["text"], max_chars=max_essay_chars)
            or future_timestamp_problem("submitted_at", row["submitted_at"], now, max_future_skew)
            or future_timestamp_problem("updated_at", row["updated_at"], now, max_future_skew)
        )

    return split_valid_rows(frame, essays, essay_problem)


def valid_labels(
    connection: sa.Connection,
    *,
    known_essays: set[str],
    max_future_skew: dt.timedelta,
    now: dt.datetime,
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Grades, bands and ratings of `known_essays` in one long table (`RAW_LABEL_SCHEMA`);
    labels of unknown essays, bad values and future timestamps become quarantine entries."""
    tables = {
        "teacher_grades": read_frame(connection, teacher_grades),
        "ielts_scores": read_frame(connection, ielts_scores),
        "skill_ratings": read_frame(connection, skill_ratings),
    }
    known, skew = known_essays, max_future_skew

    def essay_then(rule: Callable[[dict[str, Any]], Problem | None], timestamp: str):
        # A label dated in the future would become the watermark and hide every later label
        # from `new_labels_sensor`, so it is quarantined like any other bad value.
        return lambda row: (
            unknown_essay_problem(row["essay_id"], known)
            or rule(row)
            or future_timestamp_problem(timestamp, row[timestamp], now, skew)
        )

    grades, bad_grades = split_valid_rows(
        tables["teacher_grades"],
        teacher_grades,
        essay_then(lambda r: grade_problem(r["grade"]), "graded_at"),
    )
    bands, bad_bands = split_valid_rows(
        tables["ielts_scores"],
        ielts_scores,
        essay_then(lambda r: band_problem(r["band"]), "scored_at"),
    )
    ratings, bad_ratings = split_valid_rows(
        tables["skill_ratings"],
        skill_ratings,
        essay_then(lambda r: rating_problem(r["skill"], r["rating"]), "rated_at"),
    )
    labels = pl.concat(
        [
            grades.select(
                "essay_id",
                pl.lit("teacher_grade").alias("label_kind"),
                pl.lit(None, pl.String).alias("skill"),
                "grade",
                pl.lit(None, pl.Float64).alias("value"),
                pl.col("teacher_id").alias("rater_id"),
                pl.col("graded_at").alias("labelled_at"),
            ),
            bands.select(
                "essay_id",
                pl.lit("ielts_band").alias("label_kind"),
                pl.lit(None, pl.String).alias("skill"),
                pl.lit(None, pl.String).alias("grade"),
                pl.col("band").alias("value"),
                pl.lit("ielts").alias("rater_id"),
                pl.col("scored_at").alias("labelled_at"),
            ),
            ratings.select(
                "essay_id",
                pl.lit("skill_rating").alias("label_kind"),
                "skill",
                pl.lit(None, pl.String).alias("grade"),
                pl.col("rating").alias("value"),
                "rater_id",
                pl.col("rated_at").alias("labelled_at"),
            ),
        ]
    ).cast(RAW_LABEL_SCHEMA)
    labels = labels.sort("label_kind", "essay_id", "skill", "rater_id", nulls_last=True)
    return labels, bad_grades + bad_bands + bad_ratings


def valid_attributes(connection: sa.Connection) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Every essay attribute (`essay_id, name, value`, sorted) whose name and value pass the
    rules `import-csv` applies; rows a service wrote directly that break them become
    quarantine entries."""
    query = sa.select(essay_attributes).order_by(
        essay_attributes.c.essay_id, essay_attributes.c.name
    )
    return split_valid_rows(
        read_frame(connection, query),
        essay_attributes,
        lambda row: attribute_name_problem(row["name"]) or attribute_value_problem(row["value"]),
    )


SECOND_RATING_SCHEMA = {
    "essay_id": pl.String,
    "label": pl.String,
    "value": pl.String,
    "rated_at": pl.Datetime("us", "UTC"),
}


def valid_second_ratings(
    connection: sa.Connection,
    *,
    known_essays: set[str],
    max_future_skew: dt.timedelta,
    now: dt.datetime,
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Second ratings of `known_essays` (`SECOND_RATING_SCHEMA`, sorted) that obey the rules of
    the label they repeat (`domain.second_ratings`); the others become quarantine entries, as
    labels do."""
    query = sa.select(second_ratings).order_by(second_ratings.c.essay_id, second_ratings.c.label)
    good, entries = split_valid_rows(
        read_frame(connection, query),
        second_ratings,
        lambda row: (
            unknown_essay_problem(row["essay_id"], known_essays)
            or second_rating_problem(row["label"], row["value"])
            or future_timestamp_problem("rated_at", row["rated_at"], now, max_future_skew)
        ),
    )
    return good.select(list(SECOND_RATING_SCHEMA)).cast(SECOND_RATING_SCHEMA), entries
