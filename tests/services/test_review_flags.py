"""Nightly scoring flags essays for review with the reasons written beside the flag: the grade
model's own confidence threshold, and models that disagree by two or more CEFR levels.

The models are scripted: each essay's feature row carries its index in the first column, and
each model answers what the scenario below says for that essay, so every contradiction is
constructed, not hoped for. Rows are written by the real scoring code into the real
migrations' tables and read back through the `current_*` view, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from fakes import feature_rows

from huleedu_pipelines.domain import CEFR_LEVELS, SWEDISH_GRADES
from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling import coherence
from huleedu_pipelines.modeling.bundle import BundlePrediction
from huleedu_pipelines.modeling.coherence import LevelReference
from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    CHAMPION,
    GRADE_MODEL,
    SKILL_CLASS_LABELS,
    SKILL_MODELS,
)
from huleedu_pipelines.services.scoring import (
    GradeModels,
    ServingModel,
    ServingModels,
    grade_frame,
    score_essays,
)
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.serving import current_essay_grade_predictions, record_alias_move

UNIFORM = tuple([1 / 6] * 6)
STORED_THRESHOLD = 0.38
FALLBACK_THRESHOLD = 0.42

# essay: grade, grade confidence, CEFR, band, the two skills' ratings
SCENARIO = {
    "grade-a-cefr-a2": ("A", 0.9, "A2", 4.5, (4.9, 4.9)),
    "coherent": ("C", 0.9, "B1", 5.5, (2.9, 2.9)),
    "unsure": ("C", 0.31, "B1", 5.5, (2.9, 2.9)),
    "between-thresholds": ("C", 0.40, "B1", 5.5, (2.9, 2.9)),
    "cefr-c2-band-4": ("C", 0.9, "C2", 4.0, (2.9, 2.9)),
    "skills-low": ("C+", 0.9, "B2", 6.5, (1.0, 1.0)),
}
ESSAYS = list(SCENARIO)


@dataclass
class ScriptedBundle:
    """Answers per essay: row i of the features is essay i of SCENARIO (first column)."""

    family: str
    class_labels: list[str]
    answers: BundlePrediction
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> BundlePrediction:
        rows = np.asarray(X)[:, 0].astype(np.int64)
        return BundlePrediction(
            *(
                None if value is None else value[rows]
                for value in (
                    self.answers.labels,
                    self.answers.probabilities,
                    self.answers.score,
                    self.answers.confidence,
                    self.answers.rating_scale_score,
                )
            )
        )


def _ordinal(labels: list[int], confidence: list[float], k: int) -> BundlePrediction:
    codes = np.asarray(labels, dtype=np.int64)
    probabilities = np.full((codes.size, k), 0.1 / (k - 1))
    probabilities[np.arange(codes.size), codes] = 0.9
    return BundlePrediction(
        codes, probabilities, codes.astype(float), np.asarray(confidence, dtype=float)
    )


def scripted_models(*, with_threshold: bool = True) -> dict[str, ServingModel]:
    rows = [SCENARIO[e] for e in ESSAYS]
    grade_info = {
        coherence.REFERENCE_KEY: LevelReference(
            tuple(np.linspace(0.0, 7.0, 101)), None, 400
        ).to_info()
    }
    if with_threshold:
        grade_info[coherence.REVIEW_KEY] = coherence.ReviewThreshold(
            STORED_THRESHOLD, 0.15, 0.15, 400
        ).to_info()
    grade = ScriptedBundle(
        "grade",
        list(SWEDISH_GRADES),
        _ordinal([SWEDISH_GRADES.index(r[0]) for r in rows], [r[1] for r in rows], 8),
        grade_info,
    )
    cefr = ScriptedBundle(
        "cefr",
        list(CEFR_LEVELS),
        _ordinal([CEFR_LEVELS.index(r[2]) for r in rows], [0.5] * len(rows), 6),
        {coherence.REFERENCE_KEY: LevelReference((0.0, 5.0), UNIFORM, 400).to_info()},
    )
    bands = np.asarray([r[3] for r in rows])
    band = ScriptedBundle(
        "band",
        [],
        BundlePrediction(bands, None, bands, np.full(bands.size, 0.6)),
        {coherence.REFERENCE_KEY: LevelReference((4.0, 9.0), UNIFORM, 400).to_info()},
    )
    models = {GRADE_MODEL: grade, CEFR_MODEL: cefr, BAND_MODEL: band}
    skill_reference = LevelReference(tuple(np.linspace(1.0, 5.0, 101)), None, 400).to_info()
    for index, skill in enumerate(("grammar", "vocabulary")):
        ratings = np.asarray([r[4][index] for r in rows])
        models[SKILL_MODELS[skill]] = ScriptedBundle(
            "skill",
            list(SKILL_CLASS_LABELS),
            BundlePrediction(
                (ratings >= 3.5).astype(np.int64),
                None,
                (ratings - 1) / 4,
                np.abs((ratings - 1) / 2 - 1),
                ratings,
            ),
            {coherence.REFERENCE_KEY: skill_reference},
        )
    return {name: ServingModel(name, "1", CHAMPION, bundle) for name, bundle in models.items()}


def scripted_features() -> pl.DataFrame:
    return feature_rows(len(ESSAYS)).with_columns(
        pl.Series("essay_id", ESSAYS),
        pl.Series(MODEL_FEATURE_COLUMNS[0], np.arange(len(ESSAYS), dtype=float)),
    )


def grade_rows(target: GradeModels, features: pl.DataFrame) -> pl.DataFrame:
    """The grade rows scoring builds for `features` (bundles without a recorded threshold use
    the fallback)."""
    return grade_frame(
        target,
        features,
        feature_matrix(features),
        review_threshold=FALLBACK_THRESHOLD,
        run_id=None,
        scored_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        timings={},
    )


def test_scripted_rows_put_the_essay_index_where_the_models_read_it() -> None:
    X = feature_matrix(scripted_features())
    assert X[:, 0].tolist() == list(range(len(ESSAYS)))


def test_constructed_contradictions_are_flagged_with_their_reasons(
    warehouse: sa.Engine,
) -> None:
    served = scripted_models()
    features = scripted_features()
    with warehouse.begin() as connection:
        for name in served:
            record_alias_move(
                connection,
                model_name=name,
                alias=CHAMPION,
                version="1",
                previous_version=None,
                reason="test",
                report_uri=None,
            )

    outcome = score_essays(
        warehouse,
        features,
        ServingModels(champions=served),
        run_id="run-1",
        review_threshold=FALLBACK_THRESHOLD,
        explain_scope="none",
        scored_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )

    assert outcome.grade_rows == len(ESSAYS)
    with warehouse.connect() as connection:
        rows = read_frame(connection, current_essay_grade_predictions)
    by_essay = {row["essay_id"]: row for row in rows.iter_rows(named=True)}
    flagged = {essay for essay, row in by_essay.items() if row["needs_review"]}
    assert flagged == {"grade-a-cefr-a2", "unsure", "cefr-c2-band-4", "skills-low"}
    assert by_essay["grade-a-cefr-a2"]["review_reasons"].split("; ") == [
        "grade A (≈C2) vs CEFR A2 (4 levels apart)",
        "grade A (≈C2) vs band 4.5 (A2) (4 levels apart)",
        "skill profile (≈C2) vs CEFR A2 (4 levels apart)",
        "skill profile (≈C2) vs band 4.5 (A2) (4 levels apart)",
    ]
    # The bundle's own threshold (0.38), not the fallback (0.42), decides low confidence.
    assert by_essay["unsure"]["review_reasons"] == "grade confidence 0.31 below 0.38"
    assert not by_essay["between-thresholds"]["needs_review"]
    assert "CEFR C2 vs band 4.0 (A2) (4 levels apart)" in by_essay["cefr-c2-band-4"][
        "review_reasons"
    ].split("; ")
    assert by_essay["skills-low"]["review_reasons"] == (
        "skill profile (≈A1) vs grade C+ (≈C1) (4 levels apart); "
        "skill profile (≈A1) vs CEFR B2 (3 levels apart); "
        "skill profile (≈A1) vs band 6.5 (B2) (3 levels apart)"
    )
    assert by_essay["coherent"]["review_reasons"] is None
    assert not by_essay["coherent"]["needs_review"]


def test_a_bundle_without_a_recorded_threshold_falls_back_to_the_setting() -> None:
    served = scripted_models(with_threshold=False)
    features = scripted_features()
    target = GradeModels(CHAMPION, served[GRADE_MODEL], None, None)

    frame = grade_rows(target, features)

    reasons = dict(zip(frame["essay_id"], frame["review_reasons"], strict=True))
    assert reasons["between-thresholds"] == "grade confidence 0.40 below 0.42"
    assert reasons["unsure"] == "grade confidence 0.31 below 0.42"
    assert reasons["grade-a-cefr-a2"] is None  # alone, the grade model contradicts nothing


def test_without_a_grade_model_every_row_needs_review_and_says_why() -> None:
    served = scripted_models()
    features = scripted_features()
    target = GradeModels(CHAMPION, None, served[CEFR_MODEL], served[BAND_MODEL])

    frame = grade_rows(target, features)

    assert frame["needs_review"].all()
    reasons = dict(zip(frame["essay_id"], frame["review_reasons"], strict=True))
    assert reasons["coherent"] == "no grade model serves"
    assert reasons["cefr-c2-band-4"] == (
        "no grade model serves; CEFR C2 vs band 4.0 (A2) (4 levels apart)"
    )


@pytest.mark.parametrize("skills_served", [0, 2])
def test_the_grade_row_reads_the_skill_models_only_when_they_serve(skills_served: int) -> None:
    served = scripted_models()
    skills = tuple(served[SKILL_MODELS[s]] for s in ("grammar", "vocabulary"))[:skills_served]
    features = scripted_features()
    target = GradeModels(CHAMPION, served[GRADE_MODEL], served[CEFR_MODEL], None, skills)

    frame = grade_rows(target, features)

    skills_low = frame.filter(pl.col("essay_id") == "skills-low")["review_reasons"][0]
    assert (skills_low is not None) == (skills_served > 0)


def test_an_essay_beyond_the_training_essays_goes_to_review_with_the_advisory() -> None:
    from huleedu_pipelines.modeling import advisories

    served = scripted_models()
    # The grade model allows at most 20 spelling errors per 100 words; the CEFR model, trained
    # on other essays, 30: the strictest limit decides.
    for name, limit in ((GRADE_MODEL, 20.0), (CEFR_MODEL, 30.0)):
        served[name].bundle.info[advisories.INFO_KEY] = [
            advisories.Advisory(
                "spelling_errors_per_100_words", "above", limit, "unknown words"
            ).to_info()
        ]
    features = scripted_features().with_columns(
        pl.Series(
            "spelling_errors_per_100_words",
            [3.0, 25.0, 2.0, 2.0, 2.0, None],  # "coherent" is nonsense now
            dtype=pl.Float64,
        )
    )
    target = GradeModels(CHAMPION, served[GRADE_MODEL], served[CEFR_MODEL], None)

    frame = grade_rows(target, features)

    reasons = dict(zip(frame["essay_id"], frame["review_reasons"], strict=True))
    assert reasons["coherent"] == (
        "advisory: unknown words (spelling_errors_per_100_words 25 > 20, beyond the training "
        "essays)"
    )
    flagged = dict(zip(frame["essay_id"], frame["needs_review"], strict=True))
    assert flagged["coherent"] and not flagged["between-thresholds"]
    assert reasons["skills-low"] is None  # a missing value is never beyond a limit
