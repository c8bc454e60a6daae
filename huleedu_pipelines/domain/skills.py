"""The seven writing skills rated by teachers and scored by the skill models."""

from __future__ import annotations

SKILLS: tuple[str, ...] = (
    "task_response",
    "coherence_cohesion",
    "vocabulary",
    "phraseology",
    "syntax",
    "grammar",
    "conventions",
)

RATING_MIN = 1.0
RATING_MAX = 5.0
DEFAULT_HIGH_SKILL_THRESHOLD = 3.5
"""A mean rating at or above this counts as "high skill" (the skill models' positive class)."""


class InvalidRatingError(ValueError):
    """A skill rating off the 1..5 half-step scale, or for a skill we do not know."""


def check_skill(skill: object) -> str:
    if skill not in SKILLS:
        raise InvalidRatingError(f"skill {skill!r} is not one of {', '.join(SKILLS)}")
    return str(skill)


def check_rating(rating: float) -> float:
    value = float(rating)
    if value != value or not RATING_MIN <= value <= RATING_MAX:
        raise InvalidRatingError(f"rating {rating!r} is outside {RATING_MIN:g}..{RATING_MAX:g}")
    if not (value * 2).is_integer():
        raise InvalidRatingError(f"rating {rating!r} is not on the half-point step")
    return value


def is_high_skill(mean_rating: float, threshold: float = DEFAULT_HIGH_SKILL_THRESHOLD) -> bool:
    return mean_rating >= threshold
