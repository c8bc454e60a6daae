"""Group `monitoring` (daily partitions): how the day's predictions compare with the training
reference, with teacher ratings that arrived after scoring, and with the challenger."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.assets.metadata import OWNERS, markdown_table
from huleedu_pipelines.assets.partitions import daily_partitions
from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.names import CHALLENGER, CHAMPION, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.services.monitoring import (
    MONITORING_SCHEMA,
    Measurement,
    feature_drift,
    grade_distribution_psi,
    most_important_features,
    shadow_agreement,
    teacher_agreement,
)
from huleedu_pipelines.resources import (
    MlflowRegistryResource,
    MonitoringResource,
    WarehouseResource,
)
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    skill_assessments,
    skill_ratings,
)

GROUP = "monitoring"
DRIFT_CHECK = "check_prediction_drift"
AGREEMENT_CHECK = "check_skill_agreement_with_teachers"


def _grade_rows(connection: sa.Connection, ids: list[str]) -> pl.DataFrame:
    table = essay_grade_predictions
    return read_frame(
        connection,
        sa.select(
            table.c.essay_id,
            table.c.model_alias,
            table.c.grade,
            table.c.grade_model_version,
            table.c.feature_hash,
        ).where(table.c.essay_id.in_(ids), table.c.grade.is_not(None)),
    )


def _skill_rows(connection: sa.Connection, ids: list[str] | None) -> pl.DataFrame:
    table = skill_assessments
    query = sa.select(
        table.c.essay_id,
        table.c.skill,
        table.c.score,
        table.c.model_name,
        table.c.model_version,
        table.c.model_alias,
        table.c.feature_hash,
        table.c.scored_at,
    )
    if ids is not None:
        query = query.where(table.c.essay_id.in_(ids))
    else:  # every rated essay's scores, for the agreement with ratings that came later
        query = query.where(
            table.c.model_alias == CHAMPION,
            table.c.essay_id.in_(sa.select(skill_ratings.c.essay_id).distinct()),
        )
    return read_frame(connection, query)


def _status(value: float | None, n: int, threshold: float, minimum_n: int, worse_above: bool):
    if value is None or n < minimum_n:
        return "insufficient_data"
    bad = value > threshold if worse_above else value < threshold
    return ("warn" if worse_above else "fail") if bad else "ok"


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"polars", "sql"},
    owners=OWNERS,
    ins={
        "inference_features": dg.AssetIn(),
        "feature_table": dg.AssetIn(),
        "training_splits": dg.AssetIn(),
        "swedish_grade_labels": dg.AssetIn(),
    },
    deps=["skill_assessments", "essay_grade_predictions"],
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="prediction_monitoring",
            description="Warns when the predicted grade distribution or one of the 10 most "
            "important features drifts from the training reference (PSI above the threshold).",
        ),
        dg.AssetCheckSpec(
            AGREEMENT_CHECK,
            asset="prediction_monitoring",
            description="Fails when a skill's scores correlate with teacher ratings that "
            "arrived after scoring below the threshold, on enough rated essays.",
        ),
    ],
)
def prediction_monitoring(
    context: dg.AssetExecutionContext,
    inference_features: pl.DataFrame,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    swedish_grade_labels: pl.DataFrame,
    warehouse: WarehouseResource,
    mlflow: MlflowRegistryResource,
    monitoring: MonitoringResource,
) -> Iterator:
    """Drift of the day's predicted grades and top-10 features against the training split,
    Pearson r of skill scores with teacher ratings that arrived after scoring (all scored
    essays so far), and champion–challenger agreement on the day's shadow rows."""
    from huleedu_pipelines.services.promotion import load_registered_bundle

    ids = inference_features["essay_id"].to_list()
    current = inference_features.select("essay_id", "feature_hash")
    measurements: list[Measurement] = []
    minimum = monitoring.min_rated_essays
    train_ids = training_splits.filter(pl.col("split") == "train").select("essay_id")
    with warehouse.engine().connect() as connection:
        grades = _grade_rows(connection, ids).join(current, on=["essay_id", "feature_hash"])
        day_skills = _skill_rows(connection, ids).join(current, on=["essay_id", "feature_hash"])
        rated_skills = _skill_rows(connection, None)
        ratings = read_frame(connection, skill_ratings).drop_nulls(["rating", "rated_at"])

    champion = mlflow.get_version(GRADE_MODEL, CHAMPION)
    champion_grades = grades.filter(
        (pl.col("model_alias") == CHAMPION)
        & (pl.col("grade_model_version") == (champion.version if champion else ""))
    )
    reference_grades = swedish_grade_labels.join(train_ids, on="essay_id")["grade"].to_list()
    psi = (
        grade_distribution_psi(reference_grades, champion_grades["grade"].to_list())
        if champion_grades.height and reference_grades
        else None
    )
    measurements.append(
        Measurement(
            "psi",
            "predicted_grade",
            psi,
            champion_grades.height,
            monitoring.psi_warn,
            _status(psi, champion_grades.height, monitoring.psi_warn, minimum, True),
        )
    )
    if champion is not None:
        bundle = load_registered_bundle(mlflow, GRADE_MODEL, champion.version)
        features = most_important_features(bundle)
        reference = feature_table.join(train_ids, on="essay_id")
        drift = (
            feature_drift(reference, inference_features, features)
            if inference_features.height and reference.height
            else dict.fromkeys(features)
        )
        for name, value in drift.items():
            measurements.append(
                Measurement(
                    "psi",
                    f"feature:{name}",
                    value,
                    inference_features.height,
                    monitoring.psi_warn,
                    _status(value, inference_features.height, monitoring.psi_warn, minimum, True),
                )
            )

    champion_skill_versions = {
        name: ref.version
        for name in SKILL_MODELS.values()
        if (ref := mlflow.get_version(name, CHAMPION)) is not None
    }
    serving = rated_skills.join(
        pl.DataFrame(
            list(champion_skill_versions.items()),
            schema={"model_name": pl.String, "model_version": pl.String},
            orient="row",
        ),
        on=["model_name", "model_version"],
    )
    agreement = teacher_agreement(
        serving.select("essay_id", "skill", "score", "scored_at"),
        ratings.select("essay_id", "skill", "rating", "rated_at"),
    )
    for skill, n, r in agreement.iter_rows():
        measurements.append(
            Measurement(
                "pearson_r_teacher_later",
                skill,
                r,
                n,
                monitoring.min_skill_r,
                _status(r, n, monitoring.min_skill_r, minimum, False),
            )
        )

    grade_index = {grade: i for i, grade in enumerate(SWEDISH_GRADES)}
    labelled = grades.with_columns(
        pl.col("grade").replace_strict(grade_index, return_dtype=pl.Int64).alias("label")
    ).select("essay_id", "model_alias", "feature_hash", "label")
    shadow = shadow_agreement(
        labelled.filter(pl.col("model_alias") == CHAMPION).drop("model_alias"),
        labelled.filter(pl.col("model_alias") == CHALLENGER).drop("model_alias"),
        ["essay_id"],
    )
    measurements.append(
        Measurement("shadow_exact_agreement", "grade", shadow["exact"], shadow["n"], None, "ok")
    )
    skill_labels = day_skills.with_columns((pl.col("score") >= 0.5).cast(pl.Int64).alias("label"))
    for skill in sorted(set(skill_labels["skill"].to_list())):
        rows = skill_labels.filter(pl.col("skill") == skill).select(
            "essay_id", "model_alias", "feature_hash", "label"
        )
        result = shadow_agreement(
            rows.filter(pl.col("model_alias") == CHAMPION).drop("model_alias"),
            rows.filter(pl.col("model_alias") == CHALLENGER).drop("model_alias"),
            ["essay_id"],
        )
        if result["n"]:
            measurements.append(
                Measurement(
                    "shadow_exact_agreement", skill, result["exact"], result["n"], None, "ok"
                )
            )

    frame = pl.DataFrame([m.__dict__ for m in measurements], schema=MONITORING_SCHEMA, orient="row")
    drifted = frame.filter((pl.col("metric") == "psi") & (pl.col("status") == "warn"))
    weak = frame.filter(
        (pl.col("metric") == "pearson_r_teacher_later") & (pl.col("status") == "fail")
    )
    context.log.info(
        f"monitoring {context.partition_key}: {len(ids)} essays, {drifted.height} drifting, "
        f"{weak.height} skills below r {monitoring.min_skill_r}"
    )
    yield dg.Output(
        frame,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "essays": dg.MetadataValue.int(len(ids)),
            "predicted_grade_psi": dg.MetadataValue.float(psi if psi is not None else float("nan")),
            "shadow_rows_compared": dg.MetadataValue.int(shadow["n"]),
            "measurements": dg.MetadataValue.md(markdown_table(frame, max_rows=40)),
        },
    )
    yield dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=drifted.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"PSI above {monitoring.psi_warn}: " + ", ".join(drifted["subject"].to_list())
            if drifted.height
            else None
        ),
        metadata={
            "drifting": dg.MetadataValue.json(dict(drifted.select("subject", "value").rows()))
        },
    )
    yield dg.AssetCheckResult(
        check_name=AGREEMENT_CHECK,
        passed=weak.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"Pearson r below {monitoring.min_skill_r} on at least {minimum} essays rated after "
            "scoring: "
            + ", ".join(
                f"{s} r={v:.2f} (n={n})" for s, v, n in weak.select("subject", "value", "n").rows()
            )
            + "; inspect the skill model and retrain"
            if weak.height
            else None
        ),
        metadata={
            "agreement": dg.MetadataValue.md(markdown_table(agreement, max_rows=10)),
        },
    )
