"""Handcrafted text features: values on tiny hand-checked texts, and the batch path against the
one-essay-at-a-time reference."""

from __future__ import annotations

import math
import random
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.features.text import (
    MTLD_THRESHOLD,
    TEXT_FEATURE_VERSION,
    TEXT_FEATURES,
    FeatureSpec,
    compute_text_features,
    compute_text_features_naive,
)

GOOD_ESSAY = (
    "Many people believe that mobile phones should be banned in schools. However, I would "
    "argue that a complete prohibition is unnecessary.\n\n"
    "Firstly, smartphones provide immediate access to valuable resources, such as "
    "dictionaries and encyclopaedias. Moreover, teachers can incorporate them into lessons, "
    "which encourages independent research. Nevertheless, distraction remains a genuine "
    "concern; consequently, schools should establish clear guidelines.\n\n"
    "In conclusion, although unrestricted use is harmful, a thoughtful policy offers "
    "considerable benefits for learners."
)
WEAK_ESSAY = (
    "i think phones is good and bad. they was in school and the teacher say no phone. "
    "i like my phone becuase it is fun and i play games and i talk to frends. "
    "he go home and he play phone. it is good. it is good. "
    "teh phone is a important thing and so we need it and we like it"
)


def features(texts: list[str], prompts: list[str | None] | None = None) -> pl.DataFrame:
    return compute_text_features(texts, prompts)


def one(text: str, prompt: str | None = None) -> dict[str, float | None]:
    return features([text], [prompt]).row(0, named=True)


def count(row: dict[str, float | None], per_100_name: str) -> float:
    """Turn a per-100-words rate back into the count it came from."""
    value = row[per_100_name]
    assert value is not None
    return value * row["word_count"] / 100.0


# --- registry ------------------------------------------------------------------------------


def test_registry_has_at_least_40_unique_documented_features():
    names = [spec.name for spec in TEXT_FEATURES]
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    for spec in TEXT_FEATURES:
        assert isinstance(spec, FeatureSpec)
        assert re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", spec.name), spec.name
        assert spec.definition.strip() and spec.unit.strip(), spec.name
    assert re.fullmatch(r"text-v\d+", TEXT_FEATURE_VERSION)


def test_every_registry_entry_is_a_column_and_vice_versa_in_order():
    frame = features([GOOD_ESSAY, ""])
    assert frame.columns == [spec.name for spec in TEXT_FEATURES]
    assert all(dtype == pl.Float64 for dtype in frame.dtypes)
    assert frame.height == 2
    naive = compute_text_features_naive([GOOD_ESSAY, ""])
    assert naive.columns == frame.columns and naive.dtypes == frame.dtypes


def test_empty_batch_gives_empty_frame_with_schema():
    for compute in (compute_text_features, compute_text_features_naive):
        frame = compute([])
        assert frame.height == 0
        assert frame.columns == [spec.name for spec in TEXT_FEATURES]


# --- counts and structure -------------------------------------------------------------------


def test_counts_on_a_tiny_text():
    text = "The cat sat on the mat. The dog ran!\n\nIt was fun."
    row = one(text)
    assert row["char_count"] == len(text)
    assert row["word_count"] == 12
    assert row["sentence_count"] == 3
    assert row["paragraph_count"] == 2
    assert row["mean_sentence_length"] == pytest.approx(4.0)
    assert row["sd_sentence_length"] == pytest.approx(math.sqrt(2.0))  # pstdev of 6, 3, 3
    # the x3, cat sat on mat dog ran it was fun: 10 types, 9 of them once
    assert row["type_token_ratio"] == pytest.approx(10 / 12)
    assert row["root_ttr"] == pytest.approx(10 / math.sqrt(12))
    assert row["hapax_share"] == pytest.approx(9 / 10)
    assert row["mean_word_length"] == pytest.approx(34 / 12)
    assert row["long_word_share"] == 0.0


def test_sentence_and_word_splitting_rules():
    row = one("Dr. Smith came, e.g. at noon. He left.Then he   slept?  Yes!")
    # "Dr." and "e.g." do not end a sentence; "left.Then" lacks the space that would.
    assert row["sentence_count"] == 3
    # Dr Smith came e.g. at noon He left Then he slept Yes
    assert row["word_count"] == 12
    hyphen = one("A well-known, state-of-the-art school.")
    assert hyphen["word_count"] == 8  # a hyphen separates words
    assert one("It cost 1,000 kronor in 2024.")["word_count"] == 6
    assert one("Windows\r\nline endings\rtoo")["paragraph_count"] == 3


def test_curly_apostrophes_are_normalised():
    straight, curly = (
        features(["I don't know, it's fine."]),
        features(["I don\u2019t know, it\u2019s fine."]),
    )
    assert straight.row(0) == curly.row(0)


# --- readability ---------------------------------------------------------------------------


def test_readability_formulas_on_hand_counted_text():
    row = one("The cat sat on the mat.")  # W=6, S=1, 6 syllables, all familiar words
    assert row["mean_syllables_per_word"] == pytest.approx(1.0)
    assert row["flesch_reading_ease"] == pytest.approx(206.835 - 1.015 * 6 - 84.6 * 1.0)
    assert row["flesch_kincaid_grade"] == pytest.approx(0.39 * 6 + 11.8 * 1.0 - 15.59)
    assert row["dale_chall_score"] == pytest.approx(0.0496 * 6)
    assert row["unfamiliar_word_share"] == 0.0
    assert row["automated_readability_index"] == pytest.approx(4.71 * 17 / 6 + 0.5 * 6 - 21.43)

    row = one("Education is important.")  # syllables 4 + 1 + 3; two polysyllables
    assert row["mean_syllables_per_word"] == pytest.approx(8 / 3)
    assert row["polysyllable_share"] == pytest.approx(2 / 3)
    assert row["flesch_kincaid_grade"] == pytest.approx(0.39 * 3 + 11.8 * 8 / 3 - 15.59)
    assert row["gunning_fog"] == pytest.approx(0.4 * (3 + 100 * 2 / 3))
    assert row["smog_index"] == pytest.approx(1.0430 * math.sqrt(30 * 2) + 3.1291)
    letters_per_100 = 100 * 20 / 3
    sentences_per_100 = 100 / 3
    assert row["coleman_liau_index"] == pytest.approx(
        0.0588 * letters_per_100 - 0.296 * sentences_per_100 - 15.8
    )


def test_dale_chall_counts_regular_inflections_of_listed_words_as_familiar():
    # "played", "cats", "bigger" inflect listed words; "philosophy" is not on the list.
    row = one("The cats played. The dog is bigger. Philosophy.")
    assert row["unfamiliar_word_share"] == pytest.approx(1 / 8)


# --- vocabulary ----------------------------------------------------------------------------


def reference_mtld(tokens: list[str], threshold: float = MTLD_THRESHOLD) -> float:
    """McCarthy & Jarvis (2010), written independently of the module."""

    def one_way(seq: list[str]) -> float:
        factor_count, start = 0.0, 0
        last_ttr = 1.0
        for end in range(1, len(seq) + 1):
            window = seq[start:end]
            last_ttr = len(set(window)) / len(window)
            if last_ttr <= threshold:
                factor_count += 1
                start = end
                last_ttr = 1.0
        if start < len(seq):
            factor_count += (1 - last_ttr) / (1 - threshold)
        return len(seq) / factor_count if factor_count else float(len(seq))

    return (one_way(tokens) + one_way(tokens[::-1])) / 2


def test_mtld_hand_computed_values():
    # a b a b a b: a factor ends at every third word in both directions -> 6 / 2
    assert one("A b a b a b.")["mtld"] == pytest.approx(3.0)
    # forward x y x | z -> 4 / 1; backward z x y x has TTR 0.75 at the end -> partial factor
    backward = 4 / ((1 - 0.75) / (1 - MTLD_THRESHOLD))
    assert one("x y x z")["mtld"] == pytest.approx((4.0 + backward) / 2)
    # never reaching the threshold, the text counts its own length
    assert one("Every word differs here.")["mtld"] == pytest.approx(4.0)


def test_mtld_matches_an_independent_reference_on_longer_texts():
    texts = [GOOD_ESSAY, WEAK_ESSAY, WEAK_ESSAY + " " + GOOD_ESSAY]
    frame = features(texts)
    for text, value in zip(texts, frame["mtld"], strict=True):
        tokens = [w.lower() for w in re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)*", text)]
        assert value == pytest.approx(reference_mtld(tokens))


def test_lockstep_batch_mtld_equals_the_reference_essay_by_essay():
    from huleedu_pipelines.features.text import _mtld_batch

    rng = random.Random(3)
    essays = [[rng.choice("abcdefghij"[: rng.randint(1, 10)]) for _ in range(rng.randint(0, 60))]]
    essays += [
        [rng.choice("abcdefghijklmnop") for _ in range(rng.randint(0, 80))] for _ in range(30)
    ]
    codes, offset = [], 0
    for words in essays:  # one integer per (essay, word)
        ids = {w: offset + i for i, w in enumerate(sorted(set(words)))}
        codes += [ids[w] for w in words]
        offset += len(ids)
    lengths = np.array([len(words) for words in essays])
    batch = _mtld_batch(np.array(codes, dtype=np.int64), lengths)
    for words, value in zip(essays, batch, strict=True):
        if words:
            assert value == pytest.approx(reference_mtld(words), rel=1e-12)
        else:
            assert np.isnan(value)


def test_spelling_capitalisation_and_lowercase_i_on_a_crafted_text():
    row = one("i think teh goverment is wrong. they was late.")
    assert row["word_count"] == 9
    assert count(row, "spelling_errors_per_100_words") == pytest.approx(2)  # teh, goverment
    assert row["lowercase_sentence_start_share"] == 1.0
    assert count(row, "lowercase_i_per_100_words") == pytest.approx(1)
    assert count(row, "agreement_errors_per_100_words") == pytest.approx(1)


def test_british_spellings_are_not_spelling_errors():
    row = one("The colour of my favourite centre was realised while travelling.")
    assert row["spelling_errors_per_100_words"] == 0.0


def test_rare_words_and_zipf_frequency():
    common, rare = one("The house is big."), one("The meticulous juxtaposition proliferates.")
    assert common["rare_word_share"] == 0.0
    assert rare["rare_word_share"] == pytest.approx(3 / 4)
    assert rare["mean_zipf_frequency"] < common["mean_zipf_frequency"]


def test_stop_words_and_contractions():
    row = one("I don't think it's the end of the road.")
    assert row["word_count"] == 9
    assert count(row, "contractions_per_100_words") == pytest.approx(2)
    # i don't it's the of the: 6 stop words; think end road are content words
    assert row["stop_word_share"] == pytest.approx(6 / 9)


# --- mechanics, cohesion, grammar, repetition ------------------------------------------------


def test_punctuation_counts_and_errors():
    row = one("Hello , world.Next we go!! Wait.. really... yes,,no; fine: ok? Sure!")
    assert count(row, "commas_per_100_words") == pytest.approx(3)
    assert count(row, "semicolons_per_100_words") == pytest.approx(1)
    assert count(row, "colons_per_100_words") == pytest.approx(1)
    assert count(row, "question_marks_per_100_words") == pytest.approx(1)
    assert count(row, "exclamation_marks_per_100_words") == pytest.approx(3)
    assert count(row, "space_before_punctuation_per_100_words") == pytest.approx(1)  # " ,"
    assert count(row, "missing_space_after_punctuation_per_100_words") == pytest.approx(1)
    # "!!", "t..", ",,"; the ellipsis "..." is fine
    assert count(row, "doubled_punctuation_per_100_words") == pytest.approx(3)


def test_connectives_and_discourse_markers():
    text = (
        "However, we stayed. On the other hand, and but so, moreover it rained. "
        "For example, although it was cold, we swam because we could. In conclusion, fine."
    )
    row = one(text)
    assert count(row, "advanced_connectives_per_100_words") == pytest.approx(3)
    assert count(row, "basic_connectives_per_100_words") == pytest.approx(4)  # and but so because
    assert count(row, "discourse_markers_per_100_words") == pytest.approx(2)
    assert row["advanced_connective_share"] == pytest.approx(3 / 7)
    assert row["distinct_connectives"] == 9.0
    # although, because; sentence count 4
    assert row["subordinators_per_sentence"] == pytest.approx(2 / 4)
    assert one("We ate.")["advanced_connective_share"] is None  # no connectives at all


def test_grammar_heuristics():
    text = (
        "They was happy. He go home. Does she have a apple? An book, a hour, an hour, "
        "a university. I could of won. It is more better."
    )
    row = one(text)
    assert count(row, "agreement_errors_per_100_words") == pytest.approx(2)  # they was, he go
    assert count(row, "article_errors_per_100_words") == pytest.approx(3)
    assert count(row, "grammar_errors_per_100_words") == pytest.approx(7)
    clean = one("Does she have an apple? Let it go. An hour is a unit. We were there.")
    assert clean["grammar_errors_per_100_words"] == 0.0


def test_repetition():
    row = one("I like dogs. I like dogs. Cats are fine.")
    assert row["repeated_sentence_share"] == pytest.approx(1 / 3)
    assert row["repeated_trigram_share"] == pytest.approx(1 / 7)
    assert one("Two words")["repeated_trigram_share"] is None


def test_min_paragraph_stop_word_share_finds_the_keyword_paragraph():
    essay = (
        "I think that the school is a good place for all of the students.\n\n"
        "School phones ban students school phones ban rules technology."
    )
    # paragraph 1: i that the is a for all of the = 9 of 14; paragraph 2: no stop word
    assert one(essay)["min_paragraph_stop_word_share"] == 0.0
    assert one(essay.split("\n\n")[0])["min_paragraph_stop_word_share"] == pytest.approx(9 / 14)
    # paragraphs under 8 words are not judged
    assert one("Phones ban rules.\n\nSchool phones.")["min_paragraph_stop_word_share"] is None


# --- prompt overlap ------------------------------------------------------------------------


def test_prompt_overlap_values():
    prompt = "Should schools ban mobile phones?"
    row = one("Schools should ban phones because phones distract students.", prompt)
    # prompt content: schools ban mobile phones; essay: schools ban phones(2) distract students
    assert row["prompt_coverage"] == pytest.approx(3 / 4)
    assert row["prompt_jaccard"] == pytest.approx(3 / 6)
    assert row["prompt_cosine"] == pytest.approx(4 / (2 * math.sqrt(8)))


def test_prompt_features_are_null_without_a_prompt_and_zero_without_overlap():
    frame = features(
        ["Schools ban phones.", "Schools ban phones.", "Schools ban phones.", ""],
        [None, "It is what it is.", "Cooking pasta", "Cooking pasta"],
    )
    for name in ("prompt_coverage", "prompt_jaccard", "prompt_cosine"):
        assert frame[name].to_list() == [None, None, 0.0, 0.0], name
    no_prompts = features(["Schools ban phones."])
    assert no_prompts["prompt_cosine"].to_list() == [None]


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t  \n", "...!!", "\u00a0"])
def test_empty_and_wordless_texts(text):
    row = one(text, "A prompt about schools")
    assert row["word_count"] == 0 and row["sentence_count"] == 0 and row["paragraph_count"] == 0
    assert row["distinct_connectives"] == 0
    assert row["mtld"] is None and row["type_token_ratio"] is None
    assert row["flesch_reading_ease"] is None
    assert row["prompt_coverage"] == 0.0


def test_nothing_is_nan_or_infinite():
    texts = [GOOD_ESSAY, WEAK_ESSAY, "", "   ", "One.", "x", "!!!", "a b c d e f g h"]
    for compute in (compute_text_features, compute_text_features_naive):
        frame = compute(texts, ["Discuss phones in schools."] * len(texts))
        assert not frame.select(pl.all().is_nan().any()).row(0).count(True)
        assert not frame.select(pl.all().is_infinite().any()).row(0).count(True)
        assert frame.select(pl.col("word_count", "char_count", "sentence_count").null_count()).row(
            0
        ) == (0, 0, 0)


def test_rows_follow_input_order_and_do_not_depend_on_the_batch():
    texts = [GOOD_ESSAY, WEAK_ESSAY, "Short one."]
    frame = features(texts)
    alone = [features([t]).row(0) for t in texts]
    assert [frame.row(i) for i in range(3)] == alone
    reversed_frame = features(texts[::-1])
    assert [reversed_frame.row(i) for i in range(3)] == alone[::-1]


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(TypeError, match="wrap it in a list"):
        compute_text_features("just one essay")
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        compute_text_features(["fine", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="2 entries for 1 texts"):
        compute_text_features(["fine"], ["p1", "p2"])


# --- batch path against the reference ------------------------------------------------------


def sample_essays(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    sentences = re.split(r"(?<=[.!?])\s+", GOOD_ESSAY.replace("\n\n", " ") + " " + WEAK_ESSAY)
    extras = [
        "Caf\u00e9 culture is na\u00efve, isn\u2019t it?",
        "Mr. Jones said, e.g., that 3.5 million people (i.e. many) agree!!",
        "We was there , and  she have a idea.Then nothing happened..",
        "A hour later , an book fell.",
        "Stra\u00dfe and ma'am and y'all.",
        "In 2024 the price was 1,000 kronor; however, it rose.",
    ]
    pool = sentences + extras
    essays = []
    for _ in range(n):
        paragraphs = [
            " ".join(rng.choice(pool) for _ in range(rng.randint(1, 5)))
            for _ in range(rng.randint(1, 3))
        ]
        essays.append("\n\n".join(paragraphs))
    return [*essays, "", "  ", "word", GOOD_ESSAY, WEAK_ESSAY]


def assert_frames_equal(fast: pl.DataFrame, naive: pl.DataFrame) -> None:
    assert fast.columns == naive.columns
    for name in fast.columns:
        a, b = fast[name], naive[name]
        assert a.is_null().to_list() == b.is_null().to_list(), name
        x, y = a.drop_nulls().to_numpy(), b.drop_nulls().to_numpy()
        assert np.allclose(x, y, rtol=1e-9, atol=1e-9), name


def test_batch_path_equals_naive_path():
    essays = sample_essays(40, seed=7)
    cycle = ["Should mobile phones be banned in schools?", None, "Caf\u00e9 culture", "the"]
    prompts = [cycle[i % len(cycle)] for i in range(len(essays))]
    assert_frames_equal(
        compute_text_features(essays, prompts), compute_text_features_naive(essays, prompts)
    )


def test_better_essay_scores_higher_on_the_relevant_features():
    good, weak = features([GOOD_ESSAY, WEAK_ESSAY]).rows(named=True)
    higher = [
        "mtld",
        "type_token_ratio",
        "rare_word_share",
        "mean_word_length",
        "long_word_share",
        "polysyllable_share",
        "unfamiliar_word_share",
        "flesch_kincaid_grade",
        "advanced_connectives_per_100_words",
        "advanced_connective_share",
        "discourse_markers_per_100_words",
        "subordinators_per_sentence",
        "commas_per_100_words",
    ]
    lower = [
        "mean_zipf_frequency",
        "flesch_reading_ease",
        "spelling_errors_per_100_words",
        "lowercase_sentence_start_share",
        "lowercase_i_per_100_words",
        "agreement_errors_per_100_words",
        "article_errors_per_100_words",
        "grammar_errors_per_100_words",
        "basic_connectives_per_100_words",
        "repeated_sentence_share",
        "repeated_trigram_share",
    ]
    for name in higher:
        assert good[name] > weak[name], name
    for name in lower:
        assert good[name] < weak[name], name


def test_module_import_is_cheap_and_features_need_no_network():
    """A fresh interpreter: importing loads no heavy library; computing opens no socket."""
    script = """
import socket, sys
import huleedu_pipelines.features.text as text
heavy = [m for m in ("polars", "wordfreq", "spellchecker", "textstat", "nltk") if m in sys.modules]
assert not heavy, f"importing the module loaded {heavy}"
def refuse(*args, **kwargs):
    raise AssertionError("text features tried to open a network connection")
socket.socket = refuse
socket.create_connection = refuse
frame = text.compute_text_features(["Cafe\u0301 colour teh ma'am.", ""], ["A prompt", None])
assert frame.height == 2
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
