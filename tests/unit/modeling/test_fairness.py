"""Fairness across subgroups on small generated data: the SMD as defined, the two gates, the
length check and the report's tables."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.fairness import (
    FairnessReport,
    FairnessScores,
    fairness_report,
    pooled_sd,
)
from huleedu_pipelines.modeling.gates import fairness_gates
from huleedu_pipelines.modeling.report import render_markdown
from huleedu_pipelines.settings import Settings

THRESHOLDS = Settings.model_construct().gate_thresholds()  # the defaults: 0.15, 0.10, 30
N_BOOT = 200
N = 400


def ids(n: int) -> list[str]:
    return [f"e{i:03d}" for i in range(n)]


def groups_frame(essay_ids: list[str], **groups: list[str]) -> pl.DataFrame:
    """`essay_id, group, value` with one value per essay for each named group."""
    return pl.DataFrame(
        {
            "essay_id": [e for values in groups.values() for e in essay_ids[: len(values)]],
            "group": [g for g, values in groups.items() for _ in values],
            "value": [v for values in groups.values() for v in values],
        }
    )


def report_of(
    human: np.ndarray,
    machine: np.ndarray,
    subgroups: pl.DataFrame,
    *,
    word_counts: np.ndarray | None = None,
    min_n: int = 30,
) -> FairnessReport:
    scores = FairnessScores(human, machine, "rating 1-5", "pearson_r", m.pearson_r)
    return fairness_report(
        scores,
        ids(human.size),
        subgroups,
        word_counts,
        min_n_per_group=min_n,
        seed=0,
        n_boot=N_BOOT,
    )


def by_gate(fairness: FairnessReport) -> dict:
    return {gate.gate: gate for gate in fairness_gates(fairness, THRESHOLDS)}


GENDER = ["F", "M"] * (N // 2)


@pytest.fixture(scope="module")
def ratings() -> tuple[np.ndarray, np.ndarray]:
    """Human ratings and an unbiased model's scores, 400 essays: human plus noise whose mean is
    zero within each gender (at 200 essays, raw noise of SD 0.4 alone moves a group's SMD by
    about 0.03, a third of the subgroup threshold)."""
    rng = np.random.default_rng(7)
    human = np.clip(np.round(rng.normal(3.0, 0.8, N) * 2) / 2, 1, 5)
    noise = rng.normal(0, 0.4, N)
    for value in set(GENDER):
        in_group = np.array(GENDER) == value
        noise[in_group] -= noise[in_group].mean()
    return human, human + noise


def test_smd_is_the_mean_difference_over_the_whole_holdouts_pooled_sample_sd() -> None:
    human = np.array([2.0, 4.0, 6.0, 8.0])  # mean 5, sample variance 20/3
    machine = np.array([3.0, 4.0, 5.0, 6.0])  # mean 4.5, sample variance 5/3
    pooled = math.sqrt((20 / 3 + 5 / 3) / 2)  # 2.0412
    assert pooled_sd(human, machine) == pytest.approx(pooled)
    fairness = report_of(human, machine, groups_frame(ids(4), school=["a", "a", "b", "b"]), min_n=2)
    assert fairness.pooled_sd == pytest.approx(2.041241452)
    assert fairness.smd == pytest.approx(-0.5 / pooled) == pytest.approx(-0.244949)
    a, b = fairness.subgroups
    # Each school's own mean difference over the same whole-holdout pooled SD.
    assert (a.label, a.n, a.human_mean, a.machine_mean) == ("school=a", 2, 3.0, 3.5)
    assert a.smd == pytest.approx(0.5 / pooled)
    assert (b.label, b.human_mean, b.machine_mean) == ("school=b", 7.0, 5.5)
    assert b.smd == pytest.approx(-1.5 / pooled) == pytest.approx(-0.734847)
    assert fairness.worst is b
    # The unpooled (RSMTool 7) and pooled-within-group values would differ: this is not them.
    assert b.smd != pytest.approx(-1.5 / np.std([6.0, 8.0], ddof=1))


def test_a_model_that_scores_one_subgroup_higher_fails_the_subgroup_gate_naming_it(
    ratings: tuple[np.ndarray, np.ndarray],
) -> None:
    human, unbiased = ratings
    subgroups = groups_frame(ids(N), gender=GENDER)
    fair = by_gate(report_of(human, unbiased, subgroups))
    assert fair["max_abs_smd"].passed and fair["max_abs_subgroup_smd"].passed
    assert (
        "of 2 subgroups with >= 30 essays, 0 lie wholly beyond ±0.1"
        in fair["max_abs_subgroup_smd"].message
    )

    favoured = np.array(GENDER) == "F"
    biased = unbiased + favoured * 0.5 * human.std(ddof=1)  # +0.5 SD for gender F only
    fairness = report_of(human, biased, subgroups)
    female = next(row for row in fairness.subgroups if row.label == "gender=F")
    assert female.smd == pytest.approx(
        (biased[favoured].mean() - human[favoured].mean()) / pooled_sd(human, biased)
    )
    assert 0.35 < female.smd < 0.55
    assert female.smd_interval[0] > 0.1  # clearly, not by chance
    gate = by_gate(fairness)["max_abs_subgroup_smd"]
    assert not gate.passed
    assert gate.value == female.smd and (gate.low, gate.high) == female.smd_interval
    assert gate.message.startswith(
        f"subgroup gender=F (n=200): SMD {female.smd:+.3f}, 95% bootstrap interval "
        f"{female.smd_interval[0]:+.3f} to {female.smd_interval[1]:+.3f}; of 2 subgroups with "
        ">= 30 essays, 1 lie wholly beyond ±0.1"
    )
    assert gate.message.endswith(f": gender=F (n=200, {female.smd:+.3f})")


def test_a_small_subgroup_over_the_threshold_by_chance_is_named_but_does_not_fail(
    ratings: tuple[np.ndarray, np.ndarray],
) -> None:
    """30 essays 0.15 SD too high: the point estimate is over 0.10, the interval (about ±0.3)
    includes it, so the holdout cannot tell the difference from chance."""
    human, unbiased = ratings
    school = ["small"] * 30 + ["rest"] * (N - 30)
    machine = unbiased.copy()
    shift = 0.15 * pooled_sd(human, unbiased) - (unbiased[:30].mean() - human[:30].mean())
    machine[:30] += shift  # the small school's SMD is exactly +0.15 before re-pooling
    fairness = report_of(human, machine, groups_frame(ids(N), school=school))
    small = next(row for row in fairness.subgroups if row.value == "small")
    assert 0.1 < small.smd < 0.2
    assert small.smd_interval[0] < 0.1 < small.smd_interval[1]
    assert fairness.exceeding(0.1) == [small] and fairness.shown_beyond(0.1) == []
    gate = by_gate(fairness)["max_abs_subgroup_smd"]
    assert gate.passed and gate.value == small.smd
    assert gate.message.endswith(
        f"0 lie wholly beyond ±0.1 (max_abs_subgroup_smd fails on those) and 1 more exceed it "
        f"on the point estimate only: school=small (n=30, {small.smd:+.3f})"
    )


def test_a_subgroup_under_min_n_is_reported_but_not_gated(
    ratings: tuple[np.ndarray, np.ndarray],
) -> None:
    human, unbiased = ratings
    school = ["big"] * (N - 12) + ["tiny"] * 12
    machine = unbiased.copy()
    machine[-12:] += 2.0  # the tiny school is scored two points too high
    fairness = report_of(human, machine, groups_frame(ids(N), school=school))
    tiny = next(row for row in fairness.subgroups if row.value == "tiny")
    assert (tiny.n, tiny.gated) == (12, False)
    assert math.isnan(tiny.smd)  # not measured: too few essays to say
    assert [row.label for row in fairness.gated] == ["school=big"]
    gate = by_gate(fairness)["max_abs_subgroup_smd"]
    assert gate.passed and "worst subgroup school=big (n=388)" in gate.message

    small = groups_frame(ids(40), school=["a"] * 25 + ["b"] * 15, source=["school"] * 40)
    nothing_large = report_of(human[:40], machine[:40], small)
    gate = by_gate(nothing_large)["max_abs_subgroup_smd"]
    assert gate.passed and gate.value is None
    assert gate.message == (
        "no subgroup has at least 30 essays (largest: school=a, n=25); "
        "max_abs_subgroup_smd does not apply (passes)"
    )
    # One source for every essay is the whole holdout: measured, judged by max_abs_smd alone.
    source = next(row for row in nothing_large.subgroups if row.group == "source")
    assert (source.n, source.gated, source.whole_holdout) == (40, False, True)
    assert source.smd == pytest.approx(nothing_large.smd)


def test_the_overall_gate_judges_the_whole_holdout(ratings: tuple[np.ndarray, np.ndarray]) -> None:
    human, _ = ratings
    sd = human.std(ddof=1)
    subgroups = groups_frame(ids(N), gender=GENDER)
    # A constant shift keeps the SD, so the SMD is exactly shift / sd, in every subgroup too.
    high = report_of(human, human + 0.2 * sd, subgroups)
    assert high.smd == pytest.approx(0.2)
    gates = by_gate(high)
    assert not gates["max_abs_smd"].passed
    assert gates["max_abs_smd"].message.startswith(
        f"SMD on {N} holdout essays (pooled SD {sd:.3f}) is +0.200: |SMD| 0.200 > 0.150 "
        "(max_abs_smd); 95% bootstrap interval"
    )
    slight = by_gate(report_of(human, human - 0.12 * sd, subgroups))
    assert slight["max_abs_smd"].passed and slight["max_abs_smd"].value == pytest.approx(-0.12)
    assert not slight["max_abs_subgroup_smd"].passed  # -0.12 in each gender, beyond 0.10


def test_fairness_not_measured_fails_both_gates() -> None:
    results = fairness_gates(None, THRESHOLDS)
    assert [(g.gate, g.passed, g.value) for g in results] == [
        ("max_abs_smd", False, None),
        ("max_abs_subgroup_smd", False, None),
    ]
    assert results[0].message == "SMD was not measured; max_abs_smd requires |SMD| <= 0.15"


def test_length_partial_correlation_shows_a_model_that_rewards_length(
    ratings: tuple[np.ndarray, np.ndarray],
) -> None:
    human, unbiased = ratings
    rng = np.random.default_rng(9)
    words = 120 + 60 * human + rng.normal(0, 40, N)  # better essays are longer, as in life
    subgroups = groups_frame(ids(N), gender=GENDER)
    ignores = report_of(human, unbiased, subgroups, word_counts=words)
    assert ignores.length_n == N
    assert abs(ignores.length_partial_r) < 0.1  # only through the human score
    assert m.pearson_r(unbiased, words) > 0.5  # while the plain correlation is large
    rewards = report_of(
        human, unbiased + 0.01 * (words - words.mean()), subgroups, word_counts=words
    )
    assert rewards.length_partial_r > 0.5
    assert rewards.length_partial_r == pytest.approx(
        m.partial_correlation(unbiased + 0.01 * (words - words.mean()), words, human)
    )


def test_partial_correlation_matches_the_residual_definition() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=300)
    x, y = z + rng.normal(size=300), 2 * z + rng.normal(size=300)

    def residual(a: np.ndarray) -> np.ndarray:
        slope, intercept = np.polyfit(z, a, 1)
        return a - (slope * z + intercept)

    assert m.partial_correlation(x, y, z) == pytest.approx(m.pearson_r(residual(x), residual(y)))


def test_report_shows_each_group_flags_failures_and_lists_small_subgroups(
    ratings: tuple[np.ndarray, np.ndarray],
) -> None:
    human, unbiased = ratings
    favoured = np.array(GENDER) == "F"
    biased = unbiased + favoured * 0.5 * human.std(ddof=1)
    band = ["<150"] * 10 + [">=500"] * 150 + ["150-299"] * (N - 160)
    subgroups = groups_frame(ids(N), gender=GENDER, length_band=band, economic_status=["poor"] * 40)
    words = 120 + 60 * human
    fairness = report_of(human, biased, subgroups, word_counts=words)
    gates = fairness_gates(fairness, THRESHOLDS)
    text = render_markdown("t", model_name="m", model_version="1", gates=gates, fairness=fairness)
    lines = text.splitlines()

    assert "## Fairness across subgroups" in text
    assert f"**pooled SD = {fairness.pooled_sd:.3f}** (n = {N})" in text
    overall = next(line for line in lines if line.startswith("| whole holdout |"))
    assert f"| {fairness.smd:+.3f} |" in overall and "FAIL" in overall
    female = next(row for row in fairness.subgroups if row.label == "gender=F")
    assert (
        "**Subgroups whose whole interval lies beyond ±0.1 (✗, fails the gate):** "
        f"gender=F (n=200, SMD {female.smd:+.3f})"
    ) in text
    # Built-in groups first, in their own order; length bands in word order, not alphabetically.
    headings = [line for line in lines if line.startswith("### By ")]
    assert headings == [
        f"### By length_band ({N} of {N} holdout essays have a value)",
        f"### By economic_status (40 of {N} holdout essays have a value)",
        f"### By gender ({N} of {N} holdout essays have a value)",
    ]
    band_rows = [line.split(" | ")[0] for line in lines if line.startswith(("| <", "| 1", "| >"))]
    assert band_rows == ["| <150", "| 150-299", "| >=500"]
    assert "| <150 | 10 | too few essays |  |  |  |  | not gated |" in text
    female_row = next(line for line in lines if line.startswith("| F |"))
    assert female_row.endswith("| ✗ |")
    assert f"| {female.agreement:.3f} |" in female_row
    assert next(line for line in lines if line.startswith("| M |")).endswith("| ✓ |")
    assert f"**r = {fairness.length_partial_r:+.3f}** (n = {N})" in text
