"""Prediction monitoring: drift against the training reference, agreement with teacher ratings
that arrived after scoring, and champion–challenger agreement on shadow rows.

`measure_day` is the use case: it reads the day's rows and returns the measurements; the
figures themselves are pure functions over frames.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.metrics import population_stability_index, psi_from_counts
from huleedu_pipelines.modeling.names import CHALLENGER, CHAMPION, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.registry import ModelRegistry, load_registered_bundle
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import (
    essay_grade_predictions,
    monitoring_measurements,
    skill_assessments,
    skill_ratings,
)

N_DRIFT_FEATURES = 10

MONITORING_SCHEMA = {
    "metric": pl.String,
    "subject": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
    "threshold": pl.Float64,
    "status": pl.String,
}
"""One row per measurement; status is ok, warn, fail or insufficient_data."""


@dataclass(frozen=True)
class Measurement:
    metric: str
    subject: str
    value: float | None
    n: int
    threshold: float | None
    status: str


def grade_distribution_psi(reference: list[str], predicted: list[str]) -> float:
    """PSI of the predicted grade shares against the reference (training) grade shares."""

    def counts(grades: list[str]) -> np.ndarray:
        return np.array([grades.count(grade) for grade in SWEDISH_GRADES], dtype=np.float64)

    return psi_from_counts(counts(reference), counts(predicted))


def most_important_features(bundle: ModelBundle, k: int = N_DRIFT_FEATURES) -> list[str]:
    """The `k` feature columns with the largest total gain over the model's boosters (a stacked
    model's ridge predictions are no column of the feature table, so they are left out)."""
    names = bundle.booster_feature_names
    gain = np.zeros(len(names))
    for booster in bundle.native_boosters:
        gain += np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    columns = set(bundle.feature_columns)
    order = [i for i in np.argsort(-gain, kind="stable") if names[i] in columns]
    return [names[i] for i in order[:k]]


def feature_drift(
    reference: pl.DataFrame, current: pl.DataFrame, features: list[str]
) -> dict[str, float]:
    """PSI per feature of `current` against `reference` (10 quantile bins of the reference)."""
    return {
        name: population_stability_index(
            reference[name].cast(pl.Float64).fill_null(np.nan).to_numpy(),
            current[name].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        )
        for name in features
    }


def teacher_agreement(scores: pl.DataFrame, ratings: pl.DataFrame) -> pl.DataFrame:
    """Per skill: Pearson r between the champion score and the mean teacher rating, over essays
    whose rating arrived after the essay was scored (ratings the model could not have seen).

    `scores`: essay_id, skill, score, scored_at; `ratings`: essay_id, skill, rating, rated_at.
    Returns skill, n, r (null below 3 essays or without variance).
    """
    later = (
        ratings.join(scores, on=["essay_id", "skill"])
        .filter(pl.col("rated_at") > pl.col("scored_at"))
        .group_by("essay_id", "skill")
        .agg(pl.col("rating").mean(), pl.col("score").first())
    )
    rows = []
    for skill in sorted(set(scores["skill"].to_list()) | set(later["skill"].to_list())):
        part = later.filter(pl.col("skill") == skill)
        r = None
        if part.height >= 3 and part["rating"].std() > 0 and part["score"].std() > 0:
            r = float(np.corrcoef(part["score"].to_numpy(), part["rating"].to_numpy())[0, 1])
        rows.append({"skill": skill, "n": part.height, "r": r})
    return pl.DataFrame(rows, schema={"skill": pl.String, "n": pl.Int64, "r": pl.Float64})


def shadow_agreement(champion: pl.DataFrame, challenger: pl.DataFrame, key: list[str]) -> dict:
    """Exact and within-one agreement of `label` (ordinal index) between champion and challenger
    rows that score the same essay with the same features (`key` + feature_hash)."""
    joined = champion.join(challenger, on=[*key, "feature_hash"], suffix="_challenger")
    if joined.is_empty():
        return {"n": 0, "exact": None, "adjacent": None}
    difference = (joined["label"] - joined["label_challenger"]).abs()
    return {
        "n": joined.height,
        "exact": float((difference == 0).mean()),
        "adjacent": float((difference <= 1).mean()),
    }


# --------------------------------------------------------------------------- a day


@dataclass(frozen=True)
class MonitoringThresholds:
    psi_warn: float
    """PSI above which a distribution counts as drifting (warn)."""
    min_skill_r: float
    """Pearson r with later teacher ratings below which a skill fails."""
    min_rated_essays: int
    """Fewer essays than this give `insufficient_data`, not a verdict."""


@dataclass(frozen=True)
class DayMeasurements:
    frame: pl.DataFrame
    """`MONITORING_SCHEMA` rows."""
    essays: int
    predicted_grade_psi: float | None
    shadow_rows_compared: int
    agreement: pl.DataFrame
    """skill, n, r (`teacher_agreement`)."""

    @property
    def drifting(self) -> pl.DataFrame:
        return self.frame.filter((pl.col("metric") == "psi") & (pl.col("status") == "warn"))

    @property
    def weak_skills(self) -> pl.DataFrame:
        return self.frame.filter(
            (pl.col("metric") == "pearson_r_teacher_later") & (pl.col("status") == "fail")
        )


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


def measure_day(
    engine: sa.Engine,
    registry: ModelRegistry,
    day_features: pl.DataFrame,
    *,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    grade_labels: pl.DataFrame,
    thresholds: MonitoringThresholds,
) -> DayMeasurements:
    """Drift of the day's predicted grades and of the grade champion's 10 most important
    features against the training split; Pearson r of skill scores with teacher ratings that
    arrived after scoring (all scored essays so far); champion–challenger agreement on the
    day's shadow rows. Only rows that carry the day's feature hash count."""

    ids = day_features["essay_id"].to_list()
    current = day_features.select("essay_id", "feature_hash")
    minimum = thresholds.min_rated_essays
    train_ids = training_splits.filter(pl.col("split") == "train").select("essay_id")
    with engine.connect() as connection:
        grades = _grade_rows(connection, ids).join(current, on=["essay_id", "feature_hash"])
        day_skills = _skill_rows(connection, ids).join(current, on=["essay_id", "feature_hash"])
        rated_skills = _skill_rows(connection, None)
        ratings = read_frame(connection, skill_ratings).drop_nulls(["rating", "rated_at"])
    measurements: list[Measurement] = []

    champion = registry.get_version(GRADE_MODEL, CHAMPION)
    champion_grades = grades.filter(
        (pl.col("model_alias") == CHAMPION)
        & (pl.col("grade_model_version") == (champion.version if champion else ""))
    )
    reference_grades = grade_labels.join(train_ids, on="essay_id")["grade"].to_list()
    psi = (
        grade_distribution_psi(reference_grades, champion_grades["grade"].to_list())
        if champion_grades.height and reference_grades
        else None
    )
    psi_status = _status(psi, champion_grades.height, thresholds.psi_warn, minimum, True)
    measurements.append(
        Measurement(
            "psi", "predicted_grade", psi, champion_grades.height, thresholds.psi_warn, psi_status
        )
    )
    if champion is not None:
        bundle = load_registered_bundle(registry, GRADE_MODEL, champion.version)
        features = most_important_features(bundle)
        reference = feature_table.join(train_ids, on="essay_id")
        drift = (
            feature_drift(reference, day_features, features)
            if day_features.height and reference.height
            else dict.fromkeys(features)
        )
        n = day_features.height
        for name, value in drift.items():
            status = _status(value, n, thresholds.psi_warn, minimum, True)
            measurements.append(
                Measurement("psi", f"feature:{name}", value, n, thresholds.psi_warn, status)
            )

    agreement = _teacher_agreement_of_champions(registry, rated_skills, ratings)
    for skill, n, r in agreement.iter_rows():
        status = _status(r, n, thresholds.min_skill_r, minimum, False)
        measurements.append(
            Measurement("pearson_r_teacher_later", skill, r, n, thresholds.min_skill_r, status)
        )

    shadow_measurements, shadow_n = _shadow_agreements(grades, day_skills)
    measurements += shadow_measurements
    frame = pl.DataFrame([m.__dict__ for m in measurements], schema=MONITORING_SCHEMA, orient="row")
    return DayMeasurements(frame, len(ids), psi, shadow_n, agreement)


def _teacher_agreement_of_champions(
    registry: ModelRegistry, rated_skills: pl.DataFrame, ratings: pl.DataFrame
) -> pl.DataFrame:
    """`teacher_agreement` over the scores of each skill model's current champion version."""
    champion_skill_versions = {
        name: ref.version
        for name in SKILL_MODELS.values()
        if (ref := registry.get_version(name, CHAMPION)) is not None
    }
    serving = rated_skills.join(
        pl.DataFrame(
            list(champion_skill_versions.items()),
            schema={"model_name": pl.String, "model_version": pl.String},
            orient="row",
        ),
        on=["model_name", "model_version"],
    )
    return teacher_agreement(
        serving.select("essay_id", "skill", "score", "scored_at"),
        ratings.select("essay_id", "skill", "rating", "rated_at"),
    )


def _shadow_agreements(
    grades: pl.DataFrame, day_skills: pl.DataFrame
) -> tuple[list[Measurement], int]:
    """Champion–challenger exact agreement on the grade (always reported) and on each skill
    with shadow rows; also the number of grade rows compared."""
    grade_index = {grade: i for i, grade in enumerate(SWEDISH_GRADES)}
    labelled = grades.with_columns(
        pl.col("grade").replace_strict(grade_index, return_dtype=pl.Int64).alias("label")
    ).select("essay_id", "model_alias", "feature_hash", "label")
    shadow = _champion_vs_challenger(labelled)
    measurements = [
        Measurement("shadow_exact_agreement", "grade", shadow["exact"], shadow["n"], None, "ok")
    ]
    skill_labels = day_skills.with_columns((pl.col("score") >= 0.5).cast(pl.Int64).alias("label"))
    for skill in sorted(set(skill_labels["skill"].to_list())):
        result = _champion_vs_challenger(
            skill_labels.filter(pl.col("skill") == skill).select(
                "essay_id", "model_alias", "feature_hash", "label"
            )
        )
        if result["n"]:
            measurements.append(
                Measurement(
                    "shadow_exact_agreement", skill, result["exact"], result["n"], None, "ok"
                )
            )
    return measurements, shadow["n"]


def _champion_vs_challenger(labelled: pl.DataFrame) -> dict:
    return shadow_agreement(
        labelled.filter(pl.col("model_alias") == CHAMPION).drop("model_alias"),
        labelled.filter(pl.col("model_alias") == CHALLENGER).drop("model_alias"),
        ["essay_id"],
    )


# --------------------------------------------------------------------------- history


def record_measurements(
    engine: sa.Engine,
    frame: pl.DataFrame,
    *,
    day: dt.date,
    shard: int,
    shards: int,
    run_id: str,
    measured_at: dt.datetime | None = None,
) -> int:
    """Append a run's `MONITORING_SCHEMA` rows to `monitoring_measurements` and return how many.

    Every run of a partition adds its own rows, so the history of a day never changes when it
    is monitored again. A step retried within the same run first removes what that run wrote,
    in the same transaction, so a retry never fails on its own rows."""
    measured_at = measured_at or dt.datetime.now(dt.UTC)
    rows = [
        {
            "partition_date": day,
            "shard": shard,
            "shards": shards,
            "run_id": run_id,
            "measured_at": measured_at,
            **row,
        }
        for row in frame.select(*MONITORING_SCHEMA).iter_rows(named=True)
    ]
    table = monitoring_measurements
    with engine.begin() as connection:
        connection.execute(
            sa.delete(table).where(
                table.c.run_id == run_id,
                table.c.partition_date == day,
                table.c.shard == shard,
            )
        )
        if rows:
            connection.execute(sa.insert(table), rows)
    return len(rows)
