"""Human–human agreement beside human–machine on double-scored essays, the degradation and
its gate `max_qwk_degradation`, and the report section."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score

from huleedu_pipelines.domain import CEFR_LEVELS, SWEDISH_GRADES
from huleedu_pipelines.modeling.bundle import BundlePrediction
from huleedu_pipelines.modeling.families import CEFR, GRADE, SKILL, HoldoutEvidence
from huleedu_pipelines.modeling.families import registered_model as model_named
from huleedu_pipelines.modeling.gates import rater_agreement_gate
from huleedu_pipelines.modeling.names import CEFR_MODEL, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.modeling.rater_agreement import (
    HALF_BAND_SCALE,
    HALF_POINT_RATING_SCALE,
    RaterScores,
    class_index_scale,
    rater_agreement,
)
from huleedu_pipelines.modeling.report import render_markdown
from huleedu_pipelines.settings import Settings

THRESHOLDS = Settings.model_construct().gate_thresholds()  # defaults: 0.10, at least 30 essays
GRADE_SCALE = class_index_scale(SWEDISH_GRADES, "grade")
NAN = math.nan


def qwk(a, b, k: int = 8) -> float:
    """sklearn's quadratic kappa on the full scale: the independent oracle."""
    return float(cohen_kappa_score(a, b, weights="quadratic", labels=list(range(k))))


# Ten holdout essays; the last two were scored once, and the model gets them badly wrong.
FIRST = np.array([0, 1, 2, 3, 4, 5, 6, 7, 3, 4], dtype=float)
SECOND = np.array([0, 1, 2, 4, 4, 5, 5, 7, NAN, NAN])
MACHINE = np.array([0, 2, 2, 3, 5, 5, 6, 6, 0, 0], dtype=float)


def test_both_agreements_are_measured_on_the_double_scored_essays_only() -> None:
    result = rater_agreement(
        RaterScores(FIRST, SECOND, MACHINE, GRADE_SCALE), min_n=5, seed=3, n_boot=200
    )
    assert (result.n, result.n_holdout, result.gated) == (8, 10, True)
    hh, hm = result.human_human, result.human_machine
    assert hh is not None and hm is not None
    assert hh.qwk == pytest.approx(qwk(FIRST[:8], SECOND[:8]))
    assert hm.qwk == pytest.approx(qwk(FIRST[:8], MACHINE[:8]))
    assert (hh.exact_agreement, hh.adjacent_agreement) == (0.75, 1.0)  # 2 of 8 differ by one
    assert (hm.exact_agreement, hm.adjacent_agreement) == (0.625, 1.0)  # 3 of 8 differ by one
    assert hh.pearson_r == pytest.approx(np.corrcoef(FIRST[:8], SECOND[:8])[0, 1])
    sd = math.sqrt((FIRST[:8].var(ddof=1) + SECOND[:8].var(ddof=1)) / 2)
    assert hh.smd == pytest.approx((SECOND[:8].mean() - FIRST[:8].mean()) / sd)
    assert result.degradation == pytest.approx(hh.qwk - hm.qwk)

    # What the model does on essays scored once changes nothing.
    elsewhere = MACHINE.copy()
    elsewhere[8:] = [7, 7]
    again = rater_agreement(
        RaterScores(FIRST, SECOND, elsewhere, GRADE_SCALE), min_n=5, seed=3, n_boot=200
    )
    assert again == result


def test_the_degradation_interval_is_paired_over_the_same_essays() -> None:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 8, 60).astype(float)
    second = np.clip(first + rng.integers(-1, 2, 60), 0, 7)
    same_as_second = rater_agreement(
        RaterScores(first, second, second.copy(), GRADE_SCALE), min_n=30, seed=1, n_boot=300
    )
    # Each resample recomputes both QWKs on the same essays: identical scorers, zero width.
    assert same_as_second.degradation == 0.0
    assert same_as_second.degradation_interval == (0.0, 0.0)
    hh_low, hh_high = same_as_second.human_human.qwk_interval
    assert hh_low < same_as_second.human_human.qwk < hh_high  # a real interval per QWK

    machine = np.clip(first + rng.integers(-2, 3, 60), 0, 7)
    result = rater_agreement(
        RaterScores(first, second, machine, GRADE_SCALE), min_n=30, seed=1, n_boot=300
    )
    low, high = result.degradation_interval
    assert low < result.degradation < high
    assert result == rater_agreement(
        RaterScores(first, second, machine, GRADE_SCALE), min_n=30, seed=1, n_boot=300
    )


@pytest.mark.parametrize(
    ("scale", "scores", "codes"),
    [
        (GRADE_SCALE, [0.0, 2.5, 6.6, 9.0], [0, 3, 7, 7]),
        (HALF_BAND_SCALE, [6.0, 6.5, 6.24, 6.25, 9.4, -1.0], [12, 13, 12, 13, 18, 0]),
        (HALF_POINT_RATING_SCALE, [1.0, 3.25, 3.74, 5.0, 5.6, 0.2], [0, 5, 5, 8, 8, 0]),
    ],
)
def test_scores_become_codes_rounded_half_up_and_clipped(scale, scores, codes) -> None:
    assert scale.to_codes(np.array(scores)).tolist() == codes


def test_skill_ratings_agree_on_half_points() -> None:
    first = np.array([3.0, 3.5, 4.0, 2.0, 2.5, 3.25])  # a mean of two raters: 3.5 on the scale
    second = np.array([3.0, 4.0, 4.0, 2.0, 3.0, 3.5])
    machine = np.array([3.1, 3.4, 3.8, 2.6, 2.4, 3.6])  # codes of 3.0, 3.5, 4.0, 2.5, 2.5, 3.5
    result = rater_agreement(
        RaterScores(first, second, machine, HALF_POINT_RATING_SCALE), min_n=1, seed=0, n_boot=50
    )
    assert result.human_human.exact_agreement == pytest.approx(4 / 6)
    assert result.human_machine.exact_agreement == pytest.approx(5 / 6)
    assert result.human_machine.qwk == pytest.approx(qwk([4, 5, 6, 2, 3, 5], [4, 5, 6, 3, 3, 5], 9))
    assert result.human_machine.pearson_r == pytest.approx(np.corrcoef(first, machine)[0, 1])


def simulated(n: int, machine_noise: float, seed: int = 11) -> RaterScores:
    """Two teachers grading a latent ability with marking noise 0.6, and a model with its own."""
    rng = np.random.default_rng(seed)
    ability = rng.normal(3.5, 1.6, n)

    def grade(noise: float) -> np.ndarray:
        return np.clip(np.rint(ability + rng.normal(0, noise, n)), 0, 7)

    return RaterScores(grade(0.6), grade(0.6), grade(machine_noise), GRADE_SCALE)


def test_a_model_much_worse_than_a_second_teacher_fails_the_gate_and_one_near_it_passes() -> None:
    near = rater_agreement(simulated(200, 0.7), min_n=30, seed=2, n_boot=300)
    far = rater_agreement(simulated(200, 2.5), min_n=30, seed=2, n_boot=300)
    assert near.human_human.qwk == far.human_human.qwk > 0.8
    assert near.human_machine.qwk > 0.75 > 0.5 > far.human_machine.qwk

    passed = rater_agreement_gate(near, THRESHOLDS)
    assert passed.passed and passed.gate == "max_qwk_degradation"
    assert passed.value == pytest.approx(near.degradation) and passed.value < 0.10
    assert (passed.low, passed.high) == near.degradation_interval
    assert "QWK degradation on 200 double-scored essays" in passed.message

    failed = rater_agreement_gate(far, THRESHOLDS)
    assert not failed.passed
    assert failed.value == pytest.approx(far.degradation) and failed.value > 0.25
    assert failed.low > 0.10  # the whole interval is beyond the threshold
    assert f"human–human {far.human_human.qwk:.3f}" in failed.message
    assert "> 0.100" in failed.message


def test_without_double_scored_essays_the_gate_does_not_apply_and_the_section_is_absent() -> None:
    scored_once = np.full(FIRST.size, NAN)
    result = rater_agreement(
        RaterScores(FIRST, scored_once, MACHINE, GRADE_SCALE), min_n=30, seed=0
    )
    assert (result.n, result.human_human, result.human_machine) == (0, None, None)
    assert math.isnan(result.degradation)
    for agreement in (result, None):
        gate = rater_agreement_gate(agreement, THRESHOLDS)
        assert gate.passed and gate.value is None
        assert gate.message.startswith("no double-scored essays: not applicable")
    markdown = render_markdown(
        "t", model_name="m", model_version="1", gates=[gate], rater_agreement=result
    )
    assert "Human–human agreement" not in markdown


def test_fewer_double_scored_essays_than_the_minimum_are_reported_not_gated() -> None:
    far = rater_agreement(simulated(20, 3.0), min_n=30, seed=2, n_boot=100)
    assert far.n == 20 and not far.gated and far.degradation > 0.2
    gate = rater_agreement_gate(far, THRESHOLDS)
    assert gate.passed and gate.value == pytest.approx(far.degradation)
    assert "only 20 holdout essays were scored twice, fewer than the 30" in gate.message
    assert "reported, not gated" in gate.message
    markdown = render_markdown(
        "t", model_name="m", model_version="1", gates=[gate], rater_agreement=far
    )
    assert "Fewer than 30 essays were scored twice" in markdown


def test_no_machine_score_on_the_raters_scale_fails_once_the_gate_applies() -> None:
    scores = dataclasses.replace(simulated(40, 0.7), machine=None, note="no rating-scale output")
    result = rater_agreement(scores, min_n=30, seed=0, n_boot=50)
    assert result.human_human is not None and result.human_machine is None
    gate = rater_agreement_gate(result, THRESHOLDS)
    assert not gate.passed and gate.value is None
    assert "no rating-scale output" in gate.message


def test_scores_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="use nan where an essay was scored once"):
        rater_agreement(RaterScores(FIRST, SECOND[:8], MACHINE, GRADE_SCALE), min_n=1, seed=0)


def test_the_report_shows_both_agreements_with_n_and_the_degradation() -> None:
    result = rater_agreement(simulated(200, 2.5), min_n=30, seed=2, n_boot=300)
    gate = rater_agreement_gate(result, THRESHOLDS)
    markdown = render_markdown(
        "t", model_name="m", model_version="1", gates=[gate], rater_agreement=result
    )
    section = markdown[markdown.index("## Human–human agreement") :]
    assert "200 of the 200 holdout essays were scored by a second human rater" in section
    assert "| statistic | human–human (n=200) | human–machine (n=200) |" in section
    hh, hm = result.human_human, result.human_machine
    assert f"| QWK | {hh.qwk:.3f} [" in section and f"] | {hm.qwk:.3f} [" in section
    assert "Adjacent agreement (within one grade)" in section
    assert f"**{result.degradation:+.3f}**" in section
    assert "gate `max_qwk_degradation` ≤ 0.1: **FAIL**" in section


# --------------------------------------------------------------------------- per family


def evidence(model_name: str, rows: dict, labels, second: list[tuple[str, str, str]], **kw):
    n = len(rows["essay_id"])
    return HoldoutEvidence(
        model=model_named(model_name),
        rows=pl.DataFrame(rows),
        prediction=BundlePrediction(
            labels=np.asarray(labels),
            probabilities=None,
            score=np.zeros(n),
            confidence=np.ones(n),
            **kw,
        ),
        training_targets=lambda: np.zeros(1),
        subgroups=pl.DataFrame(schema={"essay_id": pl.String, "group": pl.String}),
        second_ratings=pl.DataFrame(second, schema=["essay_id", "label", "value"], orient="row"),
    )


def test_each_family_reads_its_own_second_rating_on_its_scale() -> None:
    ids = ["e1", "e2", "e3"]
    second = [("e1", "grade", "C+"), ("e2", "band", "6.5"), ("e3", "band", "8.5")]
    second += [("e1", "grammar", "3.5"), ("e3", "vocabulary", "2")]

    grade = GRADE.rater_scores(
        evidence(GRADE_MODEL, {"essay_id": ids, "target": [5, 1, 2]}, [5, 1, 3], second)
    )
    assert grade.second[0] == SWEDISH_GRADES.index("C+") and np.isnan(grade.second[1:]).all()
    assert grade.machine.tolist() == [5, 1, 3]

    cefr = CEFR.rater_scores(
        evidence(CEFR_MODEL, {"essay_id": ids, "target": [3, 3, 5]}, [3, 2, 5], second)
    )
    # band 6.5 is B2 and 8.5 is C2: the CEFR model is judged on the levels of both bands
    assert np.isnan(cefr.second[0])
    assert cefr.second[1:].tolist() == [CEFR_LEVELS.index("B2"), CEFR_LEVELS.index("C2")]
    assert cefr.scale.n_classes == len(CEFR_LEVELS)

    rows = {"essay_id": ids, "target": [1, 0, 0], "rating": [3.5, 3.0, 2.5]}
    grammar = SKILL.rater_scores(
        evidence(
            SKILL_MODELS["grammar"],
            rows,
            [1, 0, 0],
            second,
            rating_scale_score=np.array([3.4, 3.1, 2.2]),
        )
    )
    assert grammar.second[0] == 3.5 and np.isnan(grammar.second[1:]).all()
    assert grammar.first.tolist() == [3.5, 3.0, 2.5]
    assert grammar.machine.tolist() == [3.4, 3.1, 2.2]
    without = SKILL.rater_scores(evidence(SKILL_MODELS["grammar"], rows, [1, 0, 0], second))
    assert without.machine is None and "no rating-scale output" in without.note
