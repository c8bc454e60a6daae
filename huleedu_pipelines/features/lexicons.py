"""Word lists behind the handcrafted text features (see :mod:`huleedu_pipelines.features.text`).

Every list is lowercase. Phrases use single spaces; the feature code matches them on lowercased
text whose whitespace runs were collapsed to one space, so a line break inside "on the other
hand" still counts. Within the three connective lists no phrase appears twice, so "distinct
connectives" is well defined; a word may still belong to a connective list *and* to
:data:`SUBORDINATORS` ("because"), since those feed different features.

Changing any list changes feature values: bump ``TEXT_FEATURE_VERSION`` in ``text.py``.
"""

from __future__ import annotations

import functools
import importlib.util


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BASIC_CONNECTIVES: tuple[str, ...] = ("and", "but", "so", "because", "then", "also", "or")
"""Connectives every beginner uses."""

ADVANCED_CONNECTIVES: tuple[str, ...] = (
    "however",
    "moreover",
    "furthermore",
    "nevertheless",
    "nonetheless",
    "consequently",
    "therefore",
    "thus",
    "hence",
    "accordingly",
    "conversely",
    "likewise",
    "similarly",
    "meanwhile",
    "subsequently",
    "additionally",
    "alternatively",
    "instead",
    "otherwise",
    "indeed",
    "notwithstanding",
    "despite",
    "in addition",
    "in contrast",
    "by contrast",
    "on the other hand",
    "on the contrary",
    "as a result",
    "as a consequence",
    "in spite of",
    "in fact",
    "above all",
    "in particular",
)
"""Logical connectives (contrast, cause, addition) typical of mature argumentative writing."""

DISCOURSE_MARKERS: tuple[str, ...] = (
    "firstly",
    "secondly",
    "thirdly",
    "finally",
    "lastly",
    "overall",
    "personally",
    "first of all",
    "to begin with",
    "to start with",
    "in conclusion",
    "to conclude",
    "to sum up",
    "in summary",
    "in short",
    "for example",
    "for instance",
    "such as",
    "in other words",
    "that is to say",
    "in my opinion",
    "in my view",
    "on the one hand",
)
"""Organisational markers: sequencing, exemplification, stance and conclusion."""

SUBORDINATORS: tuple[str, ...] = (
    "although",
    "though",
    "even though",
    "even if",
    "because",
    "since",
    "unless",
    "whereas",
    "while",
    "whilst",
    "whether",
    "if",
    "so that",
    "in order that",
    "as if",
    "as though",
    "as long as",
    "as soon as",
    "provided that",
    "that",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "whenever",
    "where",
    "wherever",
)
"""Subordinating conjunctions and relative pronouns, counted wherever they occur (a heuristic
for clause embedding: "that" as a determiner is counted too)."""

STOP_WORDS: frozenset[str] = _words(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against
    between into through during before after above below to from up down in out on off over
    under again further then once here there when where why how all any both each few more
    most other some such no nor not only own same so than too very can will just should now
    would could might must shall may
    i'm i've i'll i'd you're you've you'll you'd he's he'll he'd she's she'll she'd it's it'll
    we're we've we'll we'd they're they've they'll they'd that's that'll there's here's what's
    who's let's
    don't doesn't didn't isn't aren't wasn't weren't haven't hasn't hadn't won't wouldn't
    can't cannot couldn't shouldn't mustn't mightn't needn't shan't should've would've
    could've
    """
)
"""Function words (the NLTK English list, with contractions kept whole as our tokenizer
keeps them, plus the modal verbs)."""

CONTRACTION_SUFFIXES: tuple[str, ...] = ("n't", "'re", "'ve", "'ll", "'d", "'m")
CONTRACTIONS_WITH_S: frozenset[str] = _words(
    "it's that's there's here's what's who's he's she's let's where's how's"
)
"""'s is a contraction only after these words; after a noun it is usually a possessive."""

# --- Grammar-error heuristics (pairs of adjacent words in one sentence) -----------------------

PLURAL_SUBJECTS: frozenset[str] = frozenset({"they", "we"})
VERBS_WRONG_AFTER_PLURAL: frozenset[str] = _words(
    "was wasn't is isn't has hasn't does doesn't goes"
)
"""``they was``, ``we is``: always wrong. "you" is left out: as an object it is often followed
by a singular verb of the main clause ("what happened to you was ...")."""

FIRST_PERSON_SINGULAR: frozenset[str] = frozenset({"i"})
VERBS_WRONG_AFTER_I: frozenset[str] = _words("is isn't are aren't has hasn't does goes")

THIRD_PERSON_SINGULAR: frozenset[str] = frozenset({"he", "she", "it"})
BASE_VERBS_WRONG_AFTER_THIRD_PERSON: frozenset[str] = _words(
    """are aren't have haven't do don't go want like need make say think know come take get
    play live work"""
)
"""``he go``, ``she have``, ``it don't``. "were" is left out (subjunctive "if it were")."""

WORDS_LICENSING_BASE_VERB: frozenset[str] = _words(
    """do does did don't doesn't didn't can could will would shall should may might must can't
    couldn't won't wouldn't shouldn't let lets make makes made making help helps helped see
    saw seen watch watched hear heard have has had to"""
)
"""A word before "he/she/it" that makes a following base verb correct: "does she have",
"let it go", "made him work" (questions, modals, causatives, infinitives)."""

CONSONANT_SOUND_VOWEL_PREFIXES: tuple[str, ...] = (
    "uni",
    "use",
    "usu",
    "uti",
    "ure",
    "uro",
    "ubiq",
    "eu",
    "ewe",
    "one",
    "once",
    "ufo",
)
"""Words spelled with a vowel but starting with a consonant sound: "a university", "a one-off"."""

SILENT_H_PREFIXES: tuple[str, ...] = ("hour", "honest", "honor", "honour", "heir", "herb")
"""Words spelled with "h" but starting with a vowel sound: "an hour"."""

MODALS_BEFORE_OF: frozenset[str] = frozenset({"could", "would", "should", "must", "might"})
"""``could of`` for "could have"."""

COMPARATIVES_AND_SUPERLATIVES: frozenset[str] = _words(
    """better best worse worst easier easiest harder hardest bigger biggest smaller smallest
    faster fastest cheaper cheapest happier happiest larger largest longer longest stronger
    strongest higher highest lower lowest older oldest younger youngest greater greatest
    simpler simplest nicer nicest"""
)
"""Forms that must not follow "more"/"most" ("more better", "most easiest")."""

DOUBLE_COMPARATIVE_HEADS: frozenset[str] = frozenset({"more", "most"})


class LexiconMissingError(FileNotFoundError):
    """A word list that ships inside an installed package was not found."""


@functools.lru_cache(maxsize=1)
def dale_chall_familiar_words() -> frozenset[str]:
    """The Dale–Chall list of ~3,000 words familiar to fourth-graders.

    Read from the data file that ships with ``textstat`` (a declared dependency) without
    importing ``textstat`` itself: its import pulls in NLTK (~2 s) and its English syllable
    counter downloads the CMU dictionary at run time, which we must not do.
    """
    from pathlib import Path

    spec = importlib.util.find_spec("textstat")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "resources" / "en" / "easy_words.txt"
        if path.is_file():
            words = path.read_text(encoding="utf-8").split()
            return frozenset(word.strip().lower() for word in words if word.strip())
    raise LexiconMissingError(
        "the Dale-Chall word list (textstat/resources/en/easy_words.txt) was not found; "
        "reinstall textstat>=0.7.4,<0.8"
    )
