"""Second ratings: an independent second human score of an essay, for human–human agreement.

Where a data set scored some essays twice (two teachers graded it, two examiners banded it),
the second score shows how far two humans agree, the ceiling a model is judged against. It is
kept apart from the labels, in the `second_ratings` table: label derivation takes the median
of every teacher grade and the mean of every skill rating, so a second rating stored as a label
would move the training target and could no longer serve as an independent check of it.

A second rating names the label it repeats (`SECOND_RATING_LABELS`): `grade` (F..A), `band`
(IELTS 0..9 in half bands; the CEFR model is judged on the CEFR level of both bands) or a
skill (rating 1..5 in half steps). CSV imports read it from a column named
`<label>_rater2` (`grade_rater2`, `band_rater2`, `grammar_rater2`). Values obey the rules of
the label they repeat and are stored in that label's notation ("C+", "6.5", "3.5").
"""

from __future__ import annotations

from huleedu_pipelines.domain.grades import grade_to_ordinal
from huleedu_pipelines.domain.ielts import parse_band
from huleedu_pipelines.domain.input_rules import (
    Problem,
    band_problem,
    grade_problem,
    rating_problem,
)
from huleedu_pipelines.domain.skills import SKILLS

SECOND_RATING_LABELS: tuple[str, ...] = ("grade", "band", *SKILLS)
"""The labels a second rating may repeat."""
RATER2_SUFFIX = "_rater2"
"""`grade_rater2` holds the second rater's grade of the essay."""
MAX_SECOND_RATING_CHARS = 16
"""The `second_ratings.value` column's width (a grade, band or rating in its notation)."""


def second_rating_label_problem(label: object) -> Problem | None:
    if label in SECOND_RATING_LABELS:
        return None
    return Problem(
        "unknown_second_rating_label",
        f"{label!r} is not a label a second rating can repeat; the labels are "
        f"{', '.join(SECOND_RATING_LABELS)}",
    )


def second_rating_problem(label: object, value: object) -> Problem | None:
    """Why `value` is not a valid second rating of `label` (the first rating's rules)."""
    problem = second_rating_label_problem(label)
    if problem is not None:
        return problem
    if value is None or (isinstance(value, str) and not value.strip()):
        return Problem("second_rating_missing", f"the second {label} rating is empty")
    text = value.strip() if isinstance(value, str) else value
    if label == "grade":
        return grade_problem(text)
    if label == "band":
        return band_problem(text)
    return rating_problem(label, text)


def canonical_second_rating(label: str, value: object) -> str:
    """A valid second rating in its label's notation: "C+", "6.5" ("<4" is 3.5), "3.5"."""
    if label == "grade":
        return str(value).strip()
    number = parse_band(value) if label == "band" else float(str(value).strip())
    return f"{number:g}"


def second_rating_number(label: str, value: str) -> float:
    """A stored second rating on its label's numeric scale: the grade index 0..7 (F..A), the
    band 0..9, the rating 1..5."""
    if label == "grade":
        return float(grade_to_ordinal(value.strip()))
    return parse_band(value) if label == "band" else float(value)


__all__ = [
    "MAX_SECOND_RATING_CHARS",
    "RATER2_SUFFIX",
    "SECOND_RATING_LABELS",
    "canonical_second_rating",
    "second_rating_label_problem",
    "second_rating_number",
    "second_rating_problem",
]
