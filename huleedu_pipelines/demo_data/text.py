"""Essay text whose measurable properties follow the writer's seven skill latents.

Each skill drives properties a text-feature model can measure, through a monotone function
of the skill plus per-essay noise (`PROPERTY_NOISE_SD` on the latent scale):

- task_response: length (120..~520 words) and relevance (share of off-topic filler
  sentences, up to ~50% for the weakest writers, ~0 for strong ones).
- coherence_cohesion: paragraphs (1..6), share of sentences opening with a connective,
  plain ("And", "But", "So") versus advanced ("Moreover,", "Nevertheless,") connectives,
  an essay-style introduction and conclusion.
- vocabulary: the share of non-plain synonyms, and of rare ones among them ("important" ->
  "crucial" -> "indispensable", "increase" -> "intensify" -> "exacerbate"; see
  `wordbanks.VOCABULARY`), and type-token variety.
- phraseology: verbatim repeated sentences and stock openers ("I think that") for weak
  writers, idioms and collocations ("plays a pivotal role") for strong ones.
- syntax: subordinate clauses per sentence (0..3; mean sentence length ~9..30 words) and
  the subordinators ("because", "so" versus "although", "whereas", "provided that").
- grammar: agreement and form errors after pronouns ("they was", "it are", "he think",
  "I is"), "more better", "could of", "a important" / "an big"; all found by the regular
  expressions in `wordbanks.GRAMMAR_ERROR_PATTERNS`.
- conventions: misspellings a dictionary spellchecker flags ("becuase", "thier"),
  lowercase sentence starts and " i ", a missing comma after a connective.

Rates become counts through a low-variance "budget" (systematic sampling): an essay with an
error rate of 0.1 over 40 opportunities makes 4 errors, at random places, not Binomial(40,
0.1) errors. This keeps each property close to a deterministic function of its skill.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from huleedu_pipelines.demo_data import wordbanks as wb

PROPERTY_NOISE_SD = 0.1
"""Per-essay noise added to a skill latent before it sets one text property."""

MIN_WORDS = 120
MAX_WORDS = 470


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class WritingProfile:
    """How one essay is written; every field is a monotone function of one skill latent."""

    target_words: int
    offtopic_share: float
    paragraphs: int
    connective_rate: float
    advanced_connective_share: float
    advanced_frame: bool
    advanced_vocabulary_share: float
    rare_vocabulary_share: float
    plain_variety: float
    repeat_share: float
    idiom_share: float
    stock_opener_rate: float
    subclause_mean: float
    advanced_subordinator_share: float
    grammar_error_rate: float
    spelling_error_rate: float
    capitalisation_error_rate: float
    punctuation_error_rate: float


def writing_profile(skills: Mapping[str, float], rng: np.random.Generator) -> WritingProfile:
    """Map skill latents (standard-normal scale) to a writing profile, with property noise."""

    def z(skill: str) -> float:
        return float(skills[skill]) + PROPERTY_NOISE_SD * float(rng.standard_normal())

    def weak(skill: str) -> float:
        """1 for the weakest writers, 0 for the strongest."""
        return 1.0 - _phi(z(skill))

    return WritingProfile(
        target_words=round(MIN_WORDS + (MAX_WORDS - MIN_WORDS) * _phi(0.9 * z("task_response"))),
        offtopic_share=0.5 * weak("task_response") ** 2,
        paragraphs=1 + min(5, int(6.0 * _phi(1.1 * z("coherence_cohesion")))),
        connective_rate=0.05 + 0.55 * _phi(z("coherence_cohesion")),
        advanced_connective_share=_phi(1.5 * z("coherence_cohesion")),
        advanced_frame=z("coherence_cohesion") > 0.0,
        advanced_vocabulary_share=0.02 + 0.93 * _phi(1.4 * z("vocabulary")),
        rare_vocabulary_share=_phi(1.4 * z("vocabulary") - 0.3),
        plain_variety=_phi(z("vocabulary")),
        repeat_share=0.3 * weak("phraseology") ** 1.5,
        idiom_share=0.4 * _phi(z("phraseology")) ** 2,
        stock_opener_rate=0.6 * weak("phraseology"),
        subclause_mean=0.05 + 2.2 * _phi(z("syntax")),
        advanced_subordinator_share=_phi(1.5 * z("syntax")),
        grammar_error_rate=0.7 * weak("grammar") ** 1.5,
        spelling_error_rate=0.3 * weak("conventions") ** 2,
        capitalisation_error_rate=0.6 * weak("conventions") ** 2,
        punctuation_error_rate=0.8 * weak("conventions"),
    )


class _Uniforms:
    """Uniform draws from a numpy generator, fetched in blocks (scalar draws are slow)."""

    def __init__(self, rng: np.random.Generator, block: int = 512) -> None:
        self.rng = rng
        self.block = block
        self.values: list[float] = []

    def __call__(self) -> float:
        if not self.values:
            self.values = self.rng.random(self.block).tolist()[::-1]
        return self.values.pop()

    def index(self, n: int) -> int:
        return min(int(self() * n), n - 1)


class _Budget:
    """Turns a rate into events with almost no sampling noise (systematic sampling)."""

    def __init__(self, rate: float, uniform: _Uniforms) -> None:
        self.rate = rate
        self.level = uniform()

    def count(self) -> int:
        self.level += self.rate
        events = int(self.level)
        self.level -= events
        return events

    def take(self) -> bool:
        return self.count() > 0


_SLOT = re.compile(r"\{(\w+)\}|\[([^|\]]*)\|([^\]]*)\]")
_ARTICLE = re.compile(r"\^ ([A-Za-z]+)")
_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one")


def _takes_an(word: str) -> bool:
    lower = word.lower()
    if lower.startswith(_AN_EXCEPTIONS):
        return False
    return lower[0] in "aeiou" or lower.startswith("hour")


class _Writer:
    """Writes one essay; all randomness comes from the generator it is given."""

    def __init__(
        self, bank: wb.PromptBank, profile: WritingProfile, rng: np.random.Generator
    ) -> None:
        self.bank = bank
        self.profile = profile
        self.rng = rng
        self.uniform = uniform = _Uniforms(rng)
        self.phrases: dict[str, tuple[str, ...]] = {
            "T": bank.topic,
            "G": bank.group,
            "PRO": bank.pro,
            "CON": bank.con,
            "ACT": bank.act,
            "ALT": bank.alt,
            "PLACE": bank.place,
            "question": (bank.question,),
        }
        self._decks: dict[str, list[str]] = {}
        p = profile
        self.advanced_words = _Budget(p.advanced_vocabulary_share, uniform)
        self.rare_words = _Budget(p.rare_vocabulary_share, uniform)
        self.grammar_errors = _Budget(p.grammar_error_rate, uniform)
        self.misspellings = _Budget(p.spelling_error_rate, uniform)
        self.capitalisation_errors = _Budget(p.capitalisation_error_rate, uniform)
        self.punctuation_errors = _Budget(p.punctuation_error_rate, uniform)
        self.repeats = _Budget(p.repeat_share, uniform)
        self.fillers = _Budget(p.offtopic_share, uniform)
        self.idioms = _Budget(p.idiom_share, uniform)
        self.stock_openers = _Budget(p.stock_opener_rate, uniform)
        self.connectives = _Budget(p.connective_rate, uniform)
        self.advanced_connectives = _Budget(p.advanced_connective_share, uniform)
        self.subclauses = _Budget(p.subclause_mean, uniform)
        self.advanced_subordinators = _Budget(p.advanced_subordinator_share, uniform)

    def _pick(self, options: tuple[str, ...]) -> str:
        return options[self.uniform.index(len(options))]

    def _draw(self, name: str, templates: tuple[str, ...]) -> str:
        """Draw templates without replacement, reshuffling when the deck is empty."""
        deck = self._decks.get(name)
        if not deck:
            deck = [templates[i] for i in self.rng.permutation(len(templates))]
            self._decks[name] = deck
        return deck.pop()

    def _word(self, slot: str) -> str:
        name, _, form = slot.partition("_")
        if name in self.phrases and not form:
            return self._pick(self.phrases[name])
        if name in wb.VOCABULARY:
            return self._choose(*wb.VOCABULARY[name])
        if name in wb.VERBS:
            index = {"": 0, "s": 1, "ed": 2}[form]
            tiers = (tuple(verb[index] for verb in tier) for tier in wb.VERBS[name])
            return self._choose(*tiers)
        raise KeyError(f"unknown template slot {{{slot}}}")

    def _choose(
        self, plain: tuple[str, ...], middle: tuple[str, ...], rare: tuple[str, ...]
    ) -> str:
        if self.advanced_words.take():
            return self._pick(rare if self.rare_words.take() else middle)
        if len(plain) > 1 and self.uniform() < self.profile.plain_variety:
            return self._pick(plain[1:])
        return plain[0]

    def fill(self, template: str) -> str:
        def slot(match: re.Match[str]) -> str:
            if match.group(1) is not None:
                return self._word(match.group(1))
            return match.group(3) if self.grammar_errors.take() else match.group(2)

        def article(match: re.Match[str]) -> str:
            an = _takes_an(match.group(1)) != self.grammar_errors.take()
            return ("an " if an else "a ") + match.group(1)

        return _ARTICLE.sub(article, _SLOT.sub(slot, template))

    def _misspell(self, text: str) -> str:
        tokens = text.split(" ")
        for position, token in enumerate(tokens):
            core = token.rstrip(",")
            wrong = wb.MISSPELLINGS.get(core.lower())
            if wrong is not None and self.misspellings.take():
                wrong = wrong.capitalize() if core[0].isupper() else wrong
                tokens[position] = wrong + token[len(core) :]
        return " ".join(tokens)

    def finish(self, clause: str, connective: str | None = None) -> str:
        """Capitalise, punctuate and misspell one sentence."""
        if connective is not None:
            if connective.endswith(",") and self.punctuation_errors.take():
                connective = connective[:-1]
            clause = f"{connective} {clause}"
        if self.capitalisation_errors.take():
            clause = clause[0].lower() + clause[1:]
        else:
            clause = clause[0].upper() + clause[1:]
        if " I " in clause and self.capitalisation_errors.take():
            clause = clause.replace(" I ", " i ")
        return self._misspell(clause) + "."

    def body_sentence(self) -> str:
        connective = None
        if self.idioms.take():
            clause = self.fill(self._draw("idiom", wb.IDIOM_TEMPLATES))
        else:
            if self.connectives.take():
                advanced = self.advanced_connectives.take()
                connective = self._pick(
                    wb.ADVANCED_CONNECTIVES if advanced else wb.PLAIN_CONNECTIVES
                )
            clause = self.fill(self._draw("body", self.bank.sentences + wb.BODY_TEMPLATES))
            if self.stock_openers.take():
                opener = self._pick(wb.STOCK_OPENERS)
                clause = f"{opener}{', ' if opener == 'In my opinion' else ' '}{clause}"
        for _ in range(min(3, self.subclauses.count())):
            advanced = self.advanced_subordinators.take()
            subordinator = self._pick(
                wb.ADVANCED_SUBORDINATORS if advanced else wb.PLAIN_SUBORDINATORS
            )
            clause += f"{subordinator} {self.fill(self._draw('sub', wb.SUBORDINATE_CLAUSES))}"
        return self.finish(clause, connective)

    def essay(self) -> str:
        p = self.profile
        intro = wb.INTRO_ADVANCED if p.advanced_frame else wb.INTRO_PLAIN
        sentences = [self.finish(self.fill(self._pick(intro)))]
        body: list[str] = []
        words = len(sentences[0].split())
        while words < p.target_words:
            if len(body) >= 2 and self.repeats.take():
                sentence = body[self.uniform.index(len(body))]
            elif self.fillers.take():
                sentence = self.finish(self.fill(self._draw("filler", wb.FILLER_SENTENCES)))
            else:
                sentence = self.body_sentence()
                body.append(sentence)
            sentences.append(sentence)
            words += len(sentence.split())
        if p.advanced_frame or p.paragraphs >= 3:
            ending = wb.CONCLUSION_ADVANCED if p.advanced_frame else wb.CONCLUSION_PLAIN
            sentences.append(self.finish(self.fill(self._pick(ending))))
        return _paragraphs(sentences, p.paragraphs)


def _paragraphs(sentences: list[str], paragraphs: int) -> str:
    count = max(1, min(paragraphs, len(sentences) // 2))
    bounds = np.linspace(0, len(sentences), count + 1).round().astype(int).tolist()
    return "\n\n".join(" ".join(sentences[a:b]) for a, b in itertools.pairwise(bounds))


def compose_essay(bank: wb.PromptBank, profile: WritingProfile, rng: np.random.Generator) -> str:
    """One essay on `bank`'s prompt, written as `profile` says."""
    return _Writer(bank, profile, rng).essay()
