"""Group `ingest`: validated snapshots of the platform's input tables.

Each asset reads its tables through the warehouse resource, sends rows that break a rule to
`quarantine` (with the rule and a sentence saying what is wrong), and passes the good rows on.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata, LABEL_WATERMARK_KEY
from huleedu_pipelines.domain.input_rules import (
    Problem,
    band_problem,
    comparison_problem,
    essay_text_problem,
    future_timestamp_problem,
    grade_problem,
    normalise_student_id,
    rating_problem,
    unknown_essay_problem,
)
from huleedu_pipelines.resources import WarehouseResource
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.loading import source_key
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import (
    cj_comparison_pairs,
    essays,
    ielts_scores,
    prompts,
    skill_ratings,
    teacher_grades,
)
from huleedu_pipelines.warehouse.writes import QuarantineEntry, write_quarantine

GROUP = "ingest"

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


def _quarantine_and_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, entries: list[QuarantineEntry]
) -> dict[str, Any]:
    with warehouse.engine().begin() as connection:
        write_quarantine(connection, entries, run_id=context.run_id)
    by_rule: dict[str, int] = {}
    for entry in entries:
        by_rule[entry.rule] = by_rule.get(entry.rule, 0) + 1
    for entry in entries[:20]:
        context.log.warning(f"quarantined {entry.source_table} {entry.source_key}: {entry.reason}")
    return {
        "quarantined_rows": dg.MetadataValue.int(len(entries)),
        "quarantined_by_rule": dg.MetadataValue.json(by_rule),
    }


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def raw_essays(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.Output[pl.DataFrame]:
    """Essays with usable text, joined with their prompt text; bad essays are quarantined."""
    engine = warehouse.migrated_engine()
    query = sa.select(*essays.columns, prompts.c.text.label("prompt_text")).select_from(
        essays.outerjoin(prompts, essays.c.prompt_id == prompts.c.prompt_id)
    )
    with engine.connect() as connection:
        frame = read_frame(connection, query.order_by(essays.c.essay_id))
    # Rows already in the warehouse may carry " S0032" and "s0032": one student for splits.
    frame = frame.with_columns(
        pl.Series(
            "student_id",
            [normalise_student_id(s) for s in frame["student_id"].to_list()],
            dtype=pl.String,
        )
    )
    settings = get_settings()
    now, skew = dt.datetime.now(dt.UTC), settings.max_future_skew

    def essay_problem(row: dict[str, Any]) -> Problem | None:
        return (
            essay_text_problem(row["text"], max_chars=settings.max_essay_chars)
            or future_timestamp_problem("submitted_at", row["submitted_at"], now, skew)
            or future_timestamp_problem("updated_at", row["updated_at"], now, skew)
        )

    good, entries = split_valid_rows(frame, essays, essay_problem)
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    return dg.Output(good, metadata=frame_metadata(good) | quarantine_metadata)


def _label_rows(connection: sa.Connection) -> dict[str, pl.DataFrame]:
    return {
        "teacher_grades": read_frame(connection, teacher_grades),
        "ielts_scores": read_frame(connection, ielts_scores),
        "skill_ratings": read_frame(connection, skill_ratings),
    }


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def raw_labels(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_essays: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Teacher grades, IELTS bands and skill ratings in one long table, for valid essays only."""
    known = set(raw_essays["essay_id"].to_list())
    with warehouse.migrated_engine().connect() as connection:
        tables = _label_rows(connection)

    now, skew = dt.datetime.now(dt.UTC), get_settings().max_future_skew

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
    quarantine_metadata = _quarantine_and_report(
        context, warehouse, bad_grades + bad_bands + bad_ratings
    )
    counts = labels.group_by("label_kind").len().sort("label_kind")
    newest = labels["labelled_at"].max()
    return dg.Output(
        labels,
        metadata=frame_metadata(labels)
        | quarantine_metadata
        | {
            "labels_by_kind": dg.MetadataValue.json(dict(counts.iter_rows())),
            # The newest label this snapshot holds; `new_labels_sensor` counts labels after it.
            LABEL_WATERMARK_KEY: dg.MetadataValue.text(newest.isoformat() if newest else ""),
        },
    )


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def cj_comparisons(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_essays: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Comparative-judgement pairs between two different valid essays, winner from the pair."""
    known = set(raw_essays["essay_id"].to_list())
    with warehouse.migrated_engine().connect() as connection:
        frame = read_frame(connection, cj_comparison_pairs)
    good, entries = split_valid_rows(
        frame,
        cj_comparison_pairs,
        lambda r: comparison_problem(r["essay_a_id"], r["essay_b_id"], r["winner_essay_id"], known),
    )
    good = good.sort("batch_id", "comparison_id")
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    return dg.Output(
        good,
        metadata=frame_metadata(good)
        | quarantine_metadata
        | {"batches": dg.MetadataValue.int(good["batch_id"].n_unique())},
    )
