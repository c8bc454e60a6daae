"""Group `labels`: training targets derived from the validated raw labels."""

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, frame_metadata
from huleedu_pipelines.domain import (
    CEFR_LEVELS,
    SKILLS,
    SWEDISH_GRADES,
    cefr_from_band,
)

GROUP = "labels"


def grade_labels_from_raw(raw_labels: pl.DataFrame) -> pl.DataFrame:
    """One Swedish grade per essay: the lower median of its teachers' grades on the 0..7 scale."""
    ordinal = pl.col("grade").replace_strict(
        {grade: index for index, grade in enumerate(SWEDISH_GRADES)}, return_dtype=pl.Int64
    )
    return (
        raw_labels.filter(pl.col("label_kind") == "teacher_grade")
        .with_columns(ordinal.alias("grade_ordinal"))
        .group_by("essay_id")
        .agg(
            pl.col("grade_ordinal").sort().get((pl.len() - 1) // 2).alias("grade_ordinal"),
            pl.len().alias("n_grades"),
            pl.col("labelled_at").max(),
        )
        .with_columns(
            pl.col("grade_ordinal")
            .replace_strict(dict(enumerate(SWEDISH_GRADES)), return_dtype=pl.String)
            .alias("grade")
        )
        .select("essay_id", "grade", "grade_ordinal", "n_grades", "labelled_at")
        .sort("essay_id")
    )


def cefr_labels_from_raw(raw_labels: pl.DataFrame) -> pl.DataFrame:
    """The IELTS band as given, and the CEFR level derived from it with the exact thresholds."""
    bands = raw_labels.filter(pl.col("label_kind") == "ielts_band").select(
        "essay_id", pl.col("value").alias("ielts_band"), "labelled_at"
    )
    levels = [cefr_from_band(band) for band in bands["ielts_band"].to_list()]
    return (
        bands.with_columns(
            pl.Series("cefr", levels, dtype=pl.String),
            pl.Series(
                "cefr_ordinal", [CEFR_LEVELS.index(level) for level in levels], dtype=pl.Int64
            ),
        )
        .select("essay_id", "ielts_band", "cefr", "cefr_ordinal", "labelled_at")
        .sort("essay_id")
    )


def skill_labels_from_raw(raw_labels: pl.DataFrame) -> pl.DataFrame:
    """Mean teacher rating per essay and skill, one `rating_<skill>` column per skill."""
    ratings = raw_labels.filter(pl.col("label_kind") == "skill_rating")
    means = ratings.group_by("essay_id", "skill").agg(pl.col("value").mean().alias("rating"))
    wide = means.pivot(on="skill", index="essay_id", values="rating")
    for skill in SKILLS:
        if skill not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(skill))
    latest = ratings.group_by("essay_id").agg(pl.col("labelled_at").max())
    return (
        wide.select("essay_id", *[pl.col(skill).alias(f"rating_{skill}") for skill in SKILLS])
        .join(latest, on="essay_id", how="left")
        .sort("essay_id")
    )


def _label_metadata(frame: pl.DataFrame, column: str) -> dict:
    distribution = dict(frame.group_by(column).len().sort(column).iter_rows())
    return frame_metadata(frame) | {
        "distribution": dg.MetadataValue.json({str(k): v for k, v in distribution.items()})
    }


@dg.asset(group_name=GROUP, kinds={"polars"}, owners=OWNERS)
def swedish_grade_labels(raw_labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Swedish teacher grades F..A per essay as the ordinal target 0..7."""
    labels = grade_labels_from_raw(raw_labels)
    return dg.Output(labels, metadata=_label_metadata(labels, "grade"))


@dg.asset(group_name=GROUP, kinds={"polars"}, owners=OWNERS)
def cefr_labels(raw_labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """IELTS bands per essay with the CEFR level derived from each (the band is kept)."""
    labels = cefr_labels_from_raw(raw_labels)
    return dg.Output(labels, metadata=_label_metadata(labels, "cefr"))


@dg.asset(group_name=GROUP, kinds={"polars"}, owners=OWNERS)
def skill_labels(raw_labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Mean teacher rating (1..5) per essay for each of the seven skills."""
    labels = skill_labels_from_raw(raw_labels)
    coverage = {skill: int(labels[f"rating_{skill}"].is_not_null().sum()) for skill in SKILLS}
    return dg.Output(
        labels, metadata=frame_metadata(labels) | {"rated_essays": dg.MetadataValue.json(coverage)}
    )
