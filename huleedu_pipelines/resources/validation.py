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
    reports_dir: str
    latent_truth_path: str | None
    """Demo data only: the generator's truth, for the best achievable (oracle) QWK."""

    def thresholds(self) -> GateThresholds:
        names = (field.name for field in dataclasses.fields(GateThresholds))
        return GateThresholds(**{name: getattr(self, name) for name in names})

    @property
    def reports_root(self) -> Path:
        return Path(self.reports_dir)
