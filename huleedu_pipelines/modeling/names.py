"""Registered model names, aliases, and what each registered name must hold."""

from dataclasses import dataclass

from huleedu_pipelines.domain.grades import SWEDISH_GRADES
from huleedu_pipelines.domain.ielts import CEFR_LEVELS
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


@dataclass(frozen=True)
class ModelIdentity:
    """What a bundle registered under a name must say about itself, so a bundle registered
    under the wrong name (a CEFR model behind `huleedu-grade-sv`) is refused on load.

    *family* is grade, cefr, band or skill; *task* is ordinal, regression or binary.
    """

    family: str
    task: str
    class_labels: tuple[str, ...]


MODEL_IDENTITIES: dict[str, ModelIdentity] = {
    GRADE_MODEL: ModelIdentity("grade", "ordinal", SWEDISH_GRADES),
    CEFR_MODEL: ModelIdentity("cefr", "ordinal", tuple(CEFR_LEVELS)),
    BAND_MODEL: ModelIdentity("band", "regression", ()),
    **{
        name: ModelIdentity("skill", "binary", SKILL_CLASS_LABELS) for name in SKILL_MODELS.values()
    },
}


class UnknownModelError(ValueError):
    """A name that is not one of the registered HuleEdu model names."""


def identity_of(model_name: str) -> ModelIdentity:
    try:
        return MODEL_IDENTITIES[model_name]
    except KeyError:
        raise UnknownModelError(
            f"{model_name!r} is not a HuleEdu model; the models are {', '.join(ALL_MODELS)}"
        ) from None
