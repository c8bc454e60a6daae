import random
import re

import pytest

from huleedu_pipelines.domain.gaming import (
    PERTURB,
    PERTURBATIONS,
    EssayToGame,
    gamed_copies,
    gibberish,
    repeat_paragraph,
    shuffle_sentences,
    stuff_prompt_words,
)

PROMPT = "Should schools require students to wear uniforms?"
TEXT = (
    "Many schools ask pupils to wear uniforms.\n"
    "Uniforms reduce bullying. They also save time in the morning. Parents like that.\n"
    "In conclusion, uniforms help."
)
ESSAY = EssayToGame(TEXT, PROMPT, off_topic_text="Volcanoes erupt when magma rises.")


def words(text: str) -> list[str]:
    return text.split()


def test_every_named_perturbation_has_a_function() -> None:
    assert tuple(PERTURB) == PERTURBATIONS


def test_padding_repeats_the_longest_paragraph_until_the_essay_doubles() -> None:
    padded = repeat_paragraph(ESSAY, random.Random(0))
    longest = "Uniforms reduce bullying. They also save time in the morning. Parents like that."
    assert len(words(padded)) >= 2 * len(words(TEXT))
    assert padded.count(longest) == 3  # once as written, twice repeated (13 more words each)
    assert padded.startswith("Many schools ask pupils to wear uniforms.")


def test_off_topic_text_is_appended_as_a_new_paragraph() -> None:
    assert PERTURB["append_off_topic"](ESSAY, random.Random(0)) == (
        TEXT + "\n\nVolcanoes erupt when magma rises."
    )


def test_shuffling_keeps_every_sentence_once_in_another_order() -> None:
    shuffled = shuffle_sentences(ESSAY, random.Random(3))
    sentences = re.split(r"(?<=[.!?])\s+", shuffled)
    original = re.split(r"(?<=[.!?])\s+", TEXT.replace("\n", " "))
    assert sorted(sentences) == sorted(original)
    assert sentences != original and "\n" not in shuffled


def test_stuffing_appends_half_the_essay_length_of_prompt_content_words() -> None:
    stuffed = stuff_prompt_words(ESSAY, random.Random(0))
    added = stuffed[len(TEXT) :].strip().rstrip(".").lower().split()
    assert len(added) == len(words(TEXT)) // 2
    assert set(added) <= {"schools", "require", "students", "wear", "uniforms"}
    assert stuff_prompt_words(EssayToGame(TEXT, None, ""), random.Random(0)) == TEXT


def test_gibberish_keeps_word_lengths_capitals_punctuation_and_paragraphs() -> None:
    nonsense = gibberish(ESSAY, random.Random(0))
    assert [len(w) for w in re.findall(r"[A-Za-z]+", nonsense)] == [
        len(w) for w in re.findall(r"[A-Za-z]+", TEXT)
    ]
    assert re.sub(r"[A-Za-z]", "", nonsense) == re.sub(r"[A-Za-z]", "", TEXT)
    assert nonsense[0].isupper() and "uniform" not in nonsense.lower()


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_copies_are_reproducible_from_the_seed(name: str) -> None:
    essays = [ESSAY, EssayToGame("One short essay. It has two sentences.", PROMPT, "Other.")]
    assert gamed_copies(essays, name, seed=7) == gamed_copies(essays, name, seed=7)
    assert all(
        copy != essay.text
        for copy, essay in zip(gamed_copies(essays, name, 7), essays, strict=True)
    )
