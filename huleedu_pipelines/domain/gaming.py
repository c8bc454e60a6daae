"""Ways a student could try to raise a score without writing a better essay.

Each perturbation turns one held-out essay into a gamed copy; the anti-gaming check re-scores
the copies through the full feature path and counts how many scores rose. Every perturbation
is deterministic given its seed, so a validation report can be reproduced.

* ``repeat_paragraph``: the essay's longest paragraph repeated until the essay is at least
  twice as long (padding).
* ``append_off_topic``: an essay written for another prompt appended as a new paragraph.
* ``shuffle_sentences``: the same sentences in a random order, as one paragraph.
* ``stuff_prompt_words``: a paragraph of the prompt's content words appended, as many words
  as half the essay (keyword stuffing).
* ``gibberish``: every word replaced by a pronounceable non-word of the same length, keeping
  punctuation and paragraphs (plausible word shapes, no meaning).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from huleedu_pipelines.features.lexicons import STOP_WORDS

PERTURBATIONS: tuple[str, ...] = (
    "repeat_paragraph",
    "append_off_topic",
    "shuffle_sentences",
    "stuff_prompt_words",
    "gibberish",
)

_WORD = re.compile(r"[A-Za-z]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CONSONANTS = "bcdfghklmnprstvw"
_VOWELS = "aeiou"


OFF_TOPIC_PASSAGE = (
    "Volcanoes form where tectonic plates pull apart or dive beneath one another. Magma "
    "rises through cracks in the crust and collects in chambers a few kilometres down. When "
    "the pressure of dissolved gas grows too great, the magma erupts as lava, ash and "
    "pumice. Basalt lava flows quickly and builds broad shield volcanoes such as those of "
    "Hawaii, while sticky rhyolite traps gas and explodes violently. Ash clouds can ground "
    "aeroplanes for weeks, and the sulphur they carry may cool the climate for years. "
    "Geologists watch for swelling ground, small earthquakes and rising gas to warn people "
    "living nearby."
)
"""Off-topic text for data with a single prompt, where no other prompt's essay exists."""


@dataclass(frozen=True)
class EssayToGame:
    """One held-out essay, with another prompt's essay to borrow off-topic text from."""

    text: str
    prompt: str | None
    off_topic_text: str


def _paragraphs(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _word_count(text: str) -> int:
    return len(text.split())


def repeat_paragraph(essay: EssayToGame, rng: random.Random) -> str:
    del rng
    paragraphs = _paragraphs(essay.text)
    if not paragraphs:
        return essay.text
    longest = max(paragraphs, key=_word_count)
    target = 2 * _word_count(essay.text)
    while _word_count("\n".join(paragraphs)) < target:
        paragraphs.append(longest)
    return "\n\n".join(paragraphs)


def append_off_topic(essay: EssayToGame, rng: random.Random) -> str:
    del rng
    return f"{essay.text.rstrip()}\n\n{essay.off_topic_text.strip()}"


def shuffle_sentences(essay: EssayToGame, rng: random.Random) -> str:
    sentences = [s for p in _paragraphs(essay.text) for s in _SENTENCE_END.split(p) if s]
    rng.shuffle(sentences)
    return " ".join(sentences)


def stuff_prompt_words(essay: EssayToGame, rng: random.Random) -> str:
    words = [w.lower() for w in _WORD.findall(essay.prompt or "")]
    content = [w for w in words if w not in STOP_WORDS and len(w) > 2] or words
    if not content:
        return essay.text
    stuffed = [rng.choice(content) for _ in range(max(_word_count(essay.text) // 2, 1))]
    return f"{essay.text.rstrip()}\n\n{' '.join(stuffed).capitalize()}."


def _pseudo_word(length: int, rng: random.Random) -> str:
    letters = [rng.choice(_CONSONANTS if i % 2 == 0 else _VOWELS) for i in range(max(length, 1))]
    return "".join(letters)


def gibberish(essay: EssayToGame, rng: random.Random) -> str:
    def replace(match: re.Match[str]) -> str:
        word = _pseudo_word(len(match.group()), rng)
        return word.capitalize() if match.group()[0].isupper() else word

    return _WORD.sub(replace, essay.text)


PERTURB: dict[str, Callable[[EssayToGame, random.Random], str]] = {
    "repeat_paragraph": repeat_paragraph,
    "append_off_topic": append_off_topic,
    "shuffle_sentences": shuffle_sentences,
    "stuff_prompt_words": stuff_prompt_words,
    "gibberish": gibberish,
}
"""Perturbation name -> (essay, seeded random source) -> gamed text."""


def gamed_copies(essays: Sequence[EssayToGame], name: str, seed: int) -> list[str]:
    """The gamed text of every essay under perturbation `name`, reproducible from `seed`."""
    perturb = PERTURB[name]
    rng = random.Random(f"{name}:{seed}")
    return [perturb(essay, rng) for essay in essays]
