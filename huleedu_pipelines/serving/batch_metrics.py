"""The nightly batch's figures as `huleedu_nightly_*` gauges on the scoring API's /metrics.

An exporter, not a Pushgateway: a custom collector reads the figures where the nightly job
already leaves them, at most once per `HULEEDU_NIGHTLY_METRICS_CACHE_SECONDS` (other scrapes
get the cached figures). Two sources, each read on its own:

- **warehouse** (`HULEEDU_WAREHOUSE_URL`): the newest nightly run that wrote champion grade
  predictions (`essay_grade_predictions.run_id`, the Dagster run id): how many essays it
  scored and when it wrote its last row (a night with nothing new to score writes no row, so
  the figures stay those of the run before); and Pearson r of each skill's serving scores
  (`current_skill_assessments`) with teacher ratings that arrived after scoring, the figure the
  `prediction_monitoring` asset checks (same function, `services.monitoring.teacher_agreement`).
- **dagster** (added by `huleedu-pipelines serve`, see `jobs/run_figures.py`; this package
  never imports Dagster): the newest successful `nightly_inference_job` run's end time and
  duration, and the predicted-grade PSI of the newest `prediction_monitoring`. The API needs
  read access to the instance (`DAGSTER_HOME`; its PostgreSQL run storage in production).

A source that cannot be read does not fail the scrape: its figures are left out and
`huleedu_nightly_source_read_failed{source}` is 1 (and the failure is counted in
`huleedu_nightly_source_read_failures_total`). A failed read is cached like a good one, so an
unreachable database costs one connection attempt (5 s at most) per cache period.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from huleedu_pipelines.modeling.names import CHAMPION
from huleedu_pipelines.warehouse.serving import current_skill_assessments
from huleedu_pipelines.warehouse.tables import essay_grade_predictions, skill_ratings

if TYPE_CHECKING:
    from huleedu_pipelines.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Gauge:
    """One sample of a `huleedu_nightly_*` gauge."""

    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _timestamp(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; the warehouse writes UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def read_warehouse_figures(engine: sa.Engine) -> list[Gauge]:
    """Essays the newest nightly run scored, when it wrote its last row, and each skill's r
    with teacher ratings that came after scoring."""
    from huleedu_pipelines.services.monitoring import teacher_agreement
    from huleedu_pipelines.warehouse.queries import read_frame

    p = essay_grade_predictions
    gauges: list[Gauge] = []
    with engine.connect() as connection:
        newest = connection.execute(
            sa.select(p.c.run_id, p.c.scored_at)
            .where(p.c.model_alias == CHAMPION, p.c.run_id.is_not(None))
            .order_by(p.c.scored_at.desc())
            .limit(1)
        ).first()
        if newest is not None:
            run_id, scored_at = newest
            essays, last_written = connection.execute(
                sa.select(
                    sa.func.count(sa.distinct(p.c.essay_id)), sa.func.max(p.c.scored_at)
                ).where(p.c.model_alias == CHAMPION, p.c.run_id == run_id)
            ).one()
            gauges.append(
                Gauge(
                    "huleedu_nightly_essays_scored",
                    "Essays the newest nightly run scored with the champion models.",
                    float(essays),
                )
            )
            gauges.append(
                Gauge(
                    "huleedu_nightly_last_scored_timestamp_seconds",
                    "When the newest nightly run wrote its last champion prediction (Unix time).",
                    _timestamp(last_written or scored_at) or math.nan,
                )
            )
        s = current_skill_assessments
        scores = read_frame(
            connection,
            sa.select(s.c.essay_id, s.c.skill, s.c.score, s.c.scored_at).where(
                s.c.essay_id.in_(sa.select(skill_ratings.c.essay_id).distinct())
            ),
        )
        ratings = read_frame(
            connection,
            sa.select(
                skill_ratings.c.essay_id,
                skill_ratings.c.skill,
                skill_ratings.c.rating,
                skill_ratings.c.rated_at,
            ).where(skill_ratings.c.rating.is_not(None), skill_ratings.c.rated_at.is_not(None)),
        )
    for skill, n, r in teacher_agreement(scores, ratings).iter_rows():
        labels = {"skill": skill}
        gauges.append(
            Gauge(
                "huleedu_nightly_teacher_agreement_essays",
                "Essays with a teacher rating that arrived after scoring, per skill.",
                float(n),
                labels,
            )
        )
        if r is not None:
            gauges.append(
                Gauge(
                    "huleedu_nightly_teacher_agreement_r",
                    "Pearson r of the serving skill scores with teacher ratings that arrived "
                    "after scoring (the prediction_monitoring check's figure).",
                    r,
                    labels,
                )
            )
    return gauges


class RunFigures(Protocol):
    """What `jobs.run_figures.read_nightly_run_figures` returns (duck-typed: no Dagster here)."""

    last_success_end: float | None
    duration_seconds: float | None
    predicted_grade_psi: float | None


def run_gauges(figures: RunFigures) -> list[Gauge]:
    """The gauges of the nightly run's figures from the Dagster instance."""
    gauges = []
    if figures.last_success_end is not None:
        gauges.append(
            Gauge(
                "huleedu_nightly_last_success_timestamp_seconds",
                "When the newest successful nightly_inference_job run ended (Unix time).",
                figures.last_success_end,
            )
        )
    if figures.duration_seconds is not None:
        gauges.append(
            Gauge(
                "huleedu_nightly_duration_seconds",
                "Wall time of the newest successful nightly_inference_job run, start to end.",
                figures.duration_seconds,
            )
        )
    if figures.predicted_grade_psi is not None:
        gauges.append(
            Gauge(
                "huleedu_nightly_drift_psi",
                "PSI of the newest monitored day's predicted grades against the training "
                "split's grades.",
                figures.predicted_grade_psi,
                {"subject": "predicted_grade"},
            )
        )
    return gauges


class NightlyFiguresCollector(Collector):
    """`huleedu_nightly_*` gauges from named sources, each read at most once per
    `cache_seconds`; a source that raises is reported as failed, never raised to the scrape."""

    def __init__(
        self,
        sources: dict[str, Callable[[], list[Gauge]]],
        *,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = sources
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: dict[str, float] = {}
        self._gauges: dict[str, list[Gauge]] = {}
        self._failed: dict[str, bool] = {}
        self._failures: dict[str, int] = dict.fromkeys(sources, 0)

    def add_source(self, name: str, read: Callable[[], list[Gauge]]) -> None:
        with self._lock:
            self._sources = {**self._sources, name: read}
            self._failures.setdefault(name, 0)

    def describe(self) -> Iterable[Metric]:
        return []  # no read at registration; the names depend on what the sources hold

    def _refresh(self, name: str, read: Callable[[], list[Gauge]]) -> None:
        now = self._clock()
        read_at = self._read_at.get(name)
        if read_at is not None and now - read_at < self._cache_seconds:
            return
        self._read_at[name] = now
        try:
            self._gauges[name] = read()
            self._failed[name] = False
        except Exception as error:  # a scrape must not fail: the failure gauge says it
            self._gauges[name] = []
            self._failed[name] = True
            self._failures[name] += 1
            log.warning(
                "nightly figures: the %s source could not be read (%s); its gauges are left "
                "out until it can",
                name,
                type(error).__name__,
                extra={"event": "nightly_metrics_read_failed", "source": name},
            )

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            for name, read in self._sources.items():
                self._refresh(name, read)
            gauges = [g for name in self._sources for g in self._gauges.get(name, [])]
            failed = dict(self._failed)
            failures = dict(self._failures)
        families: dict[str, GaugeMetricFamily] = {}
        for gauge in gauges:
            family = families.get(gauge.name)
            if family is None:
                family = families[gauge.name] = GaugeMetricFamily(
                    gauge.name, gauge.help, labels=sorted(gauge.labels)
                )
            family.add_metric([gauge.labels[k] for k in sorted(gauge.labels)], gauge.value)
        yield from families.values()
        up = GaugeMetricFamily(
            "huleedu_nightly_source_read_failed",
            "1 when the newest read of a nightly-figures source (warehouse, dagster) failed.",
            labels=["source"],
        )
        total = CounterMetricFamily(
            "huleedu_nightly_source_read_failures",
            "Reads of a nightly-figures source that failed.",
            labels=["source"],
        )
        for name in self._sources:
            up.add_metric([name], 1.0 if failed.get(name) else 0.0)
            total.add_metric([name], float(failures[name]))
        yield up
        yield total


def exporter_engine(url: str) -> sa.Engine:
    """The warehouse engine of the exporter: PostgreSQL gives up connecting after 5 s, so a
    scrape does not hang on a database that is down (SQLite shares the app's engine)."""
    from huleedu_pipelines.warehouse.engine import cached_engine

    if url.startswith("sqlite"):
        return cached_engine(url)
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )


def register_nightly_collector(
    registry: CollectorRegistry, settings: Settings
) -> NightlyFiguresCollector:
    """Add the nightly figures of the warehouse `settings` names to `registry` (the scoring
    API's); more sources join through `add_source`."""
    engine = exporter_engine(settings.resolved_warehouse_url)
    collector = NightlyFiguresCollector(
        {"warehouse": lambda: read_warehouse_figures(engine)},
        cache_seconds=settings.nightly_metrics_cache_seconds,
    )
    registry.register(collector)
    return collector


__all__ = [
    "Gauge",
    "NightlyFiguresCollector",
    "RunFigures",
    "read_warehouse_figures",
    "register_nightly_collector",
    "run_gauges",
]
