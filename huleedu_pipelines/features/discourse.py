"""Discourse features from sentence embeddings: relevance to the prompt, cohesion, repetition.

Raters judge whether an essay answers its prompt and whether its ideas follow on from each
other; word counts cannot see either. Every sentence (as :func:`features.text.sentences_of`
reads them) is embedded with the same bundled model as the essays, and the features compare
those unit vectors by cosine similarity:

* ``prompt_similarity``: the essay's centroid (mean sentence vector) against the prompt's
  vector; off-topic or pasted text lowers it.
* ``adjacent_sentence_similarity``: mean similarity of each sentence with the next one
  (local cohesion).
* ``cohesion_gain``: that mean minus the mean over all pairs of sentences. Ideas that follow
  on from each other score above zero; shuffled sentences score near zero whatever the topic.
* ``adjacent_paragraph_similarity``: mean similarity of consecutive paragraphs' centroids.
* ``near_duplicate_sentence_share``: share of sentences at least
  :data:`NEAR_DUPLICATE_SIMILARITY` similar to an earlier one (repetition and padding).

One structure signal needs no vectors (exact repetition and word overlap with the prompt are
text features, in `features/text.py`):

* ``conclusion_signal``: 1 when the closing sentences (the last paragraph, or the last
  :data:`CLOSING_SENTENCES` sentences of a one-paragraph essay) use a conclusion phrase
  (:data:`lexicons.CONCLUSION_MARKERS`), else 0.

A feature without its inputs (no prompt, fewer than two sentences or paragraphs) is null,
never 0. Values depend only on the essay and its prompt, so they are cached by content hash
under :func:`discourse_feature_version`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from huleedu_pipelines.features.lexicons import CONCLUSION_MARKERS
from huleedu_pipelines.features.text import FeatureSpec, sentences_of

if TYPE_CHECKING:
    import polars as pl

    from huleedu_pipelines.features.embeddings import SentenceEmbedder

DISCOURSE_FEATURE_VERSION = "discourse-v1"
NEAR_DUPLICATE_SIMILARITY = 0.95
CLOSING_SENTENCES = 2
_CONCLUSION_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(marker) for marker in CONCLUSION_MARKERS) + r")\b"
)
_SIMILARITY = "cosine similarity -1..1"

DISCOURSE_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "prompt_similarity",
        "Similarity of the essay's mean sentence vector with the prompt's vector.",
        _SIMILARITY,
    ),
    FeatureSpec(
        "adjacent_sentence_similarity",
        "Mean similarity of each sentence with the next.",
        _SIMILARITY,
    ),
    FeatureSpec(
        "cohesion_gain",
        "Adjacent-sentence similarity minus the mean similarity of all sentence pairs.",
        "difference of cosine similarities",
    ),
    FeatureSpec(
        "adjacent_paragraph_similarity",
        "Mean similarity of each paragraph's mean sentence vector with the next one's.",
        _SIMILARITY,
    ),
    FeatureSpec(
        "near_duplicate_sentence_share",
        f"Share of sentences with similarity >= {NEAR_DUPLICATE_SIMILARITY} to an earlier one.",
        "ratio 0..1",
    ),
    FeatureSpec(
        "conclusion_signal",
        "1 if the closing sentences use a conclusion phrase such as 'in conclusion', else 0.",
        "indicator 0/1",
    ),
)
DISCOURSE_FEATURE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in DISCOURSE_FEATURES)


def discourse_feature_version(embedder: SentenceEmbedder) -> str:
    """Changes whenever the definitions or the sentence vectors would."""
    return f"{DISCOURSE_FEATURE_VERSION}/{embedder.version}"


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _mean_adjacent(vectors: np.ndarray) -> float | None:
    if len(vectors) < 2:
        return None
    return float(np.mean(np.sum(vectors[:-1] * vectors[1:], axis=1)))


def conclusion_signal(paragraphs: Sequence[Sequence[str]]) -> float | None:
    """1.0 when the closing sentences open a conclusion, 0.0 when not, null without text."""
    if not paragraphs:
        return None
    closing = paragraphs[-1] if len(paragraphs) > 1 else paragraphs[-1][-CLOSING_SENTENCES:]
    return float(bool(_CONCLUSION_RE.search(" ".join(closing).lower())))


def essay_discourse(
    paragraphs: Sequence[np.ndarray], prompt_vector: np.ndarray | None
) -> dict[str, float | None]:
    """The features of one essay from its sentence vectors grouped by paragraph (each an
    ``(n_sentences, dim)`` array of unit vectors) and the prompt's unit vector, if any."""
    values: dict[str, float | None] = dict.fromkeys(DISCOURSE_FEATURE_COLUMNS)
    paragraphs = [block for block in paragraphs if len(block)]
    if not paragraphs:
        return values
    sentences = np.concatenate(paragraphs).astype(np.float64)
    n = len(sentences)
    if prompt_vector is not None:
        values["prompt_similarity"] = float(_unit(sentences.mean(axis=0)) @ prompt_vector)
    values["adjacent_paragraph_similarity"] = _mean_adjacent(
        np.array([_unit(block.astype(np.float64).mean(axis=0)) for block in paragraphs])
    )
    if n < 2:
        return values
    similarity = sentences @ sentences.T
    adjacent = _mean_adjacent(sentences)
    assert adjacent is not None
    pairs = np.triu_indices(n, k=1)
    values["adjacent_sentence_similarity"] = adjacent
    values["cohesion_gain"] = adjacent - float(similarity[pairs].mean())
    earlier = np.tril(similarity, k=-1).max(axis=1)
    values["near_duplicate_sentence_share"] = float(
        np.count_nonzero(earlier[1:] >= NEAR_DUPLICATE_SIMILARITY) / n
    )
    return values


def compute_discourse_features(
    texts: Sequence[str], prompts: Sequence[str | None], embedder: SentenceEmbedder
) -> pl.DataFrame:
    """One row per essay, in input order, with :data:`DISCOURSE_FEATURE_COLUMNS`.

    Every sentence of the batch and every distinct prompt are embedded in one call, so the
    model sees long batches."""
    import polars as pl

    essays = [sentences_of(text) for text in texts]
    flat = [sentence for paragraphs in essays for block in paragraphs for sentence in block]
    distinct_prompts = sorted({prompt for prompt in prompts if prompt and prompt.strip()})
    vectors = embedder.embed([*flat, *distinct_prompts]) if flat or distinct_prompts else None
    prompt_vectors = {
        prompt: vectors[len(flat) + index].astype(np.float64)
        for index, prompt in enumerate(distinct_prompts)
    }
    rows, cursor = [], 0
    for paragraphs, prompt in zip(essays, prompts, strict=True):
        blocks = []
        for block in paragraphs:
            assert vectors is not None
            blocks.append(vectors[cursor : cursor + len(block)])
            cursor += len(block)
        row = essay_discourse(blocks, prompt_vectors.get(prompt or ""))
        row["conclusion_signal"] = conclusion_signal(paragraphs)
        rows.append(row)
    schema = dict.fromkeys(DISCOURSE_FEATURE_COLUMNS, pl.Float64)
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
