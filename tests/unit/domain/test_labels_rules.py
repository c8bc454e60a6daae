import datetime as dt
import math

import pytest

from huleedu_pipelines.domain import (
    SWEDISH_GRADES,
    InvalidBandError,
    UnknownGradeError,
    cefr_from_band,
    check_band,
    grade_to_ordinal,
    ordinal_to_grade,
    parse_band,
)
from huleedu_pipelines.domain.input_rules import (
    band_problem,
    comparison_problem,
    essay_text_problem,
    future_timestamp_problem,
    grade_problem,
    normalise_student_id,
    rating_problem,
)


@pytest.mark.parametrize(
    ("band", "level"),
    [
        (9.0, "C2"),
        (8.5, "C2"),
        (8.49, "C1"),
        (7.0, "C1"),
        (6.99, "B2"),
        (6.0, "B2"),
        (5.99, "B1"),
        (5.0, "B1"),
        (4.99, "A2"),
        (4.0, "A2"),
        (3.99, "A1"),
        (0.0, "A1"),
    ],
)
def test_cefr_thresholds_on_their_boundaries(band: float, level: str) -> None:
    assert cefr_from_band(band) == level


def test_cefr_from_nan_band_is_an_error() -> None:
    with pytest.raises(InvalidBandError):
        cefr_from_band(math.nan)


def test_grades_map_to_ordinals_in_scale_order() -> None:
    assert [grade_to_ordinal(g) for g in SWEDISH_GRADES] == list(range(8))
    assert [ordinal_to_grade(i) for i in range(8)] == list(SWEDISH_GRADES)
    assert grade_to_ordinal("D+") == 3 and grade_to_ordinal("C+") == 5
    with pytest.raises(UnknownGradeError, match="not on the Swedish scale"):
        grade_to_ordinal("G")


@pytest.mark.parametrize(
    ("text", "band"),
    [("6.5", 6.5), (" 7\n", 7.0), ("<4", 3.5), ("9", 9.0), (5, 5.0), ("\t8.0  ", 8.0)],
)
def test_parse_band_accepts_csv_forms(text: object, band: float) -> None:
    assert parse_band(text) == band


@pytest.mark.parametrize("text", ["abc", "", "6,5", "<5", None])
def test_parse_band_rejects_non_numbers(text: object) -> None:
    with pytest.raises(InvalidBandError):
        parse_band(text)


@pytest.mark.parametrize("band", [9.5, -1.0, 6.25, float("nan")])
def test_check_band_rejects_off_scale(band: float) -> None:
    with pytest.raises(InvalidBandError):
        check_band(band)


def test_rules_name_the_problem() -> None:
    assert essay_text_problem("   \n").rule == "empty_text"
    assert essay_text_problem(None).rule == "empty_text"
    assert essay_text_problem("Hello \x07 bell").rule == "control_characters"
    assert essay_text_problem(b"caf\xff").rule == "invalid_utf8"
    assert essay_text_problem("Tabs\tand\nnewlines are fine.") is None
    assert grade_problem("G").rule == "unknown_grade"
    assert grade_problem("C+") is None
    assert band_problem("abc").rule == "band_not_a_number"
    assert band_problem(9.5).rule == "band_out_of_range"
    assert band_problem(-1).rule == "band_out_of_range"
    assert band_problem("6.5\n") is None
    assert rating_problem("grammar", 7).rule == "rating_out_of_range"
    assert rating_problem("grammar", 3.25).rule == "rating_out_of_range"
    assert rating_problem("spelling", 3).rule == "unknown_skill"
    assert rating_problem("grammar", 4.5) is None
    known = {"a", "b"}
    assert comparison_problem("a", "a", "a", known).rule == "self_comparison"
    assert comparison_problem("a", "zz", "a", known).rule == "unknown_essay_reference"
    assert comparison_problem("a", "b", "c", known).rule == "winner_not_in_pair"
    assert comparison_problem("a", "b", "b", known) is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("s0032", "s0032"),
        ("s0032 ", "s0032"),
        ("S0032", "s0032"),
        ("\tS0032\n", "s0032"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # case folding, not only lower-casing
        (32, "32"),
        ("   ", None),
        ("", None),
        (None, None),
    ],
)
def test_student_ids_are_trimmed_and_case_folded(raw: object, normalised: str | None) -> None:
    assert normalise_student_id(raw) == normalised


@pytest.mark.parametrize(
    "text", ["...!!!", "\u200b\u200b\u200b", "\U0001f600\U0001f44d", "42 + 17 = 59", "— – …"]
)
def test_text_without_letters_is_not_graded(text: str) -> None:
    assert essay_text_problem(text).rule == "no_letters"


@pytest.mark.parametrize("text", ["Ja.", "É", "日本語の作文", "x 1 2 3"])
def test_one_letter_in_any_script_is_enough(text: str) -> None:
    assert essay_text_problem(text) is None


def test_essay_length_limit_is_inclusive() -> None:
    assert essay_text_problem("a" * 10, max_chars=10) is None
    problem = essay_text_problem("a" * 11, max_chars=10)
    assert problem.rule == "text_too_long"
    assert "11 characters" in problem.detail and "limit of 10" in problem.detail
    assert essay_text_problem("a" * 11) is None  # no limit given


def test_future_timestamps_beyond_the_tolerance_are_problems() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    tolerance = dt.timedelta(minutes=5)
    assert future_timestamp_problem("graded_at", None, now, tolerance) is None
    assert future_timestamp_problem("graded_at", now + tolerance, now, tolerance) is None
    assert (
        future_timestamp_problem("graded_at", now - dt.timedelta(days=900), now, tolerance) is None
    )
    late = future_timestamp_problem(
        "graded_at", now + tolerance + dt.timedelta(seconds=1), now, tolerance
    )
    assert late.rule == "timestamp_in_future" and "graded_at 2026-11-30T12:05:01" in late.detail
    naive_2099 = dt.datetime(2099, 1, 1)
    assert future_timestamp_problem("rated_at", naive_2099, now, tolerance).rule == (
        "timestamp_in_future"
    )
