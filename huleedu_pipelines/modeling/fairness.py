"""Fairness across subgroups: does the model score a group of essays higher or lower than the
human raters do, and does it reward length for its own sake?

Definitions (every report's Fairness section states them too):

- **Scores compared.** Each family compares one machine score with one human score on one scale
  (`FairnessScores`, chosen in `modeling.families`): the predicted grade or CEFR level index
  with the teacher's, the served IELTS band (half bands) with the examiner's band, and a skill
  model's score on the rating scale with the mean teacher rating (P(high) against the 0/1 label
  when a bundle has no rating-scale output; the report says so).
- **SMD** = (mean machine − mean human) / pooled SD, with pooled SD = sqrt((s_h² + s_m²) / 2)
  and s_h, s_m the *sample* standard deviations (ddof = 1) of the human and machine scores on
  the *whole holdout*. A subgroup's SMD divides the group's own mean difference by that same
  whole-holdout pooled SD, so every subgroup is on one scale and a small group's spread does not
  inflate its value. This is Williamson et al. (2012), RSMTool's
  ``standardized_mean_difference(method="williamson")`` with the evaluation set's SDs, which
  RSMTool used for subgroups up to v6 (RSMTool 7 reports the overall SMD over s_h alone and
  subgroups as DSM, differences of z-scores; neither is used here).
- **Agreement** per subgroup is the family's metric: QWK on the class index (grade, CEFR), QWK on
  half bands (band), Pearson r with the mean rating (skills; ROC AUC for P(high) against the
  label).
- **Subgroups** are those of `domain.subgroups.subgroup_frame`: prompt, source, length band and
  every imported essay attribute (gender, economic status, school, ...). A subgroup with fewer
  than `min_n_per_group` essays is listed as too few essays and not gated; one that holds every
  holdout essay (a single source, say) is the whole holdout, judged by the overall threshold.
- **Length**: the partial correlation of the machine score with the essay's word count,
  controlling for the human score. Near zero means the model rewards length no more than the
  raters do; clearly positive means longer essays score higher than their human score explains.
- **Intervals** are 95% percentile bootstraps over holdout essays: the overall SMD resamples every
  essay (pooled SD recomputed each time); a subgroup's SMD resamples that group's essays with the
  pooled SD held at its whole-holdout value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from huleedu_pipelines.domain.subgroups import BUILT_IN_GROUPS, LENGTH_BANDS
from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.figures import DEFAULT_N_BOOT, INTERVAL_LEVEL, Interval

AGREEMENT_NAMES = {
    "qwk": "QWK",
    "qwk_half_band": "QWK on half bands",
    "pearson_r": "Pearson r",
    "roc_auc": "ROC AUC",
}


@dataclass(frozen=True)
class FairnessScores:
    """The human and machine scores a family's fairness is judged on, one pair per essay."""

    human: np.ndarray
    machine: np.ndarray
    scale: str
    """What the two scores are, in words, for the report."""
    agreement: str
    """The agreement metric's key (`AGREEMENT_NAMES`)."""
    agreement_fn: Callable[[np.ndarray, np.ndarray], float]
    """(human, machine) -> agreement."""
    note: str | None = None
    """Why the scale is not the usual one (e.g. no rating-scale output), if it is not."""


@dataclass(frozen=True)
class SubgroupFairness:
    """One subgroup (`group` = `value`) of the holdout."""

    group: str
    value: str
    n: int
    gated: bool
    """Whether its SMD is gated: at least `min_n_per_group` essays, and not every essay."""
    whole_holdout: bool = False
    """It holds every holdout essay: measured, but judged by the overall gate alone."""
    human_mean: float = math.nan
    machine_mean: float = math.nan
    agreement: float = math.nan
    smd: float = math.nan
    smd_interval: Interval | None = None

    @property
    def label(self) -> str:
        return f"{self.group}={self.value}"

    def shown_beyond(self, threshold: float) -> bool:
        """Its SMD interval lies wholly above `threshold` or wholly below −`threshold` (an
        undefined SMD or interval counts as beyond: nothing shows it is within)."""
        if math.isnan(self.smd) or self.smd_interval is None:
            return True
        low, high = self.smd_interval
        if math.isnan(low) or math.isnan(high):
            return True
        return low > threshold or high < -threshold


@dataclass(frozen=True)
class FairnessReport:
    """SMD on the whole holdout and per subgroup, agreement per subgroup, and the length check."""

    scale: str
    agreement: str
    note: str | None
    n: int
    human_mean: float
    machine_mean: float
    human_sd: float
    machine_sd: float
    pooled_sd: float
    smd: float
    smd_interval: Interval
    min_n_per_group: int
    subgroups: tuple[SubgroupFairness, ...]
    essays_with_value: dict[str, int]
    """Group -> holdout essays that have a value in it (an attribute may be missing)."""
    length_partial_r: float
    length_n: int

    @property
    def gated(self) -> list[SubgroupFairness]:
        return [row for row in self.subgroups if row.gated]

    @property
    def worst(self) -> SubgroupFairness | None:
        """The gated subgroup furthest from zero (an undefined SMD counts as furthest)."""
        gated = self.gated
        if not gated:
            return None
        return max(gated, key=lambda row: math.inf if math.isnan(row.smd) else abs(row.smd))

    def exceeding(self, threshold: float) -> list[SubgroupFairness]:
        """Gated subgroups whose |SMD| point estimate is above `threshold` (or undefined),
        worst first."""
        rows = [r for r in self.gated if math.isnan(r.smd) or abs(r.smd) > threshold]
        return sorted(rows, key=lambda r: -math.inf if math.isnan(r.smd) else -abs(r.smd))

    def shown_beyond(self, threshold: float) -> list[SubgroupFairness]:
        """Gated subgroups whose whole SMD interval lies beyond ±`threshold` (or whose SMD is
        undefined), worst first: the holdout shows their |SMD| exceeds it."""
        return [row for row in self.exceeding(threshold) if row.shown_beyond(threshold)]


def pooled_sd(human: ArrayLike, machine: ArrayLike) -> float:
    """sqrt((s_h² + s_m²) / 2) with sample SDs (ddof = 1); nan for fewer than two essays."""
    h, mach = np.asarray(human, dtype=np.float64), np.asarray(machine, dtype=np.float64)
    if h.size < 2:
        return math.nan
    return float(np.sqrt((h.var(ddof=1) + mach.var(ddof=1)) / 2))


def standardized_mean_difference(human: ArrayLike, machine: ArrayLike, sd: float) -> float:
    """(mean machine − mean human) / `sd` (the whole holdout's pooled SD); nan when sd is 0."""
    if not sd or math.isnan(sd):
        return math.nan
    h, mach = np.asarray(human, dtype=np.float64), np.asarray(machine, dtype=np.float64)
    return float((mach.mean() - h.mean()) / sd)


def _overall_smd(human: np.ndarray, machine: np.ndarray) -> float:
    return standardized_mean_difference(human, machine, pooled_sd(human, machine))


def _interval(fn: Callable[..., float], *arrays: np.ndarray, seed: int, n_boot: int) -> Interval:
    result = m.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed, alpha=1 - INTERVAL_LEVEL)
    return (result.low, result.high)


def _value_order(group: str) -> Callable[[str], tuple[int, str]]:
    """Length bands in their natural order, every other group's values alphabetically."""
    if group != "length_band":
        return lambda value: (0, value)
    ranks = {label: rank for rank, (_, label) in enumerate(LENGTH_BANDS)}
    return lambda value: (ranks.get(value, len(ranks)), value)


def _group_order(group: str) -> tuple[int, str]:
    built_in = list(BUILT_IN_GROUPS)
    return (built_in.index(group), "") if group in built_in else (len(built_in), group)


def _subgroup_row(
    scores: FairnessScores,
    group: str,
    value: str,
    rows: np.ndarray,
    sd: float,
    *,
    min_n: int,
    seed: int,
    n_boot: int,
) -> SubgroupFairness:
    if rows.size < min_n:
        return SubgroupFairness(group, value, int(rows.size), gated=False)
    human, machine = scores.human[rows], scores.machine[rows]
    whole_holdout = rows.size == scores.human.size

    def smd(h: np.ndarray, mach: np.ndarray) -> float:
        return standardized_mean_difference(h, mach, sd)

    return SubgroupFairness(
        group,
        value,
        int(rows.size),
        gated=not whole_holdout,
        whole_holdout=whole_holdout,
        human_mean=float(human.mean()),
        machine_mean=float(machine.mean()),
        agreement=float(scores.agreement_fn(human, machine)),
        smd=smd(human, machine),
        smd_interval=_interval(smd, human, machine, seed=seed, n_boot=n_boot),
    )


def _subgroup_rows(
    scores: FairnessScores,
    essay_ids: Sequence[str],
    subgroups: pl.DataFrame,
    sd: float,
    *,
    min_n: int,
    seed: int,
    n_boot: int,
) -> tuple[tuple[SubgroupFairness, ...], dict[str, int]]:
    position = {essay_id: i for i, essay_id in enumerate(essay_ids)}
    members: dict[tuple[str, str], list[int]] = {}
    for essay_id, group, value in subgroups.select("essay_id", "group", "value").iter_rows():
        if essay_id in position:
            members.setdefault((group, value), []).append(position[essay_id])
    rows, sizes = [], {}
    for group in sorted({group for group, _ in members}, key=_group_order):
        values = sorted((v for g, v in members if g == group), key=_value_order(group))
        sizes[group] = sum(len(members[(group, v)]) for v in values)
        for value in values:
            indices = np.asarray(members[(group, value)], dtype=np.int64)
            rows.append(
                _subgroup_row(
                    scores,
                    group,
                    value,
                    indices,
                    sd,
                    min_n=min_n,
                    seed=seed + len(rows),
                    n_boot=n_boot,
                )
            )
    return tuple(rows), sizes


def fairness_report(
    scores: FairnessScores,
    essay_ids: Sequence[str],
    subgroups: pl.DataFrame,
    word_counts: ArrayLike | None,
    *,
    min_n_per_group: int,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
) -> FairnessReport:
    """SMD overall and per subgroup, agreement per subgroup and the length partial correlation.

    `essay_ids` names the essay of each score; `subgroups` is `essay_id, group, value`
    (`domain.subgroups.subgroup_frame`); `word_counts` (one per essay, or None) feeds the
    length check.
    """
    human = np.asarray(scores.human, dtype=np.float64)
    machine = np.asarray(scores.machine, dtype=np.float64)
    if not human.shape == machine.shape == (len(essay_ids),):
        raise ValueError(
            f"fairness needs one human and one machine score per essay: {len(essay_ids)} essays, "
            f"human {human.shape}, machine {machine.shape}"
        )
    if not (np.isfinite(human).all() and np.isfinite(machine).all()):
        raise ValueError("fairness scores must be finite; drop essays without a human score")
    scores = dataclasses.replace(scores, human=human, machine=machine)
    sd = pooled_sd(human, machine)
    rows, sizes = _subgroup_rows(
        scores, essay_ids, subgroups, sd, min_n=min_n_per_group, seed=seed + 1, n_boot=n_boot
    )
    partial_r, length_n = _length_partial_r(human, machine, word_counts)
    return FairnessReport(
        scale=scores.scale,
        agreement=scores.agreement,
        note=scores.note,
        n=int(human.size),
        human_mean=float(human.mean()),
        machine_mean=float(machine.mean()),
        human_sd=float(human.std(ddof=1)) if human.size > 1 else math.nan,
        machine_sd=float(machine.std(ddof=1)) if machine.size > 1 else math.nan,
        pooled_sd=sd,
        smd=standardized_mean_difference(human, machine, sd),
        smd_interval=_interval(_overall_smd, human, machine, seed=seed, n_boot=n_boot),
        min_n_per_group=min_n_per_group,
        subgroups=rows,
        essays_with_value=sizes,
        length_partial_r=partial_r,
        length_n=length_n,
    )


def _length_partial_r(
    human: np.ndarray, machine: np.ndarray, word_counts: ArrayLike | None
) -> tuple[float, int]:
    """Partial r of machine score and word count given the human score, over essays with a
    word count."""
    if word_counts is None:
        return math.nan, 0
    words = np.asarray(word_counts, dtype=np.float64)
    known = np.isfinite(words)
    if known.sum() < 4:
        return math.nan, int(known.sum())
    return m.partial_correlation(machine[known], words[known], human[known]), int(known.sum())


__all__ = [
    "AGREEMENT_NAMES",
    "FairnessReport",
    "FairnessScores",
    "SubgroupFairness",
    "fairness_report",
    "pooled_sd",
    "standardized_mean_difference",
]
