"""The models the API serves, and their replacement when a `champion` alias moves.

A `ModelSnapshot` is immutable: a request takes the holder's current snapshot once and scores
every essay with it, so a swap never changes models under a request in flight. A background
thread checks, every `interval` seconds, the registry's `champion` aliases and the champions
the product recorded (`serving_models`); when they moved, it loads the changed models with
`services.scoring.load_serving_models` (the nightly job's loading: bundle verified whole, the
model its name says, the feature version this code builds, the version the product recorded),
runs each once, and swaps the new snapshot in with one assignment. A load that fails keeps the
serving snapshot, logs why and counts it; the same targets are not tried again until they
change, unless the failure was an error that may pass (the registry or a download failing).

A promotion moves the alias and records it in one transaction (`services.promotion.
move_alias`), so a check can fall between the two: targets where the registry and the record
disagree are loaded only when a second check still sees them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS
from huleedu_pipelines.modeling.names import ALL_MODELS, CHALLENGER, CHAMPION, GRADE_MODEL
from huleedu_pipelines.registry import ModelRegistry
from huleedu_pipelines.services.scoring import ServingModels, load_serving_models
from huleedu_pipelines.serving.metrics import NO_VERSION, ServingMetrics
from huleedu_pipelines.warehouse.serving import serving_versions

log = logging.getLogger("huleedu_pipelines.serving.models")

Targets = dict[str, tuple[str | None, str | None, str | None]]
"""model name -> (the registry's champion version, the product's recorded champion, the
registry's challenger version when challengers are loaded for the canary, else None)."""


def _key(name: str, alias: str) -> str:
    """How `ModelSnapshot.info` and `ServingModels.problems` name a model under an alias."""
    return name if alias == CHAMPION else f"{name}@{alias}"


class ModelVerificationError(RuntimeError):
    """A loaded bundle did not produce finite predictions of the expected shape."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    alias: str
    loaded_at: dt.datetime
    run_id: str | None
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class ModelSnapshot:
    models: ServingModels
    info: dict[str, ModelInfo]
    targets: Targets
    swapped_at: dt.datetime

    @property
    def grade_version(self) -> str:
        grade = self.models.champions.get(GRADE_MODEL)
        return grade.version if grade is not None else NO_VERSION

    def versions(self) -> dict[str, str]:
        return {name: m.version for name, m in sorted(self.models.champions.items())}

    def version_of(self, name: str, alias: str) -> str:
        """The version of `name` an essay scored under `alias` reads (`NO_VERSION` if none)."""
        model = (self.models.challengers.get(name) if alias == CHALLENGER else None) or (
            self.models.champions.get(name)
        )
        return model.version if model is not None else NO_VERSION


@dataclass
class HolderStatus:
    checks: int = 0
    last_check_at: dt.datetime | None = None
    last_error: str | None = None
    problems: dict[str, str] = field(default_factory=dict)


def verify_bundle_runs(models: ServingModels) -> None:
    """Predict one row with every loaded bundle: the ONNX session and the native boosters
    (for explanations) are built now, in the background, and a bundle that cannot predict
    never serves."""
    row = np.zeros((1, len(MODEL_FEATURE_COLUMNS)))
    for serving in [*models.champions.values(), *models.challengers.values()]:
        prediction = serving.bundle.predict(row)
        _ = serving.bundle.native_boosters
        values = [v for v in (prediction.probabilities, prediction.score) if v is not None]
        if not values or not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in values):
            raise ModelVerificationError(
                f"{serving.name} v{serving.version} gave no finite prediction for a zero row"
            )


class ModelHolder:
    """The serving snapshot and the thread that keeps it following the `champion` aliases."""

    def __init__(
        self,
        registry: Callable[[], ModelRegistry],
        engine: sa.Engine,
        *,
        feature_version: str,
        interval: float,
        metrics: ServingMetrics,
        model_names: Sequence[str] = ALL_MODELS,
        before_first_load: Callable[[], None] | None = None,
        load_challengers: bool = False,
    ) -> None:
        self._registry_factory = registry
        self._registry: ModelRegistry | None = None
        self.engine = engine
        self.feature_version = feature_version
        self.interval = interval
        self.metrics = metrics
        self.model_names = tuple(model_names)
        self.before_first_load = before_first_load
        self.load_challengers = load_challengers
        self.snapshot: ModelSnapshot | None = None
        self.status = HolderStatus()
        self.warm = before_first_load is None
        self._unconfirmed: Targets | None = None
        self._given_up: Targets | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- state

    @property
    def ready(self) -> bool:
        snapshot = self.snapshot
        return self.warm and snapshot is not None and bool(snapshot.models.champions)

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    # ----------------------------------------------------------------- the thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="huleedu-model-reload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        if self.before_first_load is not None:
            try:
                self.before_first_load()
                self.warm = True
            except Exception:
                log.exception("warming up failed; the service stays not ready")
                return
            self.metrics.ready.set(int(self.ready))
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval)

    # ----------------------------------------------------------------- one check

    def read_targets(self) -> Targets:
        registry = self.registry

        def version(name: str, alias: str) -> str | None:
            ref = registry.get_version(name, alias)
            return ref.version if ref is not None else None

        found = {name: version(name, CHAMPION) for name in self.model_names}
        challengers = {
            name: version(name, CHALLENGER) if self.load_challengers else None
            for name in self.model_names
        }
        with self.engine.connect() as connection:
            recorded = serving_versions(connection, CHAMPION)
        return {
            name: (found[name], recorded.get(name), challengers[name]) for name in self.model_names
        }

    def check(self) -> bool:
        """Compare the targets with the serving snapshot; load and swap when they moved.
        True when a new snapshot was swapped in."""
        status = self.status
        status.checks += 1
        status.last_check_at = dt.datetime.now(dt.UTC)
        try:
            targets = self.read_targets()
        except Exception as error:
            self._failed("check_error", f"could not read the champions: {error!r}")
            return False
        current = self.snapshot
        serving = current.targets if current is not None else {}
        changed = [name for name in self.model_names if targets[name] != serving.get(name)]
        if not changed:
            self._unconfirmed = None
            return False
        if targets == self._given_up:
            return False
        disagree = [name for name in changed if targets[name][0] != targets[name][1]]
        if disagree and targets != self._unconfirmed:
            # Perhaps a promotion between its alias move and its commit: look again next time.
            self._unconfirmed = targets
            return False
        self._unconfirmed = None
        return self._load(targets, changed, current)

    def _load(self, targets: Targets, changed: list[str], current: ModelSnapshot | None) -> bool:
        started = time.perf_counter()
        try:
            loaded = load_serving_models(
                self.registry,
                changed,
                recorded_champions={n: t[1] for n, t in targets.items() if t[1] is not None},
                feature_version=self.feature_version,
                shadow=self.load_challengers,
            )
            verify_bundle_runs(loaded)
            info = {
                _key(m.name, m.alias): self._info(m.name, m.version, m.alias)
                for m in [*loaded.champions.values(), *loaded.challengers.values()]
            }
        except ModelVerificationError as error:
            self._given_up = targets
            self._failed("refused", str(error))
            return False
        except Exception as error:
            self._failed("error", f"loading {', '.join(changed)} failed: {error!r}")
            return False
        # A model that has a champion but could not load fails the whole swap once something
        # serves; the first load serves whatever can (as the nightly job does).
        failed = sorted(
            name
            for name in changed
            if targets[name][0] is not None and name not in loaded.champions
        )
        if failed and current is not None:
            self._given_up = targets
            reasons = "; ".join(loaded.problems.get(name, name) for name in failed)
            self._failed("refused", f"kept the serving models: {reasons}")
            return False
        for name in changed:
            problem = loaded.problems.get(_key(name, CHALLENGER))
            if problem is not None:  # canary traffic for this model goes to its champion
                self._failed("challenger_refused", problem)
        self._swap(targets, changed, current, loaded, info, time.perf_counter() - started)
        return True

    def _info(self, name: str, version: str, alias: str) -> ModelInfo:
        ref = self.registry.get_version_by_number(name, version)
        try:
            metrics = self.registry.run_metrics(ref.run_id) if ref.run_id else {}
        except Exception as error:  # headline figures are information, not a reason to refuse
            log.warning(f"could not read the metrics of {name} v{version}: {error!r}")
            metrics = {}
        return ModelInfo(
            name=name,
            version=version,
            alias=alias,
            loaded_at=dt.datetime.now(dt.UTC),
            run_id=ref.run_id,
            metrics={k: v for k, v in sorted(metrics.items()) if k.startswith("test_")},
            tags=dict(ref.tags),
        )

    def _swap(
        self,
        targets: Targets,
        changed: list[str],
        current: ModelSnapshot | None,
        loaded: ServingModels,
        info: Mapping[str, ModelInfo],
        seconds: float,
    ) -> None:
        models = ServingModels()
        kept_info: dict[str, ModelInfo] = {}
        if current is not None:
            for name, serving in current.models.champions.items():
                if name not in changed:
                    models.champions[name] = serving
                    kept_info[name] = current.info[name]
            for name, serving in current.models.challengers.items():
                if name not in changed:
                    models.challengers[name] = serving
                    kept_info[_key(name, CHALLENGER)] = current.info[_key(name, CHALLENGER)]
            models.problems = {
                k: v for k, v in current.models.problems.items() if k.split("@")[0] not in changed
            }
            models.refused = {name for name in current.models.refused if name not in changed}
        models.champions.update(loaded.champions)
        models.challengers.update(loaded.challengers)
        models.problems.update(loaded.problems)
        models.refused |= loaded.refused
        before = current.versions() if current is not None else {}
        snapshot = ModelSnapshot(
            models=models,
            info={**kept_info, **info},
            targets=targets,
            swapped_at=dt.datetime.now(dt.UTC),
        )
        self.snapshot = snapshot  # the swap: one reference assignment
        self._given_up = None
        self.status.last_error = None
        self.status.problems = dict(models.problems)
        self.metrics.reloads.inc()
        self.metrics.set_models(
            (m.name, m.version, m.alias, m.loaded_at.timestamp()) for m in snapshot.info.values()
        )
        self.metrics.ready.set(int(self.ready))
        moves = {
            name: {"from": before.get(name), "to": version}
            for name, version in snapshot.versions().items()
            if before.get(name) != version
        }
        log.info(
            f"serving {len(models.champions)} champions after loading {len(changed)} in "
            f"{seconds:.1f} s",
            extra={"event": "models_swapped", "moved": moves, "load_seconds": round(seconds, 3)},
        )
        for problem in models.problems.values():
            log.error(problem, extra={"event": "model_problem"})

    def _failed(self, reason: str, message: str) -> None:
        self.metrics.reload_failures.labels(reason).inc()
        self.status.last_error = message
        log.error(message, extra={"event": "model_reload_failed", "reason": reason})

    def describe(self) -> dict[str, Any]:
        """What `/v1/models` shows."""
        snapshot = self.snapshot
        status = self.status
        models = []
        if snapshot is not None:
            for alias in (CHAMPION, CHALLENGER):
                serving_set = (
                    snapshot.models.champions if alias == CHAMPION else snapshot.models.challengers
                )
                for name in self.model_names:
                    info = snapshot.info.get(_key(name, alias))
                    serving = serving_set.get(name)
                    if info is None or serving is None:
                        continue
                    models.append(
                        {
                            "model_name": info.name,
                            "version": info.version,
                            "alias": info.alias,
                            "loaded_at": info.loaded_at,
                            "run_id": info.run_id,
                            "metrics": info.metrics,
                            "feature_version": serving.bundle.feature_version,
                        }
                    )
        return {
            "ready": self.ready,
            "models": models,
            "problems": dict(snapshot.models.problems) if snapshot is not None else {},
            "swapped_at": snapshot.swapped_at if snapshot is not None else None,
            "last_check_at": status.last_check_at,
            "last_error": status.last_error,
            "reload_interval_seconds": self.interval,
        }
