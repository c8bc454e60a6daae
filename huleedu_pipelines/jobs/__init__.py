"""Jobs are asset selections (DESIGN.md §4), not hand-wired graphs."""

import dagster as dg

TRAINING_GROUPS = ("ingest", "labels", "features", "training", "validation")

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups(*TRAINING_GROUPS),
    description="Ingest, labels, features, training, validation and promotion, in order.",
)

__all__ = ["training_job"]
