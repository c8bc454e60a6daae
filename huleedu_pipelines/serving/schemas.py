"""Request and response bodies of the scoring API (they make its OpenAPI schema).

A scored essay carries what the nightly job writes for it: the `essay_grade_predictions` row
(grade with its 8 probabilities and confidence, CEFR with its probabilities, IELTS band,
`needs_review` and its reasons) and one `skill_assessments` row per skill, with the versions
of the models that scored them and the row's `feature_hash`.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

ID_CHARS = 128  # the warehouse's essay_id and student_id columns


class EssayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The essay text.")
    prompt: str | None = Field(default=None, description="The text of the prompt it answers.")
    essay_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_CHARS,
        description="The platform's essay id: the essay's CJ comparisons in the warehouse "
        "(if any) become its CJ features, as in the nightly job.",
    )
    student_id: str | None = Field(default=None, min_length=1, max_length=ID_CHARS)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    essays: list[EssayIn] = Field(description="The essays, scored together.")


class TopFeature(BaseModel):
    feature: str
    contribution: float


class SkillScore(BaseModel):
    skill: str
    score: float = Field(description="P(high skill), calibrated.")
    confidence: float
    top_features: list[TopFeature] | None = Field(
        description="The largest contributions to the booster's raw output "
        "(HULEEDU_EXPLAIN_METHOD: Saabas path attribution by default, or TreeSHAP)."
    )
    model_name: str
    model_version: str


class ModelUsed(BaseModel):
    model_name: str
    version: str
    alias: str


class EssayScore(BaseModel):
    essay_id: str | None
    student_id: str | None
    grade: str | None
    grade_probabilities: dict[str, float] | None
    confidence: float | None = Field(
        description="1 - normalised entropy of the grade's 8 probabilities."
    )
    cefr: str | None
    cefr_probabilities: dict[str, float] | None
    ielts_band: float | None
    needs_review: bool
    review_reasons: str | None = Field(description="Every reason, separated by '; '.")
    skills: list[SkillScore]
    models: list[ModelUsed]
    model_alias: str
    feature_version: str
    feature_hash: str


class FieldError(BaseModel):
    field: str
    code: str
    message: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    request_id: str | None = None


class ItemError(BaseModel):
    status: int = Field(description="The HTTP status this essay alone would have had.")
    field: str
    code: str
    message: str


class BatchItem(BaseModel):
    index: int
    essay_id: str | None
    result: EssayScore | None
    error: ItemError | None


class BatchOut(BaseModel):
    scored: int
    failed: int
    results: list[BatchItem]


class ModelOut(BaseModel):
    model_name: str
    version: str
    alias: str
    loaded_at: dt.datetime
    run_id: str | None
    feature_version: str | None
    metrics: dict[str, float]


class ModelsOut(BaseModel):
    ready: bool
    models: list[ModelOut]
    problems: dict[str, str]
    swapped_at: dt.datetime | None
    last_check_at: dt.datetime | None
    last_error: str | None
    reload_interval_seconds: float
