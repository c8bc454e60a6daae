"""Validating a registered model version and moving the `champion` alias.

One implementation serves the validation/promotion assets and the `registry` CLI: the holdout
is the test split of the last training run (read from the assets' Parquet files), reports are
RSMTool-style Markdown with plots, gates come from `modeling.gates`, and every move of the
champion is recorded in `model_promotions`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain import CEFR_LEVELS, SWEDISH_GRADES
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.bundle import MANIFEST_TAG, ModelBundle
from huleedu_pipelines.modeling.gates import (
    GateResult,
    GateThresholds,
    band_gates,
    cefr_gates,
    grade_gates,
    skill_gates,
    summarize,
)
from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.modeling.onnx_export import parity_report
from huleedu_pipelines.modeling.report import (
    ChampionComparison,
    LatencyReport,
    band_report,
    cefr_report,
    compare_with_champion,
    grade_report,
    measure_latency,
    render_markdown,
    skill_report,
)
from huleedu_pipelines.warehouse.serving import (
    locked_serving_version,
    record_alias_move,
    serving_versions,
)
from huleedu_pipelines.warehouse.tables import model_promotions

SKILL_BY_MODEL = {name: skill for skill, name in SKILL_MODELS.items()}
STORAGE_FILES = {
    "feature_table": "feature_table.parquet",
    "splits": "training_splits.parquet",
    "grade_labels": "swedish_grade_labels.parquet",
    "cefr_labels": "cefr_labels.parquet",
    "skill_labels": "skill_labels.parquet",
    "essays": "raw_essays.parquet",
}


class PromotionError(RuntimeError):
    """A promotion or rollback that cannot be done as asked (the message says why)."""


def model_kind(model_name: str) -> str:
    if model_name == GRADE_MODEL:
        return "grade"
    if model_name == CEFR_MODEL:
        return "cefr"
    if model_name == BAND_MODEL:
        return "band"
    if model_name in SKILL_BY_MODEL:
        return "skill"
    raise ValueError(f"{model_name!r} is not a HuleEdu model name")


@dataclass(frozen=True)
class Holdout:
    """The test split of the last training run with its labels and subgroup columns."""

    feature_table: pl.DataFrame
    splits: pl.DataFrame
    grade_labels: pl.DataFrame
    cefr_labels: pl.DataFrame
    skill_labels: pl.DataFrame
    essays: pl.DataFrame

    @classmethod
    def from_storage(cls, storage_dir: Path) -> Holdout:
        missing = [name for name in STORAGE_FILES.values() if not (storage_dir / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"{storage_dir} lacks {', '.join(missing)}: run `huleedu-pipelines train` first"
            )
        return cls(
            **{key: pl.read_parquet(storage_dir / name) for key, name in STORAGE_FILES.items()}
        )

    def _labelled(self, labels: pl.DataFrame, target: str, split: str) -> pl.DataFrame:
        return (
            labels.drop_nulls(target)
            .join(self.splits.filter(pl.col("split") == split).select("essay_id"), on="essay_id")
            .join(self.feature_table, on="essay_id")
            .join(self.essays.select("essay_id", "prompt_id", "source"), on="essay_id", how="left")
            .sort("essay_id")
        )

    def rows(
        self, model_name: str, high_skill_threshold: float, split: str = "test"
    ) -> pl.DataFrame:
        """Rows of `split` that carry the model's label, with a `target` column."""
        kind = model_kind(model_name)
        if kind == "grade":
            frame = self._labelled(self.grade_labels, "grade_ordinal", split)
            return frame.with_columns(pl.col("grade_ordinal").alias("target"))
        if kind == "cefr":
            frame = self._labelled(self.cefr_labels, "cefr_ordinal", split)
            return frame.with_columns(pl.col("cefr_ordinal").alias("target"))
        if kind == "band":
            frame = self._labelled(self.cefr_labels, "ielts_band", split)
            return frame.with_columns(pl.col("ielts_band").alias("target"))
        rating = f"rating_{SKILL_BY_MODEL[model_name]}"
        frame = self._labelled(self.skill_labels, rating, split)
        return frame.with_columns(
            (pl.col(rating) >= high_skill_threshold).cast(pl.Int64).alias("target"),
            pl.col(rating).alias("rating"),
        )


def load_registered_bundle(
    registry: Any, model_name: str, version: str, *, feature_version: str | None = None
) -> ModelBundle:
    """Download a registered version's bundle and verify it whole before use: the manifest
    against the version's `bundle_manifest_sha256` tag (a missing tag is an error), every file
    against the manifest, and the bundle's identity against `model_name` (and the feature
    version serving builds, when given). Nothing is left on disk; the bundle lives in memory."""
    import tempfile

    from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError
    from huleedu_pipelines.resources.mlflow_registry import ONNX_SHA256_TAG

    ref = registry.get_version_by_number(model_name, version)
    expected = ref.tags.get(MANIFEST_TAG)
    if not expected:
        raise ArtifactIntegrityError(
            f"{model_name} v{version} has no `{MANIFEST_TAG}` tag, so its bundle cannot be "
            "verified and will not be used; retrain it (training registers the tag)"
        )
    with tempfile.TemporaryDirectory(prefix="huleedu-bundle-") as folder:
        bundle = ModelBundle.load(
            registry.download_bundle(model_name, version, Path(folder)),
            expected_manifest_sha256=expected,
        )
    recorded_onnx = ref.tags.get(ONNX_SHA256_TAG)
    if recorded_onnx is not None and recorded_onnx != bundle.onnx_sha256:
        raise ArtifactIntegrityError(
            f"{model_name} v{version}: the bundle's ONNX has sha256 {bundle.onnx_sha256}, the "
            f"registered version records {recorded_onnx}; re-register the model"
        )
    bundle.verify_identity(model_name, feature_version)
    return bundle


def measure_serving_latency(bundles: Sequence[ModelBundle], X: np.ndarray) -> LatencyReport:
    """p50/p95 of one essay and of 50 essays through every bundle's ONNX graph together."""

    def predict_all(rows: np.ndarray) -> None:
        for bundle in bundles:
            bundle.predict(rows)

    return measure_latency(predict_all, X, n_models=len(bundles))


@dataclass
class ModelValidation:
    model_name: str
    version: str
    kind: str
    gates: list[GateResult]
    metrics: dict[str, float]
    report_path: Path
    champion_version: str | None
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return summarize(self.gates)[0]

    @property
    def verdict(self) -> str:
        return summarize(self.gates)[1]

    def gates_json(self) -> str:
        return json.dumps(
            [
                {
                    "gate": g.gate,
                    "passed": g.passed,
                    "value": g.value,
                    "threshold": g.threshold,
                    "comparison": g.comparison,
                    "message": g.message,
                }
                for g in self.gates
            ]
        )


def _parity(kind: str, bundle: ModelBundle, X: np.ndarray) -> dict[str, Any]:
    onnx, native = bundle.predict(X), bundle.predict(X, native=True)
    if kind in ("grade", "cefr"):
        return parity_report(native.probabilities, onnx.probabilities, kind="multiclass")
    if kind == "skill":
        return parity_report(native.score, onnx.score, kind="binary")
    return parity_report(native.score, onnx.score, kind="regression")


def validate_version(
    *,
    model_name: str,
    version: str,
    bundle: ModelBundle,
    holdout: Holdout,
    champion: tuple[str, ModelBundle] | None,
    latency: LatencyReport,
    thresholds: GateThresholds,
    seed: int,
    high_skill_threshold: float,
    reports_dir: Path,
    oracle_qwk: float | None = None,
) -> ModelValidation:
    """Report and gates for one version on the holdout; writes report.md and plots."""
    from huleedu_pipelines.modeling import plots as p

    kind = model_kind(model_name)
    test = holdout.rows(model_name, high_skill_threshold)
    if test.is_empty():
        raise ValueError(f"the holdout has no labelled essays for {model_name}")
    X, y = feature_matrix(test), test["target"].to_numpy()
    prediction = bundle.predict(X)
    parity = _parity(kind, bundle, X)
    folder = reports_dir / model_name / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    comparison: ChampionComparison | None = None
    champion_version = None
    if champion is not None and champion[0] != version:
        champion_version, champion_bundle = champion
        if champion_bundle.feature_columns != bundle.feature_columns:
            raise PromotionError(
                f"champion {model_name} v{champion_version} reads other features than v{version}; "
                "compare them by hand and promote with `registry promote --force --reason`"
            )
        theirs = champion_bundle.predict(X)
    sections: dict[str, Any] = {}
    plots: dict[str, Path] = {}
    if kind == "grade":
        reference = holdout.rows(model_name, high_skill_threshold, "train")["target"].to_numpy()
        report = grade_report(
            y,
            prediction.probabilities,
            prediction.labels,
            class_labels=SWEDISH_GRADES,
            reference_labels=reference,
            subgroups={
                "prompt": test["prompt_id"].fill_null("none").to_list(),
                "source": test["source"].fill_null("none").to_list(),
            },
            seed=seed,
        )
        if champion_version is not None:
            comparison = compare_with_champion(
                y,
                prediction.labels,
                theirs.labels,
                champion_version=champion_version,
                metric="qwk",
                n_classes=len(SWEDISH_GRADES),
                seed=seed,
            )
        gates = grade_gates(report, thresholds, parity=parity, latency=latency, champion=comparison)
        sections["grade"], plots = report, p.grade_plots(report, folder)
    elif kind == "cefr":
        report = cefr_report(y, prediction.probabilities, prediction.labels, seed=seed)
        if champion_version is not None:
            comparison = compare_with_champion(
                y,
                prediction.labels,
                theirs.labels,
                champion_version=champion_version,
                metric="qwk",
                n_classes=len(CEFR_LEVELS),
                seed=seed,
            )
        gates = cefr_gates(report, thresholds, parity=parity, latency=latency, champion=comparison)
        sections["cefr"], plots = report, p.cefr_plots(report, folder)
    elif kind == "band":
        report = band_report(y, prediction.score, seed=seed)
        if champion_version is not None:
            comparison = compare_with_champion(
                y,
                prediction.score,
                theirs.score,
                champion_version=champion_version,
                metric="qwk_half_band",
                seed=seed,
            )
        gates = band_gates(report, thresholds, parity=parity, latency=latency, champion=comparison)
        sections["band"] = report
        plots = {
            "Predicted vs true band": p.band_scatter_plot(
                y, prediction.score, folder / "band_scatter.png"
            )
        }
    else:
        report = skill_report(
            SKILL_BY_MODEL[model_name], y, prediction.score, test["rating"].to_numpy(), seed=seed
        )
        if champion_version is not None:
            comparison = compare_with_champion(
                y,
                prediction.score,
                theirs.score,
                champion_version=champion_version,
                metric="roc_auc",
                seed=seed,
            )
        gates = skill_gates(report, thresholds, parity=parity, champion=comparison)
        sections["skills"] = [report]
        plots = {
            "Calibration": p.skill_calibration_plot([report], folder / "skill_calibration.png")
        }
    markdown = render_markdown(
        f"{model_name} v{version} — validation report",
        model_name=model_name,
        model_version=version,
        gates=gates,
        latency=latency,
        champion=comparison,
        plots=plots,
        relative_to=folder,
        oracle_qwk=oracle_qwk if kind == "grade" else None,
        **sections,
    )
    report_path = p.write_report_bundle(folder, markdown, plots)
    return ModelValidation(
        model_name=model_name,
        version=version,
        kind=kind,
        gates=gates,
        metrics={k: float(v) for k, v in report.metrics.items()},
        report_path=report_path,
        champion_version=champion_version,
        plots=plots,
    )


# --------------------------------------------------------------------------- promotion


def move_alias(
    engine: sa.Engine,
    registry: Any,
    *,
    model_name: str,
    version: str,
    reason: str,
    report_uri: str | None,
    alias: str = CHAMPION,
) -> dict[str, Any] | None:
    """Point `alias` at `version` in the registry and record it (audit row + `serving_models`),
    so the two never disagree; None if both already say `version`.

    The warehouse rows are written first and the alias moves last inside the same transaction:
    if the alias move fails, nothing is recorded; if the commit fails after it, the alias is
    moved back. The previous version is the one the product recorded; an alias that was moved
    outside the product (straight through the MLflow client) is named in the reason.
    """
    moved_from: Any = None  # the registry's version reference before the move
    moved = False
    try:
        with engine.begin() as connection:
            recorded = locked_serving_version(connection, model_name, alias)
            moved_from = registry.get_version(model_name, alias)
            in_registry = moved_from.version if moved_from is not None else None
            if recorded == version and in_registry == version:
                return None
            if in_registry != recorded:
                reason += (
                    f" (the registry's {alias} alias pointed at {_shown(in_registry)} while the "
                    f"product had recorded {_shown(recorded)}: it was moved outside the product)"
                )
            row = record_alias_move(
                connection,
                model_name=model_name,
                alias=alias,
                version=version,
                previous_version=recorded,
                reason=reason,
                report_uri=report_uri,
            )
            registry.set_alias(model_name, alias, version)
            moved = True
    except BaseException:
        if moved:  # the commit failed after the alias moved: put it back
            if moved_from is None:
                registry.delete_alias(model_name, alias)
            else:
                registry.set_alias(model_name, alias, moved_from.version)
        raise
    return row


def _shown(version: str | None) -> str:
    return f"v{version}" if version else "no version"


def move_champion(
    engine: sa.Engine,
    registry: Any,
    *,
    model_name: str,
    version: str,
    reason: str,
    report_uri: str | None,
) -> dict[str, Any] | None:
    """Make `version` champion (see `move_alias`); None if it already is."""
    return move_alias(
        engine,
        registry,
        model_name=model_name,
        version=version,
        reason=reason,
        report_uri=report_uri,
    )


def rollback_champion(engine: sa.Engine, registry: Any, model_name: str) -> dict[str, Any]:
    """Move `champion` back to the version the current one replaced, as recorded in
    `model_promotions`; readers see the restored version's rows at once."""
    with engine.connect() as connection:
        current = serving_versions(connection, CHAMPION).get(model_name)
        if current is None:
            raise PromotionError(f"{model_name} has no recorded champion to roll back")
        promoted = connection.execute(
            sa.select(model_promotions.c.previous_version)
            .where(
                model_promotions.c.model_name == model_name,
                model_promotions.c.version == current,
                model_promotions.c.alias == CHAMPION,
                ~model_promotions.c.reason.startswith("rollback"),
            )
            .order_by(model_promotions.c.promotion_id.desc())
            .limit(1)
        ).first()
    if promoted is None or promoted.previous_version is None:
        raise PromotionError(
            f"{model_name} v{current} replaced no earlier champion; nothing to roll back to"
        )
    target = promoted.previous_version
    row = move_alias(
        engine,
        registry,
        model_name=model_name,
        version=target,
        reason=f"rollback from v{current} to v{target}",
        report_uri=None,
    )
    if row is None:
        raise PromotionError(f"{model_name} v{target} is already champion")
    return row
