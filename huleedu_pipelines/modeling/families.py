"""The model families: one table saying, for grade, CEFR, band and skill, everything that
differs between them.

A *family* is what a model predicts (grade, cefr, band, skill); its *task* is how
(ordinal, regression, binary). Each row holds the family's class labels, the labels it
learns from and how they become a `target`, the training recipe, the headline metrics, the
validation report, the champion-comparison metric, the gates, the plots, the report section
and the ONNX parity kind. Every place that used to ask "which model is this?" reads the row
instead, so adding or changing a family is one edit here. Fairness (`modeling.fairness`) is
judged for every family on the scores its row names (`fairness_scores`), and so is agreement
with a second human rater where essays were scored twice (`rater_scores`,
`modeling.rater_agreement`).

A *registered model* is one name in the registry: one per family, except the skill family,
which registers one model per skill (`huleedu-skill-<skill>`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from huleedu_pipelines.domain import (
    CEFR_LEVELS,
    SKILLS,
    SWEDISH_GRADES,
    cefr_from_band,
    cefr_to_ordinal,
)
from huleedu_pipelines.domain.second_ratings import second_rating_number
from huleedu_pipelines.modeling import metrics, plots
from huleedu_pipelines.modeling.baselines import BASELINES, BaselinePrediction
from huleedu_pipelines.modeling.bundle import (
    BAND_MAX,
    BAND_MIN,
    BundlePrediction,
    ModelBundle,
    ModelIdentity,
)
from huleedu_pipelines.modeling.evaluation import (
    binary_headline_metrics,
    ordinal_headline_metrics,
    regression_headline_metrics,
)
from huleedu_pipelines.modeling.fairness import FairnessReport, FairnessScores, fairness_report
from huleedu_pipelines.modeling.figures import (
    HALF_BAND_CLASSES,
    BandReport,
    BaselineComparison,
    CefrReport,
    ChampionComparison,
    GradeReport,
    SkillReport,
    band_report,
    cefr_report,
    compare_with_baselines,
    compare_with_champion,
    grade_report,
    skill_report,
)
from huleedu_pipelines.modeling.gates import (
    BAND_GATE_NAMES,
    BASELINE_GATES,
    CEFR_GATE_NAMES,
    GRADE_GATE_NAMES,
    SKILL_GATE_NAMES,
    GateResult,
    band_gates,
    cefr_gates,
    grade_gates,
    skill_gates,
)
from huleedu_pipelines.modeling.names import (
    ALL_MODELS,
    BAND_MODEL,
    CEFR_MODEL,
    GRADE_MODEL,
    SKILL_CLASS_LABELS,
    SKILL_MODELS,
)
from huleedu_pipelines.modeling.onnx_export import parity_report
from huleedu_pipelines.modeling.rater_agreement import (
    HALF_BAND_SCALE,
    HALF_POINT_RATING_SCALE,
    RaterAgreement,
    RaterScores,
    class_index_scale,
    rater_agreement,
)
from huleedu_pipelines.modeling.training import SplitData, TrainingConfig, train_stacked_bundle

Report = GradeReport | CefrReport | BandReport | SkillReport
"""The figures a family's validation report is made of."""


class UnknownModelError(ValueError):
    """A name that is not one of the registered HuleEdu model names."""


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class HoldoutEvidence:
    """One registered model's predictions on holdout rows, with what its family's report reads.

    `rows` carry `target` (and `rating` for skills) and the feature columns (the fairness
    report reads `word_count`); `subgroups` is `essay_id, group, value` for those essays
    (`domain.subgroups.subgroup_frame`); `training_targets` gives the training split's labels,
    read only by the families whose report compares predicted shares with them (grade).
    `second_ratings` is `essay_id, label, value` (the `second_ratings` asset) for those
    essays, or None when the data has no second rater.
    """

    model: RegisteredModel
    rows: pl.DataFrame
    prediction: BundlePrediction
    training_targets: Callable[[], np.ndarray]
    subgroups: pl.DataFrame
    second_ratings: pl.DataFrame | None = None

    @property
    def y_true(self) -> np.ndarray:
        return self.rows["target"].to_numpy()


# --------------------------------------------------------------------------- label selection


def label_as_target(labels: pl.DataFrame, column: str, high_skill_threshold: float) -> pl.DataFrame:
    """The label column itself is the target (grade and CEFR codes, IELTS bands)."""
    del high_skill_threshold
    return labels.with_columns(pl.col(column).alias("target"))


def rating_at_or_above_threshold(
    labels: pl.DataFrame, column: str, high_skill_threshold: float
) -> pl.DataFrame:
    """Target 1 when the mean teacher rating reaches the high-skill threshold, else 0; the
    rating is kept beside it as `rating` (Pearson r is against it)."""
    return labels.with_columns(
        (pl.col(column) >= high_skill_threshold).cast(pl.Int64).alias("target"),
        pl.col(column).alias("rating"),
    )


# --------------------------------------------------------------------------- training recipes


def _stacked(task: str) -> Callable[..., ModelBundle]:
    """The stacked recipe for `task` (`training.train_stacked_bundle`)."""
    return functools.partial(train_stacked_bundle, task=task)


# --------------------------------------------------------------------------- reports and plots


def _grade_report(evidence: HoldoutEvidence, seed: int) -> GradeReport:
    prediction = evidence.prediction
    return grade_report(
        evidence.y_true,
        prediction.probabilities,
        prediction.labels,
        class_labels=evidence.model.family.class_labels,
        reference_labels=evidence.training_targets(),
        seed=seed,
    )


def _cefr_report(evidence: HoldoutEvidence, seed: int) -> CefrReport:
    prediction = evidence.prediction
    return cefr_report(evidence.y_true, prediction.probabilities, prediction.labels, seed=seed)


def _band_report(evidence: HoldoutEvidence, seed: int) -> BandReport:
    return band_report(evidence.y_true, evidence.prediction.score, seed=seed)


def _skill_report(evidence: HoldoutEvidence, seed: int) -> SkillReport:
    return skill_report(
        str(evidence.model.skill),
        evidence.y_true,
        evidence.prediction.score,
        evidence.rows["rating"].to_numpy(),
        seed=seed,
    )


def _grade_plots(report: GradeReport, evidence: HoldoutEvidence, folder: Path) -> dict[str, Path]:
    del evidence
    return plots.grade_plots(report, folder)


def _cefr_plots(report: CefrReport, evidence: HoldoutEvidence, folder: Path) -> dict[str, Path]:
    del evidence
    return plots.cefr_plots(report, folder)


def _band_plots(report: BandReport, evidence: HoldoutEvidence, folder: Path) -> dict[str, Path]:
    del report  # the scatter is drawn from the bands themselves
    return plots.band_plots(evidence.y_true, evidence.prediction.score, folder)


def _skill_plots(report: SkillReport, evidence: HoldoutEvidence, folder: Path) -> dict[str, Path]:
    del evidence
    return plots.skill_plots(report, folder)


# --------------------------------------------------------------------------- fairness scores


def _class_index_scores(evidence: HoldoutEvidence, *, noun: str) -> FairnessScores:
    """Predicted class index against the human one (grade, CEFR level), agreement QWK."""
    labels = evidence.model.family.class_labels
    k = len(labels)
    return FairnessScores(
        human=evidence.y_true.astype(np.float64),
        machine=np.asarray(evidence.prediction.labels, dtype=np.float64),
        scale=f"{noun} index 0..{k - 1} ({labels[0]}..{labels[-1]}), the model's {noun} "
        "against the human one",
        agreement="qwk",
        agreement_fn=lambda human, machine: metrics.quadratic_weighted_kappa(human, machine, k),
    )


def _half_band_qwk(human: np.ndarray, machine: np.ndarray) -> float:
    return metrics.quadratic_weighted_kappa(
        np.rint(human * 2), np.rint(machine * 2), HALF_BAND_CLASSES
    )


def _band_scores(evidence: HoldoutEvidence) -> FairnessScores:
    """The served band (half bands) against the examiner's band, agreement QWK on half bands."""
    return FairnessScores(
        human=evidence.y_true.astype(np.float64),
        machine=np.asarray(evidence.prediction.labels, dtype=np.float64),
        scale="IELTS band 0-9, the served half band against the examiner's band",
        agreement="qwk_half_band",
        agreement_fn=_half_band_qwk,
    )


def _skill_scores(evidence: HoldoutEvidence) -> FairnessScores:
    """The model's rating-scale score against the mean teacher rating (Pearson r); a bundle
    without a rating-scale output is judged on P(high) against the label (ROC AUC)."""
    prediction = evidence.prediction
    if prediction.rating_scale_score is not None:
        return FairnessScores(
            human=evidence.rows["rating"].to_numpy().astype(np.float64),
            machine=np.asarray(prediction.rating_scale_score, dtype=np.float64),
            scale="rating 1-5, the model's score on the rating scale (the regression the stacked "
            "model fits, before Platt maps it to P(high)) against the mean teacher rating",
            agreement="pearson_r",
            agreement_fn=metrics.pearson_r,
        )
    return FairnessScores(
        human=evidence.y_true.astype(np.float64),
        machine=np.asarray(prediction.score, dtype=np.float64),
        scale="P(high skill) against the high-skill label (0 or 1)",
        agreement="roc_auc",
        agreement_fn=metrics.roc_auc,
        note="this bundle has no rating-scale output (it was not fitted on the rating), so "
        "P(high) is compared with the 0/1 label: the SMD measures how far the mean "
        "probability is from the share of high-skill essays",
    )


# --------------------------------------------------------------------------- gaming scores


def _served_label(prediction: BundlePrediction) -> np.ndarray:
    """The grade or CEFR level index, or the half band: what a teacher or student sees."""
    return np.asarray(prediction.labels, dtype=np.float64)


def _skill_served_score(prediction: BundlePrediction) -> np.ndarray:
    """The score on the rating scale where the bundle has one, else P(high skill)."""
    if prediction.rating_scale_score is not None:
        return np.asarray(prediction.rating_scale_score, dtype=np.float64)
    return np.asarray(prediction.score, dtype=np.float64)


# --------------------------------------------------------------------------- second raters


def _second_values(evidence: HoldoutEvidence, label: str) -> np.ndarray:
    """Each holdout row's second rating of `label` on the label's numeric scale (grade index,
    band, rating; `domain.second_ratings.second_rating_number`), nan where scored once."""
    essay_ids = evidence.rows["essay_id"].to_list()
    ratings = evidence.second_ratings
    if ratings is None or ratings.is_empty():
        return np.full(len(essay_ids), np.nan)
    chosen = ratings.filter(pl.col("label") == label)
    value_of = dict(zip(chosen["essay_id"].to_list(), chosen["value"].to_list(), strict=True))
    return np.array(
        [second_rating_number(label, value_of[e]) if e in value_of else np.nan for e in essay_ids],
        dtype=np.float64,
    )


def _grade_raters(evidence: HoldoutEvidence) -> RaterScores:
    """Teacher grade, second teacher's grade (`grade_rater2`) and the model's grade."""
    return RaterScores(
        first=evidence.y_true.astype(np.float64),
        second=_second_values(evidence, "grade"),
        machine=np.asarray(evidence.prediction.labels, dtype=np.float64),
        scale=class_index_scale(evidence.model.family.class_labels, "grade"),
    )


def _cefr_raters(evidence: HoldoutEvidence) -> RaterScores:
    """The CEFR levels of the examiner's band and of the second band (`band_rater2`), and
    the CEFR model's level."""
    bands = _second_values(evidence, "band")
    levels = [np.nan if np.isnan(b) else cefr_to_ordinal(cefr_from_band(b)) for b in bands]
    return RaterScores(
        first=evidence.y_true.astype(np.float64),
        second=np.asarray(levels, dtype=np.float64),
        machine=np.asarray(evidence.prediction.labels, dtype=np.float64),
        scale=class_index_scale(evidence.model.family.class_labels, "CEFR level"),
    )


def _band_raters(evidence: HoldoutEvidence) -> RaterScores:
    """The examiner's band, the second band (`band_rater2`) and the served half band."""
    return RaterScores(
        first=evidence.y_true.astype(np.float64),
        second=_second_values(evidence, "band"),
        machine=np.asarray(evidence.prediction.labels, dtype=np.float64),
        scale=HALF_BAND_SCALE,
    )


def _skill_raters(evidence: HoldoutEvidence) -> RaterScores:
    """The mean teacher rating, the second rating (`<skill>_rater2`) and the model's score on
    the rating scale; a bundle without one has no machine score here (the gate says so)."""
    prediction = evidence.prediction
    machine = prediction.rating_scale_score
    return RaterScores(
        first=evidence.rows["rating"].to_numpy().astype(np.float64),
        second=_second_values(evidence, str(evidence.model.skill)),
        machine=None if machine is None else np.asarray(machine, dtype=np.float64),
        scale=HALF_POINT_RATING_SCALE,
        note=None
        if machine is not None
        else "this bundle has no rating-scale output (it was not fitted on the rating), so "
        "its agreement with the raters cannot be put on the rating scale; retrain it",
    )


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Family:
    """Everything that differs between grade, CEFR, band and skill models."""

    name: str
    """grade, cefr, band or skill."""
    task: str
    """ordinal, regression or binary."""
    class_labels: tuple[str, ...]
    """The classes in code order (empty for the band regressor)."""
    label_asset: str
    """The label table (asset and Parquet file name) the family learns from."""
    label_column: str
    """The label column in it; `{skill}` is filled in per skill model."""
    select_labels: Callable[[pl.DataFrame, str, float], pl.DataFrame]
    """(labels, label column, high-skill threshold) -> labels with a `target` column."""
    training_asset: str
    """The asset that trains the family's models (its key never changes)."""
    description: str
    """What the family's models are, for the training asset's description."""
    train: Callable[..., ModelBundle]
    """The training recipe (keyword arguments: model_name, data, class_labels,
    feature_columns, config)."""
    headline: Callable[..., dict[str, float]]
    """Test-split metrics logged with every version (see `headline_metrics`)."""
    report: Callable[[HoldoutEvidence, int], Report]
    """The validation report's figures, from holdout evidence and a bootstrap seed."""
    champion_metric: str
    """The metric non-inferiority to the champion is judged on."""
    compared_output: str
    """The `BundlePrediction` attribute compared with the champion's and the baselines'
    (labels or score)."""
    baseline_metric: str
    """The metric the baseline gates compare model and baselines on (`compare_with_baselines`)."""
    baseline_score_range: tuple[float, float] | None
    """Where the baselines' scores are clipped to, as the served model's are (IELTS bands)."""
    gates: Callable[..., list[GateResult]]
    """(report, thresholds, *, parity, latency, champion, baselines, fairness, gaming,
    rater_agreement) -> one result per gate."""
    gate_names: tuple[str, ...]
    """Every gate `gates` returns, in order."""
    fairness_scores: Callable[[HoldoutEvidence], FairnessScores]
    """The human and machine scores fairness is judged on (`modeling.fairness`)."""
    rater_scores: Callable[[HoldoutEvidence], RaterScores]
    """The first and second human scores and the machine's on one scale, for human–human
    agreement and `max_qwk_degradation` (`modeling.rater_agreement`)."""
    gaming_score: Callable[[BundlePrediction], np.ndarray]
    """The served score whose rise the anti-gaming check counts (`services.gaming`)."""
    plots: Callable[[Report, HoldoutEvidence, Path], dict[str, Path]]
    """(report, evidence, folder) -> plot title -> PNG written into the folder."""
    report_section: str
    """The `render_markdown` keyword the report goes under."""
    reports_oracle_qwk: bool
    """Whether the report shows the best achievable QWK beside the model's."""
    parity_kind: str
    """How ONNX and native outputs are compared (`onnx_export.parity_report(kind=...)`)."""
    parity_output: str
    """The `BundlePrediction` attribute compared for parity (probabilities or score)."""
    prediction_column: str | None
    """The `essay_grade_predictions` column the served model fills (ordinal models also
    fill `<column>_probabilities`); None for skills, which have their own table."""
    confidence_decides_review: bool
    """Whether the model's confidence sets `confidence` and `needs_review` on the row."""

    def targets(self, values: ArrayLike) -> np.ndarray:
        """Label values as the recipe wants them: bands as floats, class codes as integers."""
        dtype = np.float64 if self.task == "regression" else np.int64
        return np.asarray(values).astype(dtype)

    def headline_metrics(
        self, y_true: ArrayLike, prediction: BundlePrediction, ratings: ArrayLike | None = None
    ) -> dict[str, float]:
        """The few test-split numbers logged as `test_<name>` with every registered version."""
        return self.headline(y_true, prediction, class_labels=self.class_labels, ratings=ratings)

    def compare_with_champion(
        self,
        y_true: ArrayLike,
        challenger: BundlePrediction,
        champion: BundlePrediction,
        *,
        champion_version: str,
        seed: int,
    ) -> ChampionComparison:
        """Challenger vs champion on the same rows, on the family's champion metric."""
        return compare_with_champion(
            y_true,
            getattr(challenger, self.compared_output),
            getattr(champion, self.compared_output),
            champion_version=champion_version,
            metric=self.champion_metric,
            n_classes=len(self.class_labels) or None,
            seed=seed,
        )

    def fit_baseline(
        self,
        name: str,
        X_train: np.ndarray,
        y_train: ArrayLike,
        X_test: np.ndarray,
        *,
        ratings_train: ArrayLike | None = None,
        seed: int,
    ) -> BaselinePrediction:
        """Baseline `name` (`baselines.BASELINES`) fitted on the training rows, predicting the
        test rows, as `bench quality` fits it: skills regress the rating (the richest label
        there is) and are judged on that score."""
        fit_target = ratings_train if ratings_train is not None else self.targets(y_train)
        task = "regression" if self.task == "binary" else self.task
        guess = BASELINES[name](
            X_train, fit_target, X_test, task, len(self.class_labels), seed=seed
        )
        if self.baseline_score_range is None:
            return guess
        return dataclasses.replace(guess, score=np.clip(guess.score, *self.baseline_score_range))

    def fit_baselines(
        self,
        X_train: np.ndarray,
        y_train: ArrayLike,
        X_test: np.ndarray,
        *,
        ratings_train: ArrayLike | None = None,
        seed: int,
    ) -> dict[str, BaselinePrediction]:
        """Every gated baseline (`gates.BASELINE_GATES`), by name (see `fit_baseline`)."""
        return {
            name: self.fit_baseline(
                name, X_train, y_train, X_test, ratings_train=ratings_train, seed=seed
            )
            for name in BASELINE_GATES.values()
        }

    def compare_with_baselines(
        self,
        y_true: ArrayLike,
        prediction: BundlePrediction,
        baselines: dict[str, BaselinePrediction],
        *,
        n_train: int,
        confidence: float,
        seed: int,
    ) -> BaselineComparison:
        """The model's margin over each baseline on the same rows, on `baseline_metric`."""
        return compare_with_baselines(
            y_true,
            getattr(prediction, self.compared_output),
            {name: getattr(guess, self.compared_output) for name, guess in baselines.items()},
            metric=self.baseline_metric,
            n_classes=len(self.class_labels) or None,
            n_train=n_train,
            confidence=confidence,
            seed=seed,
        )

    def fairness(
        self, evidence: HoldoutEvidence, *, min_n_per_group: int, seed: int
    ) -> FairnessReport:
        """SMD overall and per subgroup, agreement per subgroup and the length check, on the
        scores `fairness_scores` names."""
        rows = evidence.rows
        return fairness_report(
            self.fairness_scores(evidence),
            rows["essay_id"].to_list(),
            evidence.subgroups,
            rows["word_count"].to_numpy() if "word_count" in rows.columns else None,
            min_n_per_group=min_n_per_group,
            seed=seed,
        )

    def rater_agreement(
        self, evidence: HoldoutEvidence, *, min_n: int, seed: int
    ) -> RaterAgreement:
        """Human–human and human–machine agreement on the holdout essays scored twice, on the
        scores `rater_scores` names."""
        return rater_agreement(self.rater_scores(evidence), min_n=min_n, seed=seed)

    def parity(self, bundle: ModelBundle, X: np.ndarray) -> dict[str, Any]:
        """ONNX against native LightGBM on the rows of `X` (`onnx_export.parity_report`)."""
        onnx, native = bundle.predict(X), bundle.predict(X, native=True)
        return parity_report(
            getattr(native, self.parity_output),
            getattr(onnx, self.parity_output),
            kind=self.parity_kind,
        )


GRADE = Family(
    name="grade",
    task="ordinal",
    class_labels=SWEDISH_GRADES,
    label_asset="swedish_grade_labels",
    label_column="grade_ordinal",
    select_labels=label_as_target,
    training_asset="grade_model",
    description="Swedish grade F..A as an ordinal model: a stacked regression on the grade cut "
    "into 8 grades, with 8 calibrated probabilities; registered as huleedu-grade-sv.",
    train=_stacked("ordinal"),
    headline=ordinal_headline_metrics,
    report=_grade_report,
    champion_metric="qwk",
    compared_output="labels",
    baseline_metric="qwk",
    baseline_score_range=None,
    gates=grade_gates,
    fairness_scores=functools.partial(_class_index_scores, noun="grade"),
    rater_scores=_grade_raters,
    gaming_score=_served_label,
    gate_names=GRADE_GATE_NAMES,
    plots=_grade_plots,
    report_section="grade",
    reports_oracle_qwk=True,
    parity_kind="multiclass",
    parity_output="probabilities",
    prediction_column="grade",
    confidence_decides_review=True,
)
CEFR = Family(
    name="cefr",
    task="ordinal",
    class_labels=tuple(CEFR_LEVELS),
    label_asset="cefr_labels",
    label_column="cefr_ordinal",
    select_labels=label_as_target,
    training_asset="cefr_model",
    description="CEFR level A1..C2 as an ordinal model (a stacked regression cut into levels); "
    "registered as huleedu-cefr.",
    train=_stacked("ordinal"),
    headline=ordinal_headline_metrics,
    report=_cefr_report,
    champion_metric="qwk",
    compared_output="labels",
    baseline_metric="qwk",
    baseline_score_range=None,
    gates=cefr_gates,
    fairness_scores=functools.partial(_class_index_scores, noun="CEFR level"),
    rater_scores=_cefr_raters,
    gaming_score=_served_label,
    gate_names=CEFR_GATE_NAMES,
    plots=_cefr_plots,
    report_section="cefr",
    reports_oracle_qwk=False,
    parity_kind="multiclass",
    parity_output="probabilities",
    prediction_column="cefr",
    confidence_decides_review=False,
)
BAND = Family(
    name="band",
    task="regression",
    class_labels=(),
    label_asset="cefr_labels",
    label_column="ielts_band",
    select_labels=label_as_target,
    training_asset="ielts_band_model",
    description="IELTS band regressor, served on the half-band scale; registered as "
    "huleedu-ielts-band.",
    train=_stacked("regression"),
    headline=regression_headline_metrics,
    report=_band_report,
    champion_metric="qwk_half_band",
    compared_output="score",
    baseline_metric="mae",
    baseline_score_range=(BAND_MIN, BAND_MAX),
    gates=band_gates,
    fairness_scores=_band_scores,
    rater_scores=_band_raters,
    gaming_score=_served_label,
    gate_names=BAND_GATE_NAMES,
    plots=_band_plots,
    report_section="band",
    reports_oracle_qwk=False,
    parity_kind="regression",
    parity_output="score",
    prediction_column="ielts_band",
    confidence_decides_review=False,
)
SKILL = Family(
    name="skill",
    task="binary",
    class_labels=SKILL_CLASS_LABELS,
    label_asset="skill_labels",
    label_column="rating_{skill}",
    select_labels=rating_at_or_above_threshold,
    training_asset="skill_models",
    description="Seven models of P(high skill), rating >= the high-skill threshold: a stacked "
    "regression on the rating, Platt calibrated; registered as huleedu-skill-<skill>.",
    train=_stacked("binary"),
    headline=binary_headline_metrics,
    report=_skill_report,
    champion_metric="roc_auc",
    compared_output="score",
    baseline_metric="roc_auc",
    baseline_score_range=None,
    gates=skill_gates,
    fairness_scores=_skill_scores,
    rater_scores=_skill_raters,
    gaming_score=_skill_served_score,
    gate_names=SKILL_GATE_NAMES,
    plots=_skill_plots,
    report_section="skills",
    reports_oracle_qwk=False,
    parity_kind="binary",
    parity_output="score",
    prediction_column=None,
    confidence_decides_review=False,
)

FAMILIES: tuple[Family, ...] = (GRADE, CEFR, BAND, SKILL)
GATE_NAMES: dict[str, tuple[str, ...]] = {family.name: family.gate_names for family in FAMILIES}
"""Every gate each family's `gates` returns, in order (one Dagster check per name)."""


# --------------------------------------------------------------------------- registered models


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model name and the family it belongs to (and its skill, for skills)."""

    name: str
    family: Family
    skill: str | None = None

    @property
    def label_column(self) -> str:
        """The column of the family's label table this model learns from."""
        return self.family.label_column.format(skill=self.skill)

    @property
    def identity(self) -> ModelIdentity:
        family = self.family
        return ModelIdentity(self.name, family.name, family.task, family.class_labels)

    def select_labels(self, labels: pl.DataFrame, high_skill_threshold: float) -> pl.DataFrame:
        """The label table with a `target` column, null where the essay carries no label
        (rows are kept, so the labels' watermark is the table's)."""
        return self.family.select_labels(labels, self.label_column, high_skill_threshold)


REGISTERED_MODELS: tuple[RegisteredModel, ...] = (
    RegisteredModel(GRADE_MODEL, GRADE),
    RegisteredModel(CEFR_MODEL, CEFR),
    RegisteredModel(BAND_MODEL, BAND),
    *(RegisteredModel(SKILL_MODELS[skill], SKILL, skill) for skill in SKILLS),
)
_BY_NAME: dict[str, RegisteredModel] = {model.name: model for model in REGISTERED_MODELS}


def registered_model(model_name: str) -> RegisteredModel:
    try:
        return _BY_NAME[model_name]
    except KeyError:
        raise UnknownModelError(
            f"{model_name!r} is not a HuleEdu model; the models are {', '.join(ALL_MODELS)}"
        ) from None


def family_of(model_name: str) -> Family:
    return registered_model(model_name).family


def family_named(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise ValueError(f"no model family {name!r}; the families are grade, cefr, band, skill")


def models_of(family: Family) -> tuple[RegisteredModel, ...]:
    return tuple(model for model in REGISTERED_MODELS if model.family is family)


def identity_of(model_name: str) -> ModelIdentity:
    """What a bundle registered as `model_name` must say about itself."""
    return registered_model(model_name).identity


def fit_recipe(
    model: RegisteredModel, config: TrainingConfig, feature_columns: Sequence[str]
) -> Callable[[SplitData], ModelBundle]:
    """The family's training recipe bound to the model's name, classes and features; the
    bundle it returns records its family."""

    def fit(data: SplitData) -> ModelBundle:
        bundle = model.family.train(
            model_name=model.name,
            data=data,
            class_labels=model.family.class_labels,
            feature_columns=feature_columns,
            config=config,
        )
        return dataclasses.replace(bundle, family=model.family.name)

    return fit


__all__ = [
    "FAMILIES",
    "GATE_NAMES",
    "REGISTERED_MODELS",
    "Family",
    "HoldoutEvidence",
    "ModelIdentity",
    "RegisteredModel",
    "UnknownModelError",
    "family_named",
    "family_of",
    "fit_recipe",
    "identity_of",
    "models_of",
    "registered_model",
]
