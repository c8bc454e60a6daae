"""The Swedish 8-grade scale as an ordinal target."""

from __future__ import annotations

SWEDISH_GRADES: tuple[str, ...] = ("F", "E", "D", "D+", "C", "C+", "B", "A")
"""Grades from lowest to highest; the position is the ordinal label 0..7."""

_ORDINAL_BY_GRADE = {grade: index for index, grade in enumerate(SWEDISH_GRADES)}


class UnknownGradeError(ValueError):
    """A grade that is not on the Swedish F..A scale."""


def is_swedish_grade(value: object) -> bool:
    return isinstance(value, str) and value in _ORDINAL_BY_GRADE


def grade_to_ordinal(grade: str) -> int:
    """F -> 0, ..., A -> 7. Raises UnknownGradeError naming the scale for anything else."""
    try:
        return _ORDINAL_BY_GRADE[grade]
    except (KeyError, TypeError):
        raise UnknownGradeError(
            f"grade {grade!r} is not on the Swedish scale {', '.join(SWEDISH_GRADES)}"
        ) from None


def ordinal_to_grade(ordinal: int) -> str:
    if not 0 <= int(ordinal) < len(SWEDISH_GRADES):
        raise UnknownGradeError(f"ordinal {ordinal!r} is outside 0..{len(SWEDISH_GRADES) - 1}")
    return SWEDISH_GRADES[int(ordinal)]
