"""Gate thresholds and report locations for the validation group."""

import dataclasses
from pathlib import Path

import dagster as dg

from huleedu_pipelines.modeling.gates import GateThresholds


class ValidationResource(dg.ConfigurableResource):
    """Promotion gates (each field is the `gate_<field>` setting, env `HULEEDU_GATE_*`) and where
    reports go."""

    min_qwk: float
    min_adjacent_agreement: float
    max_ece: float
    max_grade_share_difference: float
    max_onnx_share_over_tolerance: float
    max_onnx_share_flipped: float
    max_p95_single_ms: float
    max_batch50_ms: float
    min_skill_pearson_r: float
    max_qwk_drop: float
    max_band_mae: float
    min_cefr_qwk: float
    min_skill_roc_auc: float
    baseline_confidence: float
    max_abs_smd: float
    max_abs_subgroup_smd: float
    min_n_per_group: int
    """Essays a subgroup needs before its SMD is gated, and double-scored essays the
    human–human gate needs (`HULEEDU_MIN_N_PER_GROUP`)."""
    max_qwk_degradation: float
    max_gaming_share: float
    gaming_gate_blocks: bool
    """Whether `max_gaming_share` blocks promotion or warns (`HULEEDU_GAMING_GATE_BLOCKS`)."""
    gaming_warn_only: str
    """Perturbations `max_gaming_share` reports but does not judge (`HULEEDU_GAMING_WARN_ONLY`)."""
    gaming_tolerance_sd: float
    """A gamed copy's score has *risen* when it is this many SDs of the originals' scores above
    the original (`HULEEDU_GAMING_TOLERANCE_SD`)."""
    gaming_essays: int
    """Held-out essays the anti-gaming check perturbs (`HULEEDU_GAMING_ESSAYS`)."""
    reports_dir: str
    latent_truth_path: str | None
    """Demo data only: the generator's truth, for the best achievable (oracle) QWK."""

    def thresholds(self) -> GateThresholds:
        names = (field.name for field in dataclasses.fields(GateThresholds))
        return GateThresholds(**{name: getattr(self, name) for name in names})

    @property
    def reports_root(self) -> Path:
        return Path(self.reports_dir)
