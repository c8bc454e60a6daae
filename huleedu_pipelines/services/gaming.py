"""The anti-gaming check: do padded, shuffled, stuffed or nonsense essays score higher?

Held-out essays are perturbed (`domain.gaming`) and the copies go through the same feature
path as any essay (`features.build.build_features`), so a model is judged on what it would
really serve. A copy keeps its original's CJ features: gaming the text does not change how
judges compared the original. Features are built once per validation run and shared by every
model; each model then only predicts.

A score *rises* when the copy's score exceeds the original's by more than the tolerance:
`tolerance_sd` standard deviations of the model's scores on the original essays, so one
setting means the same for grades, bands and P(high skill). A copy that a validity advisory
sends to a teacher (`modeling.advisories`) gains nothing from a risen score: the gate counts
the copies whose score rose *and* would be served without review.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from huleedu_pipelines.domain.gaming import (
    OFF_TOPIC_PASSAGE,
    PERTURBATIONS,
    EssayToGame,
    gamed_copies,
)
from huleedu_pipelines.features.bradley_terry import COMPARISON_COLUMNS
from huleedu_pipelines.features.build import build_features
from huleedu_pipelines.features.embeddings import SentenceEmbedder

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

Featurize = Callable[[pl.DataFrame], pl.DataFrame]
"""(essay_id, text, prompt_text) -> the feature table rows for those essays, same order."""


@dataclass(frozen=True)
class GamingCheck:
    """How the anti-gaming check runs: the feature path, how many held-out essays it perturbs
    and the rise that counts (in SDs of a model's scores on the originals)."""

    featurize: Featurize
    max_essays: int
    tolerance_sd: float


@dataclass(frozen=True)
class GamedFeatures:
    """Feature rows of the held-out essays and of each perturbation's copies, row-aligned."""

    original: pl.DataFrame
    gamed: dict[str, pl.DataFrame]
    seconds: float


@dataclass(frozen=True)
class PerturbationEffect:
    perturbation: str
    n: int
    share_risen: float
    """Share of copies whose score rose by more than the tolerance and that no advisory sent
    to review: what the manipulation would gain."""
    share_risen_before_review: float
    """Share of copies whose score rose by more than the tolerance, sent to review or not."""
    share_sent_to_review: float
    """Share of copies a validity advisory sends to a teacher."""
    mean_change: float
    quantiles: tuple[float, ...]
    """Score change (copy minus original) at QUANTILES."""


@dataclass(frozen=True)
class GamingReport:
    tolerance: float
    """The rise that counts, in score units (tolerance_sd x SD of the original scores)."""
    tolerance_sd: float
    effects: tuple[PerturbationEffect, ...]
    feature_seconds: float


def _off_topic_texts(essays: pl.DataFrame) -> list[str]:
    """For each essay, the first held-out essay written for another prompt, or a fixed
    passage when every essay answers the same prompt."""
    prompts = essays["prompt_id"].fill_null("").to_list()
    texts = essays["text"].to_list()
    result = []
    for prompt in prompts:
        other = next((t for p, t in zip(prompts, texts, strict=True) if p != prompt), None)
        result.append(other or OFF_TOPIC_PASSAGE)
    return result


def build_gamed_features(
    essays: pl.DataFrame,
    feature_rows: pl.DataFrame,
    featurize: Featurize,
    cj_columns: tuple[str, ...],
    seed: int,
) -> GamedFeatures:
    """Features of every perturbation's copies of `essays` (essay_id, text, prompt_text,
    prompt_id); `feature_rows` are the originals' feature rows, whose CJ columns the copies
    keep."""
    started = time.perf_counter()
    essays = essays.sort("essay_id")
    original = essays.select("essay_id").join(feature_rows, on="essay_id", maintain_order="left")
    to_game = [
        EssayToGame(text, prompt, off_topic)
        for text, prompt, off_topic in zip(
            essays["text"].to_list(),
            essays["prompt_text"].to_list(),
            _off_topic_texts(essays),
            strict=True,
        )
    ]
    gamed = {}
    for name in PERTURBATIONS:
        copies = essays.select("essay_id", "prompt_text").with_columns(
            pl.Series("text", gamed_copies(to_game, name, seed), dtype=pl.String)
        )
        rows = featurize(copies)
        gamed[name] = rows.drop(cj_columns).join(
            original.select("essay_id", *cj_columns), on="essay_id", maintain_order="left"
        )
    return GamedFeatures(original, gamed, time.perf_counter() - started)


def _share(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if flags.size else float("nan")


def gaming_report(
    score: Callable[[pl.DataFrame], np.ndarray],
    features: GamedFeatures,
    tolerance_sd: float,
    sent_to_review: Callable[[pl.DataFrame], np.ndarray] | None = None,
) -> GamingReport:
    """How each perturbation moves one model's scores; `score` maps feature rows to scores,
    `sent_to_review` to the rows a validity advisory sends to a teacher (none without it)."""
    before = np.asarray(score(features.original), dtype=np.float64)
    spread = float(np.std(before)) if before.size > 1 else 0.0
    tolerance = tolerance_sd * spread
    effects = []
    for name, rows in features.gamed.items():
        change = np.asarray(score(rows), dtype=np.float64) - before
        risen = change > tolerance
        reviewed = (
            np.asarray(sent_to_review(rows), dtype=bool)
            if sent_to_review is not None
            else np.zeros(change.size, dtype=bool)
        )
        effects.append(
            PerturbationEffect(
                perturbation=name,
                n=int(change.size),
                share_risen=_share(risen & ~reviewed),
                share_risen_before_review=_share(risen),
                share_sent_to_review=_share(reviewed),
                mean_change=float(np.mean(change)) if change.size else float("nan"),
                quantiles=tuple(float(q) for q in np.quantile(change, QUANTILES))
                if change.size
                else (),
            )
        )
    return GamingReport(tolerance, tolerance_sd, tuple(effects), features.seconds)


def essays_to_game(
    essays: pl.DataFrame, essay_ids: list[str], limit: int, seed: int
) -> pl.DataFrame:
    """Up to `limit` of `essay_ids` (a seeded sample, so a rerun games the same essays) with
    `essay_id, text, prompt_text, prompt_id` from `essays` (raw_essays rows)."""
    chosen = essays.filter(pl.col("essay_id").is_in(essay_ids)).sort("essay_id")
    if chosen.height > limit:
        chosen = chosen.sample(n=limit, seed=seed).sort("essay_id")
    return chosen.select("essay_id", "text", "prompt_text", "prompt_id")


def featurizer(cache_root: Path, embedder: SentenceEmbedder) -> Featurize:
    """The serving feature path (`features.build.build_features`) without CJ comparisons: the
    copies keep their originals' CJ columns (`build_gamed_features`)."""
    no_comparisons = pl.DataFrame(schema={column: pl.String for column in COMPARISON_COLUMNS})

    def featurize(essays: pl.DataFrame) -> pl.DataFrame:
        return build_features(essays, no_comparisons, cache_root, embedder).table

    return featurize
