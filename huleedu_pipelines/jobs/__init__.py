"""Jobs are asset selections (DESIGN.md §4), not hand-wired graphs."""

import dagster as dg

from huleedu_pipelines.assets.partitions import daily_partitions

TRAINING_GROUPS = ("ingest", "labels", "features", "training", "validation")
NIGHTLY_GROUPS = ("inference", "monitoring")

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups(*TRAINING_GROUPS),
    description="Ingest, labels, features, training, validation and promotion, in order.",
)

nightly_inference_job = dg.define_asset_job(
    "nightly_inference_job",
    selection=dg.AssetSelection.groups(*NIGHTLY_GROUPS),
    partitions_def=daily_partitions,
    description=(
        "Score one day's new or changed essays with every champion model (challenger shadow "
        "scores beside them) and monitor the predictions against the training reference."
    ),
)

__all__ = ["NIGHTLY_GROUPS", "TRAINING_GROUPS", "nightly_inference_job", "training_job"]
