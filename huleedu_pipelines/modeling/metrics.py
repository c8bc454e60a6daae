"""Agreement, calibration, ranking and drift metrics for essay-scoring models.

Pure numpy (scipy only for ROC AUC ranks). Ordinal labels are integer codes: with
``n_classes`` given the scale is ``0..n_classes-1``; without it the scale runs from the
smallest to the largest code seen in either array, so a missing middle grade still counts
as a step (unlike ``sklearn.metrics.cohen_kappa_score``, which only knows observed labels).
Half-step scales (IELTS bands, skill ratings) should be doubled to integers first.

Undefined values (kappa or correlation of a constant, AUC with one class) are ``nan``,
never a silently substituted number: a gate comparing ``nan >= threshold`` fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class BootstrapInterval(NamedTuple):
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float


# --------------------------------------------------------------------------- validation


def _as_1d(values: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} missing or infinite values (first at row {bad[0]}); "
            "drop unlabelled rows before computing metrics"
        )
    return array


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    true = _as_1d(y_true, "y_true")
    pred = _as_1d(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} rows but y_pred has {pred.size}")
    if true.size == 0:
        raise ValueError("metrics need at least one row")
    return true, pred


def _as_codes(values: FloatArray, name: str) -> IntArray:
    codes = np.rint(values)
    off = np.flatnonzero(codes != values)
    if off.size:
        raise ValueError(
            f"{name} must hold integer class codes; row {off[0]} is {values[off[0]]!r} "
            "(double half-step scales such as IELTS bands before passing them)"
        )
    return codes.astype(np.int64)


def _ordinal_pair(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None
) -> tuple[IntArray, IntArray, int, int]:
    """Integer codes shifted to start at 0, plus the scale's offset and size."""
    true, pred = _pair(y_true, y_pred)
    true_codes = _as_codes(true, "y_true")
    pred_codes = _as_codes(pred, "y_pred")
    if n_classes is None:
        low = int(min(true_codes.min(), pred_codes.min()))
        size = int(max(true_codes.max(), pred_codes.max())) - low + 1
    else:
        low, size = 0, int(n_classes)
        for name, codes in (("y_true", true_codes), ("y_pred", pred_codes)):
            outside = np.flatnonzero((codes < 0) | (codes >= size))
            if outside.size:
                raise ValueError(
                    f"{name} row {outside[0]} is {codes[outside[0]]}, outside 0..{size - 1}"
                )
    return true_codes - low, pred_codes - low, low, size


def _as_probs(probs: ArrayLike, n_rows: int) -> FloatArray:
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim not in (1, 2) or array.shape[0] != n_rows:
        raise ValueError(f"probabilities must have {n_rows} rows, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("probabilities contain missing or infinite values")
    if array.min() < -1e-9 or array.max() > 1 + 1e-9:
        raise ValueError("probabilities must lie in [0, 1]")
    return array


# --------------------------------------------------------------------------- agreement


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None
) -> IntArray:
    """Counts with true classes as rows and predicted classes as columns."""
    true, pred, _, size = _ordinal_pair(y_true, y_pred, n_classes)
    return np.bincount(true * size + pred, minlength=size * size).reshape(size, size)


def quadratic_weighted_kappa(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None
) -> float:
    """Cohen's kappa with quadratic weights; ``nan`` when chance disagreement is zero."""
    observed = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    size = observed.shape[0]
    if size == 1:
        return float("nan")
    steps = np.arange(size, dtype=np.float64)
    weights = (steps[:, None] - steps[None, :]) ** 2
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    chance = float((weights * expected).sum())
    if chance == 0.0:
        return float("nan")
    return 1.0 - float((weights * observed).sum()) / chance


def exact_agreement(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    true, pred = _pair(y_true, y_pred)
    return float(np.mean(true == pred))


def adjacent_agreement(y_true: ArrayLike, y_pred: ArrayLike, tolerance: float = 1.0) -> float:
    """Share of rows whose prediction is within ``tolerance`` steps (default one grade)."""
    true, pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(true - pred) <= tolerance + 1e-12))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    true, pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    true, pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((true - pred) ** 2)))


def per_class_precision_recall(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None
) -> list[dict[str, float | int]]:
    """One row per class: precision, recall, F1 (0 when undefined), support, predicted count.

    ``label`` is the class code on the caller's scale.
    """
    true, pred, low, size = _ordinal_pair(y_true, y_pred, n_classes)
    matrix = np.bincount(true * size + pred, minlength=size * size).reshape(size, size)
    rows: list[dict[str, float | int]] = []
    for k in range(size):
        hits = int(matrix[k, k])
        support = int(matrix[k].sum())
        predicted = int(matrix[:, k].sum())
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "label": k + low,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
                "predicted": predicted,
            }
        )
    return rows


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over classes.

    Without ``n_classes`` only classes seen in either array count, as in
    ``sklearn.metrics.f1_score(average="macro", zero_division=0)``.
    """
    rows = per_class_precision_recall(y_true, y_pred, n_classes)
    if n_classes is None:
        rows = [row for row in rows if row["support"] or row["predicted"]]
    return float(np.mean([row["f1"] for row in rows]))


def class_shares(labels: ArrayLike, n_classes: int) -> FloatArray:
    codes, _, _, size = _ordinal_pair(labels, labels, n_classes)
    return np.bincount(codes, minlength=size) / codes.size


def max_class_share_difference(reference: ArrayLike, predicted: ArrayLike, n_classes: int) -> float:
    """Largest absolute difference between two label distributions, as a share (0.10 = 10 points).

    The arrays may have different lengths (e.g. teacher grades vs this week's predictions).
    """
    return float(
        np.max(np.abs(class_shares(reference, n_classes) - class_shares(predicted, n_classes)))
    )


def standardized_mean_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    method: str = "pooled",
    population_true_sd: float | None = None,
    population_pred_sd: float | None = None,
    ddof: int = 1,
) -> float:
    """(mean(pred) - mean(true)) / sd, with RSMTool's denominators.

    ``pooled`` (RSMTool's choice for the whole evaluation set): sqrt((sd_true² + sd_pred²)/2);
    ``unpooled``: sd_true; ``williamson`` (subgroups): the pooled *population* sds passed in.
    """
    true, pred = _pair(y_true, y_pred)
    numerator = float(pred.mean() - true.mean())
    if method == "pooled":
        denominator = pooled_sd(true, pred, ddof=ddof)
    elif method == "unpooled":
        denominator = true.std(ddof=ddof)
    elif method == "williamson":
        if population_true_sd is None or population_pred_sd is None:
            raise ValueError("method='williamson' needs population_true_sd and population_pred_sd")
        denominator = np.sqrt((population_true_sd**2 + population_pred_sd**2) / 2)
    else:
        raise ValueError(f"unknown SMD method {method!r}; use pooled, unpooled or williamson")
    return float("nan") if denominator == 0 else numerator / float(denominator)


def pooled_sd(y_true: ArrayLike, y_pred: ArrayLike, *, ddof: int = 1) -> float:
    """sqrt((sd_true² + sd_pred²) / 2), the denominator of the pooled SMD (sample SDs by
    default); ``nan`` with fewer than ``ddof + 1`` rows."""
    true, pred = _pair(y_true, y_pred)
    if true.size <= ddof:
        return float("nan")
    return float(np.sqrt((true.std(ddof=ddof) ** 2 + pred.std(ddof=ddof) ** 2) / 2))


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination of ``y_pred`` for ``y_true``: 1 − Σ(t − p)² / Σ(t − mean t)²,
    as RSMTool's R² and ``sklearn.metrics.r2_score``; ``nan`` when ``y_true`` is constant.

    Not the square of Pearson r: a shifted or rescaled prediction lowers it, and it is
    negative when the prediction does worse than the human mean would."""
    true, pred = _pair(y_true, y_pred)
    total = float(((true - true.mean()) ** 2).sum())
    if total == 0.0:
        return float("nan")
    return 1.0 - float(((true - pred) ** 2).sum()) / total


class AgreementSummary(NamedTuple):
    """One scorer's agreement with the human scores on the same essays (`agreement_summary`).

    ``pearson_r``, ``r2``, the means, SDs and ``smd`` use the scores as given; ``qwk``,
    ``exact_agreement`` and ``adjacent_agreement`` (within one code) use the integer codes."""

    n: int
    human_mean: float
    machine_mean: float
    human_sd: float
    machine_sd: float
    pooled_sd: float
    pearson_r: float
    r2: float
    qwk: float
    exact_agreement: float
    adjacent_agreement: float
    smd: float


def agreement_summary(
    human: ArrayLike,
    machine: ArrayLike,
    human_codes: ArrayLike,
    machine_codes: ArrayLike,
    n_classes: int,
) -> AgreementSummary:
    """RSMTool's agreement statistics of ``machine`` (any second scorer) with ``human``:
    correlation, R², SMD (pooled, sample SDs) on the scores and QWK, exact and adjacent
    agreement on their codes ``0..n_classes-1``."""
    true, pred = _pair(human, machine)
    true_codes, pred_codes = _pair(human_codes, machine_codes)
    if true_codes.size != true.size:
        raise ValueError(f"{true.size} scores but {true_codes.size} codes; pass one per essay")
    several = true.size > 1
    return AgreementSummary(
        n=int(true.size),
        human_mean=float(true.mean()),
        machine_mean=float(pred.mean()),
        human_sd=float(true.std(ddof=1)) if several else float("nan"),
        machine_sd=float(pred.std(ddof=1)) if several else float("nan"),
        pooled_sd=pooled_sd(true, pred),
        pearson_r=pearson_r(true, pred),
        r2=r2_score(true, pred),
        qwk=quadratic_weighted_kappa(true_codes, pred_codes, n_classes),
        exact_agreement=exact_agreement(true_codes, pred_codes),
        adjacent_agreement=adjacent_agreement(true_codes, pred_codes),
        smd=standardized_mean_difference(true, pred) if several else float("nan"),
    )


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    a, b = _pair(x, y)
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float("nan") if denominator == 0 else float((a * b).sum() / denominator)


def partial_correlation(x: ArrayLike, y: ArrayLike, control: ArrayLike) -> float:
    """Pearson r of ``x`` and ``y`` with ``control`` held fixed (linearly partialled out):
    (r_xy − r_xc·r_yc) / sqrt((1 − r_xc²)(1 − r_yc²)); ``nan`` when either is constant given
    the control."""
    r_xy, r_xc, r_yc = pearson_r(x, y), pearson_r(x, control), pearson_r(y, control)
    denominator = np.sqrt((1 - r_xc**2) * (1 - r_yc**2))
    if not np.isfinite(denominator) or denominator == 0:
        return float("nan")
    return float((r_xy - r_xc * r_yc) / denominator)


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties)."""
    from scipy.stats import rankdata

    true, score = _pair(y_true, scores)
    if not np.all((true == 0) | (true == 1)):
        raise ValueError("roc_auc needs binary y_true in {0, 1}")
    positives = int(true.sum())
    negatives = true.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    u = ranks[true == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


# --------------------------------------------------------------------------- probabilities


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Binary (1-D P(positive)) or multiclass (n, K) Brier score.

    Multiclass: mean over rows of sum_k (p_k - onehot_k)²; ranges 0..2.
    """
    true = _as_1d(y_true, "y_true")
    p = _as_probs(probs, true.size)
    if p.ndim == 1:
        if not np.all((true == 0) | (true == 1)):
            raise ValueError("binary brier_score needs y_true in {0, 1}")
        return float(np.mean((p - true) ** 2))
    codes = _as_codes(true, "y_true")
    onehot = np.zeros_like(p)
    onehot[np.arange(codes.size), codes] = 1.0
    return float(np.mean(((p - onehot) ** 2).sum(axis=1)))


def ranked_probability_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Ordinal RPS: mean over rows of sum_k (CDF_pred_k - CDF_obs_k)² / (K - 1); 0..1."""
    true = _as_1d(y_true, "y_true")
    p = _as_probs(probs, true.size)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError("ranked_probability_score needs an (n, K>=2) probability matrix")
    codes = _as_codes(true, "y_true")
    k = p.shape[1]
    predicted_cdf = np.cumsum(p, axis=1)[:, :-1]
    observed_cdf = (codes[:, None] <= np.arange(k - 1)[None, :]).astype(np.float64)
    return float(np.mean(((predicted_cdf - observed_cdf) ** 2).sum(axis=1) / (k - 1)))


def calibration_table(
    y_true: ArrayLike,
    probs: ArrayLike,
    n_bins: int = 15,
    y_pred: ArrayLike | None = None,
) -> list[dict[str, float | int]]:
    """Equal-width reliability bins, the data behind ECE and a reliability diagram.

    ``probs`` 1-D: binary, confidence = P(positive), outcome = y_true.
    ``probs`` (n, K): top-label, confidence = probability of the predicted class
    (argmax, or ``y_pred`` when the decision rule is not argmax), outcome = correct.
    Bin i covers (i/n_bins, (i+1)/n_bins]; the first bin includes 0. Empty bins are kept
    with count 0 so plots line up.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    true = _as_1d(y_true, "y_true")
    p = _as_probs(probs, true.size)
    if p.ndim == 1:
        confidence, outcome = p, true
    else:
        predicted = (
            np.argmax(p, axis=1)
            if y_pred is None
            else _as_codes(_as_1d(y_pred, "y_pred"), "y_pred")
        )
        confidence = p[np.arange(true.size), predicted]
        outcome = (predicted == _as_codes(true, "y_true")).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    outcome_sum = np.bincount(index, weights=outcome, minlength=n_bins)
    rows: list[dict[str, float | int]] = []
    for i in range(n_bins):
        n = int(counts[i])
        rows.append(
            {
                "bin_low": float(edges[i]),
                "bin_high": float(edges[i + 1]),
                "count": n,
                "mean_confidence": float(confidence_sum[i] / n) if n else float("nan"),
                "observed_rate": float(outcome_sum[i] / n) if n else float("nan"),
            }
        )
    return rows


def expected_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    n_bins: int = 15,
    y_pred: ArrayLike | None = None,
) -> float:
    """Count-weighted mean |observed rate - mean confidence| over ``calibration_table`` bins."""
    rows = calibration_table(y_true, probs, n_bins, y_pred)
    total = sum(int(row["count"]) for row in rows)
    return float(
        sum(
            row["count"] * abs(row["observed_rate"] - row["mean_confidence"])
            for row in rows
            if row["count"]
        )
        / total
    )


def ece_sampling_floor(
    probs: ArrayLike,
    n_bins: int = 15,
    y_pred: ArrayLike | None = None,
    *,
    n_sim: int = 200,
    seed: int,
) -> float:
    """The ECE a perfectly calibrated model with these probabilities would show on a sample
    of this size: outcomes are drawn from the probabilities themselves, `n_sim` times.

    Binned ECE is biased upwards in small samples (about 0.08 for a perfectly calibrated
    8-class model on 190 essays), so a fixed ECE threshold would fail every honest model on
    a small holdout. `ECE - floor` measures the miscalibration beyond sampling noise.
    """
    p = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_sim):
        if p.ndim == 1:
            outcomes = (rng.random(p.size) < p).astype(np.float64)
        else:
            cumulative = np.cumsum(p, axis=1)
            draws = rng.random((p.shape[0], 1)) * cumulative[:, -1:]
            outcomes = (draws > cumulative).sum(axis=1).astype(np.float64)
        values.append(expected_calibration_error(outcomes, p, n_bins, y_pred))
    return float(np.mean(values))


def normalized_entropy_confidence(probs: ArrayLike) -> FloatArray:
    """Per-row confidence 1 - H(p)/log(K): 1 for a one-hot row, 0 for a uniform one."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"need an (n, K>=2) probability matrix, got shape {p.shape}")
    safe = np.where(p > 0, p, 1.0)
    entropy = -(p * np.log(safe)).sum(axis=1)
    return np.clip(1.0 - entropy / np.log(p.shape[1]), 0.0, 1.0)


# --------------------------------------------------------------------------- uncertainty


def _indexable(arrays: Sequence[ArrayLike]) -> list[np.ndarray]:
    converted = [np.asarray(a) for a in arrays]
    if not converted:
        raise ValueError("bootstrap needs at least one array")
    n = converted[0].shape[0]
    for i, array in enumerate(converted):
        if array.shape[0] != n:
            raise ValueError(f"array {i} has {array.shape[0]} rows, expected {n}")
    return converted


def _interval(estimate: float, replicates: list[float], alpha: float) -> BootstrapInterval:
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return BootstrapInterval(estimate, float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(estimate, float(low), float(high))


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    seed: int,
    alpha: float = 0.05,
) -> BootstrapInterval:
    """Percentile bootstrap interval of ``metric_fn(*arrays)``, resampling rows jointly.

    Resamples where the metric is undefined (``nan``) are left out of the percentiles.
    """
    data = _indexable(arrays)
    estimate = float(metric_fn(*data))
    rng = np.random.default_rng(seed)
    n = data[0].shape[0]
    replicates = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, size=n)
        replicates.append(float(metric_fn(*(a[rows] for a in data))))
    return _interval(estimate, replicates, alpha)


def paired_bootstrap_delta(
    metric_fn: Callable[[Any, Any], float],
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int,
    alpha: float = 0.05,
) -> BootstrapInterval:
    """``metric(y, a) - metric(y, b)`` with an interval from resampling the same rows for both.

    With ``a`` the challenger and ``b`` the champion, a negative delta means the challenger
    is worse.
    """
    true, a, b = _indexable([y_true, pred_a, pred_b])
    estimate = float(metric_fn(true, a) - metric_fn(true, b))
    rng = np.random.default_rng(seed)
    n = true.shape[0]
    replicates = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, size=n)
        replicates.append(float(metric_fn(true[rows], a[rows]) - metric_fn(true[rows], b[rows])))
    return _interval(estimate, replicates, alpha)


# --------------------------------------------------------------------------- drift


def psi_from_counts(
    expected_counts: ArrayLike, actual_counts: ArrayLike, epsilon: float = 1e-4
) -> float:
    """PSI = sum (a - e) * ln(a / e) over bins of two count vectors.

    Shares are floored at ``epsilon`` so an empty bin contributes a large but finite term.
    Rules of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift.
    """
    expected = np.asarray(expected_counts, dtype=np.float64)
    actual = np.asarray(actual_counts, dtype=np.float64)
    if expected.shape != actual.shape or expected.ndim != 1:
        raise ValueError("expected and actual counts must be 1-D with the same bins")
    if expected.sum() <= 0 or actual.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")
    e = np.maximum(expected / expected.sum(), epsilon)
    a = np.maximum(actual / actual.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability_index(
    expected: ArrayLike,
    actual: ArrayLike,
    bins: int | Sequence[float] = 10,
    epsilon: float = 1e-4,
) -> float:
    """PSI of raw values: ``actual`` (e.g. this week's feature) against ``expected`` (training).

    ``bins`` is a number of quantile bins of ``expected`` or explicit inner/outer edges.
    Missing values (NaN) form their own bin, so a feature that starts arriving empty shows
    up as drift. For categorical values (predicted grades) bin the counts yourself and
    call ``psi_from_counts``.
    """
    reference = np.asarray(expected, dtype=np.float64).ravel()
    current = np.asarray(actual, dtype=np.float64).ravel()
    ref_present = reference[~np.isnan(reference)]
    cur_present = current[~np.isnan(current)]
    if isinstance(bins, int):
        if ref_present.size == 0:
            raise ValueError("expected values are all missing; cannot place quantile bins")
        inner = np.unique(np.quantile(ref_present, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner = np.unique(np.asarray(bins, dtype=np.float64))
    edges = np.concatenate([[-np.inf], inner[np.isfinite(inner)], [np.inf]])
    ref_counts = np.histogram(ref_present, edges)[0]
    cur_counts = np.histogram(cur_present, edges)[0]
    ref_counts = np.append(ref_counts, reference.size - ref_present.size)
    cur_counts = np.append(cur_counts, current.size - cur_present.size)
    return psi_from_counts(ref_counts, cur_counts, epsilon)
