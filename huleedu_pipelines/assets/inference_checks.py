"""Checks on the scoring outputs: every essay of the partition carries a current row from
every champion model, read back from the `current_*` views (what the product reads).

They are evaluated inside the `nightly_scores` step, right after its writes, because their
subject is the partition's essays (`inference_features` of that day).
"""

import dagster as dg
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.resources import WarehouseResource
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT, read_frame
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
    serving_versions,
)

SKILL_CHECK = "check_skill_assessments_current"
GRADE_CHECK = "check_grade_predictions_current"
CHECK_SPECS = [
    dg.AssetCheckSpec(
        SKILL_CHECK,
        asset="skill_assessments",
        description="Every essay of the partition has a row from each champion skill model "
        "with its current feature hash; a skill without a champion fails the check.",
    ),
    dg.AssetCheckSpec(
        GRADE_CHECK,
        asset="essay_grade_predictions",
        description="Every essay of the partition has one champion grade row with the "
        "champion versions and its current feature hash; probabilities sum to 1.",
    ),
]


def _recorded_champions(warehouse: WarehouseResource, names) -> tuple[dict[str, str], list[str]]:
    """The champion versions readers are served (serving_models), and the models without one."""
    with warehouse.engine().connect() as connection:
        recorded = serving_versions(connection, CHAMPION)
    versions = {name: recorded[name] for name in names if name in recorded}
    return versions, [name for name in names if name not in recorded]


def _current(frame: pl.DataFrame, features: pl.DataFrame) -> int:
    """How many essays of `features` have a row in `frame` with their current feature_hash."""
    return (
        features.select("essay_id", "feature_hash")
        .join(frame.select("essay_id", "feature_hash").unique(), on=["essay_id", "feature_hash"])
        .height
    )


def check_skill_assessments_current(
    inference_features: pl.DataFrame, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Every essay of the partition has a row in `current_skill_assessments` from each champion
    skill model with its current feature hash; a skill without a champion fails the check (the
    others were still scored)."""
    versions, missing = _recorded_champions(warehouse, SKILL_MODELS.values())
    ids = inference_features["essay_id"].to_list()
    view = current_skill_assessments
    incomplete: dict[str, int] = {}
    with warehouse.engine().connect() as connection:
        for name, version in versions.items():
            rows = read_frame(
                connection,
                sa.select(view.c.essay_id, view.c.feature_hash).where(
                    view.c.model_name == name,
                    view.c.essay_id.in_(ids) if len(ids) <= IN_LIST_LIMIT else sa.true(),
                ),
            )
            lacking = len(ids) - _current(rows, inference_features)
            if lacking:
                incomplete[f"{name} v{version}"] = lacking
    problems = [f"{name} has no champion" for name in missing] + [
        f"{model}: {n} essays lack a current row" for model, n in incomplete.items()
    ]
    return dg.AssetCheckResult(
        asset_key="skill_assessments",
        check_name=SKILL_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
        metadata={
            "essays": len(ids),
            "champion_versions": dg.MetadataValue.json(versions),
            "models_without_champion": dg.MetadataValue.json(missing),
            "essays_lacking_rows": dg.MetadataValue.json(incomplete),
        },
    )


def check_grade_predictions_current(
    inference_features: pl.DataFrame, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Every essay of the partition has its row in `current_essay_grade_predictions` (the
    champion versions) with its current feature hash, and its grade probabilities sum to 1."""
    versions, missing = _recorded_champions(warehouse, (GRADE_MODEL, CEFR_MODEL, BAND_MODEL))
    ids = inference_features["essay_id"].to_list()
    view = current_essay_grade_predictions
    with warehouse.engine().connect() as connection:
        rows = read_frame(
            connection,
            sa.select(view.c.essay_id, view.c.feature_hash, view.c.grade_probabilities).where(
                view.c.essay_id.in_(ids) if len(ids) <= IN_LIST_LIMIT else sa.true()
            ),
        )
    lacking = len(ids) - _current(rows, inference_features)
    bad_sums = sum(
        abs(sum(p.values()) - 1.0) > 1e-3
        for p in rows["grade_probabilities"].to_list()
        if isinstance(p, dict)
    )
    problems = [f"{name} has no champion" for name in missing]
    if lacking:
        problems.append(f"{lacking} essays lack a current champion grade row")
    if bad_sums:
        problems.append(f"{bad_sums} rows have grade probabilities that do not sum to 1")
    return dg.AssetCheckResult(
        asset_key="essay_grade_predictions",
        check_name=GRADE_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
        metadata={
            "essays": len(ids),
            "essays_lacking_rows": lacking,
            "champion_versions": dg.MetadataValue.json(versions),
            "models_without_champion": dg.MetadataValue.json(missing),
        },
    )
