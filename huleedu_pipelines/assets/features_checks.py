"""Blocking checks on the feature tables: what a model would silently learn garbage from."""

import dagster as dg
import numpy as np
import polars as pl

from huleedu_pipelines.assets.features import cj_features, essay_embeddings, feature_table
from huleedu_pipelines.features.build import (
    CJ_FEATURE_COLUMNS,
    EMBEDDING_COLUMNS,
    MODEL_FEATURE_COLUMNS,
)

EMBEDDING_NORM_RANGE = (0.99, 1.01)
PROMPT_COLUMNS = ("prompt_coverage", "prompt_jaccard", "prompt_cosine")
"""Features defined only for essays with a prompt."""


def _null_by_design(feature_table: pl.DataFrame) -> dict[str, str]:
    """Columns that may be entirely null because the data cannot support them, and why."""
    reasons: dict[str, str] = {}
    if feature_table.height == 0:
        return reasons
    if int(feature_table["cj_has_data"].sum()) == 0:
        reasons |= dict.fromkeys(CJ_FEATURE_COLUMNS, "no essay has CJ comparisons")
    if all(feature_table[name].null_count() == feature_table.height for name in PROMPT_COLUMNS):
        reasons |= dict.fromkeys(PROMPT_COLUMNS, "no essay has a prompt text")
    return reasons


@dg.asset_check(asset=feature_table, blocking=True)
def check_feature_table_values(feature_table: pl.DataFrame) -> dg.AssetCheckResult:
    """No feature column is entirely null and no value is infinite.

    A column may be entirely null only when the data cannot support it, and the metadata says
    why: CJ columns when no essay has CJ data (e.g. an IELTS import), prompt features when no
    essay has a prompt.
    """
    exempt = _null_by_design(feature_table)
    all_null = [
        name
        for name in MODEL_FEATURE_COLUMNS
        if name not in exempt and feature_table[name].null_count() == feature_table.height
    ]
    floats = [name for name in MODEL_FEATURE_COLUMNS if feature_table.schema[name].is_float()]
    infinite = {
        name: int(count)
        for name, count in feature_table.select(pl.col(floats).is_infinite().sum())
        .row(0, named=True)
        .items()
        if count
    }
    passed = not all_null and not infinite
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "entirely_null_columns": dg.MetadataValue.json(all_null),
            "null_by_design": dg.MetadataValue.json(exempt),
            "infinite_values_by_column": dg.MetadataValue.json(infinite),
            "rows": feature_table.height,
        },
        description=None
        if passed
        else f"entirely null: {all_null or 'none'}; infinite values: {infinite or 'none'}",
    )


@dg.asset_check(asset=essay_embeddings, blocking=True)
def check_embedding_norms(essay_embeddings: pl.DataFrame) -> dg.AssetCheckResult:
    """Every embedding is a unit vector (the model's output is L2-normalised)."""
    vectors = essay_embeddings.select(EMBEDDING_COLUMNS).to_numpy()
    norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.array([1.0])
    low, high = EMBEDDING_NORM_RANGE
    bad = int(((norms < low) | (norms > high) | ~np.isfinite(norms)).sum())
    return dg.AssetCheckResult(
        passed=bad == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "min_norm": float(np.nanmin(norms)),
            "max_norm": float(np.nanmax(norms)),
            "rows_out_of_range": bad,
        },
    )


@dg.asset_check(asset=cj_features, blocking=True)
def check_cj_standard_errors(cj_features: pl.DataFrame) -> dg.AssetCheckResult:
    """Every compared essay has a finite, positive Bradley–Terry standard error and ability."""
    compared = cj_features.filter(pl.col("cj_has_data") == 1)
    bad = compared.filter(
        ~pl.col("cj_bt_se").is_finite()
        | (pl.col("cj_bt_se") <= 0)
        | ~pl.col("cj_bt_ability").is_finite()
    )
    return dg.AssetCheckResult(
        passed=bad.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "compared_essays": compared.height,
            "bad_rows": bad.height,
            "max_se": float(compared["cj_bt_se"].max() or 0.0),
            "bad_essays": dg.MetadataValue.json(bad["essay_id"].head(10).to_list()),
        },
    )
