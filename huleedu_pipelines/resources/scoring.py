"""Knobs of nightly scoring and prediction monitoring (values from `Settings`)."""

import dagster as dg


class ScoringResource(dg.ConfigurableResource):
    """How the inference group scores: review threshold, explanation scope, shadow scoring."""

    review_confidence_threshold: float
    explain_scope: str
    shadow_scoring: bool
    chunk_size: int
    n_jobs: int


class MonitoringResource(dg.ConfigurableResource):
    """Thresholds of the prediction-monitoring checks."""

    psi_warn: float
    min_skill_r: float
    min_rated_essays: int
