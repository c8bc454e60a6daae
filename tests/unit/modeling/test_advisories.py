"""Validity advisories: limits fitted on training essays, flags and reasons on new ones."""

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.modeling.advisories import (
    ADVISORY_SIGNALS,
    INFO_KEY,
    Advisory,
    advisory_flags,
    advisory_reasons,
    fit_advisories,
    stored,
    strictest,
)


def training_essays(n: int = 1000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "spelling_errors_per_100_words": rng.uniform(0.0, 10.0, n),
            "repeated_sentence_share": np.where(rng.uniform(size=n) < 0.9, 0.0, 0.05),
            "min_paragraph_stop_word_share": rng.uniform(0.3, 0.6, n),
            "prompt_cosine": [None] * n,  # no prompts: no advisory
        },
        schema_overrides={"prompt_cosine": pl.Float64},
    )


def test_limits_are_the_tail_quantile_widened_by_half_its_distance_from_the_median():
    fitted = {a.feature: a for a in fit_advisories(training_essays())}
    assert set(fitted) == {
        "spelling_errors_per_100_words",
        "repeated_sentence_share",
        "min_paragraph_stop_word_share",
    }
    spelling = training_essays()["spelling_errors_per_100_words"].to_numpy()
    tail, median = np.quantile(spelling, 0.995), np.median(spelling)
    assert fitted["spelling_errors_per_100_words"].limit == pytest.approx(
        tail + 0.5 * (tail - median)
    )
    assert fitted["spelling_errors_per_100_words"].limit == pytest.approx(12.4, abs=0.2)
    assert fitted["repeated_sentence_share"].limit == pytest.approx(0.075)
    stop = fitted["min_paragraph_stop_word_share"]
    assert stop.direction == "below" and stop.limit == pytest.approx(0.225, abs=0.01)


def test_gamed_essays_are_flagged_with_a_reason_and_natural_ones_are_not():
    advisories = fit_advisories(training_essays())
    new = pl.DataFrame(
        {
            "spelling_errors_per_100_words": [3.0, 72.0, 2.0, None],
            "repeated_sentence_share": [0.0, 0.0, 0.5, 0.0],
            "min_paragraph_stop_word_share": [0.45, 0.40, 0.0, 0.4],
            "prompt_cosine": [0.99, 0.1, 0.2, 0.3],
        }
    )
    assert advisory_flags(new, advisories).tolist() == [False, True, True, False]
    reasons = advisory_reasons(new, advisories)
    assert reasons[0] == [] and reasons[3] == []
    assert reasons[1] == [
        "advisory: unknown words: nonsense or another language "
        "(spelling_errors_per_100_words 72 > 12.3, beyond the training essays)"
    ]
    assert [r.split(" (")[0] for r in reasons[2]] == [
        "advisory: repeated sentences: padding",
        "advisory: a paragraph of bare keywords: stuffing",
    ]


def test_a_natural_population_is_rarely_flagged():
    advisories = fit_advisories(training_essays(seed=0))
    fresh = training_essays(n=20000, seed=1)
    assert advisory_flags(fresh, advisories).mean() < 0.01


def test_advisories_survive_the_bundle_info_and_the_strictest_wins():
    loose = Advisory("prompt_cosine", "above", 0.9, "the prompt's words copied")
    tight = Advisory("prompt_cosine", "above", 0.8, "the prompt's words copied")
    floor = Advisory("min_paragraph_stop_word_share", "below", 0.2, "stuffing")
    info = {INFO_KEY: [a.to_info() for a in (loose, tight, floor)]}
    assert stored(info) == [loose, tight, floor]
    assert stored({}) == []
    assert strictest(stored(info)) == [tight, floor]
    raised = Advisory("min_paragraph_stop_word_share", "below", 0.25, "stuffing")
    assert strictest([floor, raised]) == [raised]


def test_every_signal_is_a_model_feature():
    from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS

    assert {s.feature for s in ADVISORY_SIGNALS} <= set(MODEL_FEATURE_COLUMNS)
