"""Registered model names and aliases: plain strings, importable from anywhere.

What each name holds (its family, task, class labels, how it is trained and judged) is the
family table in `modeling.families`.
"""

from huleedu_pipelines.domain.skills import SKILLS

GRADE_MODEL = "huleedu-grade-sv"
CEFR_MODEL = "huleedu-cefr"
BAND_MODEL = "huleedu-ielts-band"
CHALLENGER = "challenger"
CHAMPION = "champion"
SKILL_CLASS_LABELS: tuple[str, ...] = ("not_high", "high")


def skill_model_name(skill: str) -> str:
    return f"huleedu-skill-{skill}"


SKILL_MODELS: dict[str, str] = {skill: skill_model_name(skill) for skill in SKILLS}
ALL_MODELS: tuple[str, ...] = (GRADE_MODEL, CEFR_MODEL, BAND_MODEL, *SKILL_MODELS.values())
