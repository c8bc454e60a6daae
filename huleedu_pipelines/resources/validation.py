"""Gate thresholds and report locations for the validation group."""

from pathlib import Path

import dagster as dg

from huleedu_pipelines.modeling.gates import GateThresholds
from huleedu_pipelines.settings import Settings


class ValidationResource(dg.ConfigurableResource):
    """Promotion gates (defaults in modeling.gates.GateThresholds, overridable by HULEEDU_GATE_*
    settings)."""

    min_qwk: float = 0.70
    min_adjacent_agreement: float = 0.90
    max_ece: float = 0.05
    max_grade_share_difference: float = 0.10
    max_p95_single_ms: float = 100.0
    max_batch50_ms: float = 2000.0
    min_skill_pearson_r: float = 0.50
    max_qwk_drop: float = 0.01
    reports_dir: str
    latent_truth_path: str | None = None
    """Demo data only: the generator's truth, for the best achievable (oracle) QWK."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "ValidationResource":
        return cls(
            min_qwk=settings.gate_min_qwk,
            min_adjacent_agreement=settings.gate_min_adjacent_agreement,
            max_ece=settings.gate_max_ece,
            max_grade_share_difference=settings.gate_max_grade_share_difference,
            max_p95_single_ms=settings.gate_max_p95_single_ms,
            max_batch50_ms=settings.gate_max_batch50_ms,
            min_skill_pearson_r=settings.gate_min_skill_pearson_r,
            max_qwk_drop=settings.gate_max_qwk_drop,
            reports_dir=str(settings.reports_dir),
            latent_truth_path=str(settings.home / "demo_latent_truth.parquet"),
        )

    def thresholds(self) -> GateThresholds:
        return GateThresholds(
            min_qwk=self.min_qwk,
            min_adjacent_agreement=self.min_adjacent_agreement,
            max_ece=self.max_ece,
            max_grade_share_difference=self.max_grade_share_difference,
            max_p95_single_ms=self.max_p95_single_ms,
            max_batch50_ms=self.max_batch50_ms,
            min_skill_pearson_r=self.min_skill_pearson_r,
            max_qwk_drop_vs_champion=self.max_qwk_drop,
        )

    @property
    def reports_root(self) -> Path:
        return Path(self.reports_dir)
