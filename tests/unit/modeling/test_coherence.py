"""Coherence between models: percentile ranks, equipercentile linking to CEFR levels, the
agreement matrix, the reasons given for constructed contradictions, and review thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from huleedu_pipelines.domain import CEFR_LEVELS, SWEDISH_GRADES
from huleedu_pipelines.modeling import coherence
from huleedu_pipelines.modeling.bundle import BundlePrediction
from huleedu_pipelines.modeling.coherence import LevelReference, ModelOutput

UNIFORM_CEFR = tuple([1 / 6] * 6)
GRADE_REFERENCE = LevelReference(tuple(np.linspace(0.0, 7.0, 101)), None, 500)
"""Grade scores spread evenly over 0..7: a score s sits at percentile s / 7."""
SKILL_REFERENCE = LevelReference(tuple(np.linspace(1.0, 5.0, 101)), None, 500)


def ordinal(labels, scores=None) -> BundlePrediction:
    labels = np.asarray(labels, dtype=np.int64)
    score = labels.astype(float) if scores is None else np.asarray(scores, dtype=float)
    return BundlePrediction(labels, None, score, np.full(labels.size, 0.9))


def band(bands) -> BundlePrediction:
    values = np.asarray(bands, dtype=float)
    return BundlePrediction(values, None, values, np.full(values.size, 0.6))


def skill(ratings) -> BundlePrediction:
    values = np.asarray(ratings, dtype=float)
    return BundlePrediction(
        (values >= 3.5).astype(np.int64), None, np.clip((values - 1) / 4, 0, 1), values, values
    )


def grade_output(grades: list[str], reference=GRADE_REFERENCE) -> ModelOutput:
    codes = [SWEDISH_GRADES.index(g) for g in grades]
    return ModelOutput("grade", ordinal(codes), reference, SWEDISH_GRADES)


def cefr_output(levels: list[str], shares=UNIFORM_CEFR) -> ModelOutput:
    codes = [CEFR_LEVELS.index(level) for level in levels]
    reference = LevelReference((0.0, 5.0), shares, 500)
    return ModelOutput("cefr", ordinal(codes), reference, CEFR_LEVELS)


def band_output(bands: list[float], shares=UNIFORM_CEFR) -> ModelOutput:
    return ModelOutput("band", band(bands), LevelReference((4.0, 9.0), shares, 500))


def skill_outputs(ratings_per_skill: list[list[float]]) -> list[ModelOutput]:
    return [
        ModelOutput("skill", skill(ratings), SKILL_REFERENCE, ("not_high", "high"))
        for ratings in ratings_per_skill
    ]


def pairs_of(*outputs):
    flat = [o for output in outputs for o in (output if isinstance(output, list) else [output])]
    return coherence.compared_pairs(coherence.level_views(flat))


# --------------------------------------------------------------------------- ranks and levels


def test_percentile_ranks_interpolate_and_give_ties_their_middle_rank() -> None:
    quantiles = np.linspace(0.0, 100.0, 101)
    assert coherence.percentile_ranks([25.0, 50.5, -3.0, 120.0], quantiles) == pytest.approx(
        [0.25, 0.505, 0.0, 1.0]
    )
    tied = [0.0] * 51 + list(np.linspace(0.02, 1.0, 50))  # half the reference scores are 0
    assert coherence.percentile_ranks([0.0], tied)[0] == pytest.approx(0.25)
    assert coherence.percentile_ranks([3.0, 7.0], [2.0] * 101).tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("percentile", "level"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.69, 1), (0.7, 2), (1.0, 2)]
)
def test_level_at_reads_the_cumulative_shares(percentile: float, level: int) -> None:
    assert coherence.level_at([percentile], (0.2, 0.5, 0.3))[0] == level


def test_level_at_never_returns_a_level_without_share() -> None:
    shares = (0.0, 0.5, 0.5, 0.0)
    assert coherence.level_at([0.0, 0.49, 0.5, 1.0], shares).tolist() == [1, 1, 2, 2]


def test_fit_reference_stores_quantiles_and_the_cefr_shares_and_survives_json() -> None:
    prediction = ordinal([0, 1, 1, 2, 2, 2, 5, 5], scores=[0.1, 1, 1.2, 2, 2.1, 1.9, 4.8, 5])
    reference = coherence.fit_reference("cefr", prediction)
    assert reference.n == 8
    assert reference.level_shares == pytest.approx([1 / 8, 2 / 8, 3 / 8, 0, 0, 2 / 8])
    assert reference.quantiles[0] == pytest.approx(0.1)
    assert reference.quantiles[-1] == pytest.approx(5.0)
    assert np.all(np.diff(reference.quantiles) >= 0)
    stored = json.loads(json.dumps({coherence.REFERENCE_KEY: reference.to_info()}))
    assert LevelReference.from_info(stored) == reference
    assert LevelReference.from_info({}) is None


def test_the_band_reference_holds_the_shares_of_the_cefr_levels_of_its_bands() -> None:
    reference = coherence.fit_reference("band", band([3.5, 4.0, 5.0, 6.0, 7.0, 8.5, 8.0, 9.0]))
    # A1, A2, B1, B2, C1, C2, C1, C2
    assert reference.level_shares == pytest.approx([1 / 8, 1 / 8, 1 / 8, 1 / 8, 2 / 8, 2 / 8])
    assert coherence.fit_reference("grade", ordinal([1, 2])).level_shares is None


# --------------------------------------------------------------------------- contradictions


def test_grade_a_beside_cefr_a2_is_flagged_with_both_levels_and_the_gap() -> None:
    pairs = pairs_of(grade_output(["A", "C"]), cefr_output(["A2", "B1"]))
    assert [p.name for p in pairs] == ["grade vs CEFR"]
    reasons = coherence.incoherence_reasons(pairs, 2)
    assert reasons == [["grade A (≈C2) vs CEFR A2 (4 levels apart)"], []]


def test_cefr_and_the_band_are_compared_directly_even_without_references() -> None:
    cefr = ModelOutput("cefr", ordinal([5, 2, 1]), None, CEFR_LEVELS)
    bands = ModelOutput("band", band([4.0, 5.5, 8.5]), None)
    pairs = pairs_of(cefr, bands)
    assert [(p.name, p.linking) for p in pairs] == [
        ("CEFR vs CEFR from band", "direct (both CEFR levels)")
    ]
    assert coherence.incoherence_reasons(pairs, 3) == [
        ["CEFR C2 vs band 4.0 (A2) (4 levels apart)"],
        [],
        ["CEFR A2 vs band 8.5 (C2) (4 levels apart)"],
    ]


def test_a_model_without_a_reference_is_left_out_of_linked_pairs() -> None:
    pairs = pairs_of(grade_output(["A"], reference=None), cefr_output(["A1"]), band_output([4.0]))
    assert [p.name for p in pairs] == ["CEFR vs CEFR from band"]


def test_grade_is_linked_to_each_partners_own_level_shares() -> None:
    # Grade C+ (score 5) sits at percentile 5/7 = 0.71: C1 on uniform shares, but B1 where
    # the band model puts 80% of essays at B1 or below.
    band_shares = (0.1, 0.3, 0.4, 0.1, 0.05, 0.05)
    pairs = pairs_of(grade_output(["C+"]), cefr_output(["C1"]), band_output([5.5], band_shares))
    by_name = {p.name: p for p in pairs}
    assert by_name["grade vs CEFR"].level_a.tolist() == [4]
    assert by_name["grade vs CEFR from band"].level_a.tolist() == [2]
    assert by_name["grade vs CEFR from band"].linking == (
        "grade linked by percentile rank to the band model's CEFR level shares"
    )


def test_the_skill_profile_is_the_median_of_the_skills_linked_levels() -> None:
    # Two skills rate the essay 5 (C2) and one 1 (A1): the profile is C2 against CEFR A1.
    skills = skill_outputs([[5.0, 3.0], [5.0, 3.0], [1.0, 3.0]])
    pairs = pairs_of(skills, cefr_output(["A1", "B1"]))
    assert [p.name for p in pairs] == ["skill profile vs CEFR"]
    assert pairs[0].level_a.tolist() == [5, 3]
    assert coherence.incoherence_reasons(pairs, 2) == [
        ["skill profile (≈C2) vs CEFR A1 (5 levels apart)"],
        [],
    ]


def test_grade_and_skills_are_linked_to_the_cefr_models_shares() -> None:
    skills = skill_outputs([[1.0]])
    pairs = pairs_of(grade_output(["A"]), skills, cefr_output(["B1"]))
    grade_vs_skills = {p.name: p for p in pairs}["skill profile vs grade"]
    assert "both linked" in grade_vs_skills.linking
    assert grade_vs_skills.reason(0) == "skill profile (≈A1) vs grade A (≈C2) (5 levels apart)"


def test_grade_and_skills_alone_have_no_cefr_scale_to_meet_on() -> None:
    assert pairs_of(grade_output(["A"]), skill_outputs([[1.0]])) == []


# --------------------------------------------------------------------------- agreement matrix


def test_the_agreement_matrix_counts_exact_adjacent_and_far_pairs() -> None:
    cefr = ModelOutput("cefr", ordinal([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]), None, CEFR_LEVELS)
    # CEFR levels of the bands: A2, A2, C1, B2, C1, A1 -> gaps 1, 0, 2, 0, 0, 5
    bands = ModelOutput("band", band([4.0, 4.5, 7.0, 6.5, 7.5, 3.5]), None)
    matrix = coherence.agreement_matrix(pairs_of(cefr, bands))
    row = matrix.row(0, named=True)
    assert row["pair"] == "CEFR vs CEFR from band"
    assert row["n"] == 6
    assert row["exact"] == pytest.approx(3 / 6)
    assert row["within_one"] == pytest.approx(4 / 6)
    assert row["apart_two_or_more"] == pytest.approx(2 / 6)
    assert row["spearman_rho"] == pytest.approx(
        coherence.spearman_rho([0, 1, 2, 3, 4, 5], [4.0, 4.5, 7.0, 6.5, 7.5, 3.5])
    )


def test_spearman_rho_is_a_rank_correlation() -> None:
    assert coherence.spearman_rho([1, 2, 3, 4], [10, 200, 3000, 40000]) == pytest.approx(1.0)
    assert coherence.spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(coherence.spearman_rho([1, 1, 1], [1, 2, 3]))


def test_the_markdown_report_shows_each_pair_and_the_flagged_share() -> None:
    pairs = pairs_of(grade_output(["A", "C"]), cefr_output(["A2", "B1"]))
    text = coherence.render_markdown(
        coherence.agreement_matrix(pairs),
        n_essays=2,
        flagged=[("e1", "grade A (≈C2) vs CEFR A2 (4 levels apart)")],
    )
    assert "| grade vs CEFR | 2 | 0.0% | 50.0% | 50.0% |" in text
    assert "1 of 2 (50.0%)" in text
    assert "| e1 | grade A (≈C2) vs CEFR A2 (4 levels apart) |" in text
    assert "No two models" in coherence.render_markdown(coherence.agreement_matrix([]), n_essays=5)


# --------------------------------------------------------------------------- review threshold


@pytest.mark.parametrize("target", [0.1, 0.15, 0.2])
def test_the_review_threshold_puts_the_target_share_under_it(target: float) -> None:
    confidence = np.random.default_rng(3).beta(5, 4, size=2000)
    derived = coherence.review_threshold(confidence, target)
    assert derived.share_below == pytest.approx(target, abs=0.002)
    assert np.mean(confidence < derived.threshold) == pytest.approx(derived.share_below)
    stored = {coherence.REVIEW_KEY: derived.to_info()}
    assert coherence.stored_review_threshold(stored) == pytest.approx(derived.threshold, abs=1e-6)
    assert coherence.stored_review_threshold({}) is None


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1])
def test_a_review_share_outside_zero_and_one_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        coherence.review_threshold([0.3, 0.5], target)


def test_the_low_confidence_reason_shows_enough_decimals_to_differ() -> None:
    assert coherence.low_confidence_reason(0.31, 0.38) == "grade confidence 0.31 below 0.38"
    assert coherence.low_confidence_reason(0.379, 0.38) == "grade confidence 0.379 below 0.380"
