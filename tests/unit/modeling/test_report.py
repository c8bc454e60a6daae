from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.domain import CEFR_LEVELS, SKILLS, SWEDISH_GRADES
from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling import plots
from huleedu_pipelines.modeling.fairness import FairnessReport, FairnessScores, fairness_report
from huleedu_pipelines.modeling.figures import (
    BaselineComparison,
    GradeReport,
    LatencyReport,
    band_report,
    cefr_report,
    compare_with_baselines,
    compare_with_champion,
    grade_report,
    measure_latency,
    skill_report,
)
from huleedu_pipelines.modeling.gates import GateResult, grade_gates
from huleedu_pipelines.modeling.report import render_markdown
from huleedu_pipelines.services.gaming import GamingReport, PerturbationEffect
from huleedu_pipelines.settings import Settings

K = len(SWEDISH_GRADES)
THRESHOLDS = Settings.model_construct().gate_thresholds()  # whatever the env says
N_BOOT = 150
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_grades(n: int, seed: int) -> dict[str, np.ndarray]:
    """A calibrated ordinal model: each row's grade is drawn from the model's probabilities."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.4, K - 0.6, n)
    logits = -1.5 * (np.arange(K)[None, :] - centre[:, None]) ** 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y_true = np.minimum((probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), K - 1)
    return {
        "y_true": y_true,
        "probs": probs,
        "y_pred": probs.argmax(axis=1),
        "reference": rng.integers(0, K, 4 * n),
        "prompt": rng.choice(["p1", "p2", "p3"], n),
        "source": rng.choice(["school", "ielts"], n),
    }


def make_grade_report(data: dict[str, np.ndarray], seed: int = 0, **kwargs) -> GradeReport:
    return grade_report(
        data["y_true"],
        data["probs"],
        data["y_pred"],
        class_labels=SWEDISH_GRADES,
        reference_labels=data["reference"],
        seed=seed,
        n_boot=N_BOOT,
        **kwargs,
    )


def grade_fairness(data: dict[str, np.ndarray], min_n: int = 30) -> FairnessReport:
    """The fairness figures of the synthetic grades by prompt and source."""
    n = data["y_true"].size
    ids = [f"e{i}" for i in range(n)]
    subgroups = pl.DataFrame(
        {
            "essay_id": ids * 2,
            "group": ["prompt"] * n + ["source"] * n,
            "value": [*data["prompt"], *data["source"]],
        }
    )
    scores = FairnessScores(
        data["y_true"].astype(float),
        data["y_pred"].astype(float),
        "grade index 0..7",
        "qwk",
        lambda human, machine: m.quadratic_weighted_kappa(human, machine, K),
    )
    return fairness_report(
        scores, ids, subgroups, None, min_n_per_group=min_n, seed=0, n_boot=N_BOOT
    )


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return synthetic_grades(300, seed=11)


@pytest.fixture(scope="module")
def report(data: dict[str, np.ndarray]) -> GradeReport:
    return make_grade_report(data)


# --------------------------------------------------------------------------- grade report


def test_grade_metrics_equal_the_metrics_module(
    data: dict[str, np.ndarray], report: GradeReport
) -> None:
    y, p, pred = data["y_true"], data["probs"], data["y_pred"]
    expected = {
        "qwk": m.quadratic_weighted_kappa(y, pred, K),
        "exact_agreement": m.exact_agreement(y, pred),
        "adjacent_agreement": m.adjacent_agreement(y, pred),
        "accuracy": m.exact_agreement(y, pred),
        "mae": m.mean_absolute_error(y, pred),
        "macro_f1": m.macro_f1(y, pred, K),
        "brier": m.brier_score(y, p),
        "ece": m.expected_calibration_error(y, p, 15, y_pred=pred),
        "rps": m.ranked_probability_score(y, p),
        "smd": m.standardized_mean_difference(y, pred),
        "n": 300.0,
    }
    for key, value in expected.items():
        assert report.metrics[key] == pytest.approx(value, abs=1e-12), key
    interval = m.bootstrap_ci(
        lambda a, b: m.quadratic_weighted_kappa(a, b, K), y, pred, n_boot=N_BOOT, seed=0
    )
    assert (report.metrics["qwk_ci_low"], report.metrics["qwk_ci_high"]) == (
        interval.low,
        interval.high,
    )
    np.testing.assert_array_equal(report.confusion, m.confusion_matrix(y, pred, K))
    assert report.confusion.sum() == 300
    direct = m.per_class_precision_recall(y, pred, K)
    assert [row["grade"] for row in report.per_grade] == list(SWEDISH_GRADES)
    for ours, theirs in zip(report.per_grade, direct, strict=True):
        assert {k: v for k, v in ours.items() if k != "grade"} == theirs


def test_qwk_interval_contains_the_estimate_and_narrows_with_more_rows(
    report: GradeReport,
) -> None:
    large = make_grade_report(synthetic_grades(3000, seed=12))
    for r in (report, large):
        assert r.metrics["qwk_ci_low"] <= r.metrics["qwk"] <= r.metrics["qwk_ci_high"]
        for key, (low, high) in r.intervals.items():
            assert low <= r.metrics[key] <= high, key
    width_small = report.metrics["qwk_ci_high"] - report.metrics["qwk_ci_low"]
    width_large = large.metrics["qwk_ci_high"] - large.metrics["qwk_ci_low"]
    assert width_large < 0.6 * width_small  # ~1/sqrt(10) of the width, with bootstrap noise


def test_distribution_shares_sum_to_one_and_name_the_largest_difference(
    data: dict[str, np.ndarray], report: GradeReport
) -> None:
    for shares in (report.predicted_share, report.reference_share, report.holdout_share):
        assert shares.shape == (K,)
        assert shares.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        report.predicted_share, np.bincount(data["y_pred"], minlength=K) / 300
    )
    differences = np.abs(report.predicted_share - report.reference_share)
    assert report.max_share_difference == pytest.approx(differences.max())
    assert report.max_share_difference_label == SWEDISH_GRADES[int(differences.argmax())]


def test_grade_report_rejects_inputs_it_cannot_interpret(data: dict[str, np.ndarray]) -> None:
    y, p, pred = data["y_true"], data["probs"], data["y_pred"]
    common = {"class_labels": SWEDISH_GRADES, "reference_labels": data["reference"], "seed": 0}
    with pytest.raises(ValueError, match=r"shape \(300, 8\)"):
        grade_report(y, p[:, :7], pred, **common)
    bad = pred.copy()
    bad[5] = 8
    with pytest.raises(ValueError, match=r"y_pred row 5 is 8, outside 0\.\.7"):
        grade_report(y, p, bad, **common)
    with pytest.raises(ValueError, match="sums to"):
        grade_report(y, p * 0.5, pred, **common)


# --------------------------------------------------------------------------- band, CEFR, skills


def test_band_report_rounds_predictions_to_half_bands_for_agreement() -> None:
    true = np.array([6.0, 6.0, 5.0, 8.5, 4.0, 7.0])
    pred = np.array([5.9, 5.7, 5.0, 7.4, 4.4, 7.0])
    result = band_report(true, pred, seed=0, n_boot=50)
    half_true = np.array([12, 12, 10, 17, 8, 14])
    half_pred = np.array([12, 11, 10, 15, 9, 14])  # 5.9 -> 6.0, 5.7 -> 5.5, 4.4 -> 4.5
    assert result.metrics["mae"] == pytest.approx(np.mean(np.abs(true - pred)))
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((true - pred) ** 2)))
    assert result.metrics["qwk_half_band"] == pytest.approx(
        m.quadratic_weighted_kappa(half_true, half_pred, 19)
    )
    assert result.metrics["exact_half_band"] == pytest.approx(3 / 6)
    assert result.metrics["within_half_band"] == pytest.approx(
        5 / 6
    )  # 8.5 vs 7.5 is a whole band off
    # CEFR via band: B2 B2 B1 C2 A2 C1 vs B2 B1 B1 C1 A2 C1 -> 4 of 6 agree.
    assert np.trace(result.cefr_confusion) == 4
    assert result.metrics["n"] == 6


def test_cefr_report_matches_metrics_and_the_band_route() -> None:
    rng = np.random.default_rng(3)
    n = 240
    y = rng.integers(0, 6, n)
    pred = np.clip(y + rng.integers(-1, 2, n), 0, 5)
    probs = np.full((n, 6), 0.04)
    probs[np.arange(n), pred] = 0.8
    derived = np.where(rng.random(n) < 0.75, pred, np.clip(pred + 1, 0, 5))
    result = cefr_report(y, probs, pred, derived_from_band=derived, seed=0, n_boot=N_BOOT)
    assert result.metrics["qwk"] == pytest.approx(m.quadratic_weighted_kappa(y, pred, 6))
    assert result.metrics["macro_f1"] == pytest.approx(m.macro_f1(y, pred, 6))
    assert result.metrics["accuracy"] == pytest.approx(m.exact_agreement(y, pred))
    assert result.metrics["ece"] == pytest.approx(m.expected_calibration_error(y, probs, 15, pred))
    assert result.metrics["brier"] == pytest.approx(m.brier_score(y, probs))
    assert result.metrics["band_route_exact_agreement"] == pytest.approx(np.mean(derived == pred))
    assert result.class_labels == CEFR_LEVELS
    without = cefr_report(y, probs, pred, derived_from_band=None, seed=0, n_boot=20)
    assert "band_route_qwk" not in without.metrics


def test_skill_report_matches_metrics() -> None:
    rng = np.random.default_rng(4)
    rating = rng.integers(2, 11, 200) / 2
    is_high = (rating >= 3.5).astype(int)
    score = 1 / (1 + np.exp(-2 * (rating - 3.5) + rng.normal(0, 1, 200)))
    result = skill_report("grammar", is_high, score, rating, seed=0, n_boot=N_BOOT)
    assert result.metrics["roc_auc"] == pytest.approx(m.roc_auc(is_high, score))
    assert result.metrics["pearson_r"] == pytest.approx(m.pearson_r(score, rating))
    assert result.metrics["brier"] == pytest.approx(m.brier_score(is_high, score))
    assert result.metrics["ece"] == pytest.approx(m.expected_calibration_error(is_high, score))
    assert result.metrics["positive_share"] == pytest.approx(is_high.mean())
    low, high = result.intervals["pearson_r"]
    assert low <= result.metrics["pearson_r"] <= high
    with pytest.raises(ValueError, match=r"probabilities in 0\.\.1"):
        skill_report("grammar", is_high, score * 2, rating, seed=0)


# --------------------------------------------------------------------------- champion, latency


def test_identical_champion_has_zero_deltas() -> None:
    data = synthetic_grades(200, seed=5)
    result = compare_with_champion(
        data["y_true"],
        data["y_pred"],
        data["y_pred"],
        champion_version="3",
        n_classes=K,
        seed=0,
        n_boot=50,
    )
    assert result.qwk_drop == 0.0
    assert set(result.deltas) == {"qwk", "exact_agreement", "adjacent_agreement", "mae"}
    assert all(value == (0.0, 0.0, 0.0) for value in result.deltas.values())


def test_worse_challenger_shows_a_positive_drop_with_its_interval() -> None:
    data = synthetic_grades(300, seed=6)
    y, champion = data["y_true"], data["y_pred"]
    rng = np.random.default_rng(0)
    challenger = np.clip(champion + rng.integers(-2, 3, 300), 0, K - 1)
    result = compare_with_champion(
        y, challenger, champion, champion_version="3", n_classes=K, seed=0, n_boot=N_BOOT
    )
    expected = m.quadratic_weighted_kappa(y, champion, K) - m.quadratic_weighted_kappa(
        y, challenger, K
    )
    assert result.qwk_drop == pytest.approx(expected)
    assert result.qwk_drop > 0.05
    delta, low, high = result.deltas["qwk"]
    assert low <= delta <= high < 0  # clearly worse on the paired resamples
    mae_delta = result.deltas["mae"][0]
    assert mae_delta > 0  # errors grow: challenger - champion is positive


def test_champion_comparison_on_half_bands_and_skills() -> None:
    true = np.array([5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 4.5])
    result = compare_with_champion(
        true,
        true + 0.1,
        true + 1.0,
        champion_version="1",
        metric="qwk_half_band",
        seed=0,
        n_boot=20,
    )
    assert result.drop < 0  # the challenger is the better model
    with pytest.raises(ValueError, match="unknown comparison metric"):
        compare_with_champion(true, true, true, champion_version="1", metric="f1", seed=0)


def test_measure_latency_times_single_rows_and_batches() -> None:
    features = np.random.default_rng(0).normal(size=(120, 16))
    weights = np.ones(16)
    shapes: list[tuple[int, ...]] = []

    def predict_all(X: np.ndarray) -> np.ndarray:
        shapes.append(X.shape)
        return X @ weights

    result = measure_latency(predict_all, features, repeats=10, n_models=3)
    assert isinstance(result, LatencyReport)
    assert len(shapes) == 3 * 2 + 10 * 2
    assert shapes[6:16] == [(1, 16)] * 10
    assert shapes[16:] == [(50, 16)] * 10
    assert 0 < result.p50_single_ms <= result.p95_single_ms
    assert 0 < result.p50_batch50_ms <= result.p95_batch50_ms
    assert (result.n_models, result.repeats, result.batch_size) == (3, 10, 50)


# --------------------------------------------------------------------------- markdown


def test_markdown_leads_with_the_verdict_and_gates_and_shows_every_metric(
    tmp_path: Path, data: dict[str, np.ndarray], report: GradeReport
) -> None:
    latency = LatencyReport(1.0, 2.0, 10.0, 20.0, n_models=10, repeats=50)
    champion = compare_with_champion(
        data["y_true"],
        data["y_pred"],
        data["y_pred"],
        champion_version="7",
        n_classes=K,
        seed=0,
        n_boot=20,
    )
    parity = {"share_rows_over_tol": 0.5, "share_rows_flipped": 0.0, "max_abs_diff": 0.02}
    rng = np.random.default_rng(3)
    baselines = compare_with_baselines(
        data["y_true"],
        data["y_pred"],
        {
            "trivial": np.full(data["y_true"].size, 4),
            "ridge": np.clip(data["y_pred"] + rng.integers(-2, 3, data["y_true"].size), 0, K - 1),
        },
        metric="qwk",
        n_classes=K,
        n_train=900,
        confidence=0.9,
        seed=0,
        n_boot=N_BOOT,
    )
    fairness = grade_fairness(data)
    gaming = GamingReport(
        tolerance=0.4,
        tolerance_sd=0.25,
        effects=(
            PerturbationEffect(
                "repeat_paragraph", 80, 0.125, 0.25, 0.5, 0.3, (0.0, 0.0, 0.0, 1.0, 2.0)
            ),
            PerturbationEffect(
                "gibberish", 80, 0.0, 0.0, 1.0, -2.5, (-4.0, -3.0, -2.0, -2.0, -1.0)
            ),
        ),
        feature_seconds=12.5,
    )
    gates = grade_gates(
        report,
        THRESHOLDS,
        parity=parity,
        latency=latency,
        champion=champion,
        baselines=baselines,
        fairness=fairness,
        gaming=gaming,
    )
    figure_dir = tmp_path / "report"
    plot_paths = {"Confusion matrix": figure_dir / "grade_confusion.png"}
    text = render_markdown(
        "Grade model validation",
        model_name="huleedu-grade-sv",
        model_version="8",
        gates=gates,
        grade=report,
        latency=latency,
        champion=champion,
        baselines=baselines,
        fairness=fairness,
        gaming=gaming,
        cutpoints={"objective": "qwk+adjacent", "max_share_gap": 0.03, "fitted_on": "oof rows"},
        plots=plot_paths,
        relative_to=figure_dir,
        oracle_qwk=0.93,
    )
    lines = text.splitlines()
    assert lines[0] == "# Grade model validation"
    verdict = next(line for line in lines if line.startswith("**Verdict"))
    assert verdict.startswith("**Verdict: FAIL**")
    assert "onnx_parity_over_tolerance" in verdict
    assert text.index("## Gates") < text.index("## Grade model")
    assert "| gate | value | interval | threshold | result | detail |" in text
    for gate in gates:
        assert f"`{gate.gate}`" in text
    for key in report.metrics:
        if key not in {"qwk_ci_low", "qwk_ci_high"}:
            assert f"`{key}`" in text, key
    ci = f"[{report.metrics['qwk_ci_low']:.3f}, {report.metrics['qwk_ci_high']:.3f}]"
    assert ci in text
    assert "best achievable (oracle) QWK" in text and "0.930" in text
    assert "![Confusion matrix](grade_confusion.png)" in text
    assert str(tmp_path) not in text
    assert "| **F** |" in text  # the confusion matrix is a table
    for heading in ("### By prompt", "### By source", "Grade distribution", "Latency"):
        assert heading in text
    assert text.index("## Grade model") < text.index("## Fairness across subgroups")
    # Resistance to gaming: share risen and the change distribution per perturbation, the cost.
    assert text.index("## Fairness across subgroups") < text.index("## Resistance to gaming")
    assert "more than **0.400** above its original (0.25 SD" in text
    assert "| `repeat_paragraph` | 80 | 25.0% | 50.0% | 12.5% | ✗ | +0.300 | +0.000 |" in text
    assert "| `gibberish` | 80 | 0.0% | 100.0% | 0.0% | ✓ | -2.500 | -4.000 |" in text
    assert "took 12.5 s, shared by every model" in text
    assert "repeat_paragraph: 12.5% of 80 gamed essays" in verdict
    assert "max \\|Δp\\|" in text  # pipes inside a cell are escaped
    table_rows = [line for line in lines if line.startswith("| `onnx_parity_over")]
    assert table_rows and table_rows[0].count(" | ") == 5
    # Every gated value with an interval shows it beside the value, with its level.
    low, high = report.intervals["qwk"]
    qwk_row = next(line for line in lines if line.startswith("| `min_qwk`"))
    assert f"| {report.metrics['qwk']:.4g} | [{low:.4g}, {high:.4g}] (95%) | >= 0.7 |" in qwk_row
    ridge = baselines.margins["ridge"]
    ridge_row = next(line for line in lines if line.startswith("| `not_worse_than_ridge`"))
    assert f"| [{ridge.low:.4g}, {ridge.high:.4g}] (90%) | interval high >= 0 |" in ridge_row
    # The gate section says how a value near its threshold is decided.
    assert "a floor (`min_*`, `max_*`) judges the point estimate" in text
    assert "judge the 90% paired bootstrap interval" in text
    # Baselines: model, trivial and ridge on the gated metric, the margin with its interval.
    assert text.index("## Baselines") > text.index("## Grade model")
    assert "| contender | QWK | model better by | 90% interval |" in text
    assert f"| model | {baselines.model_value:.3f} |  |  |" in text
    trivial = baselines.margins["trivial"]
    assert (
        f"| trivial | {trivial.value:.3f} | {trivial.margin:+.3f} | "
        f"[{trivial.low:+.3f}, {trivial.high:+.3f}] |"
    ) in text
    assert "fitted on the 900 essays of the training split" in text
    # What the cut points optimise, read from the bundle's record.
    assert (
        "How classes are decided: the cut points maximise QWK + adjacent agreement with class "
        "shares kept within 3 points of the training shares, chosen on oof rows."
    ) in text


def test_markdown_says_when_baselines_or_the_cutpoint_objective_are_missing(
    report: GradeReport,
) -> None:
    reason = "the holdout's training split has no labelled essays for huleedu-grade-sv"
    text = render_markdown(
        "Grade",
        model_name="huleedu-grade-sv",
        model_version="1",
        gates=[],
        grade=report,
        baselines=BaselineComparison.not_available("qwk", reason, n=300, n_train=0, confidence=0.9),
    )
    assert f"No baseline was compared: {reason}. The baseline gates fail." in text
    assert "does not record what its cut points optimise" in text


def test_markdown_for_band_cefr_and_skills_without_a_champion() -> None:
    rng = np.random.default_rng(8)
    true = rng.integers(8, 17, 100) / 2
    band = band_report(true, true + rng.normal(0, 0.3, 100), seed=0, n_boot=20)
    rating = rng.integers(2, 11, 100) / 2
    skill = skill_report(
        SKILLS[0],
        (rating >= 3.5).astype(int),
        np.clip(rating / 5, 0, 1),
        rating,
        seed=0,
        n_boot=20,
    )
    text = render_markdown(
        "All models", model_name="m", model_version="1", gates=[], band=band, skills=[skill]
    )
    assert "**Verdict: FAIL** — no gates were evaluated" in text
    assert "No champion is registered yet." in text
    for key in band.metrics:
        assert f"`{key}`" in text
    assert "| task_response | 100 |" in text


# --------------------------------------------------------------------------- plots


def _assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_every_plot_writes_a_readable_png(
    tmp_path: Path, data: dict[str, np.ndarray], report: GradeReport
) -> None:
    rng = np.random.default_rng(9)
    true = rng.integers(6, 17, 80) / 2
    skill = skill_report(
        "vocabulary",
        rng.integers(0, 2, 80),
        rng.random(80),
        rng.uniform(1, 5, 80),
        seed=0,
        n_boot=10,
    )
    written = [
        plots.confusion_matrix_plot(report.confusion, SWEDISH_GRADES, tmp_path / "c.png"),
        plots.calibration_plot(report.calibration, tmp_path / "cal_rows.png"),
        plots.calibration_plot(
            (data["y_true"] == data["y_pred"], data["probs"].max(axis=1)),
            tmp_path / "cal_arrays.png",
        ),
        plots.distribution_plot(
            SWEDISH_GRADES, report.predicted_share, report.reference_share, tmp_path / "d.png"
        ),
        plots.fairness_plot(grade_fairness(data), tmp_path / "s.png", threshold=0.1),
        plots.band_scatter_plot(true, true + rng.normal(0, 0.4, 80), tmp_path / "b.png"),
        plots.skill_calibration_plot([skill], tmp_path / "k.png"),
    ]
    for path in written:
        _assert_png(path)


def test_grade_plots_and_report_bundle(tmp_path: Path, report: GradeReport) -> None:
    folder = tmp_path / "bundle"
    figures = plots.grade_plots(report, folder)
    assert set(figures) == {"Confusion matrix", "Calibration", "Grade distribution"}
    text = render_markdown(
        "t",
        model_name="m",
        model_version="1",
        gates=[],
        grade=report,
        plots=figures,
        relative_to=folder,
    )
    path = plots.write_report_bundle(folder, text, figures)
    assert path == folder / "report.md"
    for figure in figures.values():
        assert f"]({figure.name})" in path.read_text(encoding="utf-8")
    outside = plots.confusion_matrix_plot(report.confusion, SWEDISH_GRADES, tmp_path / "x.png")
    with pytest.raises(ValueError, match="outside"):
        plots.write_report_bundle(folder, text, {"stray": outside})
    with pytest.raises(FileNotFoundError):
        plots.write_report_bundle(folder, text, {"missing": folder / "nope.png"})


def test_unjudged_perturbations_are_marked_in_the_gaming_table() -> None:
    from huleedu_pipelines.modeling.report import _gaming_section
    from huleedu_pipelines.services.gaming import GamingReport, PerturbationEffect

    gaming = GamingReport(
        tolerance=0.4,
        tolerance_sd=0.25,
        effects=(
            PerturbationEffect("append_off_topic", 50, 0.34, 0.34, 0.0, 0.26, (0.0,) * 5),
            PerturbationEffect("gibberish", 50, 0.0, 0.2, 1.0, -1.8, (0.0,) * 5),
        ),
        feature_seconds=1.0,
    )
    gate = GateResult("max_gaming_share", True, 0.0, 0.05, "<=", "passes")
    table = "\n".join(_gaming_section(gaming, [gate], frozenset({"append_off_topic"})))
    assert "| `append_off_topic` | 50 | 34.0% | 0.0% | 34.0% | ⚠ not judged |" in table
    assert "| `gibberish` | 50 | 20.0% | 100.0% | 0.0% | ✓ |" in table
