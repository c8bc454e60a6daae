"""Knobs of nightly scoring and prediction monitoring (HULEEDU_* settings)."""

import dagster as dg

from huleedu_pipelines.settings import Settings


class ScoringResource(dg.ConfigurableResource):
    """How the inference group scores: review threshold, explanation scope, shadow scoring."""

    review_confidence_threshold: float = 0.42
    explain_scope: str = "needs_review"
    shadow_scoring: bool = True
    chunk_size: int = 5000
    n_jobs: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> "ScoringResource":
        return cls(
            review_confidence_threshold=settings.review_confidence_threshold,
            explain_scope=settings.explain_scope,
            shadow_scoring=settings.shadow_scoring,
            chunk_size=settings.scoring_chunk_size,
            n_jobs=settings.n_jobs,
        )


class MonitoringResource(dg.ConfigurableResource):
    """Thresholds of the prediction-monitoring checks."""

    psi_warn: float = 0.2
    min_skill_r: float = 0.50
    min_rated_essays: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> "MonitoringResource":
        return cls(
            psi_warn=settings.monitor_psi_warn,
            min_skill_r=settings.monitor_min_skill_r,
            min_rated_essays=settings.monitor_min_rated_essays,
        )
