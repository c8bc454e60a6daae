"""The scoring API's Prometheus metrics, in a registry of their own (one per app, so two apps
in one process, as in tests, do not collide).

Names follow Prometheus' conventions: `huleedu_serving_` prefix, counters end in `_total`,
durations are histograms in `_seconds`. `model_version` is the version of the grade model that
scored (the headline model; `huleedu_serving_model_info` maps every model to its version), or
`none` when no grade model serves; `alias` is `champion`, or `challenger` for canary traffic.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VERSION = "none"


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter(
            "huleedu_serving_requests_total",
            "HTTP requests by endpoint, status code and the grade model version and alias that "
            "scored (a batch: the champion's).",
            ["endpoint", "status", "model_version", "alias"],
            registry=r,
        )
        self.latency = Histogram(
            "huleedu_serving_request_duration_seconds",
            "Time from request to response, by endpoint and grade model version and alias.",
            ["endpoint", "model_version", "alias"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "huleedu_serving_stage_duration_seconds",
            "Time per scoring request in each stage: features (text features, embedding, CJ) "
            "and models (every model's prediction and explanation).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.essays = Counter(
            "huleedu_serving_essays_total",
            "Essays received, by endpoint, alias and outcome (scored, or the input rule they "
            "broke).",
            ["endpoint", "alias", "outcome"],
            registry=r,
        )
        self.grades = Counter(
            "huleedu_serving_grade_predictions_total",
            "Predicted Swedish grades, by grade and grade model version and alias.",
            ["grade", "model_version", "alias"],
            registry=r,
        )
        self.cefr = Counter(
            "huleedu_serving_cefr_predictions_total",
            "Predicted CEFR levels, by level and CEFR model version and alias.",
            ["cefr", "model_version", "alias"],
            registry=r,
        )
        self.needs_review = Counter(
            "huleedu_serving_needs_review_total",
            "Scored essays flagged for a teacher's review, by grade model version and alias.",
            ["model_version", "alias"],
            registry=r,
        )
        self.model_info = Gauge(
            "huleedu_serving_model_info",
            "1 for every model version serving now, with its alias.",
            ["model_name", "version", "alias"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "huleedu_serving_model_loaded_timestamp_seconds",
            "When the serving version of each model was loaded (Unix time).",
            ["model_name"],
            registry=r,
        )
        self.reloads = Counter(
            "huleedu_serving_model_reloads_total",
            "Model sets swapped in after a champion alias moved (the first load included).",
            registry=r,
        )
        self.reload_failures = Counter(
            "huleedu_serving_model_reload_failures_total",
            "Loads that failed and left the serving models in place, by reason: refused (a "
            "bundle that does not verify, or an alias the product did not record), error (the "
            "registry or a download failed), check_error (the registry or warehouse could "
            "not be read), challenger_refused (a canary challenger that cannot serve: its "
            "traffic goes to the champion).",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge(
            "huleedu_serving_ready",
            "1 when models are loaded and verified and the embedding model is warm.",
            registry=r,
        )
        self.cache_hits = Counter(
            "huleedu_serving_feature_cache_hits_total",
            "Essays whose text features and embedding were reused, by where they were found "
            "(memory: an earlier request; disk: the feature cache the nightly job shares).",
            ["layer"],
            registry=r,
        )
        self.cache_misses = Counter(
            "huleedu_serving_feature_cache_misses_total",
            "Essays whose text features and embedding were computed.",
            registry=r,
        )
        for layer in ("memory", "disk"):
            self.cache_hits.labels(layer)
        for reason in ("refused", "error", "check_error", "challenger_refused"):
            self.reload_failures.labels(reason)

    def set_models(self, models: Iterable[tuple[str, str, str, float]]) -> None:
        """Replace the model info with (name, version, alias, loaded at) of the serving set."""
        self.model_info.clear()
        self.model_loaded.clear()
        for name, version, alias, loaded_at in models:
            self.model_info.labels(name, version, alias).set(1)
            self.model_loaded.labels(name).set(loaded_at)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "NO_VERSION", "ServingMetrics"]
