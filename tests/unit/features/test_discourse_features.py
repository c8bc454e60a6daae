import math

import numpy as np
import pytest

from huleedu_pipelines.features.discourse import (
    DISCOURSE_FEATURE_COLUMNS,
    NEAR_DUPLICATE_SIMILARITY,
    compute_discourse_features,
    conclusion_signal,
    essay_discourse,
)
from huleedu_pipelines.features.embeddings import SentenceEmbedder
from huleedu_pipelines.features.text import sentences_of

slow = pytest.mark.slow

PROMPT = "Should schools require students to wear uniforms? Give reasons for your answer."
ESSAY = (
    "Many schools ask their students to wear a uniform every day.\n"
    "Supporters say that uniforms reduce bullying about expensive clothes. "
    "When everyone wears the same clothes, poorer pupils are not singled out. "
    "This makes the classroom a calmer place to learn.\n"
    "However, uniforms can be costly for families who must buy several sets. "
    "They also stop young people from expressing their personality. "
    "Some students feel that this lack of choice is unfair.\n"
    "In conclusion, I believe uniforms do more good than harm, as long as schools help "
    "families with the cost."
)
OFF_TOPIC = (
    "Volcanoes form where tectonic plates meet and magma rises through the crust. "
    "Lava cools into basalt, and ash clouds can ground aeroplanes for weeks."
)


def _unit_rows(*rows: list[float]) -> np.ndarray:
    array = np.array(rows, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_sentences_are_read_by_paragraph_as_written() -> None:
    assert sentences_of("One two. Three four!\n\nFive six") == [
        ["One two.", "Three four!"],
        ["Five six"],
    ]


def test_cohesion_is_adjacent_similarity_above_the_mean_of_all_pairs() -> None:
    # Sentences drift a→b→c: neighbours are similar, the ends are not.
    a, b, c = _unit_rows([1, 0, 0], [1, 1, 0], [0, 1, 0])
    values = essay_discourse([np.array([a, b, c])], prompt_vector=a)
    adjacent = (a @ b + b @ c) / 2
    all_pairs = (a @ b + b @ c + a @ c) / 3
    assert values["adjacent_sentence_similarity"] == pytest.approx(adjacent)
    assert values["cohesion_gain"] == pytest.approx(adjacent - all_pairs)
    centroid = (a + b + c) / np.linalg.norm(a + b + c)
    assert values["prompt_similarity"] == pytest.approx(centroid @ a)
    assert values["adjacent_paragraph_similarity"] is None  # one paragraph


def test_a_repeated_sentence_counts_once_per_repeat() -> None:
    a, b = _unit_rows([1, 0], [0, 1])
    values = essay_discourse([np.array([a, b]), np.array([a, a])], prompt_vector=None)
    assert values["near_duplicate_sentence_share"] == pytest.approx(2 / 4)
    assert values["prompt_similarity"] is None
    assert NEAR_DUPLICATE_SIMILARITY < 1


def test_features_without_their_inputs_are_null_not_zero() -> None:
    (a,) = _unit_rows([1, 0])
    one_sentence = essay_discourse([np.array([a])], prompt_vector=None)
    assert one_sentence["adjacent_sentence_similarity"] is None
    assert one_sentence["cohesion_gain"] is None
    assert one_sentence["near_duplicate_sentence_share"] is None
    assert all(value is None for value in essay_discourse([], prompt_vector=a).values())
    assert conclusion_signal([]) is None


def test_a_conclusion_phrase_counts_only_in_the_closing_sentences() -> None:
    assert conclusion_signal(sentences_of(ESSAY)) == 1.0
    opening_only = "In conclusion is how I start. Then a middle. Then more. And the end."
    assert conclusion_signal(sentences_of(opening_only)) == 0.0
    assert conclusion_signal(sentences_of("First point.\nOverall, it is good.")) == 1.0


DOGS = (
    "My dog loves long walks in the park.",
    "He chases every ball I throw for him.",
    "After the walk he sleeps by the fire.",
)
TAXES = (
    "The government raised the income tax rate last year.",
    "Higher taxes fund hospitals and public schools.",
    "Some economists argue that tax cuts boost growth.",
)


@slow
def test_real_vectors_see_topic_jumps_padding_and_off_topic_text() -> None:
    grouped = " ".join((*DOGS, *TAXES))
    interleaved = " ".join(s for pair in zip(DOGS, TAXES, strict=True) for s in pair)
    padded = ESSAY + "\n" + ESSAY.split("\n")[1] + "\n" + ESSAY.split("\n")[1]
    frame = compute_discourse_features(
        [
            ESSAY,
            padded,
            ESSAY + "\n" + OFF_TOPIC + " " + " ".join(TAXES),
            ESSAY,
            grouped,
            interleaved,
        ],
        [PROMPT, PROMPT, PROMPT, None, None, None],
        SentenceEmbedder(num_threads=2),
    )
    assert frame.columns == list(DISCOURSE_FEATURE_COLUMNS)
    original, repeated, off_topic, no_prompt, on_track, jumping = frame.to_dicts()
    assert on_track["cohesion_gain"] > 0.05 > jumping["cohesion_gain"]
    assert on_track["adjacent_sentence_similarity"] > jumping["adjacent_sentence_similarity"]
    assert repeated["near_duplicate_sentence_share"] == pytest.approx(6 / 14)
    assert original["near_duplicate_sentence_share"] == 0.0
    assert off_topic["prompt_similarity"] < original["prompt_similarity"] - 0.05
    assert original["prompt_similarity"] > 0.3
    assert no_prompt["prompt_similarity"] is None
    assert math.isfinite(no_prompt["cohesion_gain"])
