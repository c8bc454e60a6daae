"""The subgroups an essay belongs to, as (group, value) pairs, for per-group (fairness) reports.

Three groups are built in and read from the essay row itself: its prompt, its source and its
length band. Every other group is an essay attribute (the `essay_attributes` table, filled
e.g. from a CSV's `group_gender` column), so a report reads all groups from one long frame.
"""

from __future__ import annotations

import re

import polars as pl

BUILT_IN_GROUPS = ("prompt", "source", "length_band")
"""Groups every essay has; an attribute may not take one of these names."""

LENGTH_BANDS: tuple[tuple[int, str], ...] = (
    (0, "<150"),
    (150, "150-299"),
    (300, "300-499"),
    (500, ">=500"),
)
"""(fewest words, label) per essay-length band: fixed word counts rather than terciles, so an
essay keeps its band whatever else is in the report. Words are runs of non-whitespace."""

ATTRIBUTE_NAME_PATTERN = re.compile(r"[a-z0-9_]+")
MAX_ATTRIBUTE_NAME_CHARS = 64
MAX_ATTRIBUTE_VALUE_CHARS = 100
"""Attribute limits (the `essay_attributes` columns hold exactly these)."""

SUBGROUP_SCHEMA = {"essay_id": pl.String, "group": pl.String, "value": pl.String}


def length_band(words: int) -> str:
    """The `LENGTH_BANDS` label of an essay with `words` words."""
    label = LENGTH_BANDS[0][1]
    for fewest, band in LENGTH_BANDS:
        if words >= fewest:
            label = band
    return label


def _length_band_expr(text: pl.Expr) -> pl.Expr:
    words = text.str.count_matches(r"\S+")
    expr = pl.lit(LENGTH_BANDS[0][1])
    for fewest, band in LENGTH_BANDS[1:]:
        expr = pl.when(words >= fewest).then(pl.lit(band)).otherwise(expr)
    return pl.when(text.is_null()).then(pl.lit(None, pl.String)).otherwise(expr)


def subgroup_frame(essays: pl.DataFrame, attributes: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per essay and group it belongs to: `essay_id, group, value`.

    `essays` needs `essay_id, prompt_id, source, text`; `attributes` (optional) is
    `essay_id, name, value` as the `essay_attributes` asset gives it. Attributes of essays not
    in `essays` are left out, and a missing value (no prompt, no text) is no row.
    """
    built_in = essays.select(
        "essay_id",
        pl.col("prompt_id").cast(pl.String).alias("prompt"),
        pl.col("source").cast(pl.String),
        _length_band_expr(pl.col("text")).alias("length_band"),
    ).unpivot(index="essay_id", on=list(BUILT_IN_GROUPS), variable_name="group")
    frames = [built_in]
    if attributes is not None:
        clashing = sorted(set(attributes["name"].unique().to_list()) & set(BUILT_IN_GROUPS))
        if clashing:
            raise ValueError(
                f"attribute names {clashing} clash with the built-in groups {BUILT_IN_GROUPS}; "
                "the input rules refuse them, so these rows bypassed import and ingest"
            )
        frames.append(
            attributes.join(essays.select("essay_id"), on="essay_id", how="semi").select(
                "essay_id", pl.col("name").alias("group"), "value"
            )
        )
    return (
        pl.concat([frame.cast(SUBGROUP_SCHEMA) for frame in frames])
        .drop_nulls("value")
        .sort("essay_id", "group")
    )
