"""Pure domain rules: grade scales, IELTS -> CEFR, skills. No I/O."""

from huleedu_pipelines.domain.grades import (
    SWEDISH_GRADES,
    UnknownGradeError,
    grade_to_ordinal,
    is_swedish_grade,
    ordinal_to_grade,
)
from huleedu_pipelines.domain.ielts import (
    CEFR_LEVELS,
    InvalidBandError,
    cefr_from_band,
    cefr_to_ordinal,
    check_band,
    parse_band,
)
from huleedu_pipelines.domain.skills import (
    DEFAULT_HIGH_SKILL_THRESHOLD,
    SKILLS,
    InvalidRatingError,
    check_rating,
    check_skill,
    is_high_skill,
)

__all__ = [
    "CEFR_LEVELS",
    "DEFAULT_HIGH_SKILL_THRESHOLD",
    "SKILLS",
    "SWEDISH_GRADES",
    "InvalidBandError",
    "InvalidRatingError",
    "UnknownGradeError",
    "cefr_from_band",
    "cefr_to_ordinal",
    "check_band",
    "check_rating",
    "check_skill",
    "grade_to_ordinal",
    "is_high_skill",
    "is_swedish_grade",
    "ordinal_to_grade",
    "parse_band",
]
