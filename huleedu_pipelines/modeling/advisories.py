"""Validity advisories: essays unlike anything the models learned from are sent to a teacher.

A model learns what natural essays look like; it cannot learn to penalise a manipulation that
never occurs in them. An essay of pronounceable nonsense has a spelling-error rate no student
essay comes near, a padded essay repeats whole sentences, a stuffed one carries a paragraph of
bare keywords, and the trees extrapolate from the nearest natural essays, often upwards.
E-rater answers this with *advisories* (Attali & Burstein 2006; Williamson, Xi & Breyer 2012):
a response outside the range the model was built on gets no automated score on its own and
goes to a human. So do ours: scoring sets `needs_review` with the advisory as its reason.

Each advisory watches one feature column. Its limit comes from the essays the model was trained
on (train and validation splits, labelled or not), not from fixed numbers: the
`1 - TAIL_SHARE` quantile (or `TAIL_SHARE` for a lower limit), widened by `MARGIN` times its
distance from the median, so about one natural essay in a few hundred from the same
population is flagged and the manipulations, several times further out, all are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

INFO_KEY = "validity_advisories"
"""Where a bundle's info keeps its advisories (a list of `Advisory.to_info()`)."""

TAIL_SHARE = 0.005
MARGIN = 0.5


@dataclass(frozen=True)
class AdvisorySignal:
    """A feature whose extreme values mark an essay as unlike the training essays."""

    feature: str
    direction: Literal["above", "below"]
    meaning: str
    """What an extreme value suggests, as the review reason says it."""


ADVISORY_SIGNALS: tuple[AdvisorySignal, ...] = (
    AdvisorySignal(
        "spelling_errors_per_100_words", "above", "unknown words: nonsense or another language"
    ),
    AdvisorySignal("repeated_sentence_share", "above", "repeated sentences: padding"),
    AdvisorySignal(
        "min_paragraph_stop_word_share", "below", "a paragraph of bare keywords: stuffing"
    ),
    AdvisorySignal("prompt_cosine", "above", "the prompt's words copied"),
)


@dataclass(frozen=True)
class Advisory:
    """One signal's limit, fitted on a model's training essays."""

    feature: str
    direction: Literal["above", "below"]
    limit: float
    meaning: str

    def flags(self, values: np.ndarray) -> np.ndarray:
        """True where a value lies beyond the limit (a missing value never does)."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            beyond = values > self.limit if self.direction == "above" else values < self.limit
        return beyond & ~np.isnan(values)

    def reason(self, value: float) -> str:
        relation = ">" if self.direction == "above" else "<"
        return (
            f"advisory: {self.meaning} ({self.feature} {value:.3g} {relation} "
            f"{self.limit:.3g}, beyond the training essays)"
        )

    def to_info(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Advisory:
        return cls(
            feature=str(info["feature"]),
            direction=info["direction"],
            limit=float(info["limit"]),
            meaning=str(info["meaning"]),
        )


def fit_advisories(
    essays: pl.DataFrame,
    signals: Sequence[AdvisorySignal] = ADVISORY_SIGNALS,
    tail_share: float = TAIL_SHARE,
    margin: float = MARGIN,
) -> list[Advisory]:
    """One advisory per signal whose feature `essays` (feature rows of the training essays)
    carries with at least one value; the limit is the tail quantile widened by `margin` times
    its distance from the median."""
    advisories = []
    for signal in signals:
        if signal.feature not in essays.columns:
            continue
        values = essays[signal.feature].cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        if values.size == 0:
            continue
        median = float(np.median(values))
        if signal.direction == "above":
            tail = float(np.quantile(values, 1.0 - tail_share))
            limit = tail + margin * (tail - median)
        else:
            tail = float(np.quantile(values, tail_share))
            limit = tail - margin * (median - tail)
        advisories.append(Advisory(signal.feature, signal.direction, limit, signal.meaning))
    return advisories


def stored(info: Mapping[str, Any]) -> list[Advisory]:
    """The advisories a bundle recorded at training (none for bundles trained before)."""
    return [Advisory.from_info(entry) for entry in info.get(INFO_KEY, [])]


def strictest(advisories: Sequence[Advisory]) -> list[Advisory]:
    """One advisory per (feature, direction): the one that flags the most essays, so an essay
    scored by several models is sent to review when any of them would send it."""
    chosen: dict[tuple[str, str], Advisory] = {}
    for advisory in advisories:
        key = (advisory.feature, advisory.direction)
        held = chosen.get(key)
        tighter = held is None or (
            advisory.limit < held.limit
            if advisory.direction == "above"
            else advisory.limit > held.limit
        )
        if tighter:
            chosen[key] = advisory
    return list(chosen.values())


def advisory_flags(features: pl.DataFrame, advisories: Sequence[Advisory]) -> np.ndarray:
    """Per row of `features`: does any advisory flag it?"""
    flagged = np.zeros(features.height, dtype=bool)
    for advisory in advisories:
        if advisory.feature in features.columns:
            flagged |= advisory.flags(features[advisory.feature].cast(pl.Float64).to_numpy())
    return flagged


def advisory_reasons(features: pl.DataFrame, advisories: Sequence[Advisory]) -> list[list[str]]:
    """Per row of `features`, the reason of every advisory that flags it."""
    reasons: list[list[str]] = [[] for _ in range(features.height)]
    for advisory in advisories:
        if advisory.feature not in features.columns:
            continue
        values = features[advisory.feature].cast(pl.Float64).to_numpy()
        for row in np.flatnonzero(advisory.flags(values)):
            reasons[row].append(advisory.reason(float(values[row])))
    return reasons
