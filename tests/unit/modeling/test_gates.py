from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.bundle import BundlePrediction
from huleedu_pipelines.modeling.fairness import FairnessScores, fairness_report
from huleedu_pipelines.modeling.families import BAND, GATE_NAMES, GRADE, SKILL
from huleedu_pipelines.modeling.figures import (
    BaselineComparison,
    BaselineMargin,
    ChampionComparison,
    GradeReport,
    LatencyReport,
    band_report,
    cefr_report,
    compare_with_baselines,
    compare_with_champion,
    grade_report,
    skill_report,
)
from huleedu_pipelines.modeling.gates import (
    GateResult,
    band_gates,
    baseline_gates,
    cefr_gates,
    grade_gates,
    latency_gates,
    parity_gates,
    skill_gates,
    summarize,
)
from huleedu_pipelines.modeling.metrics import pearson_r, quadratic_weighted_kappa, roc_auc
from huleedu_pipelines.services.gaming import GamingReport, PerturbationEffect
from huleedu_pipelines.settings import Settings

K = len(SWEDISH_GRADES)
N_BOOT = 100
THRESHOLDS = Settings.model_construct().gate_thresholds()  # the defaults, whatever the env
PARITY_OK = {
    "share_rows_over_tol": 0.0,
    "share_rows_flipped": 0.0,
    "max_abs_diff": 2e-7,
    "n_rows": 3000,
}
FAST = LatencyReport(
    p50_single_ms=3.0,
    p95_single_ms=5.0,
    p50_batch50_ms=40.0,
    p95_batch50_ms=60.0,
    n_models=10,
    repeats=50,
)
BEATEN = BaselineComparison(
    metric="qwk",
    higher_is_better=True,
    model_value=0.80,
    n=3000,
    n_train=3000,
    confidence=0.90,
    margins={
        "trivial": BaselineMargin("trivial", 0.0, 0.80, 0.78, 0.82),
        "ridge": BaselineMargin("ridge", 0.60, 0.20, 0.17, 0.23),
    },
)
"""Baselines the model beats clearly, for tests about the other gates."""
_IDS = [f"e{i}" for i in range(200)]
_RATINGS = np.random.default_rng(4).integers(2, 11, 200) / 2
FAIR = fairness_report(
    FairnessScores(_RATINGS, _RATINGS.copy(), "rating", "pearson_r", pearson_r),
    _IDS,
    pl.DataFrame({"essay_id": _IDS, "group": "gender", "value": ["F", "M"] * 100}),
    None,
    min_n_per_group=30,
    seed=0,
    n_boot=N_BOOT,
)
"""A model that scores every subgroup as its raters do (SMD 0), for the other gates' tests."""
UNGAMED = GamingReport(
    tolerance=0.25,
    tolerance_sd=0.25,
    effects=(
        PerturbationEffect(
            "repeat_paragraph", 100, 0.0, 0.0, 0.0, -0.2, (-0.5, -0.3, -0.2, 0.0, 0.1)
        ),
    ),
    feature_seconds=1.0,
)
"""No gamed copy scored higher, for the other gates' tests."""


def calibrated_model(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities peaked around a per-essay centre; the true grade is drawn from them."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.4, K - 0.6, n)
    logits = -1.5 * (np.arange(K)[None, :] - centre[:, None]) ** 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y_true = np.minimum((probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), K - 1)
    return y_true, probs, probs.argmax(axis=1)


def report_for(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray, **kw) -> GradeReport:
    return grade_report(
        y_true,
        probs,
        y_pred,
        class_labels=SWEDISH_GRADES,
        reference_labels=kw.pop("reference", y_true),
        seed=0,
        n_boot=N_BOOT,
        **kw,
    )


@pytest.fixture(scope="module")
def good() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return calibrated_model(3000, seed=21)


@pytest.fixture(scope="module")
def good_report(good: tuple[np.ndarray, np.ndarray, np.ndarray]) -> GradeReport:
    return report_for(*good)


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {result.gate: result for result in results}


# --------------------------------------------------------------------------- grade


def test_a_good_model_passes_every_grade_gate(good_report: GradeReport) -> None:
    results = grade_gates(
        good_report,
        THRESHOLDS,
        parity=PARITY_OK,
        latency=FAST,
        champion=None,
        baselines=BEATEN,
        fairness=FAIR,
        gaming=UNGAMED,
    )
    assert [r.gate for r in results] == list(GATE_NAMES["grade"])
    failed = [r.message for r in results if not r.passed]
    assert failed == []
    passed, verdict = summarize(results)
    assert passed is True
    assert verdict == f"all {len(results)} gates passed"
    qwk = by_name(results)["min_qwk"]
    assert qwk.value == good_report.metrics["qwk"]
    assert (qwk.threshold, qwk.comparison) == (0.70, ">=")


def test_shuffled_predictions_fail_qwk_and_adjacent_agreement_with_figures(
    good: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y_true, probs, y_pred = good
    order = np.random.default_rng(0).permutation(y_true.size)
    shuffled = report_for(y_true, probs[order], y_pred[order])
    results = by_name(
        grade_gates(
            shuffled,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )
    qwk, adjacent = results["min_qwk"], results["min_adjacent_agreement"]
    assert not qwk.passed and not adjacent.passed
    assert qwk.value == pytest.approx(shuffled.metrics["qwk"])
    qwk_low, qwk_high = shuffled.intervals["qwk"]
    assert (qwk.low, qwk.high, qwk.interval_level) == (qwk_low, qwk_high, 0.95)
    assert qwk.message == (
        f"QWK {shuffled.metrics['qwk']:.3f} < 0.700 (min_qwk); 95% bootstrap interval "
        f"{qwk_low:.3f} to {qwk_high:.3f}"
    )
    assert adjacent.message.startswith(
        f"adjacent agreement {shuffled.metrics['adjacent_agreement']:.3f} < 0.900 "
        "(min_adjacent_agreement); 95% bootstrap interval "
    )
    # Probabilities no longer match the essays, so calibration fails too; the share gate
    # passes because shuffling keeps the predicted distribution.
    assert not results["max_ece"].passed
    assert results["max_grade_share_difference"].passed
    passed, verdict = summarize(list(results.values()))
    assert not passed
    assert verdict.startswith(f"3 of {len(GATE_NAMES['grade'])} gates failed")
    for failed in (qwk, adjacent, results["max_ece"]):
        assert failed.message in verdict


def test_overconfident_probabilities_fail_ece(
    good: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y_true, _, y_pred = good
    sharp = np.full((y_true.size, K), 0.01 / (K - 1))
    sharp[np.arange(y_true.size), y_pred] = 0.99
    result = by_name(
        grade_gates(
            report_for(y_true, sharp, y_pred),
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["max_ece"]
    assert not result.passed
    assert result.value > 0.25  # 99% confidence, about 65% correct
    assert result.message.endswith("> 0.050 (max_ece)")


def test_predictions_piling_into_one_grade_fail_the_share_gate_naming_it(
    good: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y_true, probs, y_pred = good
    piled = np.where(y_pred == 3, 4, y_pred)  # no D+ at all, C doubled
    result = by_name(
        grade_gates(
            report_for(y_true, probs, piled),
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["max_grade_share_difference"]
    assert not result.passed
    assert "(grade C)" in result.message or "(grade D+)" in result.message
    assert result.value == pytest.approx(
        max(np.mean(piled == 4) - np.mean(y_true == 4), np.mean(y_true == 3)), abs=1e-12
    )


def test_an_undefined_metric_fails_its_gate() -> None:
    constant = np.full(50, 3)
    probs = np.full((50, K), 0.02)
    probs[:, 3] = 1 - 0.02 * (K - 1)
    report = report_for(constant, probs, constant)
    assert math.isnan(report.metrics["qwk"])
    result = by_name(
        grade_gates(
            report,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_qwk"]
    assert not result.passed
    assert math.isnan(result.value)
    assert "undefined (nan)" in result.message and "0.7" in result.message


def test_missing_parity_or_latency_fails_as_not_measured(good_report: GradeReport) -> None:
    results = by_name(
        grade_gates(
            good_report,
            THRESHOLDS,
            parity=None,
            latency=None,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )
    for gate in (
        "onnx_parity_over_tolerance",
        "onnx_parity_flipped",
        "latency_p95_single",
        "latency_p95_batch50",
    ):
        assert not results[gate].passed
        assert results[gate].value is None
        assert "was not measured" in results[gate].message


# --------------------------------------------------------------------------- champion


def test_identical_challenger_passes_non_inferiority(
    good: tuple[np.ndarray, np.ndarray, np.ndarray], good_report: GradeReport
) -> None:
    y_true, _, y_pred = good
    comparison = compare_with_champion(
        y_true, y_pred, y_pred, champion_version="4", n_classes=K, seed=0, n_boot=20
    )
    assert comparison.qwk_drop == 0.0
    gate = by_name(
        grade_gates(
            good_report,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=comparison,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["non_inferiority"]
    assert gate.passed and gate.value == 0.0
    assert "champion v4" in gate.message


def test_clearly_worse_challenger_fails_non_inferiority(
    good: tuple[np.ndarray, np.ndarray, np.ndarray], good_report: GradeReport
) -> None:
    y_true, _, champion_pred = good
    rng = np.random.default_rng(1)
    challenger = np.clip(champion_pred + rng.integers(-2, 3, y_true.size), 0, K - 1)
    comparison = compare_with_champion(
        y_true,
        challenger,
        champion_pred,
        champion_version="4",
        n_classes=K,
        seed=0,
        n_boot=N_BOOT,
    )
    gate = by_name(
        grade_gates(
            good_report,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=comparison,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["non_inferiority"]
    assert not gate.passed
    assert gate.value == pytest.approx(comparison.qwk_drop) and gate.value > 0.01
    assert f"{comparison.qwk_drop:.3f} > 0.010 (non_inferiority)" in gate.message
    _, low, high = comparison.deltas["qwk"]
    assert f"95% CI {low:+.4f} to {high:+.4f}" in gate.message


def test_no_champion_passes_and_says_so(good_report: GradeReport) -> None:
    gate = by_name(
        grade_gates(
            good_report,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["non_inferiority"]
    assert gate.passed and gate.value is None
    assert "no champion" in gate.message


def test_a_comparison_on_the_wrong_metric_is_refused(good_report: GradeReport) -> None:
    wrong = ChampionComparison("1", "roc_auc", {"roc_auc": (0.0, 0.0, 0.0)}, 0.0, 10)
    with pytest.raises(ValueError, match="metric='qwk'"):
        grade_gates(
            good_report,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=wrong,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )


# --------------------------------------------------------------------------- parity, latency


def test_parity_gates_use_the_worst_part_and_its_name() -> None:
    parts = {
        "threshold_0": {"share_rows_over_tol": 0.0, "share_rows_flipped": 0.0},
        "threshold_5": {"share_rows_over_tol": 0.002, "share_rows_flipped": 0.0005},
    }
    over, flipped = parity_gates(parts, THRESHOLDS)
    assert not over.passed and over.value == 0.002
    assert over.message == (
        "ONNX share of rows over tolerance [threshold_5] 2.00e-03 > 1.00e-04 "
        "(onnx_parity_over_tolerance)"
    )
    assert flipped.passed and flipped.value == 0.0005
    with pytest.raises(ValueError, match="not a parity_report"):
        parity_gates({"a": {"max_abs_diff": 0.1}}, THRESHOLDS)


def test_latency_gates_are_strict_upper_bounds() -> None:
    at_limit = LatencyReport(50.0, 100.0, 900.0, 1999.9, n_models=10, repeats=50)
    single, batch = latency_gates(at_limit, THRESHOLDS)
    assert not single.passed and single.comparison == "<"
    assert single.message == "p95 latency for one essay 100.0 ms >= 100.0 ms (latency_p95_single)"
    assert batch.passed
    assert batch.message == (
        "p95 latency for a batch of 50 1999.9 ms < 2000.0 ms (latency_p95_batch50)"
    )


@pytest.mark.parametrize(
    ("value", "threshold", "shown"),
    [
        (0.69996, 0.70, "QWK 0.69996 < 0.70000 (min_qwk)"),
        (0.6996, 0.70, "QWK 0.6996 < 0.7000 (min_qwk)"),
        (0.64, 0.70, "QWK 0.640 < 0.700 (min_qwk)"),
    ],
)
def test_messages_show_enough_digits_to_tell_value_from_threshold(
    good_report: GradeReport, value: float, threshold: float, shown: str
) -> None:
    report = replace(good_report, metrics={**good_report.metrics, "qwk": value})
    gate = by_name(
        grade_gates(
            report,
            replace(THRESHOLDS, min_qwk=threshold),
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_qwk"]
    assert not gate.passed
    low, high = good_report.intervals["qwk"]
    assert gate.message == f"{shown}; 95% bootstrap interval {low:.3f} to {high:.3f}"


# --------------------------------------------------------------------------- other models


def test_band_model_is_held_to_the_mae_ceiling_and_its_champion() -> None:
    rng = np.random.default_rng(2)
    true = rng.integers(8, 17, 200) / 2
    close = np.clip(true + rng.normal(0, 0.3, 200), 0, 9)
    band = band_report(true, close, seed=0, n_boot=100)
    results = band_gates(
        band,
        THRESHOLDS,
        parity=PARITY_OK,
        latency=FAST,
        champion=None,
        baselines=BEATEN,
        fairness=FAIR,
        gaming=UNGAMED,
    )
    assert [r.gate for r in results] == list(GATE_NAMES["band"])
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]

    far = true + 1.5  # every essay a band and a half too high
    far_band = band_report(true, far, seed=0, n_boot=100)
    mae = by_name(
        band_gates(
            far_band,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["max_band_mae"]
    assert not mae.passed
    assert mae.value == pytest.approx(1.5)
    assert (mae.threshold, mae.comparison) == (1.0, "<=")
    assert (mae.low, mae.high) == pytest.approx((1.5, 1.5))  # every resample is off by 1.5
    assert mae.message == (
        "band MAE 1.500 bands > 1.000 bands (max_band_mae); 95% bootstrap interval "
        "1.500 to 1.500 bands"
    )

    champion = compare_with_champion(
        true, far, true, champion_version="2", metric="qwk_half_band", seed=0, n_boot=20
    )
    gate = by_name(
        band_gates(
            band,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=champion,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["non_inferiority"]
    assert not gate.passed and "qwk_half_band drop" in gate.message
    assert (gate.low, gate.high) == pytest.approx(champion.drop_interval)
    assert gate.low <= gate.value <= gate.high


def test_a_cefr_model_below_the_qwk_floor_fails() -> None:
    rng = np.random.default_rng(4)
    levels = rng.integers(0, 6, 300)
    weak = np.where(rng.random(300) < 0.25, levels, rng.integers(0, 6, 300))
    probs = np.full((300, 6), 0.1)
    probs[np.arange(300), weak] = 0.5
    cefr = cefr_report(levels, probs, weak, seed=0, n_boot=100)
    results = by_name(
        cefr_gates(
            cefr,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )
    assert list(results) == list(GATE_NAMES["cefr"])
    floor = results["min_cefr_qwk"]
    assert not floor.passed
    assert floor.value == pytest.approx(cefr.metrics["qwk"]) and floor.value < 0.40
    assert (floor.low, floor.high) == cefr.intervals["qwk"]
    assert floor.message.startswith(f"CEFR QWK {floor.value:.3f} < 0.400 (min_cefr_qwk); 95%")
    assert [name for name, r in results.items() if not r.passed] == ["min_cefr_qwk"]

    probs[np.arange(300), weak] = 0.1
    probs[np.arange(300), levels] = 0.5
    exact = cefr_report(levels, probs, levels, seed=0, n_boot=100)
    passed = by_name(
        cefr_gates(
            exact,
            THRESHOLDS,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_cefr_qwk"]
    assert passed.passed and passed.value == pytest.approx(1.0)


def test_a_floor_whose_interval_includes_the_threshold_is_decided_by_the_point_estimate(
    good_report: GradeReport,
) -> None:
    qwk = good_report.metrics["qwk"]
    low, high = good_report.intervals["qwk"]
    assert low < qwk < high
    just_below = replace(THRESHOLDS, min_qwk=float(np.nextafter(qwk, 0)))
    gate = by_name(
        grade_gates(
            good_report,
            just_below,
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_qwk"]
    assert gate.passed  # the point estimate clears the floor, though its interval reaches below
    assert gate.message.endswith("which includes the threshold: the point estimate decides")
    far_below = by_name(
        grade_gates(
            good_report,
            replace(THRESHOLDS, min_qwk=low - 0.05),
            parity=PARITY_OK,
            latency=FAST,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_qwk"]
    assert far_below.passed and "includes the threshold" not in far_below.message


def test_skill_gates_require_correlation_with_teacher_ratings() -> None:
    rng = np.random.default_rng(3)
    rating = rng.integers(2, 11, 300) / 2
    label = (rating >= 3.5).astype(int)
    related = np.clip(rating / 5 + rng.normal(0, 0.1, 300), 0, 1)
    unrelated = rng.random(300)
    good = skill_gates(
        skill_report("grammar", label, related, rating, seed=0, n_boot=20),
        THRESHOLDS,
        parity=PARITY_OK,
        champion=None,
        baselines=BEATEN,
        fairness=FAIR,
        gaming=UNGAMED,
    )
    assert [r.gate for r in good] == list(GATE_NAMES["skill"])
    assert all(r.passed for r in good)
    bad = by_name(
        skill_gates(
            skill_report("grammar", label, unrelated, rating, seed=0, n_boot=20),
            THRESHOLDS,
            parity=PARITY_OK,
            champion=None,
            baselines=BEATEN,
            fairness=FAIR,
            gaming=UNGAMED,
        )
    )["min_skill_pearson_r"]
    assert not bad.passed
    assert bad.message.startswith("grammar: Pearson r with mean teacher rating")
    assert "< 0.500 (min_skill_pearson_r); 95% bootstrap interval" in bad.message


# --------------------------------------------------------------------------- baselines


def linear_task(n_train: int = 400, n_test: int = 300, seed: int = 5):
    """Features whose first three columns carry a latent score, as (X_train, latent_train,
    X_test, latent_test); the other nine are noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train + n_test, 12))
    latent = X[:, :3] @ np.array([1.0, 0.8, 0.6]) + rng.normal(0, 0.7, n_train + n_test)
    return X[:n_train], latent[:n_train], X[n_train:], latent[n_train:]


def as_grades(latent: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(latent + 3.5), 0, K - 1).astype(np.int64)


def predicted(labels: np.ndarray, score: np.ndarray | None = None) -> BundlePrediction:
    score = labels.astype(np.float64) if score is None else score
    return BundlePrediction(labels, None, score, np.ones(labels.size))


def test_a_model_identical_to_the_trivial_predictor_fails_beats_trivial() -> None:
    X_train, latent_train, X_test, latent_test = linear_task()
    y_train, y_test = as_grades(latent_train), as_grades(latent_test)
    guesses = GRADE.fit_baselines(X_train, y_train, X_test, seed=0)
    mode = int(np.bincount(y_train).argmax())
    np.testing.assert_array_equal(guesses["trivial"].labels, np.full(y_test.size, mode))

    comparison = GRADE.compare_with_baselines(
        y_test, predicted(guesses["trivial"].labels), guesses, n_train=400, confidence=0.9, seed=0
    )
    assert comparison.model_value == 0.0  # a constant grade has no agreement beyond chance
    trivial, ridge = baseline_gates(comparison)
    assert (trivial.gate, trivial.passed) == ("beats_trivial", False)
    assert (trivial.value, trivial.low, trivial.high) == (0.0, 0.0, 0.0)
    assert trivial.interval_level == 0.9
    assert trivial.message == (
        "qwk (higher is better): model 0.000, trivial 0.000; model better by +0.000 "
        "(90% paired bootstrap interval +0.000 to +0.000, n=300 holdout essays, baseline "
        "fitted on 400) (beats_trivial); an interval that reaches zero fails: the holdout does "
        "not show the model beats the baseline"
    )
    assert not ridge.passed and ridge.value < 0  # ridge reads the features; the mode cannot


def test_ridge_gate_passes_a_better_or_equal_model_and_fails_one_shown_worse() -> None:
    X_train, latent_train, X_test, latent_test = linear_task()
    y_train, y_test = as_grades(latent_train), as_grades(latent_test)
    guesses = GRADE.fit_baselines(X_train, y_train, X_test, seed=0)
    ridge_qwk = quadratic_weighted_kappa(y_test, guesses["ridge"].labels, K)
    assert 0.5 < ridge_qwk < 0.9  # a fair baseline: it learns, it is not perfect

    rng = np.random.default_rng(0)
    nudged = rng.random(y_test.size) < 0.1
    better = np.clip(y_test + nudged * rng.choice([-1, 1], y_test.size), 0, K - 1)
    comparison = GRADE.compare_with_baselines(
        y_test, predicted(better), guesses, n_train=400, confidence=0.9, seed=0
    )
    margin = comparison.margins["ridge"]
    assert margin.value == pytest.approx(ridge_qwk)
    assert margin.margin == pytest.approx(quadratic_weighted_kappa(y_test, better, K) - ridge_qwk)
    assert 0 < margin.low < margin.margin < margin.high
    gates = by_name(baseline_gates(comparison))
    beats = gates["not_worse_than_ridge"]
    assert beats.passed and gates["beats_trivial"].passed
    assert (beats.value, beats.low, beats.high) == (margin.margin, margin.low, margin.high)
    assert f"interval {margin.low:+.3f} to {margin.high:+.3f}, n=300 holdout essays" in (
        beats.message
    )
    assert beats.message.endswith(
        "the lower end is above zero: the holdout shows the model beats the baseline"
    )

    same = GRADE.compare_with_baselines(
        y_test, predicted(guesses["ridge"].labels), guesses, n_train=400, confidence=0.9, seed=0
    )
    equal = by_name(baseline_gates(same))["not_worse_than_ridge"]
    assert equal.passed
    assert (equal.value, equal.low, equal.high) == (0.0, 0.0, 0.0)
    assert equal.message.endswith("the holdout does not show the model is worse than the baseline")

    worse_labels = np.clip(guesses["ridge"].labels + rng.choice([-2, 2], y_test.size), 0, K - 1)
    worse = GRADE.compare_with_baselines(
        y_test, predicted(worse_labels), guesses, n_train=400, confidence=0.9, seed=0
    )
    shown_worse = by_name(baseline_gates(worse))["not_worse_than_ridge"]
    assert not shown_worse.passed
    assert shown_worse.low < shown_worse.high < 0
    assert shown_worse.message.endswith(
        "the whole interval is below zero: the holdout shows the model is worse than the baseline"
    )


def test_band_baselines_are_judged_on_mae_with_the_difference_baseline_minus_model() -> None:
    X_train, latent_train, X_test, latent_test = linear_task()
    band_train = np.clip(np.rint((6 + latent_train) * 2) / 2, 0, 9)
    band_test = np.clip(np.rint((6 + latent_test) * 2) / 2, 0, 9)
    guesses = BAND.fit_baselines(X_train, band_train, X_test, seed=0)
    assert all(g.score.min() >= 0 and g.score.max() <= 9 for g in guesses.values())
    model = np.clip(band_test + np.random.default_rng(1).normal(0, 0.2, band_test.size), 0, 9)
    comparison = BAND.compare_with_baselines(
        band_test,
        predicted(np.rint(model * 2) / 2, model),
        guesses,
        n_train=400,
        confidence=0.9,
        seed=0,
    )
    assert comparison.metric == "mae" and not comparison.higher_is_better
    model_mae = float(np.mean(np.abs(model - band_test)))
    ridge_mae = float(np.mean(np.abs(guesses["ridge"].score - band_test)))
    assert comparison.model_value == pytest.approx(model_mae)
    assert comparison.margins["ridge"].margin == pytest.approx(ridge_mae - model_mae)
    gate = by_name(baseline_gates(comparison))["not_worse_than_ridge"]
    assert gate.passed and gate.message.startswith("mae (lower is better)")


def test_skill_baselines_regress_the_rating_and_are_judged_on_roc_auc() -> None:
    X_train, latent_train, X_test, latent_test = linear_task()
    rating_train = np.clip(np.rint((3 + latent_train / 2) * 2) / 2, 1, 5)
    rating_test = np.clip(np.rint((3 + latent_test / 2) * 2) / 2, 1, 5)
    high_train, high_test = (rating_train >= 3.5).astype(int), (rating_test >= 3.5).astype(int)
    guesses = SKILL.fit_baselines(X_train, high_train, X_test, ratings_train=rating_train, seed=0)
    np.testing.assert_allclose(guesses["trivial"].score, rating_train.mean())  # not the base rate
    p_high = 1 / (1 + np.exp(-4 * (rating_test - 3.4)))  # a model that knows the rating
    comparison = SKILL.compare_with_baselines(
        high_test,
        predicted((p_high >= 0.5).astype(int), p_high),
        guesses,
        n_train=400,
        confidence=0.9,
        seed=0,
    )
    assert comparison.metric == "roc_auc"
    assert comparison.margins["trivial"].value == 0.5
    assert comparison.margins["ridge"].value == pytest.approx(
        roc_auc(high_test, guesses["ridge"].score)
    )
    assert all(gate.passed for gate in baseline_gates(comparison))


def test_missing_or_unfittable_baselines_fail_and_say_why() -> None:
    for gate in baseline_gates(None):
        assert not gate.passed and gate.value is None
        assert "was not measured" in gate.message
    reason = "the holdout's training split has no labelled essays for huleedu-cefr"
    nothing = BaselineComparison.not_available("qwk", reason, n=40, n_train=0, confidence=0.9)
    trivial, ridge = baseline_gates(nothing)
    assert not trivial.passed and not ridge.passed
    assert trivial.message == f"no trivial baseline to compare with: {reason} (beats_trivial)"


def test_an_undefined_margin_fails() -> None:
    comparison = compare_with_baselines(
        np.zeros(30, dtype=int),
        np.random.default_rng(0).random(30),
        {"trivial": np.full(30, 0.5), "ridge": np.zeros(30)},
        metric="roc_auc",
        n_train=50,
        confidence=0.9,
        seed=0,
        n_boot=50,
    )  # one class only: ROC AUC is undefined
    for gate in baseline_gates(comparison):
        assert not gate.passed
        assert "n/a (no resample defined the metric)" in gate.message


def test_summarize_treats_no_gates_as_no_promotion() -> None:
    assert summarize([]) == (False, "no gates were evaluated, so nothing supports promotion")
