"""Layer 1: which essays a night scores, and the monitoring measurements, as pure functions."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.features.build import current_feature_hashes
from huleedu_pipelines.modeling.names import SKILL_MODELS
from huleedu_pipelines.services.monitoring import (
    grade_distribution_psi,
    shadow_agreement,
    teacher_agreement,
)
from huleedu_pipelines.services.scoring import (
    SELECTED_BACKFILL,
    SELECTED_CHANGED,
    SELECTED_MISSING,
    SELECTED_NEW,
    day_window,
    expected_current_rows,
    select_essays,
)

UTC = dt.UTC
DAY = dt.date(2026, 11, 20)


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=UTC)


def _hashed(rows: list[tuple[str, dt.datetime | None, dt.datetime | None, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "essay_id": pl.String,
            "submitted_at": pl.Datetime("us", "UTC"),
            "updated_at": pl.Datetime("us", "UTC"),
            "feature_hash": pl.String,
        },
        orient="row",
    )


def test_day_window_is_the_utc_day_half_open() -> None:
    start, end = day_window(DAY)
    assert start == dt.datetime(2026, 11, 20, tzinfo=UTC)
    assert end - start == dt.timedelta(days=1)


def test_a_day_selects_its_new_and_updated_essays_and_essays_whose_features_changed() -> None:
    before = DAY - dt.timedelta(days=3)
    hashed = _hashed(
        [
            ("new", _at(DAY, 9), None, "h1"),
            ("updated", _at(before, 9), _at(DAY, 23), "h2"),
            ("midnight_next_day", _at(DAY + dt.timedelta(days=1), 0), None, "h3"),
            ("old_unchanged", _at(before, 9), None, "h4"),
            ("old_changed", _at(before, 9), None, "h5-new"),
            ("old_never_scored", _at(before, 9), None, "h6"),
            ("no_timestamps", None, None, "h7"),
        ]
    )
    current = pl.DataFrame(
        {
            "essay_id": ["new", "old_unchanged", "old_changed", "old_never_scored"],
            "feature_hash": ["h1", "h4", "h5-old", "h6"],
        }
    )
    selected = select_essays(hashed, current, DAY, expected_rows=1)
    assert dict(selected.select("essay_id", "selected_because").iter_rows()) == {
        "new": SELECTED_NEW,
        "updated": SELECTED_NEW,
        "old_changed": SELECTED_CHANGED,
        "midnight_next_day": SELECTED_MISSING,
        "no_timestamps": SELECTED_MISSING,
    }


def test_an_essay_lacking_a_row_from_a_current_champion_is_selected() -> None:
    """After a promotion (or a rollback to a version that never scored them) essays have fewer
    current rows than there are champions: the next night scores them, no backfill needed."""
    before = DAY - dt.timedelta(days=3)
    hashed = _hashed(
        [
            ("complete", _at(before, 9), None, "h1"),
            ("one_skill_missing", _at(before, 9), None, "h2"),
            ("no_current_rows", _at(before, 9), None, "h3"),
        ]
    )
    current = pl.DataFrame(
        {
            "essay_id": [
                "complete",
                "complete",
                "complete",
                "one_skill_missing",
                "one_skill_missing",
            ],
            "feature_hash": ["h1", "h1", "h1", "h2", "h2"],
        }
    )
    selected = select_essays(hashed, current, DAY, expected_rows=3)
    assert dict(selected.select("essay_id", "selected_because").iter_rows()) == {
        "one_skill_missing": SELECTED_MISSING,
        "no_current_rows": SELECTED_MISSING,
    }
    assert select_essays(hashed, current.head(0), DAY, expected_rows=0).is_empty()
    assert expected_current_rows({"huleedu-cefr": "2", SKILL_MODELS["grammar"]: "1"}) == 2
    assert expected_current_rows({SKILL_MODELS["grammar"]: "1"}) == 1
    assert expected_current_rows({}) == 0


def test_a_backfill_selects_every_essay() -> None:
    hashed = _hashed([("a", None, None, "h1"), ("b", _at(DAY, 1), None, "h2")])
    selected = select_essays(
        hashed, pl.DataFrame({"essay_id": ["a"], "feature_hash": ["h1"]}), None, expected_rows=1
    )
    assert selected["selected_because"].to_list() == [SELECTED_BACKFILL, SELECTED_BACKFILL]


def test_feature_hash_changes_with_text_prompt_and_comparisons_only() -> None:
    essays = pl.DataFrame(
        {
            "essay_id": ["a", "b", "c"],
            "text": ["One text.", "Another text.", "A third."],
            "prompt_text": ["P", "P", None],
        }
    )
    none = pl.DataFrame(
        schema={
            "batch_id": pl.String,
            "essay_a_id": pl.String,
            "essay_b_id": pl.String,
            "winner_essay_id": pl.String,
        }
    )
    base = current_feature_hashes(essays, none, "v1")
    assert base["feature_hash"].n_unique() == 3
    again = current_feature_hashes(essays.reverse(), none, "v1").sort("essay_id")
    assert again["feature_hash"].to_list() == base["feature_hash"].to_list()
    edited = essays.with_columns(
        pl.when(pl.col("essay_id") == "a").then(pl.lit("Edited.")).otherwise("text").alias("text")
    )
    changed = current_feature_hashes(edited, none, "v1")["feature_hash"].to_list()
    assert [x != y for x, y in zip(changed, base["feature_hash"], strict=True)] == [
        True,
        False,
        False,
    ]
    compared = pl.DataFrame(
        {"batch_id": ["b1"], "essay_a_id": ["b"], "essay_b_id": ["c"], "winner_essay_id": ["b"]}
    )
    with_cj = current_feature_hashes(essays, compared, "v1")["feature_hash"].to_list()
    assert [x != y for x, y in zip(with_cj, base["feature_hash"], strict=True)] == [
        False,
        True,
        True,
    ]
    assert current_feature_hashes(essays, none, "v2")["feature_hash"][0] != base["feature_hash"][0]


def test_grade_psi_is_zero_for_equal_shares_and_large_for_a_shift() -> None:
    reference = ["C"] * 50 + ["B"] * 30 + ["E"] * 20
    assert grade_distribution_psi(reference, ["C"] * 5 + ["B"] * 3 + ["E"] * 2) == pytest.approx(0)
    assert grade_distribution_psi(reference, ["A"] * 10 + ["C"] * 10) > 1.0


def test_teacher_agreement_uses_only_ratings_that_arrived_after_scoring() -> None:
    scored_at = _at(DAY, 1)
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 1, 40)
    scores = pl.DataFrame(
        {
            "essay_id": [f"e{i}" for i in range(40)],
            "skill": ["grammar"] * 40,
            "score": score,
            "scored_at": [scored_at] * 40,
        }
    )
    later = [_at(DAY, 5)] * 30 + [_at(DAY, 0)] * 10
    rating = np.where(np.arange(40) < 30, 1 + 4 * score, 5 - 4 * score)
    ratings = pl.DataFrame(
        {
            "essay_id": [f"e{i}" for i in range(40)],
            "skill": ["grammar"] * 40,
            "rating": rating,
            "rated_at": later,
        }
    )
    result = teacher_agreement(scores, ratings).row(0, named=True)
    assert result["n"] == 30
    assert result["r"] == pytest.approx(1.0)


def test_shadow_agreement_counts_exact_and_adjacent_on_matching_features() -> None:
    champion = pl.DataFrame(
        {
            "essay_id": ["a", "b", "c", "d"],
            "feature_hash": ["1", "2", "3", "4"],
            "label": [3, 4, 5, 6],
        }
    )
    challenger = pl.DataFrame(
        {
            "essay_id": ["a", "b", "c", "d"],
            "feature_hash": ["1", "2", "3", "x"],
            "label": [3, 5, 7, 6],
        }
    )
    result = shadow_agreement(champion, challenger, ["essay_id"])
    assert result == {"n": 3, "exact": pytest.approx(1 / 3), "adjacent": pytest.approx(2 / 3)}
