"""Data-quality checks on the ingest and label assets, written with Great Expectations 1.x.

The assets already quarantine bad rows; these checks prove that what flows on is clean and
block downstream work if it is not.
"""

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.expectations import validate_with_expectations
from huleedu_pipelines.assets.ingest import cj_comparisons, raw_essays, raw_labels
from huleedu_pipelines.assets.labels import cefr_labels, swedish_grade_labels
from huleedu_pipelines.domain import CEFR_LEVELS, SKILLS, SWEDISH_GRADES, cefr_from_band

HALF_BANDS = [step / 2 for step in range(0, 19)]
HALF_RATINGS = [step / 2 for step in range(2, 11)]


@dg.asset_check(asset=raw_essays, blocking=True)
def check_raw_essays(raw_essays: pl.DataFrame) -> dg.AssetCheckResult:
    """Essay ids are unique and present; every essay has text."""
    return validate_with_expectations(
        raw_essays.select("essay_id", "source", "text"),
        "raw_essays",
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="essay_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="essay_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="text"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="source"),
        ],
    )


@dg.asset_check(asset=raw_labels, blocking=True)
def check_raw_labels(raw_labels: pl.DataFrame) -> dg.AssetCheckResult:
    """Grades are on the F..A scale, bands on 0..9 half steps, ratings on 1..5 half steps."""
    grades = raw_labels.filter(pl.col("label_kind") == "teacher_grade").select("grade")
    bands = raw_labels.filter(pl.col("label_kind") == "ielts_band").select(band="value")
    ratings = raw_labels.filter(pl.col("label_kind") == "skill_rating").select(
        "skill", rating="value"
    )
    frame = pl.concat([grades, bands, ratings], how="diagonal")
    return validate_with_expectations(
        frame,
        "raw_labels",
        lambda gxe: [
            gxe.ExpectColumnValuesToBeInSet(column="grade", value_set=list(SWEDISH_GRADES)),
            gxe.ExpectColumnValuesToBeInSet(column="band", value_set=HALF_BANDS),
            gxe.ExpectColumnValuesToBeInSet(column="rating", value_set=HALF_RATINGS),
            gxe.ExpectColumnValuesToBeInSet(column="skill", value_set=list(SKILLS)),
        ],
    )


@dg.asset_check(
    asset=cj_comparisons, blocking=True, additional_ins={"raw_essays": dg.AssetIn("raw_essays")}
)
def check_cj_comparisons(
    cj_comparisons: pl.DataFrame, raw_essays: pl.DataFrame
) -> dg.AssetCheckResult:
    """Both essays of every comparison exist, differ, and the winner is one of them."""
    known = raw_essays["essay_id"].to_list()
    frame = cj_comparisons.with_columns(
        (pl.col("essay_a_id") != pl.col("essay_b_id")).alias("distinct_pair"),
        (
            (pl.col("winner_essay_id") == pl.col("essay_a_id"))
            | (pl.col("winner_essay_id") == pl.col("essay_b_id"))
        ).alias("winner_in_pair"),
    ).select("comparison_id", "essay_a_id", "essay_b_id", "distinct_pair", "winner_in_pair")
    return validate_with_expectations(
        frame,
        "cj_comparisons",
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="comparison_id"),
            gxe.ExpectColumnValuesToBeInSet(column="essay_a_id", value_set=known),
            gxe.ExpectColumnValuesToBeInSet(column="essay_b_id", value_set=known),
            gxe.ExpectColumnValuesToBeInSet(column="distinct_pair", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="winner_in_pair", value_set=[True]),
        ],
    )


@dg.asset_check(asset=swedish_grade_labels, blocking=True)
def check_swedish_grade_labels(swedish_grade_labels: pl.DataFrame) -> dg.AssetCheckResult:
    """One label per essay, ordinal 0..7 and consistent with the grade letter."""
    frame = swedish_grade_labels.with_columns(
        (
            pl.col("grade_ordinal").replace_strict(
                dict(enumerate(SWEDISH_GRADES)), return_dtype=pl.String, default=None
            )
            == pl.col("grade")
        ).alias("letter_matches_ordinal")
    )
    return validate_with_expectations(
        frame.select("essay_id", "grade_ordinal", "letter_matches_ordinal"),
        "swedish_grade_labels",
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="essay_id"),
            gxe.ExpectColumnValuesToBeBetween(column="grade_ordinal", min_value=0, max_value=7),
            gxe.ExpectColumnValuesToBeInSet(column="letter_matches_ordinal", value_set=[True]),
        ],
    )


@dg.asset_check(asset=cefr_labels, blocking=True)
def check_cefr_labels(cefr_labels: pl.DataFrame) -> dg.AssetCheckResult:
    """Every CEFR level is the one its (kept) IELTS band maps to."""
    expected = [cefr_from_band(band) for band in cefr_labels["ielts_band"].to_list()]
    frame = cefr_labels.with_columns(
        (pl.col("cefr") == pl.Series(expected, dtype=pl.String)).alias("cefr_matches_band")
    )
    return validate_with_expectations(
        frame.select("essay_id", "ielts_band", "cefr", "cefr_matches_band"),
        "cefr_labels",
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="essay_id"),
            gxe.ExpectColumnValuesToBeInSet(column="cefr", value_set=list(CEFR_LEVELS)),
            gxe.ExpectColumnValuesToBeInSet(column="cefr_matches_band", value_set=[True]),
            gxe.ExpectColumnValuesToNotBeNull(column="ielts_band"),
        ],
    )
