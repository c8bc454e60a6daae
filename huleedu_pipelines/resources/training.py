"""Training knobs as a resource, so runs can be configured from the launchpad or settings."""

from pathlib import Path

import dagster as dg

from huleedu_pipelines.modeling.families import FAMILIES, REGISTERED_MODELS, models_of
from huleedu_pipelines.modeling.training import TrainingConfig
from huleedu_pipelines.progress import ProgressCallback, active_display, stop_bars


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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In a run the command line executes on a terminal: a bar of the models trained."""
        display = active_display()
        if display is not None and context.instance is not None and context.run_id:
            bar = ModelsTrainedBar(display.bar("training models"))
            context.instance.add_event_listener(context.run_id, bar)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        stop_bars()


class ModelsTrainedBar:
    """Follows a training run's events and reports models trained out of every registered
    model: a model counts once its training step logs it `registered` or `skipped`, and every
    model of a family once the family's training asset is materialized. The bar appears when
    the first training step starts."""

    def __init__(self, report: ProgressCallback) -> None:
        self._report = report
        self._models = {
            family.training_asset: {model.name for model in models_of(family)}
            for family in FAMILIES
        }
        self._done: set[str] = set()

    def __call__(self, entry: dg.EventLogEntry) -> None:
        step = entry.step_key
        if step not in self._models:
            return
        event = entry.dagster_event
        if event is None:
            verb, _, rest = entry.user_message.partition(" ")
            name = rest.split(" ", 1)[0].rstrip(":")
            if verb in ("registered", "skipped") and name in self._models[step]:
                self._done.add(name)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            self._done |= self._models[step]
        elif event.event_type != dg.DagsterEventType.STEP_START:
            return
        self._report(len(self._done), len(REGISTERED_MODELS))
