"""Handcrafted text features of an essay: length, vocabulary, readability, mechanics, cohesion.

:data:`TEXT_FEATURES` is the one registry of what is computed; the validation report and the
per-essay explanations read their names, definitions and units from it.
:func:`compute_text_features` is the batch path used by the pipeline; it gives the same numbers
as :func:`compute_text_features_naive`, the plain one-essay-at-a-time loop kept as a reference
and a benchmark baseline.

How a text is read (both paths share these definitions):

* Line endings are normalised to ``\\n`` and curly apostrophes to ``'``.
* A *paragraph* is a line that contains at least one word; any line break starts a new one.
* A *sentence* ends at ``.``, ``!`` or ``?`` (plus closing quotes or brackets) followed by
  whitespace, or at the end of its paragraph; "e.g.", "i.e.", "Mr.", "Mrs.", "Ms.", "Dr." and
  "vs." do not end a sentence. A sentence without words is not counted.
* A *word* is a run of letters with internal apostrophes ("don't"), a number ("1,000",
  "3.5"), or a dotted abbreviation ("e.g."); a hyphen separates two words. Lexical features
  use words lowercased. An *alphabetic word* has only letters and apostrophes.
* Syllables are counted by a heuristic (vowel groups, less a silent final "e", "-ed" or "-es",
  plus one for "-ing" after a vowel, "ia"/"io"/"iu"/"ua" hiatus and a final "-ea"); words
  without letters count one syllable. textstat's own English counter needs the CMU
  dictionary from the network, so the readability formulas are computed here.

A rate whose denominator is zero (no words, no sentences, no prompt) is null, never 0, NaN or
infinite; counts of an empty essay are 0. An essay's values depend only on its text and its
prompt, never on the rest of the batch, so they can be cached by (text, prompt,
:data:`TEXT_FEATURE_VERSION`).

Heavy libraries (polars, numpy, wordfreq, pyspellchecker) are imported inside the functions
that need them, so importing this module stays cheap for the Dagster code location.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from huleedu_pipelines.features import lexicons as lx

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    from spellchecker import SpellChecker


@dataclass(frozen=True)
class FeatureSpec:
    """One text feature: its column name, what it measures, and in which unit."""

    name: str
    definition: str
    unit: str


TEXT_FEATURE_VERSION = "text-v2"
"""Bump whenever a definition, a word list or a threshold below changes."""

RARE_WORD_MAX_ZIPF = 3.5
LONG_WORD_MIN_CHARS = 7
POLYSYLLABLE_MIN_SYLLABLES = 3
MTLD_THRESHOLD = 0.72
STUFFING_MIN_PARAGRAPH_WORDS = 8

_PER_100 = "per 100 words"
_RATIO = "ratio 0..1"

TEXT_FEATURES: tuple[FeatureSpec, ...] = (
    # --- length and structure
    FeatureSpec(
        "char_count",
        "Characters in the essay, spaces and line breaks included (CRLF counts once).",
        "characters",
    ),
    FeatureSpec("word_count", "Words in the essay.", "words"),
    FeatureSpec("sentence_count", "Sentences that contain at least one word.", "sentences"),
    FeatureSpec(
        "paragraph_count",
        "Lines that contain at least one word (a line break starts a new one).",
        "paragraphs",
    ),
    FeatureSpec("mean_sentence_length", "Mean number of words per sentence.", "words"),
    FeatureSpec(
        "sd_sentence_length",
        "Standard deviation (population) of words per sentence; 0 for one sentence.",
        "words",
    ),
    FeatureSpec("mean_word_length", "Mean number of letters and digits per word.", "characters"),
    FeatureSpec(
        "sd_word_length",
        "Standard deviation (population) of letters and digits per word.",
        "characters",
    ),
    FeatureSpec(
        "long_word_share",
        f"Share of words with at least {LONG_WORD_MIN_CHARS} letters or digits.",
        _RATIO,
    ),
    # --- vocabulary
    FeatureSpec("type_token_ratio", "Distinct words divided by words (lowercased).", _RATIO),
    FeatureSpec(
        "root_ttr",
        "Guiraud's root type-token ratio: distinct words / sqrt(words); less length-dependent.",
        "index",
    ),
    FeatureSpec(
        "mtld",
        "Measure of textual lexical diversity (McCarthy & Jarvis 2010): mean length of word runs "
        f"whose type-token ratio stays above {MTLD_THRESHOLD}, forward and backward averaged; "
        "a direction that never falls to the threshold counts its word total.",
        "words",
    ),
    FeatureSpec(
        "hapax_share", "Share of distinct words that occur exactly once in the essay.", _RATIO
    ),
    FeatureSpec("stop_word_share", "Share of words that are function (stop) words.", _RATIO),
    FeatureSpec(
        "mean_zipf_frequency",
        "Mean wordfreq Zipf frequency of alphabetic words (0 for unknown words; 7 is 'the', "
        "3 is one in a million words); lower means rarer vocabulary.",
        "zipf",
    ),
    FeatureSpec(
        "rare_word_share",
        f"Share of alphabetic words that are spelled correctly but rare (Zipf < "
        f"{RARE_WORD_MAX_ZIPF}), a marker of sophisticated vocabulary.",
        _RATIO,
    ),
    FeatureSpec("mean_syllables_per_word", "Mean heuristic syllable count per word.", "syllables"),
    FeatureSpec(
        "polysyllable_share",
        f"Share of words with at least {POLYSYLLABLE_MIN_SYLLABLES} syllables.",
        _RATIO,
    ),
    FeatureSpec(
        "unfamiliar_word_share",
        "Share of words not on the Dale-Chall list of 3,000 familiar words (regular "
        "inflections -s, -es, -ies, -'s, -ed, -ing, -er, -est of listed words count as "
        "familiar; numbers are familiar).",
        _RATIO,
    ),
    FeatureSpec(
        "contractions_per_100_words",
        "Contractions (n't, 're, 've, 'll, 'd, 'm, and 's after a pronoun or it/that/there).",
        _PER_100,
    ),
    # --- readability (W words, S sentences, Y syllables, C letters and digits)
    FeatureSpec(
        "flesch_reading_ease",
        "Flesch reading ease: 206.835 - 1.015 W/S - 84.6 Y/W; higher is easier.",
        "score",
    ),
    FeatureSpec(
        "flesch_kincaid_grade",
        "Flesch-Kincaid grade: 0.39 W/S + 11.8 Y/W - 15.59.",
        "grade level",
    ),
    FeatureSpec(
        "gunning_fog",
        "Gunning fog: 0.4 (W/S + 100 P/W), P = words of 3+ syllables.",
        "grade level",
    ),
    FeatureSpec(
        "smog_index",
        "SMOG: 1.0430 sqrt(30 P/S) + 3.1291, P = words of 3+ syllables.",
        "grade level",
    ),
    FeatureSpec(
        "coleman_liau_index",
        "Coleman-Liau: 0.0588 L - 0.296 S100 - 15.8, L = letters and digits per 100 words, "
        "S100 = sentences per 100 words.",
        "grade level",
    ),
    FeatureSpec(
        "automated_readability_index",
        "Automated readability index: 4.71 C/W + 0.5 W/S - 21.43.",
        "grade level",
    ),
    FeatureSpec(
        "dale_chall_score",
        "New Dale-Chall: 0.1579 x (% unfamiliar words) + 0.0496 W/S, plus 3.6365 when more "
        "than 5% of words are unfamiliar.",
        "score",
    ),
    # --- spelling, punctuation and capitalisation
    FeatureSpec(
        "spelling_errors_per_100_words",
        "Alphabetic words unknown to pyspellchecker's English dictionary (British spellings "
        "such as colour, realise, centre, travelling accepted).",
        _PER_100,
    ),
    FeatureSpec("commas_per_100_words", "Commas.", _PER_100),
    FeatureSpec("semicolons_per_100_words", "Semicolons.", _PER_100),
    FeatureSpec("colons_per_100_words", "Colons.", _PER_100),
    FeatureSpec("question_marks_per_100_words", "Question marks.", _PER_100),
    FeatureSpec("exclamation_marks_per_100_words", "Exclamation marks.", _PER_100),
    FeatureSpec(
        "space_before_punctuation_per_100_words",
        "Spaces before , ; : ! ? or a single full stop ('word , word').",
        _PER_100,
    ),
    FeatureSpec(
        "missing_space_after_punctuation_per_100_words",
        "Comma or semicolon directly followed by a letter, or . ! ? directly followed by a "
        "capital, after a lowercase word ('one,two', 'end.Next').",
        _PER_100,
    ),
    FeatureSpec(
        "doubled_punctuation_per_100_words",
        "Doubled marks: ',,' ';;' ',;', comma/semicolon/colon before a full stop, '!!', '??', "
        "or exactly two full stops (an ellipsis '...' is fine).",
        _PER_100,
    ),
    FeatureSpec(
        "lowercase_sentence_start_share",
        "Share of sentences whose first word starts with a lowercase letter.",
        _RATIO,
    ),
    FeatureSpec(
        "lowercase_i_per_100_words",
        "The pronoun I written lowercase: 'i', 'i'm', 'i've', 'i'll', 'i'd'.",
        _PER_100,
    ),
    # --- cohesion
    FeatureSpec(
        "basic_connectives_per_100_words",
        "Basic connectives: " + ", ".join(lx.BASIC_CONNECTIVES) + ".",
        _PER_100,
    ),
    FeatureSpec(
        "advanced_connectives_per_100_words",
        "Advanced connectives such as however, moreover, nevertheless, consequently, "
        "in contrast, on the other hand (full list in features/lexicons.py).",
        _PER_100,
    ),
    FeatureSpec(
        "discourse_markers_per_100_words",
        "Organising markers such as firstly, finally, for example, in conclusion, "
        "in my opinion (full list in features/lexicons.py).",
        _PER_100,
    ),
    FeatureSpec(
        "advanced_connective_share",
        "Advanced connectives divided by basic plus advanced connectives; null when there "
        "are none.",
        _RATIO,
    ),
    FeatureSpec(
        "distinct_connectives",
        "Different connectives and discourse markers used (basic, advanced and organising).",
        "count",
    ),
    FeatureSpec(
        "subordinators_per_sentence",
        "Subordinating conjunctions and relative pronouns (although, whereas, because, "
        "which, that, ...) per sentence.",
        "per sentence",
    ),
    # --- grammar heuristics (adjacent words within a sentence)
    FeatureSpec(
        "agreement_errors_per_100_words",
        "Subject-verb disagreements: 'they/we was|is|has|does', 'I is|are|has|does', "
        "'he/she/it go|have|don't|...' unless preceded by an auxiliary or causative "
        "('does she have', 'let it go').",
        _PER_100,
    ),
    FeatureSpec(
        "article_errors_per_100_words",
        "'a' before a vowel sound ('a apple', 'a hour') or 'an' before a consonant sound "
        "('an book'); 'a university', 'an hour' are fine.",
        _PER_100,
    ),
    FeatureSpec(
        "grammar_errors_per_100_words",
        "All grammar heuristics: agreement and article errors plus 'could/would/should/must/"
        "might of' and double comparatives ('more better').",
        _PER_100,
    ),
    # --- repetition
    FeatureSpec(
        "repeated_sentence_share",
        "Share of sentences whose words (lowercased) repeat an earlier sentence of the essay.",
        _RATIO,
    ),
    FeatureSpec(
        "repeated_trigram_share",
        "Share of word trigrams that repeat an earlier trigram of the essay; null under 3 words.",
        _RATIO,
    ),
    # --- prompt overlap (content words: alphabetic, not stop words); null without a prompt
    FeatureSpec(
        "prompt_coverage",
        "Share of the prompt's distinct content words that the essay uses.",
        _RATIO,
    ),
    FeatureSpec(
        "prompt_jaccard",
        "Jaccard index of the essay's and the prompt's distinct content words.",
        _RATIO,
    ),
    FeatureSpec(
        "prompt_cosine",
        "Cosine similarity of content-word count vectors (no TF-IDF weighting) of essay and "
        "prompt; 0 when the essay has no content words.",
        _RATIO,
    ),
    # --- validity (read by the advisories of modeling/advisories.py)
    FeatureSpec(
        "min_paragraph_stop_word_share",
        f"Lowest stop-word share of a paragraph of at least {STUFFING_MIN_PARAGRAPH_WORDS} words; "
        "a paragraph of bare keywords has none. Null without such a paragraph.",
        _RATIO,
    ),
)

TEXT_FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in TEXT_FEATURES)

# --- segmentation ------------------------------------------------------------------------------

_WORD_RE = re.compile(r"(?:[^\W\d_]\.){2,}|[^\W\d_]+(?:'[^\W\d_]+)*|\d+(?:[.,]\d+)*")
# The same pattern for ASCII text, where it matches exactly the same words, ~30% faster.
_ASCII_WORD_RE = re.compile(r"(?:[A-Za-z]\.){2,}|[A-Za-z]+(?:'[A-Za-z]+)*|[0-9]+(?:[.,][0-9]+)*")
_SENTENCE_BREAK_RE = re.compile(
    # The positive lookbehind comes first: it fails fast at almost every position.
    r"(?<=[.!?])(?<![Ee]\.[Gg]\.)(?<![Ii]\.[Ee]\.)(?<!\b[Mm][Rr]\.)(?<!\b[Mm][Rr][Ss]\.)"
    r"(?<!\b[Mm][Ss]\.)(?<!\b[Dd][Rr]\.)(?<!\b[Vv][Ss]\.)[\"')\]\u201d]*\s+"
)
_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'"})


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_NORMALISE)


def _segment(text: str) -> list[list[list[str]]]:
    """Paragraphs of sentences of words (original case) of a normalised text."""
    find_words = (_ASCII_WORD_RE if text.isascii() else _WORD_RE).findall
    paragraphs = []
    for line in text.split("\n"):
        sentences = []
        for chunk in _SENTENCE_BREAK_RE.split(line):
            words = find_words(chunk)
            if words:
                sentences.append(words)
        if sentences:
            paragraphs.append(sentences)
    return paragraphs


# --- regular expressions counted over the whole text (valid in Python re and in Rust regex) ---


def _phrase_pattern(phrases: Iterable[str]) -> str:
    ordered = sorted(set(phrases), key=lambda p: (-len(p), p))
    for phrase in ordered:
        if not re.fullmatch(r"[a-z']+(?: [a-z']+)*", phrase):
            raise ValueError(f"lexicon phrase {phrase!r} must be lowercase words and spaces")
    return r"\b(?:" + "|".join(ordered) + r")\b"


_BASIC_PATTERN = _phrase_pattern(lx.BASIC_CONNECTIVES)
_ADVANCED_PATTERN = _phrase_pattern(lx.ADVANCED_CONNECTIVES)
_DISCOURSE_PATTERN = _phrase_pattern(lx.DISCOURSE_MARKERS)
_ALL_CONNECTIVES_PATTERN = _phrase_pattern(
    lx.BASIC_CONNECTIVES + lx.ADVANCED_CONNECTIVES + lx.DISCOURSE_MARKERS
)
_SUBORDINATOR_PATTERN = _phrase_pattern(lx.SUBORDINATORS)
_SPACE_BEFORE_PATTERN = r"[ \t]+[,;:!?]|[ \t]+\.(?:[^.]|$)"
_MISSING_SPACE_PATTERN = r"[a-z]{2}[,;][A-Za-z]|[a-z]{2}[.!?][A-Z]"
_DOUBLED_PATTERN = r"[,;:]{2,}|[,;:]\.|!{2,}|\?{2,}|(?:^|[^.])\.\.(?:[^.]|$)"
_WHITESPACE_PATTERN = r"\s+"

# On the raw (normalised) text.
_CHAR_COUNTS: dict[str, str] = {
    "commas": ",",
    "semicolons": ";",
    "colons": ":",
    "question_marks": "?",
    "exclamation_marks": "!",
}
_TEXT_PATTERNS: dict[str, str] = {
    "space_before": _SPACE_BEFORE_PATTERN,
    "missing_space": _MISSING_SPACE_PATTERN,
    "doubled": _DOUBLED_PATTERN,
}
# On the lowercased text with whitespace collapsed to single spaces.
_LOWER_PATTERNS: dict[str, str] = {
    "basic": _BASIC_PATTERN,
    "advanced": _ADVANCED_PATTERN,
    "discourse": _DISCOURSE_PATTERN,
    "subordinators": _SUBORDINATOR_PATTERN,
}

_LOWERCASE_I_FORMS = frozenset({"i", "i'm", "i've", "i'll", "i'd"})

# --- per-word definitions --------------------------------------------------------------------

_NON_LETTER_RE = re.compile(r"[^a-z]")
_VOWEL_GROUP_RE = re.compile(r"[aeiouy]+")
_HIATUS_RE = re.compile(r"(?<![tcsghq])i[au]|(?<![tcsghqnl])io|(?<![qg])ua")
_VOWELS = frozenset("aeiouy")


def _count_syllables(word: str) -> int:
    w = _NON_LETTER_RE.sub("", word.lower())
    if len(w) <= 3:
        return 1
    count = len(_VOWEL_GROUP_RE.findall(w))
    if w.endswith("e"):
        if w[-2] not in _VOWELS and not (w.endswith("le") and w[-3] not in _VOWELS):
            count -= 1
    elif w.endswith("ed"):
        if w[-3] not in _VOWELS and w[-3] not in "td":
            count -= 1
    elif (
        w.endswith("es")
        and w[-3] not in _VOWELS
        and w[-3] not in "sxzcg"
        and not w.endswith(("ches", "shes"))
    ):
        count -= 1
    if len(w) > 4 and w.endswith("ing") and w[-4] in _VOWELS:
        count += 1
    count += len(_HIATUS_RE.findall(w))
    if w.endswith("ea"):
        count += 1
    return max(1, count)


def _is_alphabetic(token: str) -> bool:
    return token.replace("'", "").isalpha()


def _word_length(token: str) -> int:
    """Letters and digits: a word holds nothing else but apostrophes, full stops and commas."""
    return len(token) - token.count("'") - token.count(".") - token.count(",")


def _is_contraction(token: str) -> bool:
    return token.endswith(lx.CONTRACTION_SUFFIXES) or token in lx.CONTRACTIONS_WITH_S


_INFLECTIONS: tuple[tuple[str, str], ...] = (
    ("'s", ""),
    ("s", ""),
    ("es", ""),
    ("ies", "y"),
    ("ed", ""),
    ("ed", "e"),
    ("ied", "y"),
    ("ing", ""),
    ("ing", "e"),
    ("er", ""),
    ("er", "e"),
    ("ier", "y"),
    ("est", ""),
    ("est", "e"),
    ("iest", "y"),
)
"""(ending of the inflected form, ending of the listed word it replaces)."""


@functools.lru_cache(maxsize=1)
def _familiar_forms() -> frozenset[str]:
    """The Dale-Chall words and their regular inflections: "plays", "played", "stopped"."""
    words = lx.dale_chall_familiar_words()
    forms = set(words)
    for word in words:
        for ending, replaced in _INFLECTIONS:
            if word.endswith(replaced):
                stem = word[: len(word) - len(replaced)]
                if len(stem) >= 2:
                    forms.add(stem + ending)
            if replaced == "" and len(word) >= 2 and word[-1] not in "aeiouwxy":
                forms.add(word + word[-1] + ending)  # stop -> stopped, big -> bigger
    return frozenset(forms)


def _is_familiar(token: str) -> bool:
    """On the Dale-Chall list or a regular inflection of a listed word; non-words are familiar."""
    return token in _familiar_forms() or not _is_alphabetic(token)


_AMERICAN_SPELLINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"our(?=s?$|ed$|ing$|ite|able|hood|ful|ly$)", "or"),
        (r"is(e|es|ed|ing|ation|ations|er|ers)$", r"iz\1"),
        (r"ys(e|es|ed|ing)$", r"yz\1"),
        (r"tre(s?)$", r"ter\1"),
        (r"ll(ed|ing|er|ers)$", r"l\1"),
        (r"ogue(s?)$", r"og\1"),
        (r"ence(s?)$", r"ense\1"),
        (r"mme(s?)$", r"m\1"),
    )
)


def _american_variants(word: str) -> set[str]:
    variants = set()
    combined = word
    for pattern, replacement in _AMERICAN_SPELLINGS:
        single = pattern.sub(replacement, word)
        if single != word:
            variants.add(single)
        combined = pattern.sub(replacement, combined)
    if combined != word:
        variants.add(combined)
    return variants


def _is_misspelled(token: str, unknown: set[str], speller: SpellChecker) -> bool:
    """``token`` was reported unknown and no American spelling of it is known either."""
    if token not in unknown:
        return False
    variants = _american_variants(token)
    return not (variants and speller.known(variants))


@functools.lru_cache(maxsize=1)
def _zipf_table() -> dict[str, float]:
    """wordfreq's English list as word -> Zipf value, built once per process (~0.5 s).

    wordfreq stores frequencies in centibel buckets, so a word in bucket ``i`` has Zipf
    ``9 - i/100``, which is what ``zipf_frequency(word, "en")`` returns for a word of the list
    (checked on every bucket).
    """
    from wordfreq import get_frequency_list

    table: dict[str, float] = {}
    for index, bucket in enumerate(get_frequency_list("en")):
        zipf = round(9.0 - index / 100.0, 2)
        for word in bucket:
            table[word] = zipf  # a later bucket wins, as in wordfreq.get_frequency_dict
    return table


def _zipf_of_new_word(token: str, table: dict[str, float]) -> float:
    """``zipf_frequency(token, "en")`` without wordfreq's tokenizer for plain ASCII words."""
    zipf = table.get(token)
    if zipf is not None:
        return zipf
    if token.isascii() and "'" not in token:
        return 0.0  # one ASCII token wordfreq does not know
    from wordfreq import zipf_frequency

    return zipf_frequency(token, "en")  # wordfreq may split or normalise it


@functools.lru_cache(maxsize=1)
def _spell_checker() -> SpellChecker:
    """pyspellchecker's English dictionary, loaded once per process (~0.2 s)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en")


def _mtld_one_direction(tokens: Sequence[str]) -> float:
    factors = 0.0
    types: set[str] = set()
    run = 0
    ttr = 1.0
    for token in tokens:
        run += 1
        types.add(token)
        ttr = len(types) / run
        if ttr <= MTLD_THRESHOLD:
            factors += 1.0
            types = set()
            run = 0
            ttr = 1.0
    if run:
        factors += (1.0 - ttr) / (1.0 - MTLD_THRESHOLD)
    return len(tokens) / factors if factors > 0 else float(len(tokens))


def _mtld(tokens: Sequence[str]) -> float | None:
    if not tokens:
        return None
    return (_mtld_one_direction(tokens) + _mtld_one_direction(tokens[::-1])) / 2.0


_MTLD_LOCKSTEP_MIN_ESSAYS_PER_WORD = 8
"""Use the lockstep MTLD when essays x 8 >= the longest essay's words (measured break-even)."""


def _mtld_batch(pair_codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MTLD of every essay at once, equal to :func:`_mtld` (NaN for an essay without words).

    ``pair_codes`` holds one integer per word, all essays' words concatenated in order, equal
    for two words exactly when they are the same word of the same essay. The essays advance
    in lockstep, one word per step, so the loop runs over positions, not over words.
    """
    import numpy as np

    starts = np.cumsum(lengths) - lengths
    result = np.full(len(lengths), np.nan)
    has_words = lengths > 0
    if has_words.any():
        forward = _mtld_direction_batch(pair_codes, starts, lengths, reverse=False)
        backward = _mtld_direction_batch(pair_codes, starts, lengths, reverse=True)
        result[has_words] = ((forward + backward) / 2.0)[has_words]
    return result


def _mtld_direction_batch(
    pair_codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, *, reverse: bool
) -> np.ndarray:
    import numpy as np

    n = len(lengths)
    longest = int(lengths.max())
    by_length = np.argsort(-lengths, kind="stable")
    # active_count[k]: how many essays have more than k words (a prefix of by_length)
    active_count = np.searchsorted(-lengths[by_length], -np.arange(longest), side="left")
    # segment[e]: id of essay e's current run; seen[code] = id of the run the word was last seen in
    segment = np.arange(n, dtype=np.int64)
    next_segment = n
    seen = np.full(int(pair_codes.max()) + 1 if len(pair_codes) else 0, -1, dtype=np.int64)
    types = np.zeros(n)
    run = np.zeros(n)
    ttr = np.ones(n)
    factors = np.zeros(n)
    for k in range(longest):
        active = by_length[: active_count[k]]
        position = starts[active] + (lengths[active] - 1 - k if reverse else k)
        codes = pair_codes[position]
        current = segment[active]
        is_new = seen[codes] != current
        seen[codes] = current
        run[active] += 1.0
        types[active] += is_new
        ttr[active] = types[active] / run[active]
        done = active[ttr[active] <= MTLD_THRESHOLD]
        if len(done):
            factors[done] += 1.0
            types[done] = 0.0
            run[done] = 0.0
            ttr[done] = 1.0
            segment[done] = np.arange(next_segment, next_segment + len(done))
            next_segment += len(done)
    partial = run > 0
    factors[partial] += (1.0 - ttr[partial]) / (1.0 - MTLD_THRESHOLD)
    length = lengths.astype(np.float64)
    out = length.copy()
    np.divide(length, factors, out=out, where=factors > 0)
    return out


def _is_agreement_error(prev: str | None, word: str, nxt: str) -> bool:
    if word in lx.PLURAL_SUBJECTS:
        return nxt in lx.VERBS_WRONG_AFTER_PLURAL
    if word in lx.FIRST_PERSON_SINGULAR:
        return nxt in lx.VERBS_WRONG_AFTER_I
    if word in lx.THIRD_PERSON_SINGULAR:
        return (
            nxt in lx.BASE_VERBS_WRONG_AFTER_THIRD_PERSON
            and prev not in lx.WORDS_LICENSING_BASE_VERB
        )
    return False


def _is_article_error(word: str, nxt: str) -> bool:
    if word == "a":
        return (
            nxt[0] in "aeiou" and not nxt.startswith(lx.CONSONANT_SOUND_VOWEL_PREFIXES)
        ) or nxt.startswith(lx.SILENT_H_PREFIXES)
    if word == "an":
        return (
            len(nxt) > 1
            and nxt[0].isalpha()
            and nxt[0] not in "aeiou"
            and not nxt.startswith(lx.SILENT_H_PREFIXES)
        )
    return False


def _is_other_grammar_error(word: str, nxt: str) -> bool:
    return (word in lx.MODALS_BEFORE_OF and nxt == "of") or (
        word in lx.DOUBLE_COMPARATIVE_HEADS and nxt in lx.COMPARATIVES_AND_SUPERLATIVES
    )


def _min_paragraph_stop_word_share(paragraphs: list[list[list[str]]]) -> float | None:
    shares = []
    for paragraph in paragraphs:
        tokens = [word.lower() for sentence in paragraph for word in sentence]
        if len(tokens) >= STUFFING_MIN_PARAGRAPH_WORDS:
            shares.append(sum(1 for t in tokens if t in lx.STOP_WORDS) / len(tokens))
    return min(shares) if shares else None


def _content_words(tokens: Iterable[str]) -> list[str]:
    return [t for t in tokens if _is_alphabetic(t) and t not in lx.STOP_WORDS]


def _prompt_content_counts(prompt: str) -> Counter[str]:
    return Counter(_content_words(w.lower() for w in _WORD_RE.findall(_normalise(prompt))))


# --- inputs and output -----------------------------------------------------------------------


def _check_inputs(
    texts: Sequence[str], prompt_texts: Sequence[str | None] | None
) -> tuple[list[str], list[str | None]]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of essays, not one string; wrap it in a list")
    essays = list(texts)
    for i, text in enumerate(essays):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{i}] is {type(text).__name__}, not str; pass '' for an empty essay"
            )
    if prompt_texts is None:
        return essays, [None] * len(essays)
    if isinstance(prompt_texts, str):
        raise TypeError(
            "prompt_texts must be one prompt (or None) per essay, not one string; "
            "repeat it for every essay"
        )
    prompts = list(prompt_texts)
    if len(prompts) != len(essays):
        raise ValueError(
            f"prompt_texts has {len(prompts)} entries for {len(essays)} texts; "
            "pass one prompt (or None) per essay"
        )
    for i, prompt in enumerate(prompts):
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt_texts[{i}] is {type(prompt).__name__}, not str or None")
    return essays, prompts


def _empty_frame() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=dict.fromkeys(TEXT_FEATURE_NAMES, pl.Float64))


# --- the batch path --------------------------------------------------------------------------


class _TokenInfo(NamedTuple):
    alphabetic: bool
    length: int
    syllables: int
    zipf: float | None
    misspelled: bool
    rare: bool
    familiar: bool
    stop: bool
    contraction: bool


_TOKEN_INFO: dict[str, _TokenInfo] = {}
"""Per-word lookups (frequency, spelling, syllables...) of every word seen in this process.
The batch path computes each distinct word once; essays share most of their vocabulary."""
_TOKEN_INFO_MAX_SIZE = 500_000


def _token_infos(tokens: list[str]) -> list[_TokenInfo]:
    """Lookups for distinct lowercased words, computing only those not seen before.

    Safe to call from several threads: each call reads the shared cache once per word and
    works from its own copy of the words it had to compute.
    """
    infos = [_TOKEN_INFO.get(token) for token in tokens]
    missing = [token for token, info in zip(tokens, infos, strict=True) if info is None]
    fresh = _compute_token_infos(missing) if missing else {}
    if fresh:
        if len(_TOKEN_INFO) + len(fresh) > _TOKEN_INFO_MAX_SIZE:
            _TOKEN_INFO.clear()
        _TOKEN_INFO.update(fresh)
    return [
        fresh[token] if info is None else info for token, info in zip(tokens, infos, strict=True)
    ]


def _compute_token_infos(tokens: list[str]) -> dict[str, _TokenInfo]:
    zipf_table = _zipf_table()
    speller = _spell_checker()
    unknown = speller.unknown([t for t in tokens if _is_alphabetic(t)])
    infos = {}
    for token in tokens:
        alphabetic = _is_alphabetic(token)
        zipf = _zipf_of_new_word(token, zipf_table) if alphabetic else None
        misspelled = alphabetic and _is_misspelled(token, unknown, speller)
        infos[token] = _TokenInfo(
            alphabetic=alphabetic,
            length=_word_length(token),
            syllables=_count_syllables(token),
            zipf=zipf,
            misspelled=misspelled,
            rare=alphabetic and not misspelled and zipf is not None and zipf < RARE_WORD_MAX_ZIPF,
            familiar=_is_familiar(token),
            stop=token in lx.STOP_WORDS,
            contraction=_is_contraction(token),
        )
    return infos


_LOOKUP_SCHEMA = {
    "token": "String",
    "alphabetic": "Boolean",
    "length": "Int64",
    "syllables": "Int64",
    "zipf": "Float64",
    "misspelled": "Boolean",
    "rare": "Boolean",
    "familiar": "Boolean",
    "stop": "Boolean",
    "contraction": "Boolean",
}


def _lookup_frame(unique_tokens: list[str]) -> pl.DataFrame:
    import polars as pl

    infos = _token_infos(unique_tokens)
    columns: dict[str, Any] = {"token": pl.Series(unique_tokens, dtype=pl.String)}
    for index, field in enumerate(_TokenInfo._fields):
        columns[field] = [info[index] for info in infos]
    schema = {name: getattr(pl, dtype) for name, dtype in _LOOKUP_SCHEMA.items()}
    return pl.DataFrame(columns, schema=schema).with_row_index("token_id")


def _scatter(n: int, keys: pl.Series, values: pl.Series) -> np.ndarray:
    """Per-essay values from a group-by result keyed by essay index; 0 for absent essays."""
    import numpy as np

    out = np.zeros(n, dtype=np.float64)
    out[keys.to_numpy()] = values.cast(float).fill_null(0.0).to_numpy()
    return out


def _div(num: np.ndarray, den: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """num / den * scale, NaN (to become null) where den is 0."""
    import numpy as np

    out = np.full(num.shape, np.nan)
    np.divide(num * scale, den, out=out, where=den > 0)
    return out


def compute_text_features(
    texts: Sequence[str], prompt_texts: Sequence[str | None] | None = None
) -> pl.DataFrame:
    """One row of :data:`TEXT_FEATURES` per essay, in input order, all columns Float64.

    ``prompt_texts`` gives each essay's prompt (or None); prompt features are null without one.
    Works on the whole batch at once: each essay is split by regular expressions, then the words
    of all essays are counted in one polars frame, and each distinct word is looked up in the
    frequency list, spelling dictionary and word lists once per process.
    """
    import numpy as np
    import polars as pl

    essays, prompts = _check_inputs(texts, prompt_texts)
    n = len(essays)
    if n == 0:
        return _empty_frame()
    normalised = [_normalise(text) for text in essays]

    # 1. Segment; one row per word, tagged with its essay and sentence.
    words: list[str] = []
    sentence_lengths: list[int] = []
    sentence_essays: list[int] = []
    paragraphs = np.zeros(n)
    min_paragraph_stop_share = np.full(n, np.nan)
    for i, text in enumerate(normalised):
        segmented = _segment(text)
        paragraphs[i] = len(segmented)
        share = _min_paragraph_stop_word_share(segmented)
        if share is not None:
            min_paragraph_stop_share[i] = share
        for paragraph in segmented:
            for sentence in paragraph:
                words.extend(sentence)
                sentence_lengths.append(len(sentence))
                sentence_essays.append(i)
    sentence_length = np.asarray(sentence_lengths, dtype=np.int64)
    sentence_essay = np.asarray(sentence_essays, dtype=np.int64)
    word_sentence = np.repeat(np.arange(len(sentence_length), dtype=np.int64), sentence_length)
    word_essay = sentence_essay[word_sentence]

    frame = pl.DataFrame(
        {"essay": word_essay, "sentence": word_sentence, "word": pl.Series(words, dtype=pl.String)}
    ).with_columns(token=pl.col("word").str.to_lowercase())
    lookup = _lookup_frame(frame["token"].unique().to_list())
    frame = frame.join(lookup, on="token", how="left", maintain_order="left")
    # Neighbours within the sentence (grammar) and the essay (trigrams), as integer ids.
    same_sentence_prev = pl.col("sentence").shift(1) == pl.col("sentence")
    same_sentence_next = pl.col("sentence").shift(-1) == pl.col("sentence")
    same_essay_next2 = pl.col("essay").shift(-2) == pl.col("essay")
    vocabulary = len(lookup)
    tid = pl.col("token_id").cast(pl.Int64)
    if vocabulary**3 < 2**62:
        trigram = tid * vocabulary**2 + tid.shift(-1) * vocabulary + tid.shift(-2)
    else:  # an id triple no longer fits in 64 bits
        trigram = pl.struct(tid, tid.shift(-1).alias("b"), tid.shift(-2).alias("c"))
    frame = frame.with_columns(
        prev=pl.when(same_sentence_prev).then(pl.col("token").shift(1)),
        next=pl.when(same_sentence_next).then(pl.col("token").shift(-1)),
        trigram=pl.when(same_essay_next2).then(trigram),
    )

    # 2. Per-essay counts over words.
    prev_licenses = pl.col("prev").is_in(list(lx.WORDS_LICENSING_BASE_VERB)).fill_null(False)
    nxt = pl.col("next")
    token = pl.col("token")
    agreement = (
        (token.is_in(list(lx.PLURAL_SUBJECTS)) & nxt.is_in(list(lx.VERBS_WRONG_AFTER_PLURAL)))
        | (token.is_in(list(lx.FIRST_PERSON_SINGULAR)) & nxt.is_in(list(lx.VERBS_WRONG_AFTER_I)))
        | (
            token.is_in(list(lx.THIRD_PERSON_SINGULAR))
            & nxt.is_in(list(lx.BASE_VERBS_WRONG_AFTER_THIRD_PERSON))
            & ~prev_licenses
        )
    ).fill_null(False)
    consonant_sound = "^(?:" + "|".join(lx.CONSONANT_SOUND_VOWEL_PREFIXES) + ")"
    silent_h = "^(?:" + "|".join(lx.SILENT_H_PREFIXES) + ")"
    article = (
        (
            (token == "a")
            & (
                (nxt.str.contains("^[aeiou]") & ~nxt.str.contains(consonant_sound))
                | nxt.str.contains(silent_h)
            )
        )
        | (
            (token == "an")
            & (nxt.str.len_chars() > 1)
            & nxt.str.contains(r"^[^\W\d_]")
            & ~nxt.str.contains("^[aeiou]")
            & ~nxt.str.contains(silent_h)
        )
    ).fill_null(False)
    other_grammar = (
        (token.is_in(list(lx.MODALS_BEFORE_OF)) & (nxt == "of"))
        | (
            token.is_in(list(lx.DOUBLE_COMPARATIVE_HEADS))
            & nxt.is_in(list(lx.COMPARATIVES_AND_SUPERLATIVES))
        )
    ).fill_null(False)
    per_essay = frame.group_by("essay").agg(
        length_sum=pl.col("length").sum(),
        length_sd=pl.col("length").std(ddof=0),
        long=(pl.col("length") >= LONG_WORD_MIN_CHARS).sum(),
        types=pl.col("token_id").n_unique(),
        alphabetic=pl.col("alphabetic").sum(),
        zipf_sum=pl.col("zipf").sum(),
        rare=pl.col("rare").sum(),
        misspelled=pl.col("misspelled").sum(),
        syllables=pl.col("syllables").sum(),
        polysyllables=(pl.col("syllables") >= POLYSYLLABLE_MIN_SYLLABLES).sum(),
        unfamiliar=(~pl.col("familiar")).sum(),
        stop=pl.col("stop").sum(),
        contractions=pl.col("contraction").sum(),
        lowercase_i=pl.col("word").is_in(list(_LOWERCASE_I_FORMS)).sum(),
        agreement=agreement.sum(),
        article=article.sum(),
        other_grammar=other_grammar.sum(),
        trigrams=pl.col("trigram").count(),
        distinct_trigrams=pl.col("trigram").drop_nulls().n_unique(),
    )
    keys = per_essay["essay"]
    c = {name: _scatter(n, keys, per_essay[name]) for name in per_essay.columns if name != "essay"}
    hapax = (
        frame.group_by("essay", "token_id").len().filter(pl.col("len") == 1).group_by("essay").len()
    )
    c["hapax"] = _scatter(n, hapax["essay"], hapax["len"])

    # 3. Per-essay counts over sentences.
    words_n = np.bincount(word_essay, minlength=n).astype(np.float64)
    sentences_n = np.bincount(sentence_essay, minlength=n).astype(np.float64)
    sentence_sq = np.bincount(
        sentence_essay, weights=sentence_length.astype(np.float64) ** 2, minlength=n
    )
    starts = np.cumsum(sentence_length) - sentence_length
    lower_start = np.fromiter(
        (words[k][0].islower() for k in starts), dtype=np.float64, count=len(starts)
    )
    c["lower_starts"] = np.bincount(sentence_essay, weights=lower_start, minlength=n)
    sentence_keys = (
        frame.group_by("sentence")
        .agg(essay=pl.col("essay").first(), key=token.str.join(" "))
        .group_by("essay")
        .agg(distinct=pl.col("key").n_unique())
    )
    c["distinct_sentences"] = _scatter(n, sentence_keys["essay"], sentence_keys["distinct"])

    # 4. MTLD runs through each essay's words in order: in lockstep over a large batch, where
    # numpy's per-step overhead is shared by many essays; essay by essay over a small one.
    lengths = words_n.astype(np.int64)
    if n * _MTLD_LOCKSTEP_MIN_ESSAYS_PER_WORD >= lengths.max(initial=0):
        pair = frame["essay"].to_numpy() * len(lookup) + frame["token_id"].to_numpy()
        pair_codes = np.unique(pair, return_inverse=True)[1].ravel()
        mtld = _mtld_batch(pair_codes, lengths)
    else:
        all_tokens = frame["token"].to_list()
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        mtld = np.array(
            [_mtld(all_tokens[bounds[i] : bounds[i + 1]]) for i in range(n)], dtype=np.float64
        )

    # 5. Patterns over the whole text.
    text_series = pl.Series(normalised, dtype=pl.String)
    lower_series = text_series.str.to_lowercase().str.replace_all(_WHITESPACE_PATTERN, " ")
    for name, char in _CHAR_COUNTS.items():
        c[name] = text_series.str.count_matches(char, literal=True).cast(float).to_numpy()
    for name, pattern in _TEXT_PATTERNS.items():
        c[name] = text_series.str.count_matches(pattern).cast(float).to_numpy()
    for name, pattern in _LOWER_PATTERNS.items():
        c[name] = lower_series.str.count_matches(pattern).cast(float).to_numpy()
    distinct_connectives = (
        lower_series.str.extract_all(_ALL_CONNECTIVES_PATTERN).list.n_unique().cast(float)
    )

    # 6. Prompt overlap of content words.
    prompt_features = _prompt_overlap_batch(frame, prompts, n)

    W, S = words_n, sentences_n
    mean_sentence = _div(W, S)
    letters_per_word = _div(c["length_sum"], W)
    syllables_per_word = _div(c["syllables"], W)
    poly_share = _div(c["polysyllables"], W)
    unfamiliar_pct = _div(c["unfamiliar"], W, 100.0)
    both = (W > 0) & (S > 0)
    nan = np.full(n, np.nan)
    smog = np.where(S > 0, 1.0430 * np.sqrt(30.0 * _div(c["polysyllables"], S)) + 3.1291, np.nan)
    sd_sentence = np.where(
        S > 0, np.sqrt(np.clip(_div(sentence_sq, S) - mean_sentence**2, 0.0, None)), np.nan
    )
    connectives = c["basic"] + c["advanced"]
    t = c["trigrams"]
    columns: dict[str, np.ndarray] = {
        "char_count": np.array([len(text) for text in normalised], dtype=np.float64),
        "word_count": W,
        "sentence_count": S,
        "paragraph_count": paragraphs,
        "mean_sentence_length": mean_sentence,
        "sd_sentence_length": sd_sentence,
        "mean_word_length": letters_per_word,
        "sd_word_length": np.where(W > 0, c["length_sd"], np.nan),
        "long_word_share": _div(c["long"], W),
        "type_token_ratio": _div(c["types"], W),
        "root_ttr": _div(c["types"], np.sqrt(W)),
        "mtld": mtld,
        "hapax_share": _div(c["hapax"], c["types"]),
        "stop_word_share": _div(c["stop"], W),
        "mean_zipf_frequency": _div(c["zipf_sum"], c["alphabetic"]),
        "rare_word_share": _div(c["rare"], c["alphabetic"]),
        "mean_syllables_per_word": syllables_per_word,
        "polysyllable_share": poly_share,
        "unfamiliar_word_share": _div(c["unfamiliar"], W),
        "contractions_per_100_words": _div(c["contractions"], W, 100.0),
        "flesch_reading_ease": np.where(
            both, 206.835 - 1.015 * mean_sentence - 84.6 * syllables_per_word, nan
        ),
        "flesch_kincaid_grade": np.where(
            both, 0.39 * mean_sentence + 11.8 * syllables_per_word - 15.59, nan
        ),
        "gunning_fog": np.where(both, 0.4 * (mean_sentence + 100.0 * poly_share), nan),
        "smog_index": smog,
        "coleman_liau_index": np.where(
            both, 0.0588 * 100.0 * letters_per_word - 0.296 * _div(S, W, 100.0) - 15.8, nan
        ),
        "automated_readability_index": np.where(
            both, 4.71 * letters_per_word + 0.5 * mean_sentence - 21.43, nan
        ),
        "dale_chall_score": np.where(
            both,
            0.1579 * unfamiliar_pct
            + 0.0496 * mean_sentence
            + np.where(unfamiliar_pct > 5.0, 3.6365, 0.0),
            nan,
        ),
        "spelling_errors_per_100_words": _div(c["misspelled"], W, 100.0),
        "commas_per_100_words": _div(c["commas"], W, 100.0),
        "semicolons_per_100_words": _div(c["semicolons"], W, 100.0),
        "colons_per_100_words": _div(c["colons"], W, 100.0),
        "question_marks_per_100_words": _div(c["question_marks"], W, 100.0),
        "exclamation_marks_per_100_words": _div(c["exclamation_marks"], W, 100.0),
        "space_before_punctuation_per_100_words": _div(c["space_before"], W, 100.0),
        "missing_space_after_punctuation_per_100_words": _div(c["missing_space"], W, 100.0),
        "doubled_punctuation_per_100_words": _div(c["doubled"], W, 100.0),
        "lowercase_sentence_start_share": _div(c["lower_starts"], S),
        "lowercase_i_per_100_words": _div(c["lowercase_i"], W, 100.0),
        "basic_connectives_per_100_words": _div(c["basic"], W, 100.0),
        "advanced_connectives_per_100_words": _div(c["advanced"], W, 100.0),
        "discourse_markers_per_100_words": _div(c["discourse"], W, 100.0),
        "advanced_connective_share": _div(c["advanced"], connectives),
        "distinct_connectives": distinct_connectives.to_numpy(),
        "subordinators_per_sentence": _div(c["subordinators"], S),
        "agreement_errors_per_100_words": _div(c["agreement"], W, 100.0),
        "article_errors_per_100_words": _div(c["article"], W, 100.0),
        "grammar_errors_per_100_words": _div(
            c["agreement"] + c["article"] + c["other_grammar"], W, 100.0
        ),
        "repeated_sentence_share": _div(S - c["distinct_sentences"], S),
        "repeated_trigram_share": _div(t - c["distinct_trigrams"], t),
        **prompt_features,
        "min_paragraph_stop_word_share": min_paragraph_stop_share,
    }
    return _assemble(columns, nan_is_null=True)


def _prompt_overlap_batch(
    frame: pl.DataFrame, prompts: list[str | None], n: int
) -> dict[str, np.ndarray]:
    import numpy as np
    import polars as pl

    coverage, jaccard, cosine = (np.full(n, np.nan) for _ in range(3))
    prompt_ids: dict[str, int] = {}
    essay_prompt = np.full(n, -1, dtype=np.int64)
    for i, prompt in enumerate(prompts):
        if prompt is not None:
            essay_prompt[i] = prompt_ids.setdefault(prompt, len(prompt_ids))
    if not prompt_ids:
        return {"prompt_coverage": coverage, "prompt_jaccard": jaccard, "prompt_cosine": cosine}

    prompt_counts = [_prompt_content_counts(prompt) for prompt in prompt_ids]
    prompt_types = np.array([len(counts) for counts in prompt_counts], dtype=np.float64)
    prompt_norm = np.array(
        [math.sqrt(sum(v * v for v in counts.values())) for counts in prompt_counts]
    )
    prompt_frame = pl.DataFrame(
        {
            "prompt": [pid for pid, counts in enumerate(prompt_counts) for _ in counts],
            "token": [tok for counts in prompt_counts for tok in counts],
            "prompt_count": [v for counts in prompt_counts for v in counts.values()],
        },
        schema={"prompt": pl.Int64, "token": pl.String, "prompt_count": pl.Int64},
    )
    essay_content = (
        frame.filter(pl.col("alphabetic") & ~pl.col("stop"))
        .group_by("essay", "token")
        .agg(count=pl.len())
    )
    essay_content = essay_content.with_columns(
        prompt=pl.Series(essay_prompt).gather(essay_content["essay"].cast(pl.Int64)).cast(pl.Int64)
    )
    essay_totals = essay_content.group_by("essay").agg(
        types=pl.len(), sq=(pl.col("count").cast(pl.Float64) ** 2).sum()
    )
    shared = (
        essay_content.join(prompt_frame, on=["prompt", "token"], how="inner")
        .group_by("essay")
        .agg(
            shared=pl.len(),
            dot=(pl.col("count") * pl.col("prompt_count")).cast(pl.Float64).sum(),
        )
    )
    essay_types = _scatter(n, essay_totals["essay"], essay_totals["types"])
    essay_norm = np.sqrt(_scatter(n, essay_totals["essay"], essay_totals["sq"]))
    shared_types = _scatter(n, shared["essay"], shared["shared"])
    dot = _scatter(n, shared["essay"], shared["dot"])

    has_prompt = essay_prompt >= 0
    pid = np.where(has_prompt, essay_prompt, 0)
    p_types = np.where(has_prompt, prompt_types[pid], 0.0)
    p_norm = np.where(has_prompt, prompt_norm[pid], 0.0)
    defined = p_types > 0
    coverage = np.where(defined, _div(shared_types, p_types), np.nan)
    jaccard = np.where(defined, _div(shared_types, essay_types + p_types - shared_types), np.nan)
    cosine = np.where(
        defined, np.where(essay_norm > 0, _div(dot, essay_norm * p_norm), 0.0), np.nan
    )
    return {"prompt_coverage": coverage, "prompt_jaccard": jaccard, "prompt_cosine": cosine}


def _assemble(columns: dict[str, Any], *, nan_is_null: bool) -> pl.DataFrame:
    import polars as pl

    if set(columns) != set(TEXT_FEATURE_NAMES):
        missing = sorted(set(TEXT_FEATURE_NAMES) - set(columns))
        extra = sorted(set(columns) - set(TEXT_FEATURE_NAMES))
        raise RuntimeError(f"text features out of step with TEXT_FEATURES: {missing=} {extra=}")
    return pl.DataFrame(
        [
            pl.Series(name, columns[name], dtype=pl.Float64, nan_to_null=nan_is_null)
            for name in TEXT_FEATURE_NAMES
        ]
    )


# --- the naive path --------------------------------------------------------------------------


def compute_text_features_naive(
    texts: Sequence[str], prompt_texts: Sequence[str | None] | None = None
) -> pl.DataFrame:
    """The same features as :func:`compute_text_features`, one essay at a time in plain Python.

    Every word is looked up afresh (wordfreq, spelling, syllables, word lists): no batching and
    no caching beyond the libraries' own. It is the reference the batch path is tested against
    and the baseline it is benchmarked against.
    """
    essays, prompts = _check_inputs(texts, prompt_texts)
    if not essays:
        return _empty_frame()
    rows = [
        _features_of_one_essay(text, prompt) for text, prompt in zip(essays, prompts, strict=True)
    ]
    return _assemble(
        {name: [row[name] for row in rows] for name in TEXT_FEATURE_NAMES}, nan_is_null=False
    )


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return num * scale / den if den > 0 else None


def _features_of_one_essay(raw: str, prompt: str | None) -> dict[str, float | None]:
    import statistics

    from wordfreq import zipf_frequency

    speller = _spell_checker()

    text = _normalise(raw)
    paragraphs = _segment(text)
    sentences = [sentence for paragraph in paragraphs for sentence in paragraph]
    words = [word for sentence in sentences for word in sentence]
    tokens = [word.lower() for word in words]
    n_words = len(tokens)
    n_sentences = len(sentences)
    lengths = [_word_length(t) for t in tokens]
    syllables = [_count_syllables(t) for t in tokens]
    alphabetic = [t for t in tokens if _is_alphabetic(t)]
    unknown = speller.unknown(alphabetic)
    misspelled = [t for t in alphabetic if _is_misspelled(t, unknown, speller)]
    zipfs = [zipf_frequency(t, "en") for t in alphabetic]
    rare = [
        t
        for t, z in zip(alphabetic, zipfs, strict=True)
        if z < RARE_WORD_MAX_ZIPF and not _is_misspelled(t, unknown, speller)
    ]
    counts = Counter(tokens)
    sentence_lengths = [len(s) for s in sentences]
    polysyllables = sum(1 for s in syllables if s >= POLYSYLLABLE_MIN_SYLLABLES)
    unfamiliar = sum(1 for t in tokens if not _is_familiar(t))

    agreement = article = other_grammar = 0
    for sentence in sentences:
        lowered = [w.lower() for w in sentence]
        for k in range(len(lowered) - 1):
            prev = lowered[k - 1] if k > 0 else None
            word, nxt = lowered[k], lowered[k + 1]
            agreement += _is_agreement_error(prev, word, nxt)
            article += _is_article_error(word, nxt)
            other_grammar += _is_other_grammar_error(word, nxt)

    trigrams = [tuple(tokens[k : k + 3]) for k in range(n_words - 2)]
    sentence_keys = [" ".join(w.lower() for w in s) for s in sentences]
    lower_text = re.sub(_WHITESPACE_PATTERN, " ", text.lower())
    connective_counts = {
        name: len(re.findall(pattern, lower_text)) for name, pattern in _LOWER_PATTERNS.items()
    }
    basic, advanced = connective_counts["basic"], connective_counts["advanced"]

    mean_sentence = _ratio(n_words, n_sentences)
    syllables_per_word = _ratio(sum(syllables), n_words)
    letters_per_word = _ratio(sum(lengths), n_words)
    poly_share = _ratio(polysyllables, n_words)
    readable = n_words > 0 and n_sentences > 0
    f: dict[str, float | None] = {
        "char_count": len(text),
        "word_count": n_words,
        "sentence_count": n_sentences,
        "paragraph_count": len(paragraphs),
        "mean_sentence_length": mean_sentence,
        "sd_sentence_length": statistics.pstdev(sentence_lengths) if sentence_lengths else None,
        "mean_word_length": letters_per_word,
        "sd_word_length": statistics.pstdev(lengths) if lengths else None,
        "long_word_share": _ratio(sum(1 for x in lengths if x >= LONG_WORD_MIN_CHARS), n_words),
        "type_token_ratio": _ratio(len(counts), n_words),
        "root_ttr": _ratio(len(counts), math.sqrt(n_words)),
        "mtld": _mtld(tokens),
        "hapax_share": _ratio(sum(1 for v in counts.values() if v == 1), len(counts)),
        "stop_word_share": _ratio(sum(1 for t in tokens if t in lx.STOP_WORDS), n_words),
        "mean_zipf_frequency": _ratio(sum(zipfs), len(alphabetic)),
        "rare_word_share": _ratio(len(rare), len(alphabetic)),
        "mean_syllables_per_word": syllables_per_word,
        "polysyllable_share": poly_share,
        "unfamiliar_word_share": _ratio(unfamiliar, n_words),
        "contractions_per_100_words": _ratio(
            sum(1 for t in tokens if _is_contraction(t)), n_words, 100.0
        ),
        "flesch_reading_ease": (
            206.835 - 1.015 * mean_sentence - 84.6 * syllables_per_word if readable else None
        ),
        "flesch_kincaid_grade": (
            0.39 * mean_sentence + 11.8 * syllables_per_word - 15.59 if readable else None
        ),
        "gunning_fog": 0.4 * (mean_sentence + 100.0 * poly_share) if readable else None,
        "smog_index": (
            1.0430 * math.sqrt(30.0 * polysyllables / n_sentences) + 3.1291 if n_sentences else None
        ),
        "coleman_liau_index": (
            0.0588 * 100.0 * letters_per_word - 0.296 * 100.0 * n_sentences / n_words - 15.8
            if readable
            else None
        ),
        "automated_readability_index": (
            4.71 * letters_per_word + 0.5 * mean_sentence - 21.43 if readable else None
        ),
        "dale_chall_score": (
            0.1579 * (100.0 * unfamiliar / n_words)
            + 0.0496 * mean_sentence
            + (3.6365 if 100.0 * unfamiliar / n_words > 5.0 else 0.0)
            if readable
            else None
        ),
        "spelling_errors_per_100_words": _ratio(len(misspelled), n_words, 100.0),
        "lowercase_sentence_start_share": _ratio(
            sum(1 for s in sentences if s[0][0].islower()), n_sentences
        ),
        "lowercase_i_per_100_words": _ratio(
            sum(1 for w in words if w in _LOWERCASE_I_FORMS), n_words, 100.0
        ),
        "basic_connectives_per_100_words": _ratio(basic, n_words, 100.0),
        "advanced_connectives_per_100_words": _ratio(advanced, n_words, 100.0),
        "discourse_markers_per_100_words": _ratio(connective_counts["discourse"], n_words, 100.0),
        "advanced_connective_share": _ratio(advanced, basic + advanced),
        "distinct_connectives": len(set(re.findall(_ALL_CONNECTIVES_PATTERN, lower_text))),
        "subordinators_per_sentence": _ratio(connective_counts["subordinators"], n_sentences),
        "agreement_errors_per_100_words": _ratio(agreement, n_words, 100.0),
        "article_errors_per_100_words": _ratio(article, n_words, 100.0),
        "grammar_errors_per_100_words": _ratio(agreement + article + other_grammar, n_words, 100.0),
        "repeated_sentence_share": _ratio(n_sentences - len(set(sentence_keys)), n_sentences),
        "repeated_trigram_share": _ratio(len(trigrams) - len(set(trigrams)), len(trigrams)),
    }
    for name, char in _CHAR_COUNTS.items():
        f[f"{name}_per_100_words"] = _ratio(text.count(char), n_words, 100.0)
    f["space_before_punctuation_per_100_words"] = _ratio(
        len(re.findall(_SPACE_BEFORE_PATTERN, text)), n_words, 100.0
    )
    f["missing_space_after_punctuation_per_100_words"] = _ratio(
        len(re.findall(_MISSING_SPACE_PATTERN, text)), n_words, 100.0
    )
    f["doubled_punctuation_per_100_words"] = _ratio(
        len(re.findall(_DOUBLED_PATTERN, text)), n_words, 100.0
    )
    f.update(_prompt_overlap_one(tokens, prompt))
    f["min_paragraph_stop_word_share"] = _min_paragraph_stop_word_share(paragraphs)
    return f


def _prompt_overlap_one(tokens: list[str], prompt: str | None) -> dict[str, float | None]:
    none: dict[str, float | None] = dict.fromkeys(
        ("prompt_coverage", "prompt_jaccard", "prompt_cosine")
    )
    if prompt is None:
        return none
    prompt_counts = _prompt_content_counts(prompt)
    if not prompt_counts:
        return none
    essay_counts = Counter(_content_words(tokens))
    shared = set(essay_counts) & set(prompt_counts)
    dot = sum(essay_counts[t] * prompt_counts[t] for t in shared)
    essay_norm = math.sqrt(sum(v * v for v in essay_counts.values()))
    prompt_norm = math.sqrt(sum(v * v for v in prompt_counts.values()))
    return {
        "prompt_coverage": len(shared) / len(prompt_counts),
        "prompt_jaccard": len(shared) / len(set(essay_counts) | set(prompt_counts)),
        "prompt_cosine": dot / (essay_norm * prompt_norm) if essay_norm > 0 else 0.0,
    }
