"""Registered model names and aliases (DESIGN.md §5)."""

from huleedu_pipelines.domain.skills import SKILLS

GRADE_MODEL = "huleedu-grade-sv"
CEFR_MODEL = "huleedu-cefr"
BAND_MODEL = "huleedu-ielts-band"
CHALLENGER = "challenger"
CHAMPION = "champion"


def skill_model_name(skill: str) -> str:
    return f"huleedu-skill-{skill}"


SKILL_MODELS: dict[str, str] = {skill: skill_model_name(skill) for skill in SKILLS}
ALL_MODELS: tuple[str, ...] = (GRADE_MODEL, CEFR_MODEL, BAND_MODEL, *SKILL_MODELS.values())
