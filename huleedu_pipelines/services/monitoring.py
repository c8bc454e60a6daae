"""Prediction monitoring: drift against the training reference, agreement with teacher ratings
that arrived after scoring, and champion–challenger agreement on shadow rows.

Pure functions over frames; `assets/monitoring.py` reads the inputs and turns the results into
the `prediction_monitoring` table and its checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.metrics import population_stability_index, psi_from_counts

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
    """The `k` features with the largest total gain over the model's boosters."""
    gain = np.zeros(len(bundle.feature_columns))
    for booster in bundle.native_boosters:
        gain += np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    order = np.argsort(-gain, kind="stable")[:k]
    return [bundle.feature_columns[i] for i in order]


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
