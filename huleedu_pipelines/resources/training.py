"""Training knobs as a resource, so runs can be configured from the launchpad or settings."""

from pathlib import Path

import dagster as dg

from huleedu_pipelines.modeling.training import TrainingConfig


class TrainingResource(dg.ConfigurableResource):
    """Seed, threads and label thresholds for the training group."""

    seed: int
    n_jobs: int
    min_labels_to_train: int
    high_skill_threshold: float
    models_dir: str
    review_target_share: float
    """Share of the validation split's essays under each model's derived review threshold."""

    def config(self) -> TrainingConfig:
        return TrainingConfig(seed=self.seed, n_jobs=self.n_jobs)

    def bundle_dir(self, model_name: str, run_id: str) -> Path:
        return Path(self.models_dir) / model_name / run_id
