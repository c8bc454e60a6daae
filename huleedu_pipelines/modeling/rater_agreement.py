"""Human–human agreement beside human–machine agreement, on the essays scored twice.

A model that agrees with the teachers at QWK 0.70 is good if two teachers agree at 0.72 and
poor if they agree at 0.90. Where the data has a second human score (the `second_ratings`
table, `<label>_rater2` in CSV imports), the report shows both agreements on the same essays
and the gate ``max_qwk_degradation`` bounds how much the machine loses against a second human
(RSMTool's human–human section; Williamson, Xi & Breyer 2012).

Definitions (the report states them too):

- **Raters.** Human 1 is the label the model learns from and is judged against everywhere else
  in the report (the teacher grade, the examiner's band and the CEFR level derived from it,
  the mean teacher rating of a skill). Human 2 is the second rating. The machine is the model's
  score on the same scale (`RaterScores`, chosen per family in `modeling.families`).
- **Essays.** Only holdout essays with both human scores count, and human–machine is computed
  on those same essays, so the two agreements differ only in who the second scorer is.
- **Scales.** QWK, exact and adjacent agreement are computed on integer codes of the family's
  scale (`RaterScale`): the grade index 0..7 and the CEFR level index 0..5 (for the CEFR model
  both humans' bands become CEFR levels through `cefr_from_band`; the machine's is the CEFR
  model's level); half-band codes 0..18 for IELTS bands (the machine's score is the served
  half band); half-point codes 0..8 of the 1..5 rating for skills, where the mean teacher rating
  and the model's rating-scale score are rounded half up to a half point (3.25 is 3.5) and
  clipped to 1..5 first. Adjacent agreement is "within one step" of that scale. Pearson r and
  the SMD ((mean other − mean human 1) / pooled SD, sample SDs) use the unrounded scores.
  Skills are gated on QWK like every family, not on Pearson r: one threshold then means one
  thing, and QWK also counts a shift of the whole scale that r ignores; r is shown beside it.
- **Degradation** = QWK(human 1, human 2) − QWK(human 1, machine) on the double-scored essays:
  positive when the machine agrees with the first human less than a second human does.
  RSMTool prints the opposite sign (human–machine − human–human).
- **Intervals** are 95% percentile bootstraps over the double-scored essays; the degradation's
  is paired (each resample recomputes both QWKs on the same essays).
- **Gate.** ``max_qwk_degradation`` judges the point estimate (degradation <= threshold, 0.10
  by default) with the interval carried beside it, like every floor. It applies only when at
  least ``min_n_per_group`` (30) essays were scored twice: with no double-scored essay it passes
  as not applicable, with fewer it passes and the figures are reported, not gated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.figures import (
    DEFAULT_N_BOOT,
    HALF_BAND_CLASSES,
    INTERVAL_LEVEL,
    Interval,
)

RATING_MIN, RATING_MAX = 1.0, 5.0
RATING_HALF_POINTS = int((RATING_MAX - RATING_MIN) * 2) + 1
"""Half-point codes of a 1..5 rating: 1.0 -> 0, 1.5 -> 1, ..., 5.0 -> 8."""


@dataclass(frozen=True)
class RaterScale:
    """The ordinal scale QWK and agreement are computed on, and how scores become its codes."""

    description: str
    """What the scores are, in words, for the report."""
    step: str
    """One step of the scale ("grade", "half band"), what adjacent agreement allows."""
    n_classes: int
    to_codes: Callable[[np.ndarray], np.ndarray]
    """Scores -> integer codes 0..n_classes-1."""


def _codes(scores: np.ndarray, per_unit: int, offset: float, n_classes: int) -> np.ndarray:
    """Scores as codes `round((score - offset) * per_unit)`, rounded half up (a mean rating
    of 3.25 is 3.5) and clipped to 0..n_classes-1."""
    return np.clip(np.floor((scores - offset) * per_unit + 0.5), 0, n_classes - 1).astype(np.int64)


def class_index_scale(class_labels: Sequence[str], noun: str) -> RaterScale:
    """Class indices 0..K-1 as they are (grade F..A, CEFR A1..C2)."""
    k = len(class_labels)
    return RaterScale(
        description=f"{noun} index 0..{k - 1} ({class_labels[0]}..{class_labels[-1]})",
        step=noun,
        n_classes=k,
        to_codes=functools.partial(_codes, per_unit=1, offset=0.0, n_classes=k),
    )


HALF_BAND_SCALE = RaterScale(
    description="IELTS band 0-9 as half-band codes 0..18 (scores rounded half up to a half band)",
    step="half band",
    n_classes=HALF_BAND_CLASSES,
    to_codes=functools.partial(_codes, per_unit=2, offset=0.0, n_classes=HALF_BAND_CLASSES),
)
HALF_POINT_RATING_SCALE = RaterScale(
    description="rating 1-5 as half-point codes 0..8 (scores rounded half up to a half point "
    "and clipped to 1..5)",
    step="half point",
    n_classes=RATING_HALF_POINTS,
    to_codes=functools.partial(_codes, per_unit=2, offset=RATING_MIN, n_classes=RATING_HALF_POINTS),
)


@dataclass(frozen=True)
class RaterScores:
    """The two humans' and the machine's scores of each holdout essay, on one scale."""

    first: np.ndarray
    """Human 1: the label the model is judged against."""
    second: np.ndarray
    """Human 2: the second rating, nan where the essay was scored once."""
    machine: np.ndarray | None
    """The model's score on the scale; None when the model gives none (see `note`)."""
    scale: RaterScale
    note: str | None = None
    """Why the machine has no score on this scale, when it has none."""


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of one scorer (a second human, or the machine) with human 1."""

    qwk: float
    qwk_interval: Interval
    exact_agreement: float
    adjacent_agreement: float
    pearson_r: float
    smd: float
    """(mean of this scorer − mean of human 1) / pooled SD of the two."""


@dataclass(frozen=True)
class RaterAgreement:
    """Human–human and human–machine agreement on the double-scored holdout essays."""

    scale: str
    step: str
    n: int
    """Holdout essays scored by both humans."""
    n_holdout: int
    """Holdout essays the model was judged on."""
    min_n: int
    """Double-scored essays the gate needs before it applies."""
    human_human: PairAgreement | None
    human_machine: PairAgreement | None
    """None when no essay was scored twice, or the machine gives no score on the scale."""
    degradation: float
    """QWK(human 1, human 2) − QWK(human 1, machine); nan when either is missing."""
    degradation_interval: Interval | None
    note: str | None = None

    @property
    def gated(self) -> bool:
        return self.n >= self.min_n


def _quantiles(replicates: np.ndarray) -> Interval:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return (math.nan, math.nan)
    alpha = 1 - INTERVAL_LEVEL
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def _pair(
    first: np.ndarray,
    other: np.ndarray,
    first_codes: np.ndarray,
    other_codes: np.ndarray,
    n_classes: int,
    qwk_interval: Interval,
) -> PairAgreement:
    return PairAgreement(
        qwk=m.quadratic_weighted_kappa(first_codes, other_codes, n_classes),
        qwk_interval=qwk_interval,
        exact_agreement=m.exact_agreement(first_codes, other_codes),
        adjacent_agreement=m.adjacent_agreement(first_codes, other_codes),
        pearson_r=m.pearson_r(first, other),
        smd=m.standardized_mean_difference(first, other) if first.size > 1 else math.nan,
    )


def _bootstrap(
    first: np.ndarray,
    second: np.ndarray,
    machine: np.ndarray | None,
    n_classes: int,
    *,
    seed: int,
    n_boot: int,
) -> tuple[Interval, Interval | None, Interval | None]:
    """Intervals of QWK(h1, h2), QWK(h1, machine) and their difference from one set of
    resamples of the double-scored essays (paired: both QWKs see the same essays)."""
    rng = np.random.default_rng(seed)
    n = first.size
    replicates = np.empty((n_boot, 2))
    for b in range(n_boot):
        rows = rng.integers(0, n, size=n)
        h1 = first[rows]
        replicates[b, 0] = m.quadratic_weighted_kappa(h1, second[rows], n_classes)
        replicates[b, 1] = (
            m.quadratic_weighted_kappa(h1, machine[rows], n_classes)
            if machine is not None
            else math.nan
        )
    human_human = _quantiles(replicates[:, 0])
    if machine is None:
        return human_human, None, None
    return (
        human_human,
        _quantiles(replicates[:, 1]),
        _quantiles(replicates[:, 0] - replicates[:, 1]),
    )


def rater_agreement(
    scores: RaterScores, *, min_n: int, seed: int, n_boot: int = DEFAULT_N_BOOT
) -> RaterAgreement:
    """Human–human and human–machine agreement on the essays both humans scored, and the
    degradation (see the module docstring)."""
    first = np.asarray(scores.first, dtype=np.float64)
    second = np.asarray(scores.second, dtype=np.float64)
    machine = None if scores.machine is None else np.asarray(scores.machine, dtype=np.float64)
    if first.shape != second.shape or (machine is not None and machine.shape != first.shape):
        raise ValueError(
            f"rater agreement needs one first, second and machine score per essay: first "
            f"{first.shape}, second {second.shape}, machine "
            f"{None if machine is None else machine.shape}; use nan where an essay was scored once"
        )
    both = np.isfinite(first) & np.isfinite(second)
    if machine is not None and not np.isfinite(machine[both]).all():
        raise ValueError("machine scores must be finite on the double-scored essays")
    scale = scores.scale
    n = int(both.sum())
    empty = RaterAgreement(
        scale=scale.description,
        step=scale.step,
        n=n,
        n_holdout=int(first.size),
        min_n=min_n,
        human_human=None,
        human_machine=None,
        degradation=math.nan,
        degradation_interval=None,
        note=scores.note,
    )
    if n == 0:
        return empty
    h1, h2 = first[both], second[both]
    h1_codes, h2_codes = scale.to_codes(h1), scale.to_codes(h2)
    mach = machine[both] if machine is not None else None
    mach_codes = scale.to_codes(mach) if mach is not None else None
    hh_interval, hm_interval, degradation_interval = _bootstrap(
        h1_codes, h2_codes, mach_codes, scale.n_classes, seed=seed, n_boot=n_boot
    )
    human_human = _pair(h1, h2, h1_codes, h2_codes, scale.n_classes, hh_interval)
    if mach is None or mach_codes is None or hm_interval is None:
        return replace(empty, human_human=human_human)
    human_machine = _pair(h1, mach, h1_codes, mach_codes, scale.n_classes, hm_interval)
    return RaterAgreement(
        scale=scale.description,
        step=scale.step,
        n=n,
        n_holdout=int(first.size),
        min_n=min_n,
        human_human=human_human,
        human_machine=human_machine,
        degradation=human_human.qwk - human_machine.qwk,
        degradation_interval=degradation_interval,
        note=scores.note,
    )


__all__ = [
    "HALF_BAND_SCALE",
    "HALF_POINT_RATING_SCALE",
    "PairAgreement",
    "RaterAgreement",
    "RaterScale",
    "RaterScores",
    "class_index_scale",
    "rater_agreement",
]
