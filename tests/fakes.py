"""An in-memory fake of the model registry the services use, and tiny real model bundles.

The fake keeps the registry's contract (versions with tags, aliases, bundle downloads) without
an MLflow store, so service-level tests run in seconds; the bundles are real LightGBM models
exported to ONNX, small enough to train in well under a second each.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS
from huleedu_pipelines.modeling.bundle import MANIFEST_FILE, MANIFEST_TAG, ModelBundle
from huleedu_pipelines.modeling.families import identity_of
from huleedu_pipelines.registry import (
    ONNX_SHA256_TAG,
    RUN_ID_TAG,
    LoggedDataset,
    ModelRegistry,
    ModelVersionNotFoundError,
    ModelVersionRef,
)

FEATURE_VERSION = "test-features-v1"


class FakeRegistry:
    """Registered versions as bundle folders under `root`; aliases in a dict; runs' metrics,
    params and artifacts in dicts. Same methods as `ModelRegistry` (a test keeps them in step)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions: dict[str, dict[str, dict[str, str]]] = {}
        """Tags of every version, by model name and version."""
        self.aliases: dict[tuple[str, str], str] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        """Per run id: `params`, `metrics`, `artifacts` ({artifact path: local copy})."""
        self.fail_set_alias: Exception | None = None

    def register(self, model_name: str, bundle: ModelBundle, alias: str = "challenger") -> str:
        """Register `bundle` as a new version under `alias` (a test's shortcut past training)."""
        version = self._next_version(model_name)
        folder = bundle.save(self.bundle_dir(model_name, version))
        self._add(model_name, version, folder, bundle.onnx_sha256, {}, alias)
        return version

    def bundle_dir(self, model_name: str, version: str) -> Path:
        return self.root / model_name / version

    # ---- the ModelRegistry protocol ---------------------------------------------------

    def log_model_version(
        self,
        *,
        model_name: str,
        run_name: str,
        onnx_bytes: bytes,
        input_example: np.ndarray,
        output_example: dict[str, np.ndarray] | np.ndarray,
        bundle_dir: Path,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        plots: Sequence[Path] = (),
        alias: str = "challenger",
        feature_example: np.ndarray | None = None,
        datasets: Sequence[LoggedDataset] = (),
    ) -> ModelVersionRef:
        version = self._next_version(model_name)
        folder = self.bundle_dir(model_name, version)
        shutil.copytree(bundle_dir, folder)
        onnx_sha256 = hashlib.sha256(onnx_bytes).hexdigest()
        run_id = self._add(model_name, version, folder, onnx_sha256, tags, alias)
        self.runs[run_id]["params"] = dict(params)
        self.runs[run_id]["datasets"] = {d.context: d for d in datasets}
        self.log_run_metrics(run_id, metrics)
        return self.get_version_by_number(model_name, version)

    def get_version_by_number(self, model_name: str, version: str) -> ModelVersionRef:
        try:
            tags = self.versions[model_name][str(version)]
        except KeyError:
            raise ModelVersionNotFoundError(f"{model_name} v{version} is not registered") from None
        aliases = tuple(a for (n, a), v in self.aliases.items() if n == model_name and v == version)
        return ModelVersionRef(model_name, str(version), tags[RUN_ID_TAG], aliases, dict(tags))

    def get_version(self, model_name: str, alias: str) -> ModelVersionRef | None:
        version = self.aliases.get((model_name, alias))
        return None if version is None else self.get_version_by_number(model_name, version)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        if self.fail_set_alias is not None:
            raise self.fail_set_alias
        self.get_version_by_number(model_name, version)
        self.aliases[(model_name, alias)] = str(version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        self.aliases.pop((model_name, alias), None)

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str | None]) -> None:
        self.get_version_by_number(model_name, version)
        stored = self.versions[model_name][str(version)]
        for key, value in tags.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = str(value)

    def list_models(self, prefix: str = "huleedu-") -> list[dict]:
        models = []
        for name in sorted(n for n in self.versions if n.startswith(prefix)):
            aliases = {a: v for (n, a), v in self.aliases.items() if n == name}
            versions = [
                {
                    "version": version,
                    "aliases": sorted(a for a, v in aliases.items() if v == version),
                    "run_id": tags.get(RUN_ID_TAG, ""),
                    "created_at": None,
                    "status": "READY",
                    "tags": dict(tags),
                }
                for version, tags in sorted(self.versions[name].items(), key=lambda e: int(e[0]))
            ]
            models.append(
                {"name": name, "description": "", "aliases": aliases, "versions": versions}
            )
        return models

    def download_bundle(self, model_name: str, version: str, destination: Path) -> Path:
        self.get_version_by_number(model_name, version)
        target = destination / "bundle"
        shutil.copytree(self.bundle_dir(model_name, version), target)
        return target

    def download_onnx(self, model_name: str, version: str) -> bytes:
        self.get_version_by_number(model_name, version)
        return ModelBundle.load(self.bundle_dir(model_name, version)).onnx_model

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.runs[run_id]["metrics"])

    def log_run_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        target = self.root / "runs" / run_id / artifact_path
        shutil.copytree(local_dir, target, dirs_exist_ok=True)
        self.runs[run_id]["artifacts"][artifact_path] = target

    def log_run_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        finite = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        self.runs[run_id]["metrics"].update(finite)

    # ---- internals --------------------------------------------------------------------

    def _next_version(self, model_name: str) -> str:
        return str(len(self.versions.get(model_name, {})) + 1)

    def _add(
        self,
        model_name: str,
        version: str,
        folder: Path,
        onnx_sha256: str,
        tags: dict[str, str],
        alias: str,
    ) -> str:
        run_id = f"{model_name}-run-{version}"
        self.versions.setdefault(model_name, {})[version] = {
            **{k: str(v) for k, v in tags.items()},
            RUN_ID_TAG: run_id,
            MANIFEST_TAG: hashlib.sha256((folder / MANIFEST_FILE).read_bytes()).hexdigest(),
            ONNX_SHA256_TAG: onnx_sha256,
        }
        self.runs.setdefault(run_id, {"params": {}, "metrics": {}, "artifacts": {}})
        self.aliases[(model_name, alias)] = version
        return run_id


def tiny_bundle(model_name: str, seed: int = 0, *, family_of: str | None = None) -> ModelBundle:
    """A real (if meaningless) bundle for `model_name`, trained on random feature rows.

    `family_of` builds the bundle another model would hold (e.g. a CEFR model) while keeping
    `model_name` as its name, to test that loading refuses a bundle of the wrong family.
    """
    import lightgbm as lgb

    from huleedu_pipelines.modeling.ordinal import lightgbm_params, make_ordinal_model

    identity = identity_of(family_of or model_name)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, len(MODEL_FEATURE_COLUMNS)))
    common = {
        "model_name": model_name,
        "task": identity.task,
        "feature_columns": MODEL_FEATURE_COLUMNS,
        "class_labels": identity.class_labels,
        "family": identity.family,
        "feature_version": FEATURE_VERSION,
    }
    if identity.task == "ordinal":
        n_classes = len(identity.class_labels)
        y = np.arange(80) % n_classes
        model = make_ordinal_model(
            "multiclass", n_classes, {"n_estimators": 3, "min_data_in_leaf": 5}, seed=seed, n_jobs=1
        ).fit(X, y)
        return ModelBundle.from_boosters(
            **common,
            boosters=model.boosters,
            booster_kinds=model.booster_kinds,
            decoding=model.decoding_params(),
        )
    objective = "regression" if identity.task == "regression" else "binary"
    y = 4.0 + X[:, 0] if objective == "regression" else (X[:, 0] > 0).astype(int)
    params = lightgbm_params({"min_data_in_leaf": 5}, objective=objective, seed=seed, n_jobs=1)
    booster = lgb.train(params, lgb.Dataset(X, y, params=params), num_boost_round=3)
    return ModelBundle.from_boosters(
        **common,
        boosters=[booster],
        booster_kinds=[objective],
        decoding={"residual_sd": 0.5} if objective == "regression" else None,
    )


def feature_rows(n: int, seed: int = 1):
    """Scoring input: essay_id, student_id, feature_version, feature_hash and random features."""
    import polars as pl

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(MODEL_FEATURE_COLUMNS)))
    ids = [f"essay-{i:03d}" for i in range(n)]
    return pl.DataFrame(
        {
            "essay_id": ids,
            "student_id": [f"s{i % 7}" for i in range(n)],
            "feature_version": [FEATURE_VERSION] * n,
            "feature_hash": [f"hash-{i}" for i in range(n)],
        }
    ).hstack(pl.DataFrame(X, schema=list(MODEL_FEATURE_COLUMNS)))


def register_in_mlflow(
    registry: ModelRegistry, model_name: str, bundle: ModelBundle, folder: Path
) -> str:
    """Register `bundle` as a new version of `model_name` in a real MLflow store (alias
    `challenger`), the way training does; returns the version."""
    features = np.zeros((2, len(bundle.feature_columns)))
    ref = registry.log_model_version(
        model_name=model_name,
        run_name=f"{model_name}-test",
        onnx_bytes=bundle.onnx_model,
        input_example=bundle.booster_input(features).astype(np.float32),
        output_example=bundle.onnx_raw_outputs(features)[0],
        bundle_dir=bundle.save(folder),
        params={},
        metrics={},
        tags={},
    )
    return ref.version
