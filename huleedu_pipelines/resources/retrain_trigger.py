"""When new labels are worth a retrain: the knobs `new_labels_sensor` reads."""

import dagster as dg
from pydantic import Field


class RetrainTriggerResource(dg.ConfigurableResource):
    """When new labels are worth a retrain (`HULEEDU_RETRAIN_MIN_NEW_LABELS`)."""

    min_new_labels: int = Field(ge=1, description="New labels needed to request a training run.")
    max_future_skew_seconds: float = Field(
        ge=0, description="Labels dated later than now by more than this are not counted."
    )
