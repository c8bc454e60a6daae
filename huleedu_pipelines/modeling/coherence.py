"""Coherence between models, and what sends an essay to a teacher's review.

An essay is scored by ten models on four kinds of scale: the Swedish grade (F..A), the CEFR
classifier (A1..C2), the IELTS band (whose CEFR level follows from the band by the IELTS
table, `domain.ielts.cefr_from_band`) and seven skills (a rating-scale score, or P(high
skill)). An essay given grade A and CEFR A2 at once is wrong somewhere; this module finds
such essays and measures how often the models agree.

**The common scale is the CEFR level** (six levels), the coarsest of the scales, so that "two
levels apart" is a large disagreement whichever models disagree. There are four *views* of an
essay on it:

- `cefr`: the CEFR classifier's level, as served;
- `band_cefr`: the CEFR level of the served half band;
- `grade`: the grade model, linked to the CEFR scale;
- `skills`: the skill profile, linked to the CEFR scale.

The first two are CEFR levels already and are compared directly. Grade and skills have no
CEFR meaning of their own, so they are **linked by equipercentile linking** (Kolen & Brennan,
*Test Equating, Scaling, and Linking*, ch. 2): a score is replaced by its percentile rank
among the reference essays, and the percentile by the CEFR level at that rank of the other
model's level distribution on the same essays. "The top 5% by grade are the top 5% by CEFR"
is exactly the claim coherence checks, and it needs no shared labels: the grade model learns
from school essays and the CEFR model from IELTS essays, so no essay carries both a human
grade and a human band to fit a regression between them. Linking is monotone (it never
reorders essays) and keeps each model's own distribution, so a model that places most essays
in the middle is not called incoherent for it.

**Each model carries its own side of the link** (`LevelReference`, in `bundle.info` under
`coherence_reference`): the quantiles of its level score and, for the CEFR and band models,
the shares of the CEFR levels it predicts, all on the *validation split* of its training run
(every essay of the split, labelled for the model or not, so every model of a run describes
the same essays: a single-group design). Scoring links whichever versions serve, with no
artifact outside the bundles to fall out of step; the holdout report links the challengers
the same way, so what it shows is what scoring would flag. A bundle trained before this
reference existed is left out of every linked comparison (the direct CEFR-vs-band comparison
still runs).

Linking rules per pair:

- both views CEFR levels (`cefr` vs `band_cefr`): compared as they are;
- a linked view against a CEFR view: linked to *that* model's level shares;
- grade vs skills: both linked to the CEFR classifier's level shares (the band model's
  without a CEFR model; with neither, the pair is not compared).

The skill profile is the median of the seven skills' linked levels (robust to one odd skill
model); its continuous score, for rank correlations, is the mean of their percentile ranks.
The median of correlated skills sits a little nearer the middle levels than any single
skill, so the profile is, if anything, slow to flag.

The confidence threshold below which a grade goes to review is also set here
(`review_threshold`): the confidence quantile on the validation split at a target share, so
that about that share of essays is reviewed for low confidence whatever the model's
confidence scale is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from huleedu_pipelines.domain.ielts import CEFR_LEVELS, cefr_from_band, cefr_to_ordinal
from huleedu_pipelines.modeling.bundle import BundlePrediction, ModelBundle
from huleedu_pipelines.modeling.metrics import pearson_r

REFERENCE_KEY = "coherence_reference"
"""Where a bundle's `LevelReference` is stored in `bundle.info`."""
REVIEW_KEY = "review"
"""Where a bundle's derived review threshold is stored in `bundle.info` (`ReviewThreshold`)."""
QUANTILE_POINTS = 101
MIN_LEVEL_GAP = 2
"""Essays whose views are this many CEFR levels apart or more are flagged for review."""

GRADE, CEFR, BAND_CEFR, SKILLS = "grade", "cefr", "band_cefr", "skills"
VIEW_TITLES = {
    GRADE: "grade",
    CEFR: "CEFR",
    BAND_CEFR: "CEFR from band",
    SKILLS: "skill profile",
}
MODEL_OF_VIEW = {CEFR: "the CEFR model", BAND_CEFR: "the band model"}
"""Whose CEFR level shares a view linked to a CEFR-scale view is read off."""
PAIRS: tuple[tuple[str, str], ...] = (
    (GRADE, CEFR),
    (GRADE, BAND_CEFR),
    (CEFR, BAND_CEFR),
    (SKILLS, GRADE),
    (SKILLS, CEFR),
    (SKILLS, BAND_CEFR),
)
"""Every pair of views compared, in report order."""
MATRIX_SCHEMA = {
    "pair": pl.String,
    "view_a": pl.String,
    "view_b": pl.String,
    "n": pl.Int64,
    "exact": pl.Float64,
    "within_one": pl.Float64,
    "apart_two_or_more": pl.Float64,
    "spearman_rho": pl.Float64,
    "linking": pl.String,
}
"""One row per compared pair: agreement of their CEFR levels and the rank correlation of
their scores."""


# --------------------------------------------------------------------------- levels of a model


def _band_levels(bands: ArrayLike) -> NDArray[np.int64]:
    """CEFR level index of each band, by the IELTS table (`domain.ielts.cefr_from_band`)."""
    values = np.asarray(bands, dtype=np.float64)
    unique, inverse = np.unique(values, return_inverse=True)
    levels = np.array([cefr_to_ordinal(cefr_from_band(b)) for b in unique], dtype=np.int64)
    return levels[inverse.reshape(values.shape)]


def _continuous_score(prediction: BundlePrediction) -> NDArray[np.float64]:
    """The expected class of an ordinal model, the continuous band of the band model."""
    return np.asarray(prediction.score, dtype=np.float64)


def _skill_score(prediction: BundlePrediction) -> NDArray[np.float64]:
    """The rating-scale score where the bundle has one, else P(high skill): both rank essays."""
    score = prediction.rating_scale_score
    return np.asarray(prediction.score if score is None else score, dtype=np.float64)


def _class_levels(prediction: BundlePrediction) -> NDArray[np.int64]:
    return np.asarray(prediction.labels).astype(np.int64)


def _served_band_levels(prediction: BundlePrediction) -> NDArray[np.int64]:
    return _band_levels(prediction.labels)


@dataclass(frozen=True)
class _Role:
    """What a family contributes to coherence: its view, the continuous score it ranks essays
    by, and (for the CEFR-scale views) the CEFR level index of each essay."""

    view: str
    score: Callable[[BundlePrediction], NDArray[np.float64]]
    cefr_levels: Callable[[BundlePrediction], NDArray[np.int64]] | None


ROLES: dict[str, _Role] = {
    "grade": _Role(GRADE, _continuous_score, None),
    "cefr": _Role(CEFR, _continuous_score, _class_levels),
    "band": _Role(BAND_CEFR, _continuous_score, _served_band_levels),
    "skill": _Role(SKILLS, _skill_score, None),
}
"""By family name (`modeling.families`)."""


def percentile_ranks(scores: ArrayLike, quantiles: ArrayLike) -> NDArray[np.float64]:
    """Percentile rank in [0, 1] of each score among reference scores summarised by their
    evenly spaced `quantiles` (0%, 1%, ..., 100%), interpolated linearly; a score tied with
    several quantiles gets the middle of their ranks, a score outside the reference the end."""
    q = np.asarray(quantiles, dtype=np.float64)
    values = np.asarray(scores, dtype=np.float64)
    probabilities = np.linspace(0.0, 1.0, q.size)
    unique, inverse = np.unique(q, return_inverse=True)
    middle = np.bincount(inverse, weights=probabilities) / np.bincount(inverse)
    if unique.size == 1:
        return np.full(values.shape, 0.5)
    return np.interp(values, unique, middle)


def level_at(percentiles: ArrayLike, shares: ArrayLike) -> NDArray[np.int64]:
    """The level whose band of the cumulative `shares` holds each percentile rank: with
    shares (0.2, 0.5, 0.3), ranks below 0.2 are level 0, below 0.7 level 1, the rest level 2.
    Levels with no share are never returned."""
    share = np.asarray(shares, dtype=np.float64)
    if share.sum() <= 0:
        raise ValueError("level shares must sum to more than zero")
    cumulative = np.cumsum(share / share.sum())
    levels = np.searchsorted(cumulative, np.asarray(percentiles, dtype=np.float64), side="right")
    return np.clip(levels, 0, int(np.flatnonzero(share > 0)[-1])).astype(np.int64)


@dataclass(frozen=True)
class LevelReference:
    """One model's side of the equipercentile link, fitted on its training run's validation
    split: the quantiles of the score it ranks essays by and, for the CEFR-scale models, the
    share of essays at each CEFR level."""

    quantiles: tuple[float, ...]
    level_shares: tuple[float, ...] | None
    n: int

    def percentiles(self, scores: ArrayLike) -> NDArray[np.float64]:
        return percentile_ranks(scores, self.quantiles)

    def to_info(self) -> dict[str, Any]:
        return {
            "quantiles": list(self.quantiles),
            "level_shares": None if self.level_shares is None else list(self.level_shares),
            "n": self.n,
            "fitted_on": "validation split (every essay, labelled for the model or not)",
        }

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> LevelReference | None:
        """The reference stored in `bundle.info`, or None for a bundle trained without one."""
        stored = info.get(REFERENCE_KEY)
        if not stored:
            return None
        shares = stored.get("level_shares")
        return cls(
            tuple(float(q) for q in stored["quantiles"]),
            None if shares is None else tuple(float(s) for s in shares),
            int(stored["n"]),
        )


def fit_reference(family: str, prediction: BundlePrediction) -> LevelReference:
    """The `LevelReference` of a model of `family` from its predictions on the reference
    essays (the validation split), rounded to 6 decimals as `bundle.json` stores it."""
    role = ROLES[family]
    score = role.score(prediction)
    if score.size == 0:
        raise ValueError("a level reference needs at least one essay")
    quantiles = np.quantile(score, np.linspace(0.0, 1.0, QUANTILE_POINTS))
    shares = None
    if role.cefr_levels is not None:
        counts = np.bincount(role.cefr_levels(prediction), minlength=len(CEFR_LEVELS))
        shares = tuple(round(float(c), 6) for c in counts / counts.sum())
    return LevelReference(tuple(round(float(q), 6) for q in quantiles), shares, int(score.size))


# --------------------------------------------------------------------------- views of essays


@dataclass(frozen=True)
class ModelOutput:
    """One model's predictions on the essays, with what coherence needs from its bundle."""

    family: str
    prediction: BundlePrediction
    reference: LevelReference | None
    class_labels: tuple[str, ...] = ()

    @classmethod
    def of(cls, bundle: ModelBundle, prediction: BundlePrediction) -> ModelOutput:
        return cls(
            bundle.family,
            prediction,
            LevelReference.from_info(bundle.info),
            tuple(bundle.class_labels),
        )


@dataclass(frozen=True)
class LevelView:
    """One view of every essay: a continuous score (for rank correlation), a label to show,
    and either CEFR levels with the model's reference shares (`cefr`, `band_cefr`) or
    percentile ranks to link (`grade`, `skills`: one column per model)."""

    name: str
    score: NDArray[np.float64]
    shown: list[str]
    levels: NDArray[np.int64] | None = None
    shares: tuple[float, ...] | None = None
    percentiles: NDArray[np.float64] | None = None

    @property
    def title(self) -> str:
        return VIEW_TITLES[self.name]

    @property
    def linked(self) -> bool:
        return self.levels is None

    def levels_on(self, shares: Sequence[float]) -> NDArray[np.int64]:
        """CEFR levels of a linked view on a model's level shares (per essay, the median over
        the view's models, rounded half up)."""
        assert self.percentiles is not None
        per_model = np.column_stack([level_at(p, shares) for p in self.percentiles.T])
        return np.floor(np.median(per_model, axis=1) + 0.5).astype(np.int64)


def _band_shown(bands: NDArray[Any], levels: NDArray[np.int64]) -> list[str]:
    return [f"band {b:.1f} ({CEFR_LEVELS[lv]})" for b, lv in zip(bands, levels, strict=True)]


def level_views(outputs: Sequence[ModelOutput]) -> dict[str, LevelView]:
    """The views the models' outputs make, by view name. A grade or skill model without a
    reference cannot be linked and makes no view; skill models make one profile view."""
    views: dict[str, LevelView] = {}
    skills = [
        (o.reference, o.prediction)
        for o in outputs
        if o.family == "skill" and o.reference is not None
    ]
    for output in outputs:
        role = ROLES.get(output.family)
        if role is None or output.family == "skill":
            continue
        prediction, reference = output.prediction, output.reference
        score = role.score(prediction)
        if role.cefr_levels is not None:
            levels = role.cefr_levels(prediction)
            shown = (
                _band_shown(prediction.labels, levels)
                if role.view == BAND_CEFR
                else [f"CEFR {CEFR_LEVELS[lv]}" for lv in levels]
            )
            views[role.view] = LevelView(
                role.view,
                score,
                shown,
                levels=levels,
                shares=None if reference is None else reference.level_shares,
            )
        elif reference is not None:
            labels = np.asarray(output.class_labels, dtype=object)[prediction.labels.astype(int)]
            views[role.view] = LevelView(
                role.view,
                score,
                [f"grade {label}" for label in labels],
                percentiles=reference.percentiles(score)[:, None],
            )
    if skills:
        percentiles = np.column_stack(
            [reference.percentiles(_skill_score(prediction)) for reference, prediction in skills]
        )
        views[SKILLS] = LevelView(
            SKILLS,
            percentiles.mean(axis=1),
            ["skill profile"] * percentiles.shape[0],
            percentiles=percentiles,
        )
    return views


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PairLevels:
    """Two views of the same essays on the CEFR scale, and how they got there."""

    a: LevelView
    b: LevelView
    level_a: NDArray[np.int64]
    level_b: NDArray[np.int64]
    linking: str

    @property
    def name(self) -> str:
        return f"{self.a.title} vs {self.b.title}"

    @property
    def gap(self) -> NDArray[np.int64]:
        return np.abs(self.level_a - self.level_b)

    def reason(self, row: int) -> str:
        """e.g. "grade A (≈C2) vs CEFR A2 (4 levels apart)"."""
        return (
            f"{_shown(self.a, self.level_a, row)} vs {_shown(self.b, self.level_b, row)} "
            f"({int(self.gap[row])} levels apart)"
        )


def _shown(view: LevelView, levels: NDArray[np.int64], row: int) -> str:
    if view.linked:
        return f"{view.shown[row]} (≈{CEFR_LEVELS[int(levels[row])]})"
    return view.shown[row]


def _anchor(views: Mapping[str, LevelView]) -> tuple[tuple[float, ...], str] | None:
    """The level shares two linked views are both linked to: the CEFR classifier's, else the
    band model's."""
    for name in (CEFR, BAND_CEFR):
        view = views.get(name)
        if view is not None and view.shares is not None:
            return view.shares, MODEL_OF_VIEW[name]
    return None


def compared_pairs(views: Mapping[str, LevelView]) -> list[PairLevels]:
    """Every pair of `PAIRS` whose views exist and can be put on the CEFR scale."""
    pairs = []
    for a_name, b_name in PAIRS:
        a, b = views.get(a_name), views.get(b_name)
        if a is None or b is None:
            continue
        if not a.linked and not b.linked:
            assert a.levels is not None and b.levels is not None
            pairs.append(PairLevels(a, b, a.levels, b.levels, "direct (both CEFR levels)"))
            continue
        if a.linked and b.linked:
            anchor = _anchor(views)
            if anchor is None:
                continue
            shares, source = anchor
            linking = f"both linked by percentile rank to {source}'s CEFR level shares"
            pairs.append(PairLevels(a, b, a.levels_on(shares), b.levels_on(shares), linking))
            continue
        linked, native = (a, b) if a.linked else (b, a)
        if native.shares is None:
            continue
        levels = linked.levels_on(native.shares)
        assert native.levels is not None
        linking = (
            f"{linked.title} linked by percentile rank to {MODEL_OF_VIEW[native.name]}'s CEFR "
            "level shares"
        )
        level_a, level_b = (levels, native.levels) if a.linked else (native.levels, levels)
        pairs.append(PairLevels(a, b, level_a, level_b, linking))
    return pairs


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either is constant."""
    rank_x = pl.Series(np.asarray(x, dtype=np.float64)).rank("average").to_numpy()
    rank_y = pl.Series(np.asarray(y, dtype=np.float64)).rank("average").to_numpy()
    return pearson_r(rank_x, rank_y)


def agreement_matrix(pairs: Sequence[PairLevels]) -> pl.DataFrame:
    """Per compared pair: essays, exact CEFR-level agreement, agreement within one level, the
    share two or more levels apart, and Spearman's rho of the two views' scores."""
    rows = []
    for pair in pairs:
        gap = pair.gap
        n = int(gap.size)
        rows.append(
            {
                "pair": pair.name,
                "view_a": pair.a.name,
                "view_b": pair.b.name,
                "n": n,
                "exact": float(np.mean(gap == 0)) if n else float("nan"),
                "within_one": float(np.mean(gap <= 1)) if n else float("nan"),
                "apart_two_or_more": float(np.mean(gap >= MIN_LEVEL_GAP)) if n else float("nan"),
                "spearman_rho": spearman_rho(pair.a.score, pair.b.score) if n > 1 else float("nan"),
                "linking": pair.linking,
            }
        )
    return pl.DataFrame(rows, schema=MATRIX_SCHEMA)


def incoherence_reasons(
    pairs: Sequence[PairLevels], n_essays: int, min_gap: int = MIN_LEVEL_GAP
) -> list[list[str]]:
    """Per essay, one reason for every pair of views `min_gap` or more CEFR levels apart."""
    reasons: list[list[str]] = [[] for _ in range(n_essays)]
    for pair in pairs:
        for row in np.flatnonzero(pair.gap >= min_gap):
            reasons[int(row)].append(pair.reason(int(row)))
    return reasons


# --------------------------------------------------------------------------- review threshold


@dataclass(frozen=True)
class ReviewThreshold:
    """The confidence below which a model's essays go to review, derived at training."""

    threshold: float
    target_share: float
    share_below: float
    """The share of the validation split's essays under the threshold."""
    n: int

    def to_info(self) -> dict[str, Any]:
        return {
            "confidence_threshold": self.threshold,
            "target_share": self.target_share,
            "share_below": round(self.share_below, 6),
            "n": self.n,
            "fitted_on": "validation split (every essay, labelled for the model or not)",
        }


def review_threshold(confidence: ArrayLike, target_share: float) -> ReviewThreshold:
    """The `target_share` quantile of the confidences: about that share of essays falls
    below it (fewer where many essays share one confidence value)."""
    if not 0.0 < target_share < 1.0:
        raise ValueError(f"the review target share must be between 0 and 1, got {target_share}")
    values = np.asarray(confidence, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a review threshold needs at least one essay's confidence")
    threshold = round(float(np.quantile(values, target_share)), 6)  # as bundle.json keeps it
    return ReviewThreshold(threshold, target_share, float(np.mean(values < threshold)), values.size)


def stored_review_threshold(info: Mapping[str, Any]) -> float | None:
    """The confidence threshold a bundle recorded at training, or None (trained before)."""
    stored = info.get(REVIEW_KEY)
    return None if not stored else float(stored["confidence_threshold"])


def low_confidence_reason(confidence: float, threshold: float, what: str = "grade") -> str:
    """e.g. "grade confidence 0.31 below 0.38", with enough decimals to tell them apart."""
    for digits in (2, 3, 4):
        if round(confidence, digits) != round(threshold, digits):
            break
    return f"{what} confidence {confidence:.{digits}f} below {threshold:.{digits}f}"


# --------------------------------------------------------------------------- report


def _pct(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{100 * value:.1f}%"


def render_markdown(
    matrix: pl.DataFrame,
    *,
    n_essays: int,
    flagged: Sequence[tuple[str, str]] = (),
    title: str = "Coherence between models",
    where: str = "the holdout",
) -> str:
    """The agreement matrix as a Markdown section, with the essays flagged and a few of their
    reasons (`flagged`: essay id and reason text)."""
    lines = [f"## {title}", ""]
    if matrix.is_empty():
        lines += [
            "No two models could be compared: coherence needs the CEFR or band model beside "
            "another model, and grade and skill models trained with a level reference.",
            "",
        ]
        return "\n".join(lines)
    lines += [
        f"Every model's output on {n_essays} essays of {where}, put on the CEFR scale: the CEFR "
        "classifier's level and the CEFR level of the band as they are, the grade and the skill "
        "profile (median of the skills) by equipercentile linking fitted on the validation "
        f"split. Essays {MIN_LEVEL_GAP} or more levels apart on any pair are flagged for "
        "review.",
        "",
        "| pair | n | exact | within one level | ≥ 2 levels apart | Spearman ρ | linking |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in matrix.iter_rows(named=True):
        rho = row["spearman_rho"]
        lines.append(
            f"| {row['pair']} | {row['n']} | {_pct(row['exact'])} | {_pct(row['within_one'])} "
            f"| {_pct(row['apart_two_or_more'])} | {'–' if not np.isfinite(rho) else f'{rho:.3f}'} "
            f"| {row['linking']} |"
        )
    share = len(flagged) / n_essays if n_essays else float("nan")
    lines += ["", f"Essays flagged as incoherent: {len(flagged)} of {n_essays} ({_pct(share)})."]
    if flagged:
        lines += ["", "| essay | reasons |", "|---|---|"]
        lines += [f"| {essay} | {reason} |" for essay, reason in flagged[:10]]
    return "\n".join(lines) + "\n"


__all__ = [
    "MIN_LEVEL_GAP",
    "PAIRS",
    "REFERENCE_KEY",
    "REVIEW_KEY",
    "LevelReference",
    "LevelView",
    "ModelOutput",
    "PairLevels",
    "ReviewThreshold",
    "agreement_matrix",
    "compared_pairs",
    "fit_reference",
    "incoherence_reasons",
    "level_at",
    "level_views",
    "low_confidence_reason",
    "percentile_ranks",
    "render_markdown",
    "review_threshold",
    "spearman_rho",
    "stored_review_threshold",
]
