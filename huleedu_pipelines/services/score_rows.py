"""The rows scoring gives a frame of feature rows, without the warehouse: the
`essay_grade_predictions` and `skill_assessments` rows the nightly job would write for them.

The nightly job (`services.scoring.score_essays`) decides which rows to write and writes them;
the online scoring API (`services.online_scoring`) returns them to the caller. Both build each
row with the same `grade_frame` and `skill_frame` of `services.scoring`, so a grade, a
probability or a review flag cannot differ between the two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.names import CHAMPION
from huleedu_pipelines.services.scoring import (
    EXPLAIN_SCOPES,
    ChunkPredictions,
    ServingModel,
    ServingModels,
    grade_frame,
    grade_targets,
    skill_frame,
    skill_targets,
)


@dataclass(frozen=True)
class ScoredRows:
    """Per target, its rows in the order of the feature rows: one grade frame per grade target
    (`model_alias` tells them apart), one skill frame per skill model."""

    grade_frames: list[pl.DataFrame]
    skill_frames: list[pl.DataFrame]
    seconds_by_model: dict[str, float] = field(default_factory=dict)

    @property
    def grades(self) -> pl.DataFrame:
        """`essay_grade_predictions` rows."""
        return pl.concat(self.grade_frames) if self.grade_frames else pl.DataFrame()

    @property
    def skills(self) -> pl.DataFrame:
        """`skill_assessments` rows."""
        return pl.concat(self.skill_frames) if self.skill_frames else pl.DataFrame()


def explained_models(models: ServingModels, alias: str) -> dict[str, ServingModel]:
    """The models whose rows an essay scored under `alias` reads: the champions, or for
    `challenger` each model's differing challenger and the champion of the others."""
    if alias == CHAMPION:
        return dict(models.champions)
    return {**models.champions, **models.challengers}


def score_feature_rows(
    features: pl.DataFrame,
    models: ServingModels,
    *,
    review_threshold: float,
    explain_scope: str,
    explain_alias: str = CHAMPION,
    n_jobs: int = 1,
    run_id: str | None = None,
    scored_at: dt.datetime | None = None,
) -> ScoredRows:
    """Score every row of `features` (essay_id, student_id, feature_hash and the model
    columns) with every target of `models`, as the nightly job scores one chunk.

    `explain_scope` decides which skill rows of the `explain_alias` view
    (`explained_models`) get `top_features`, as in the nightly job: `all`, `needs_review`
    (the rows whose grade row of that alias needs review) or `none`. The nightly job explains
    the champions' rows only."""
    if explain_scope not in EXPLAIN_SCOPES:
        raise ValueError(f"explain_scope must be one of {EXPLAIN_SCOPES}, got {explain_scope!r}")
    scored_at = scored_at or dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}
    X = feature_matrix(features)
    predict = ChunkPredictions(X, timings)
    grades: list[pl.DataFrame] = []
    review = np.ones(features.height, dtype=bool)
    targets = grade_targets(models)
    for target in targets:
        frame = grade_frame(
            target,
            features,
            X,
            review_threshold=review_threshold,
            run_id=run_id,
            scored_at=scored_at,
            timings=timings,
            predictions=predict,
        )
        # A challenger view without a differing grade, CEFR or band model reads the
        # champions' grade row.
        if target.alias == explain_alias or (target.alias == CHAMPION and len(targets) == 1):
            review = frame["needs_review"].to_numpy()
        grades.append(frame)
    explained = explained_models(models, explain_alias)
    skills: list[pl.DataFrame] = []
    for skill, model in skill_targets(models):
        if explained.get(model.name) is not model or explain_scope == "none":
            explain = np.zeros(features.height, dtype=bool)
        elif explain_scope == "all":
            explain = np.ones(features.height, dtype=bool)
        else:
            explain = review
        skills.append(
            skill_frame(
                skill,
                model,
                features,
                X,
                explain,
                run_id=run_id,
                scored_at=scored_at,
                n_jobs=n_jobs,
                timings=timings,
                prediction=predict(model),
            )
        )
    return ScoredRows(grades, skills, seconds_by_model=timings)


__all__ = ["ScoredRows", "explained_models", "score_feature_rows"]
