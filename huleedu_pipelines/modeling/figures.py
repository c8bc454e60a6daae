"""The figures of a validation report, in the manner of ETS's RSMTool: computed, not rendered.

Each ``*_report`` function turns holdout labels and predictions into a dataclass of figures
(point estimates with percentile bootstrap intervals, agreement tables, calibration bins);
``compare_with_champion`` pairs a challenger with the champion on the same
rows, ``compare_with_baselines`` pairs the model with baselines the same way, and
``measure_latency`` times the served models. ``modeling.report`` renders these as
Markdown and ``modeling.gates`` judges them. Everything here is pure numpy on top of
``modeling.metrics``: no Dagster, no MLflow, no plotting (see ``modeling.plots``).

Conventions (written into every report, so a reader does not have to guess):

- Class labels are integer codes on the model's scale (grades F..A = 0..7, CEFR A1..C2 =
  0..5); IELTS bands are doubled to half-band codes 0..18 for kappa and agreement.
- QWK is computed on the full scale (``n_classes``), so an unobserved middle grade still
  counts as a step.
- SMD is (mean machine - mean human) / pooled SD, sqrt((s_h² + s_m²) / 2) with sample SDs.
  Subgroups (prompt, source, length band, essay attributes) are in ``modeling.fairness``,
  one mechanism for every family.
- ECE uses 15 equal-width bins of top-label confidence: the probability the model gave to
  the grade it predicted.
- A metric that is undefined on the data (kappa of a constant, AUC with one class) is
  reported as ``nan`` and shown as "n/a"; the gates treat it as a failure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from huleedu_pipelines.domain import CEFR_LEVELS, cefr_from_band, cefr_to_ordinal, check_skill
from huleedu_pipelines.modeling import metrics as m

CALIBRATION_BINS = 15
HALF_BAND_CLASSES = 19  # IELTS 0.0..9.0 in half bands
DEFAULT_N_BOOT = 1000
INTERVAL_LEVEL = 0.95
"""The level of every percentile bootstrap interval of a report figure (two-sided)."""

Interval = tuple[float, float]


# --------------------------------------------------------------------------- dataclasses


@dataclass
class GradeReport:
    """Holdout figures for an ordinal classifier (the Swedish grade model)."""

    metrics: dict[str, float]
    intervals: dict[str, Interval]
    class_labels: tuple[str, ...]
    confusion: np.ndarray
    per_grade: list[dict[str, Any]]
    predicted_share: np.ndarray
    reference_share: np.ndarray
    holdout_share: np.ndarray
    max_share_difference: float
    max_share_difference_label: str
    calibration: list[dict[str, float | int]]


@dataclass
class BandReport:
    """Holdout figures for the IELTS band regressor, on the half-band scale."""

    metrics: dict[str, float]
    intervals: dict[str, Interval]
    cefr_confusion: np.ndarray


@dataclass
class CefrReport:
    """Holdout figures for the CEFR classifier."""

    metrics: dict[str, float]
    intervals: dict[str, Interval]
    class_labels: tuple[str, ...]
    confusion: np.ndarray
    per_level: list[dict[str, Any]]
    calibration: list[dict[str, float | int]]


@dataclass
class SkillReport:
    """Holdout figures for one binary "high skill" model."""

    skill: str
    metrics: dict[str, float]
    intervals: dict[str, Interval]
    calibration: list[dict[str, float | int]]


@dataclass(frozen=True)
class LatencyReport:
    """Wall-clock latency of one call that runs every model, in milliseconds."""

    p50_single_ms: float
    p95_single_ms: float
    p50_batch50_ms: float
    p95_batch50_ms: float
    n_models: int
    repeats: int
    batch_size: int = 50


@dataclass(frozen=True)
class ChampionComparison:
    """Challenger minus champion on the same holdout rows (paired bootstrap).

    ``deltas`` maps a metric name to ``(delta, low, high)``; a positive delta means the
    challenger scores higher. ``drop`` is how much worse the challenger is on ``metric``
    (the gated one): champion minus challenger for higher-is-better metrics, challenger
    minus champion for errors; negative when the challenger is better.
    """

    champion_version: str
    metric: str
    deltas: dict[str, tuple[float, float, float]]
    drop: float
    n: int

    @property
    def qwk_drop(self) -> float:
        return self.drop

    @property
    def drop_interval(self) -> Interval:
        """The paired interval of ``drop``: the delta's, turned round where higher is better."""
        _, low, high = self.deltas.get(self.metric, (math.nan, math.nan, math.nan))
        return (-high, -low) if _COMPARISON_METRICS[self.metric][0] else (low, high)


@dataclass(frozen=True)
class BaselineMargin:
    """How much better the model is than one baseline on the same holdout rows.

    ``margin`` is model minus baseline for higher-is-better metrics and baseline minus model
    for errors (MAE), so a positive margin always means the model is better; ``low`` and
    ``high`` bound it with a paired bootstrap interval at the comparison's ``confidence``.
    """

    baseline: str
    value: float
    """The baseline's own metric on the holdout."""
    margin: float
    low: float
    high: float


@dataclass(frozen=True)
class BaselineComparison:
    """The model against baselines fitted on the training split, scored on the same holdout
    essays (`compare_with_baselines`). ``unavailable`` says why there is nothing to compare
    (no training rows); ``unfitted`` names a baseline that could not be fitted. The baseline
    gates fail on either."""

    metric: str
    higher_is_better: bool
    model_value: float
    n: int
    """Holdout essays both were scored on."""
    n_train: int
    """Training-split essays the baselines were fitted on."""
    confidence: float
    margins: dict[str, BaselineMargin]
    unavailable: str | None = None
    unfitted: dict[str, str] = field(default_factory=dict)
    """Baseline name -> why it could not be fitted (its gate fails with the reason)."""

    @classmethod
    def not_available(
        cls, metric: str, reason: str, *, n: int, n_train: int, confidence: float
    ) -> BaselineComparison:
        higher_is_better = _COMPARISON_METRICS[metric][0]
        return cls(metric, higher_is_better, math.nan, n, n_train, confidence, {}, reason)


# --------------------------------------------------------------------------- helpers


def _codes(values: ArrayLike, name: str, n_classes: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array) | (np.rint(array) != array))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} is {array[bad[0]]!r}, not an integer class code")
    outside = np.flatnonzero((array < 0) | (array >= n_classes))
    if outside.size:
        raise ValueError(
            f"{name} row {outside[0]} is {int(array[outside[0]])}, outside 0..{n_classes - 1}"
        )
    return array.astype(np.int64)


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have one row per essay: {described}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("a report needs at least one holdout row")
    return n


def _probabilities(probabilities: ArrayLike, n: int, n_classes: int) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (n, n_classes):
        raise ValueError(
            f"probabilities must have shape ({n}, {n_classes}) (rows x classes), got {probs.shape}"
        )
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if off.size:
        raise ValueError(
            f"probability row {off[0]} sums to {sums[off[0]]:.6f}, not 1; "
            "pass calibrated class probabilities"
        )
    return probs


def _ci(
    fn: Callable[..., float], *arrays: np.ndarray, seed: int, n_boot: int
) -> tuple[float, Interval]:
    result = m.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed, alpha=1 - INTERVAL_LEVEL)
    return result.estimate, (result.low, result.high)


def _qwk(n_classes: int) -> Callable[[Any, Any], float]:
    def qwk(y_true: Any, y_pred: Any) -> float:
        return m.quadratic_weighted_kappa(y_true, y_pred, n_classes)

    return qwk


# --------------------------------------------------------------------------- grade


def grade_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    y_pred: ArrayLike,
    *,
    class_labels: Sequence[str],
    reference_labels: ArrayLike,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> GradeReport:
    """Agreement, calibration and distribution figures for an ordinal classifier.

    ``y_pred`` is the model's decision (it need not be the argmax of ``probabilities``, e.g.
    after ordinal decoding); calibration is judged on the probability of that decision.
    ``reference_labels`` are the training labels, the distribution predictions should
    follow; per-subgroup figures are ``modeling.fairness``'s and human–human agreement is
    ``modeling.rater_agreement``'s.
    """
    labels = tuple(class_labels)
    k = len(labels)
    if k < 2:
        raise ValueError("class_labels must name at least two classes")
    true = _codes(y_true, "y_true", k)
    pred = _codes(y_pred, "y_pred", k)
    n = _same_length(y_true=true, y_pred=pred)
    probs = _probabilities(probabilities, n, k)
    reference = _codes(reference_labels, "reference_labels", k)
    if reference.size == 0:
        raise ValueError("reference_labels is empty; pass the training labels")
    qwk_fn = _qwk(k)
    qwk, qwk_ci = _ci(qwk_fn, true, pred, seed=seed, n_boot=n_boot)
    exact, exact_ci = _ci(m.exact_agreement, true, pred, seed=seed + 1, n_boot=n_boot)
    adjacent, adjacent_ci = _ci(m.adjacent_agreement, true, pred, seed=seed + 2, n_boot=n_boot)
    mae, mae_ci = _ci(m.mean_absolute_error, true, pred, seed=seed + 3, n_boot=n_boot)
    metrics = {
        "qwk": qwk,
        "qwk_ci_low": qwk_ci[0],
        "qwk_ci_high": qwk_ci[1],
        "exact_agreement": exact,
        "adjacent_agreement": adjacent,
        "accuracy": exact,
        "mae": mae,
        "macro_f1": m.macro_f1(true, pred, k),
        "brier": m.brier_score(true, probs),
        "ece": m.expected_calibration_error(true, probs, CALIBRATION_BINS, y_pred=pred),
        "ece_sampling_floor": m.ece_sampling_floor(
            probs, CALIBRATION_BINS, y_pred=pred, seed=seed + 4
        ),
        "rps": m.ranked_probability_score(true, probs),
        "smd": m.standardized_mean_difference(true, pred),
        "n": float(n),
    }
    metrics["ece_beyond_sampling"] = max(0.0, metrics["ece"] - metrics["ece_sampling_floor"])
    intervals = {
        "qwk": qwk_ci,
        "exact_agreement": exact_ci,
        "adjacent_agreement": adjacent_ci,
        "mae": mae_ci,
    }

    per_grade = [
        {"grade": labels[int(row["label"])], **row}
        for row in m.per_class_precision_recall(true, pred, k)
    ]

    predicted_share = m.class_shares(pred, k)
    reference_share = m.class_shares(reference, k)
    differences = np.abs(predicted_share - reference_share)
    worst = int(np.argmax(differences))

    return GradeReport(
        metrics=metrics,
        intervals=intervals,
        class_labels=labels,
        confusion=m.confusion_matrix(true, pred, k),
        per_grade=per_grade,
        predicted_share=predicted_share,
        reference_share=reference_share,
        holdout_share=m.class_shares(true, k),
        max_share_difference=m.max_class_share_difference(reference, pred, k),
        max_share_difference_label=labels[worst],
        calibration=m.calibration_table(true, probs, CALIBRATION_BINS, y_pred=pred),
    )


# --------------------------------------------------------------------------- band


def _half_band_codes(bands: ArrayLike, name: str) -> np.ndarray:
    """Bands on 0..9 as half-band codes 0..18, rounding predictions to the nearest half band."""
    values = np.asarray(bands, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} is {values[bad[0]]!r}; drop rows without a band")
    return np.clip(np.rint(values * 2), 0, HALF_BAND_CLASSES - 1).astype(np.int64)


def _cefr_codes_from_half_bands(codes: np.ndarray) -> np.ndarray:
    lookup = np.array(
        [cefr_to_ordinal(cefr_from_band(code / 2)) for code in range(HALF_BAND_CLASSES)]
    )
    return lookup[codes]


def band_report(
    true_bands: ArrayLike,
    predicted_bands: ArrayLike,
    *,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> BandReport:
    """Error, half-band agreement and CEFR-through-band agreement for the IELTS model.

    MAE and RMSE use the predictions as given (a regressor may predict 6.3); kappa and
    agreement round them to the nearest half band first, as a band would be reported.
    ``cefr_from_band_*`` compare the CEFR level of the true band with that of the predicted
    band (``domain.cefr_from_band``), i.e. how well the band model serves CEFR.
    """
    true = np.asarray(true_bands, dtype=np.float64)
    pred = np.asarray(predicted_bands, dtype=np.float64)
    true_codes = _half_band_codes(true, "true_bands")
    pred_codes = _half_band_codes(pred, "predicted_bands")
    if np.any(true_codes != true * 2):
        row = int(np.flatnonzero(true_codes != true * 2)[0])
        raise ValueError(f"true_bands row {row} is {true[row]!r}, not a half band in 0..9")
    n = _same_length(true_bands=true, predicted_bands=pred)

    mae, mae_ci = _ci(m.mean_absolute_error, true, pred, seed=seed, n_boot=n_boot)
    qwk_fn = _qwk(HALF_BAND_CLASSES)
    qwk, qwk_ci = _ci(qwk_fn, true_codes, pred_codes, seed=seed + 1, n_boot=n_boot)
    true_cefr = _cefr_codes_from_half_bands(true_codes)
    pred_cefr = _cefr_codes_from_half_bands(pred_codes)
    k_cefr = len(CEFR_LEVELS)
    metrics = {
        "mae": mae,
        "rmse": m.rmse(true, pred),
        "qwk_half_band": qwk,
        "exact_half_band": m.exact_agreement(true_codes, pred_codes),
        "within_half_band": m.adjacent_agreement(true_codes, pred_codes, tolerance=1.0),
        "cefr_from_band_macro_f1": m.macro_f1(true_cefr, pred_cefr, k_cefr),
        "cefr_from_band_qwk": m.quadratic_weighted_kappa(true_cefr, pred_cefr, k_cefr),
        "smd": m.standardized_mean_difference(true, pred),
        "n": float(n),
    }
    return BandReport(
        metrics=metrics,
        intervals={"mae": mae_ci, "qwk_half_band": qwk_ci},
        cefr_confusion=m.confusion_matrix(true_cefr, pred_cefr, k_cefr),
    )


# --------------------------------------------------------------------------- CEFR


def cefr_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    y_pred: ArrayLike,
    *,
    derived_from_band: ArrayLike | None = None,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> CefrReport:
    """Agreement and calibration for the CEFR classifier (codes 0..5 = A1..C2).

    With ``derived_from_band`` (the CEFR code of each row's *predicted* IELTS band) the
    report also says how often the two routes to a CEFR level agree.
    """
    labels = tuple(CEFR_LEVELS)
    k = len(labels)
    true = _codes(y_true, "y_true", k)
    pred = _codes(y_pred, "y_pred", k)
    n = _same_length(y_true=true, y_pred=pred)
    probs = _probabilities(probabilities, n, k)

    qwk, qwk_ci = _ci(_qwk(k), true, pred, seed=seed, n_boot=n_boot)
    f1, f1_ci = _ci(lambda a, b: m.macro_f1(a, b, k), true, pred, seed=seed + 1, n_boot=n_boot)
    metrics = {
        "qwk": qwk,
        "macro_f1": f1,
        "accuracy": m.exact_agreement(true, pred),
        "adjacent_agreement": m.adjacent_agreement(true, pred),
        "ece": m.expected_calibration_error(true, probs, CALIBRATION_BINS, y_pred=pred),
        "brier": m.brier_score(true, probs),
        "n": float(n),
    }
    if derived_from_band is not None:
        derived = _codes(derived_from_band, "derived_from_band", k)
        _same_length(y_pred=pred, derived_from_band=derived)
        metrics["band_route_exact_agreement"] = m.exact_agreement(pred, derived)
        metrics["band_route_qwk"] = m.quadratic_weighted_kappa(pred, derived, k)
    per_level = [
        {"level": labels[int(row["label"])], **row}
        for row in m.per_class_precision_recall(true, pred, k)
    ]
    return CefrReport(
        metrics=metrics,
        intervals={"qwk": qwk_ci, "macro_f1": f1_ci},
        class_labels=labels,
        confusion=m.confusion_matrix(true, pred, k),
        per_level=per_level,
        calibration=m.calibration_table(true, probs, CALIBRATION_BINS, y_pred=pred),
    )


# --------------------------------------------------------------------------- skills


def skill_report(
    skill: str,
    is_high: ArrayLike,
    scores: ArrayLike,
    ratings: ArrayLike,
    *,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> SkillReport:
    """Discrimination, correlation with teachers and calibration of one skill model.

    ``is_high`` is the binary label (mean rating >= threshold), ``scores`` the model's
    P(high) in 0..1 and ``ratings`` the mean teacher rating (1..5) the label came from;
    Pearson r is between the score and that rating.
    """
    check_skill(skill)
    label = np.asarray(is_high, dtype=np.float64)
    score = np.asarray(scores, dtype=np.float64)
    rating = np.asarray(ratings, dtype=np.float64)
    n = _same_length(is_high=label, scores=score, ratings=rating)
    if not np.all((label == 0) | (label == 1)):
        raise ValueError("is_high must hold 0 or 1 for every row")
    if np.any(~np.isfinite(score)) or score.min() < 0 or score.max() > 1:
        raise ValueError("scores must be probabilities in 0..1 (no missing values)")

    auc, auc_ci = _ci(m.roc_auc, label, score, seed=seed, n_boot=n_boot)
    r, r_ci = _ci(m.pearson_r, score, rating, seed=seed + 1, n_boot=n_boot)
    metrics = {
        "roc_auc": auc,
        "pearson_r": r,
        "brier": m.brier_score(label, score),
        "ece": m.expected_calibration_error(label, score, CALIBRATION_BINS),
        "n": float(n),
        "positive_share": float(label.mean()),
    }
    return SkillReport(
        skill=skill,
        metrics=metrics,
        intervals={"roc_auc": auc_ci, "pearson_r": r_ci},
        calibration=m.calibration_table(label, score, CALIBRATION_BINS),
    )


# --------------------------------------------------------------------------- latency


def measure_latency(
    predict_all: Callable[[np.ndarray], object],
    features: np.ndarray,
    *,
    repeats: int = 50,
    batch_size: int = 50,
    seed: int = 0,
    n_models: int = 1,
) -> LatencyReport:
    """Time ``predict_all`` (every served model, end to end) on single rows and on batches.

    After three warm-up calls, each of ``repeats`` timings calls ``predict_all`` on one
    random row (shape ``(1, n_features)``) and on ``batch_size`` random rows (drawn with
    replacement when the matrix is smaller). Prints nothing and asserts nothing: the
    gates compare the percentiles with the thresholds.
    """
    X = np.asarray(features)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (rows, features) matrix, got {X.shape}")
    if repeats < 1 or batch_size < 1:
        raise ValueError("repeats and batch_size must be at least 1")
    rng = np.random.default_rng(seed)
    for _ in range(3):
        predict_all(X[:1])
        predict_all(X[rng.integers(0, X.shape[0], size=batch_size)])

    def timed(rows: np.ndarray) -> float:
        batch = X[rows]
        start = time.perf_counter()
        predict_all(batch)
        return (time.perf_counter() - start) * 1000.0

    single = [timed(rng.integers(0, X.shape[0], size=1)) for _ in range(repeats)]
    batched = [timed(rng.integers(0, X.shape[0], size=batch_size)) for _ in range(repeats)]
    p50_single, p95_single = np.percentile(single, [50, 95])
    p50_batch, p95_batch = np.percentile(batched, [50, 95])
    return LatencyReport(
        p50_single_ms=float(p50_single),
        p95_single_ms=float(p95_single),
        p50_batch50_ms=float(p50_batch),
        p95_batch50_ms=float(p95_batch),
        n_models=n_models,
        repeats=repeats,
        batch_size=batch_size,
    )


# --------------------------------------------------------------------------- champion

# gated metric -> (higher is better, metrics compared alongside it; the gated one first)
_COMPARISON_METRICS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "qwk": (True, ("qwk", "exact_agreement", "adjacent_agreement", "mae")),
    "qwk_half_band": (True, ("qwk_half_band", "within_half_band", "mae")),
    "roc_auc": (True, ("roc_auc",)),
    "pearson_r": (True, ("pearson_r",)),
    "mae": (False, ("mae",)),
}


def _comparison_fn(name: str, n_classes: int | None) -> Callable[[Any, Any], float]:
    def half(values: Any) -> np.ndarray:
        return _half_band_codes(values, "bands")

    functions: dict[str, Callable[[Any, Any], float]] = {
        "qwk": lambda a, b: m.quadratic_weighted_kappa(a, b, n_classes),
        "exact_agreement": m.exact_agreement,
        "adjacent_agreement": m.adjacent_agreement,
        "mae": m.mean_absolute_error,
        "qwk_half_band": lambda a, b: m.quadratic_weighted_kappa(
            half(a), half(b), HALF_BAND_CLASSES
        ),
        "within_half_band": lambda a, b: m.adjacent_agreement(half(a), half(b)),
        "roc_auc": m.roc_auc,
        "pearson_r": m.pearson_r,
    }
    return functions[name]


def compare_with_champion(
    y_true: ArrayLike,
    challenger_pred: ArrayLike,
    champion_pred: ArrayLike,
    *,
    champion_version: str,
    metric: str = "qwk",
    n_classes: int | None = None,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> ChampionComparison:
    """Challenger vs champion on the same holdout rows, each delta with a paired interval.

    ``metric`` is the gated one: ``qwk`` (grades, CEFR codes; pass ``n_classes`` so every
    resample uses the full scale), ``qwk_half_band`` (raw IELTS bands), ``roc_auc`` or
    ``pearson_r`` (skills: ``y_true`` is the 0/1 label or the mean rating, predictions are
    scores), or ``mae``. Related agreement metrics are compared alongside for the report.
    """
    if metric not in _COMPARISON_METRICS:
        raise ValueError(
            f"unknown comparison metric {metric!r}; use one of {', '.join(_COMPARISON_METRICS)}"
        )
    true = np.asarray(y_true, dtype=np.float64)
    challenger = np.asarray(challenger_pred, dtype=np.float64)
    champion = np.asarray(champion_pred, dtype=np.float64)
    n = _same_length(y_true=true, challenger_pred=challenger, champion_pred=champion)
    higher_is_better, names = _COMPARISON_METRICS[metric]
    deltas: dict[str, tuple[float, float, float]] = {}
    for offset, name in enumerate(names):
        fn = _comparison_fn(name, n_classes)
        result = m.paired_bootstrap_delta(
            fn,
            true,
            challenger,
            champion,
            n_boot=n_boot,
            seed=seed + offset,
            alpha=1 - INTERVAL_LEVEL,
        )
        deltas[name] = (result.estimate, result.low, result.high)
    delta = deltas[metric][0]
    return ChampionComparison(
        champion_version=champion_version,
        metric=metric,
        deltas=deltas,
        drop=-delta if higher_is_better else delta,
        n=n,
    )


def compare_with_baselines(
    y_true: ArrayLike,
    model_pred: ArrayLike,
    baseline_preds: Mapping[str, ArrayLike],
    *,
    metric: str,
    n_classes: int | None = None,
    n_train: int,
    confidence: float,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> BaselineComparison:
    """The model's margin over each baseline on ``metric``, with a paired bootstrap interval
    (the same essays resampled for both, as in ``compare_with_champion``).

    ``metric`` is one of the champion comparison's (``qwk`` on class codes, ``mae``,
    ``roc_auc`` ...); ``confidence`` is the two-sided level of the intervals, so 0.90 makes
    the lower end a one-sided 95% bound.
    """
    if metric not in _COMPARISON_METRICS:
        raise ValueError(
            f"unknown comparison metric {metric!r}; use one of {', '.join(_COMPARISON_METRICS)}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    true = np.asarray(y_true, dtype=np.float64)
    model = np.asarray(model_pred, dtype=np.float64)
    n = _same_length(y_true=true, model_pred=model)
    higher_is_better = _COMPARISON_METRICS[metric][0]
    fn = _comparison_fn(metric, n_classes)
    margins = {}
    for offset, (name, predicted) in enumerate(baseline_preds.items()):
        baseline = np.asarray(predicted, dtype=np.float64)
        _same_length(y_true=true, **{name: baseline})
        better, worse = (model, baseline) if higher_is_better else (baseline, model)
        result = m.paired_bootstrap_delta(
            fn, true, better, worse, n_boot=n_boot, seed=seed + offset, alpha=1 - confidence
        )
        margins[name] = BaselineMargin(
            name, fn(true, baseline), result.estimate, result.low, result.high
        )
    return BaselineComparison(
        metric=metric,
        higher_is_better=higher_is_better,
        model_value=fn(true, model),
        n=n,
        n_train=n_train,
        confidence=confidence,
        margins=margins,
    )


__all__ = [
    "CALIBRATION_BINS",
    "DEFAULT_N_BOOT",
    "HALF_BAND_CLASSES",
    "INTERVAL_LEVEL",
    "BandReport",
    "BaselineComparison",
    "BaselineMargin",
    "CefrReport",
    "ChampionComparison",
    "GradeReport",
    "Interval",
    "LatencyReport",
    "SkillReport",
    "band_report",
    "cefr_report",
    "compare_with_baselines",
    "compare_with_champion",
    "grade_report",
    "measure_latency",
    "skill_report",
]
