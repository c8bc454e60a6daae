"""Automation: the new-labels sensor and the weekly and nightly schedules."""

from huleedu_pipelines.schedules.schedules import (
    nightly_inference_schedule,
    weekly_retrain_schedule,
)
from huleedu_pipelines.schedules.sensors import RetrainTriggerResource, new_labels_sensor

schedules = [weekly_retrain_schedule, nightly_inference_schedule]
sensors = [new_labels_sensor]

__all__ = [
    "RetrainTriggerResource",
    "new_labels_sensor",
    "nightly_inference_schedule",
    "schedules",
    "sensors",
    "weekly_retrain_schedule",
]
