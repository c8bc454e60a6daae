from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from huleedu_pipelines.modeling import metrics as m


def _ordinal_pair(seed: int, n: int = 300, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.clip(y_true + rng.integers(-2, 3, n), 0, k - 1)
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_qwk_matches_sklearn(seed: int) -> None:
    y_true, y_pred = _ordinal_pair(seed)
    expected = skm.cohen_kappa_score(y_true, y_pred, weights="quadratic")
    assert m.quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    assert m.quadratic_weighted_kappa(y_true, y_pred, n_classes=8) == pytest.approx(
        expected, abs=1e-12
    )


def test_qwk_counts_an_unobserved_middle_grade_as_a_step() -> None:
    # Grade 2 never occurs: sklearn treats 1 -> 3 as one step, the ordinal scale as two.
    y_true = np.array([0, 1, 3, 3, 1, 0])
    y_pred = np.array([0, 3, 1, 3, 1, 0])
    ours = m.quadratic_weighted_kappa(y_true, y_pred, n_classes=4)
    assert ours < skm.cohen_kappa_score(y_true, y_pred, weights="quadratic")


def test_qwk_edge_cases() -> None:
    assert m.quadratic_weighted_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert math.isnan(m.quadratic_weighted_kappa([3, 3, 3], [3, 3, 3]))
    with pytest.raises(ValueError, match="row 1"):
        m.quadratic_weighted_kappa([0, np.nan, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="integer class codes"):
        m.quadratic_weighted_kappa([0, 1.5], [0, 1])
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        m.quadratic_weighted_kappa([0, 4], [0, 1], n_classes=4)


def test_agreement_and_errors() -> None:
    y_true = np.array([0, 1, 2, 3, 4])
    y_pred = np.array([0, 2, 4, 3, 3])
    assert m.exact_agreement(y_true, y_pred) == pytest.approx(0.4)
    assert m.adjacent_agreement(y_true, y_pred) == pytest.approx(0.8)
    assert m.mean_absolute_error(y_true, y_pred) == pytest.approx(
        skm.mean_absolute_error(y_true, y_pred)
    )
    assert m.rmse(y_true, y_pred) == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))


def test_confusion_and_per_class_match_sklearn() -> None:
    y_true, y_pred = _ordinal_pair(5, k=6)
    np.testing.assert_array_equal(
        m.confusion_matrix(y_true, y_pred, n_classes=6),
        skm.confusion_matrix(y_true, y_pred, labels=range(6)),
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(6), zero_division=0
    )
    rows = m.per_class_precision_recall(y_true, y_pred, n_classes=6)
    assert [row["label"] for row in rows] == list(range(6))
    np.testing.assert_allclose([row["precision"] for row in rows], precision)
    np.testing.assert_allclose([row["recall"] for row in rows], recall)
    np.testing.assert_allclose([row["f1"] for row in rows], f1)
    assert [row["support"] for row in rows] == support.tolist()
    assert m.macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )


def test_macro_f1_with_a_class_nobody_used() -> None:
    y_true = np.array([0, 0, 2, 2])
    y_pred = np.array([0, 2, 2, 2])
    sklearn_value = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert m.macro_f1(y_true, y_pred) == pytest.approx(sklearn_value)
    assert m.macro_f1(y_true, y_pred, n_classes=3) < sklearn_value


def test_class_share_difference() -> None:
    reference = [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    predicted = [0, 1, 1, 2, 2, 3, 3, 3]
    np.testing.assert_allclose(m.class_shares(reference, 4), [0.2, 0.2, 0.2, 0.4])
    assert m.max_class_share_difference(reference, predicted, 4) == pytest.approx(0.075)


def test_brier_scores() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200)
    y = (rng.random(200) < p).astype(int)
    assert m.brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p))
    uniform = np.full((3, 4), 0.25)
    assert m.brier_score([0, 1, 3], uniform) == pytest.approx(0.75)
    onehot = np.eye(4)[[0, 1, 3]]
    assert m.brier_score([0, 1, 3], onehot) == pytest.approx(0.0)


def test_ranked_probability_score() -> None:
    onehot = np.eye(5)[[0, 2, 4]]
    assert m.ranked_probability_score([0, 2, 4], onehot) == pytest.approx(0.0)
    # All mass one grade too high: one CDF step off by 1, out of K-1 = 4 steps.
    shifted = np.eye(5)[[1, 3, 4]]
    assert m.ranked_probability_score([0, 2, 3], shifted) == pytest.approx(0.25)
    # Further off costs more (ordinal), unlike the Brier score.
    far = np.eye(5)[[3]]
    near = np.eye(5)[[1]]
    assert m.ranked_probability_score([0], far) > m.ranked_probability_score([0], near)
    assert m.brier_score([0], far) == m.brier_score([0], near)


def test_ece_top_label_and_binary() -> None:
    probs = np.tile([0.9, 0.05, 0.05], (10, 1))
    y_true = np.array([0] * 9 + [1])
    assert m.expected_calibration_error(y_true, probs) == pytest.approx(0.0, abs=1e-12)
    y_all_wrong = np.ones(10)
    assert m.expected_calibration_error(y_all_wrong, probs) == pytest.approx(0.9)
    # y_pred overrides argmax: confidence is then the probability of the decided class.
    decided = np.ones(10, dtype=int)
    assert m.expected_calibration_error(y_all_wrong, probs, y_pred=decided) == pytest.approx(0.95)

    rng = np.random.default_rng(1)
    p = rng.random(50_000)
    y = (rng.random(p.size) < p).astype(int)
    assert m.expected_calibration_error(y, p) < 0.01
    overconfident = np.where(p > 0.5, np.sqrt(p), p**2)
    assert m.expected_calibration_error(y, overconfident) > 0.05


def test_calibration_table_bins() -> None:
    rows = m.calibration_table([0, 1, 1], [0.0, 0.1, 1.0], n_bins=10)
    assert len(rows) == 10
    assert [row["count"] for row in rows] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert rows[0]["observed_rate"] == pytest.approx(0.5)
    assert math.isnan(rows[1]["mean_confidence"])


def test_standardized_mean_difference() -> None:
    y_true = np.array([1.0, 2, 3, 4, 5])
    y_pred = np.array([2.0, 3, 4, 5, 7])
    pooled = np.sqrt((np.var(y_true, ddof=1) + np.var(y_pred, ddof=1)) / 2)
    expected = (y_pred.mean() - y_true.mean()) / pooled
    assert m.standardized_mean_difference(y_true, y_pred) == pytest.approx(expected)
    assert m.standardized_mean_difference(y_true, y_pred, method="unpooled") == pytest.approx(
        1.2 / np.std(y_true, ddof=1)
    )
    assert m.standardized_mean_difference(
        y_true, y_pred, method="williamson", population_true_sd=1.0, population_pred_sd=1.0
    ) == pytest.approx(1.2)
    assert math.isnan(m.standardized_mean_difference([2, 2], [2, 2]))


def test_auc_and_pearson_match_references() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    scores = np.round(y + rng.normal(0, 1.2, 400), 1)  # rounding creates ties
    assert m.roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores))
    x = rng.normal(size=100)
    z = x + rng.normal(size=100)
    assert m.pearson_r(x, z) == pytest.approx(np.corrcoef(x, z)[0, 1])
    assert math.isnan(m.roc_auc([1, 1], [0.2, 0.3]))
    assert math.isnan(m.pearson_r([1, 1, 1], [1, 2, 3]))


def test_normalized_entropy_confidence() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    confidence = m.normalized_entropy_confidence(probs)
    np.testing.assert_allclose(confidence, [1.0, 0.0, 1 - np.log(2) / np.log(3)], atol=1e-12)


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate() -> None:
    y_true, y_pred = _ordinal_pair(7, n=400)
    first = m.bootstrap_ci(m.quadratic_weighted_kappa, y_true, y_pred, n_boot=200, seed=11)
    second = m.bootstrap_ci(m.quadratic_weighted_kappa, y_true, y_pred, n_boot=200, seed=11)
    assert first == second
    assert first.low < first.estimate < first.high
    estimate, low, high = m.bootstrap_ci(np.mean, np.arange(1000.0), n_boot=300, seed=1)
    standard_error = np.std(np.arange(1000.0)) / np.sqrt(1000)
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.25)
    assert estimate == pytest.approx(499.5)


def test_paired_bootstrap_delta() -> None:
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 8, 500)
    good = np.clip(y_true + rng.integers(-1, 2, 500), 0, 7)
    poor = np.clip(y_true + rng.integers(-3, 4, 500), 0, 7)
    same = m.paired_bootstrap_delta(
        m.quadratic_weighted_kappa, y_true, good, good, n_boot=100, seed=0
    )
    assert same == (0.0, 0.0, 0.0)
    better = m.paired_bootstrap_delta(
        m.quadratic_weighted_kappa, y_true, good, poor, n_boot=200, seed=0
    )
    assert better.estimate > 0 and better.low > 0
    assert better.low <= better.estimate <= better.high


def test_population_stability_index() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=5000)
    assert m.population_stability_index(reference, rng.normal(size=5000)) < 0.02
    assert m.population_stability_index(reference, rng.normal(1.0, 1.0, 5000)) > 0.25
    # Values starting to arrive missing are drift too.
    with_missing = rng.normal(size=5000)
    with_missing[:1500] = np.nan
    assert m.population_stability_index(reference, with_missing) > 0.25
    counts = m.psi_from_counts([50, 50], [50, 50])
    assert counts == pytest.approx(0.0)
    assert m.psi_from_counts([100, 0], [50, 50]) > 1.0  # empty bin stays finite
    assert m.population_stability_index(reference, reference, bins=[-1.0, 0.0, 1.0]) == 0.0
