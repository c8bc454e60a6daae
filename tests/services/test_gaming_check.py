"""The anti-gaming check on small essays, with a word-count featurizer standing in for the
feature path (the full path is exercised by the validation integration tests)."""

import dataclasses

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.domain.gaming import OFF_TOPIC_PASSAGE, PERTURBATIONS
from huleedu_pipelines.modeling.gates import GateResult, gaming_gate, summarize
from huleedu_pipelines.services.gaming import build_gamed_features, essays_to_game, gaming_report
from huleedu_pipelines.settings import Settings

ESSAYS = pl.DataFrame(
    {
        "essay_id": [f"e{i}" for i in range(6)],
        "text": [
            " ".join(["Uniforms help pupils focus."] * (i + 2)) + "\nIn conclusion, yes."
            for i in range(6)
        ],
        "prompt_text": ["Should pupils wear uniforms?"] * 6,
        "prompt_id": ["uniforms"] * 6,
    }
)
CJ = ("cj_ability",)


def featurize(rows: pl.DataFrame) -> pl.DataFrame:
    """Word count, the share of distinct words, and a CJ column the copies must not keep."""
    words = [text.lower().split() for text in rows["text"].to_list()]
    return pl.DataFrame(
        {
            "essay_id": rows["essay_id"],
            "word_count": [float(len(w)) for w in words],
            "distinct_share": [len(set(w)) / len(w) for w in words],
            "cj_ability": [-99.0] * rows.height,
        }
    )


def original_rows() -> pl.DataFrame:
    rows = featurize(ESSAYS)
    return rows.with_columns(pl.Series("cj_ability", np.arange(6, dtype=np.float64)))


def test_copies_keep_the_originals_cj_features_and_their_order() -> None:
    features = build_gamed_features(ESSAYS, original_rows().reverse(), featurize, CJ, seed=1)
    assert set(features.gamed) == set(PERTURBATIONS)
    assert features.original["essay_id"].to_list() == sorted(ESSAYS["essay_id"].to_list())
    for rows in features.gamed.values():
        assert rows["essay_id"].to_list() == features.original["essay_id"].to_list()
        assert rows["cj_ability"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    padded = features.gamed["repeat_paragraph"]["word_count"].to_numpy()
    assert np.all(padded >= 2 * features.original["word_count"].to_numpy())


def test_a_single_prompt_borrows_the_fixed_off_topic_passage() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    added = features.gamed["append_off_topic"]["word_count"] - features.original["word_count"]
    assert added.to_list() == [float(len(OFF_TOPIC_PASSAGE.split()))] * 6


def test_a_length_rewarding_model_rises_under_padding_and_a_length_blind_one_does_not() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    by_length = gaming_report(lambda rows: rows["word_count"].to_numpy(), features, 0.25)
    effects = {e.perturbation: e for e in by_length.effects}
    assert effects["repeat_paragraph"].share_risen == 1.0
    assert effects["shuffle_sentences"].share_risen == 0.0  # same words, same count
    spread = float(np.std(features.original["word_count"].to_numpy()))
    assert by_length.tolerance == pytest.approx(0.25 * spread)
    assert effects["repeat_paragraph"].quantiles[2] == pytest.approx(
        float(
            np.median(
                features.gamed["repeat_paragraph"]["word_count"] - features.original["word_count"]
            )
        )
    )

    by_variety = gaming_report(lambda rows: rows["distinct_share"].to_numpy(), features, 0.25)
    lowered = {e.perturbation: e for e in by_variety.effects}["repeat_paragraph"]
    assert lowered.share_risen == 0.0 and lowered.mean_change < 0  # padding lowers it


THRESHOLDS = Settings.model_construct().gate_thresholds()  # the defaults, whatever the env


def test_the_gate_fails_a_length_rewarding_model_and_passes_one_whose_scores_fall() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    rewarded = gaming_gate(
        gaming_report(lambda rows: rows["word_count"].to_numpy(), features, 0.25), THRESHOLDS
    )
    assert not rewarded.passed and rewarded.value == 1.0 and rewarded.threshold == 0.05
    assert rewarded.message.startswith(
        "worst perturbation repeat_paragraph: 100.0% of 6 gamed essays scored more than"
    )
    assert "failing: repeat_paragraph 100.0%" in rewarded.message

    # Scores that fall as essays grow (or stay put) never rise beyond the tolerance.
    shortness = gaming_report(lambda rows: -rows["word_count"].to_numpy(), features, 0.25)
    assert {e.perturbation: e.mean_change < 0 for e in shortness.effects}["repeat_paragraph"]
    falling = gaming_gate(shortness, THRESHOLDS)
    assert falling.passed, falling.message
    assert falling.value == 0.0


def test_a_check_that_did_not_run_fails_the_gate() -> None:
    result = gaming_gate(None, THRESHOLDS)
    assert (result.passed, result.value) == (False, None)
    assert result.message.startswith("the anti-gaming check did not run")


def test_essays_to_game_is_a_seeded_sample_of_the_named_essays() -> None:
    chosen = essays_to_game(ESSAYS, ["e0", "e2", "e3", "e5"], limit=3, seed=7)
    assert chosen.columns == ["essay_id", "text", "prompt_text", "prompt_id"]
    assert chosen.height == 3 and set(chosen["essay_id"]) <= {"e0", "e2", "e3", "e5"}
    assert chosen.equals(essays_to_game(ESSAYS, ["e0", "e2", "e3", "e5"], limit=3, seed=7))
    assert essays_to_game(ESSAYS, ["e1"], limit=3, seed=7)["essay_id"].to_list() == ["e1"]


def test_a_warning_gate_is_named_in_the_verdict_but_does_not_fail_it() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    report = gaming_report(lambda rows: rows["word_count"].to_numpy(), features, 0.25)
    warning = gaming_gate(report, dataclasses.replace(THRESHOLDS, gaming_gate_blocks=False))
    assert (warning.passed, warning.blocking) == (False, False)
    floor = GateResult("min_qwk", True, 0.8, 0.7, ">=", "QWK 0.800 >= 0.700 (min_qwk)")
    passed, verdict = summarize([floor, warning])
    assert passed
    assert verdict.startswith("all 1 blocking gates passed; warning, not blocking: worst ")

    blocking = gaming_gate(report, dataclasses.replace(THRESHOLDS, gaming_gate_blocks=True))
    passed, verdict = summarize([floor, blocking])
    assert not passed and verdict.startswith("1 of 2 gates failed: worst perturbation")


def test_copies_an_advisory_sends_to_review_gain_nothing() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    original_length = features.original["word_count"].to_numpy()

    def beyond_the_originals(rows: pl.DataFrame) -> np.ndarray:  # rows align with originals
        return rows["word_count"].to_numpy() >= 2 * original_length

    report = gaming_report(
        lambda rows: rows["word_count"].to_numpy(), features, 0.25, beyond_the_originals
    )
    padding = {e.perturbation: e for e in report.effects}["repeat_paragraph"]
    # Every padded copy rose and doubled its original's length: all sent to review.
    assert (padding.share_risen_before_review, padding.share_sent_to_review) == (1.0, 1.0)
    assert padding.share_risen == 0.0
    shuffled = {e.perturbation: e for e in report.effects}["shuffle_sentences"]
    assert shuffled.share_sent_to_review == 0.0


def test_a_warn_only_perturbation_is_named_but_not_judged() -> None:
    features = build_gamed_features(ESSAYS, original_rows(), featurize, CJ, seed=1)
    # Distinct words: off-topic text adds new ones, padding repeats the essay's own.
    report = gaming_report(
        lambda rows: np.rint(rows["word_count"].to_numpy() * rows["distinct_share"].to_numpy()),
        features,
        0.25,
    )
    risen = {e.perturbation for e in report.effects if e.share_risen > 0.05}
    # new words (gibberish makes every word new); padding and shuffling add none
    assert risen == {"append_off_topic", "stuff_prompt_words", "gibberish"}
    judged_all = gaming_gate(report, dataclasses.replace(THRESHOLDS, gaming_warn_only=""))
    assert not judged_all.passed and "failing: append_off_topic 100.0%" in judged_all.message
    one_warned = dataclasses.replace(THRESHOLDS, gaming_warn_only="append_off_topic")
    assert not gaming_gate(report, one_warned).passed  # stuffing is still judged
    warn_only = " append_off_topic,stuff_prompt_words, gibberish"
    warned = gaming_gate(report, dataclasses.replace(THRESHOLDS, gaming_warn_only=warn_only))
    assert warned.passed and warned.blocking
    assert "warning, not judged (HULEEDU_GAMING_WARN_ONLY): append_off_topic 100.0%" in (
        warned.message
    )
