from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.families import GATE_NAMES
from huleedu_pipelines.modeling.figures import (
    ChampionComparison,
    GradeReport,
    LatencyReport,
    band_report,
    cefr_report,
    compare_with_champion,
    grade_report,
    skill_report,
)
from huleedu_pipelines.modeling.gates import (
    GateResult,
    band_gates,
    cefr_gates,
    grade_gates,
    latency_gates,
    parity_gates,
    skill_gates,
    summarize,
)
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
    results = grade_gates(good_report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
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
        grade_gates(shuffled, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
    )
    qwk, adjacent = results["min_qwk"], results["min_adjacent_agreement"]
    assert not qwk.passed and not adjacent.passed
    assert qwk.value == pytest.approx(shuffled.metrics["qwk"])
    assert qwk.message == f"QWK {shuffled.metrics['qwk']:.3f} < 0.700 (min_qwk)"
    assert adjacent.message == (
        f"adjacent agreement {shuffled.metrics['adjacent_agreement']:.3f} < 0.900 "
        "(min_adjacent_agreement)"
    )
    # Probabilities no longer match the essays, so calibration fails too; the share gate
    # passes because shuffling keeps the predicted distribution.
    assert not results["max_ece"].passed
    assert results["max_grade_share_difference"].passed
    passed, verdict = summarize(list(results.values()))
    assert not passed
    assert verdict.startswith("3 of 9 gates failed")
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
        grade_gates(report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
    )["min_qwk"]
    assert not result.passed
    assert math.isnan(result.value)
    assert "undefined (nan)" in result.message and "0.7" in result.message


def test_missing_parity_or_latency_fails_as_not_measured(good_report: GradeReport) -> None:
    results = by_name(
        grade_gates(good_report, THRESHOLDS, parity=None, latency=None, champion=None)
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
        grade_gates(good_report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=comparison)
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
        grade_gates(good_report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=comparison)
    )["non_inferiority"]
    assert not gate.passed
    assert gate.value == pytest.approx(comparison.qwk_drop) and gate.value > 0.01
    assert f"{comparison.qwk_drop:.3f} > 0.010 (non_inferiority)" in gate.message
    _, low, high = comparison.deltas["qwk"]
    assert f"95% CI {low:+.4f} to {high:+.4f}" in gate.message


def test_no_champion_passes_and_says_so(good_report: GradeReport) -> None:
    gate = by_name(
        grade_gates(good_report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
    )["non_inferiority"]
    assert gate.passed and gate.value is None
    assert "no champion" in gate.message


def test_a_comparison_on_the_wrong_metric_is_refused(good_report: GradeReport) -> None:
    wrong = ChampionComparison("1", "roc_auc", {"roc_auc": (0.0, 0.0, 0.0)}, 0.0, 10)
    with pytest.raises(ValueError, match="metric='qwk'"):
        grade_gates(good_report, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=wrong)


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
        )
    )["min_qwk"]
    assert not gate.passed
    assert gate.message == shown


# --------------------------------------------------------------------------- other models


def test_band_and_cefr_are_gated_on_parity_latency_and_non_inferiority_only() -> None:
    rng = np.random.default_rng(2)
    true = rng.integers(8, 17, 200) / 2
    poor = rng.integers(8, 17, 200) / 2  # unrelated to the truth: reported, not gated
    band = band_report(true, poor, seed=0, n_boot=20)
    results = band_gates(band, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
    assert [r.gate for r in results] == list(GATE_NAMES["band"])
    assert all(r.passed for r in results)

    champion = compare_with_champion(
        true, poor, true, champion_version="2", metric="qwk_half_band", seed=0, n_boot=20
    )
    gate = by_name(band_gates(band, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=champion))[
        "non_inferiority"
    ]
    assert not gate.passed and "qwk_half_band drop" in gate.message

    levels = rng.integers(0, 6, 200)
    probs = np.full((200, 6), 0.1)
    probs[np.arange(200), levels] = 0.5
    cefr = cefr_report(levels, probs, levels, derived_from_band=None, seed=0, n_boot=20)
    results = cefr_gates(cefr, THRESHOLDS, parity=PARITY_OK, latency=FAST, champion=None)
    assert [r.gate for r in results] == list(GATE_NAMES["cefr"])


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
    )
    assert [r.gate for r in good] == list(GATE_NAMES["skill"])
    assert all(r.passed for r in good)
    bad = by_name(
        skill_gates(
            skill_report("grammar", label, unrelated, rating, seed=0, n_boot=20),
            THRESHOLDS,
            parity=PARITY_OK,
            champion=None,
        )
    )["min_skill_pearson_r"]
    assert not bad.passed
    assert bad.message.startswith("grammar: Pearson r with mean teacher rating")
    assert bad.message.endswith("< 0.500 (min_skill_pearson_r)")


def test_summarize_treats_no_gates_as_no_promotion() -> None:
    assert summarize([]) == (False, "no gates were evaluated, so nothing supports promotion")
