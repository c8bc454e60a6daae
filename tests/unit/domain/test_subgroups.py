"""Subgroups as (group, value) pairs: built-in length bands at their exact boundaries, prompt
and source from the essay row, attributes beside them; and the rules attributes obey."""

import polars as pl
import pytest

from huleedu_pipelines.domain.input_rules import attribute_name_problem, attribute_value_problem
from huleedu_pipelines.domain.subgroups import (
    BUILT_IN_GROUPS,
    LENGTH_BANDS,
    length_band,
    subgroup_frame,
)


def words(n: int) -> str:
    """`n` words, with the kinds of whitespace an essay has between them."""
    return "\n\n".join(" ".join(["word"] * 10) for _ in range(n // 10)) + " w" * (n % 10)


@pytest.mark.parametrize(
    ("n_words", "band"),
    [
        (0, "<150"),
        (1, "<150"),
        (149, "<150"),
        (150, "150-299"),
        (299, "150-299"),
        (300, "300-499"),
        (499, "300-499"),
        (500, ">=500"),
        (5000, ">=500"),
    ],
)
def test_length_bands_have_fixed_word_count_boundaries(n_words: int, band: str) -> None:
    assert length_band(n_words) == band
    essays = pl.DataFrame(
        {"essay_id": ["e"], "prompt_id": ["p"], "source": ["school"], "text": [words(n_words)]}
    )
    frame = subgroup_frame(essays)
    assert frame.filter(pl.col("group") == "length_band")["value"].to_list() == [band]


def test_the_bands_are_the_documented_four() -> None:
    assert LENGTH_BANDS == ((0, "<150"), (150, "150-299"), (300, "300-499"), (500, ">=500"))


def test_built_in_groups_and_attributes_in_one_long_frame() -> None:
    essays = pl.DataFrame(
        {
            "essay_id": ["e1", "e2", "e3"],
            "prompt_id": ["p1", None, "p2"],
            "source": ["school", "ielts", "school"],
            "text": [words(120), words(320), None],
            "student_id": ["s1", "s2", "s3"],
        }
    )
    attributes = pl.DataFrame(
        {
            "essay_id": ["e1", "e1", "e3", "gone"],
            "name": ["gender", "school", "gender", "gender"],
            "value": ["Female", "Ekskolan", "Male", "Male"],
        }
    )
    frame = subgroup_frame(essays, attributes)
    assert frame.schema == {"essay_id": pl.String, "group": pl.String, "value": pl.String}
    assert frame.rows() == [
        ("e1", "gender", "Female"),
        ("e1", "length_band", "<150"),
        ("e1", "prompt", "p1"),
        ("e1", "school", "Ekskolan"),
        ("e1", "source", "school"),
        ("e2", "length_band", "300-499"),  # no prompt: no prompt row
        ("e2", "source", "ielts"),
        ("e3", "gender", "Male"),  # no text: no length band
        ("e3", "prompt", "p2"),
        ("e3", "source", "school"),
    ]  # "gone" is not among the essays


def test_an_attribute_named_like_a_built_in_group_is_refused() -> None:
    essays = pl.DataFrame(
        {"essay_id": ["e1"], "prompt_id": ["p1"], "source": ["school"], "text": ["An essay."]}
    )
    attributes = pl.DataFrame({"essay_id": ["e1"], "name": ["source"], "value": ["x"]})
    with pytest.raises(ValueError, match="clash with the built-in groups"):
        subgroup_frame(essays, attributes)


@pytest.mark.parametrize("name", ["gender", "economic_status", "school2", "l1"])
def test_good_attribute_names(name: str) -> None:
    assert attribute_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "lowercase letters, digits and underscores"),
        ("economic status", "(e.g. 'economic_status')"),
        ("Gender", "(e.g. 'gender')"),
        ("first-language", "(e.g. 'first_language')"),
        ("x" * 65, "at most 64"),
        *((group, "is a built-in group") for group in BUILT_IN_GROUPS),
    ],
)
def test_bad_attribute_names_say_why(name: str, fragment: str) -> None:
    problem = attribute_name_problem(name)
    assert problem is not None and problem.rule == "bad_attribute_name"
    assert fragment in problem.detail


def test_attribute_values_are_short_one_line_labels() -> None:
    assert attribute_value_problem("Economically disadvantaged") is None
    assert attribute_value_problem("x" * 100) is None
    too_long = attribute_value_problem("x" * 101)
    assert too_long is not None and too_long.rule == "attribute_value_too_long"
    assert "101 characters; at most 100" in too_long.detail
    line_break = attribute_value_problem("Male\nFemale")
    assert line_break is not None and line_break.rule == "attribute_value_control_characters"
    assert "'\\n' at offset 4" in line_break.detail
    assert attribute_value_problem("  ").rule == "attribute_value_empty"
