"""Validating a registered model version and moving the `champion` alias.

One implementation serves the validation/promotion assets and the `registry` CLI: the holdout
is the test split of the last training run (read from the assets' Parquet files), reports are
RSMTool-style Markdown with plots, gates come from `modeling.gates`, and every move of the
champion is recorded in `model_promotions`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain.subgroups import subgroup_frame
from huleedu_pipelines.features.bradley_terry import CJ_FEATURE_COLUMNS
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling import advisories
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.fairness import FairnessReport
from huleedu_pipelines.modeling.families import (
    Family,
    HoldoutEvidence,
    RegisteredModel,
    registered_model,
)
from huleedu_pipelines.modeling.figures import (
    BaselineComparison,
    ChampionComparison,
    LatencyReport,
    measure_latency,
)
from huleedu_pipelines.modeling.gates import (
    BASELINE_GATES,
    GateResult,
    GateThresholds,
    summarize,
)
from huleedu_pipelines.modeling.metrics import (
    AgreementSummary,
    agreement_summary,
    quadratic_weighted_kappa,
)
from huleedu_pipelines.modeling.names import CHAMPION
from huleedu_pipelines.modeling.plots import REPORT_FILENAME
from huleedu_pipelines.modeling.rater_agreement import RaterAgreement
from huleedu_pipelines.modeling.report import (
    HumanMachineAgreement,
    ReportProvenance,
    render_markdown,
)
from huleedu_pipelines.registry import ModelRegistry, load_registered_bundle
from huleedu_pipelines.registry.protocol import (
    CHAMPION_REASON_TAG,
    CHAMPION_REPORT_TAG,
    CHAMPION_SINCE_TAG,
)
from huleedu_pipelines.services.gaming import (
    GamedFeatures,
    GamingCheck,
    GamingReport,
    build_gamed_features,
    essays_to_game,
    gaming_report,
)
from huleedu_pipelines.services.training import code_version
from huleedu_pipelines.warehouse.serving import (
    locked_serving_version,
    record_alias_move,
    serving_versions,
)
from huleedu_pipelines.warehouse.tables import model_promotions

STORAGE_FILES = {
    "feature_table": "feature_table.parquet",
    "splits": "training_splits.parquet",
    "grade_labels": "swedish_grade_labels.parquet",
    "cefr_labels": "cefr_labels.parquet",
    "skill_labels": "skill_labels.parquet",
    "essays": "raw_essays.parquet",
}
OPTIONAL_STORAGE_FILES = {
    "attributes": "essay_attributes.parquet",
    "second_ratings": "second_ratings.parquet",
}
"""Read when present: a home trained before essay attributes existed has none, which means
no attributes (the built-in groups prompt, source and length band are still reported); one
trained before second ratings existed has no double-scored essays (no human–human section)."""


class PromotionError(RuntimeError):
    """A promotion or rollback that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class Holdout:
    """The test split of the last training run with its labels, essays and their attributes.

    `essays` are `raw_essays` rows (`essay_id, prompt_id, source, text`); `attributes` is the
    `essay_attributes` asset (`essay_id, name, value`), or None for no attributes;
    `second_ratings` is the `second_ratings` asset (`essay_id, label, value, ...`), or None
    when no essay was scored twice."""

    feature_table: pl.DataFrame
    splits: pl.DataFrame
    grade_labels: pl.DataFrame
    cefr_labels: pl.DataFrame
    skill_labels: pl.DataFrame
    essays: pl.DataFrame
    attributes: pl.DataFrame | None = None
    second_ratings: pl.DataFrame | None = None

    @classmethod
    def from_storage(cls, storage_dir: Path) -> Holdout:
        missing = [name for name in STORAGE_FILES.values() if not (storage_dir / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"{storage_dir} lacks {', '.join(missing)}: run `huleedu-pipelines train` first"
            )
        optional = {
            key: pl.read_parquet(storage_dir / name)
            for key, name in OPTIONAL_STORAGE_FILES.items()
            if (storage_dir / name).exists()
        }
        return cls(
            **{key: pl.read_parquet(storage_dir / name) for key, name in STORAGE_FILES.items()},
            **optional,
        )

    def subgroups(self, essay_ids: Sequence[str]) -> pl.DataFrame:
        """`essay_id, group, value` for these essays: prompt, source, length band and every
        attribute (`domain.subgroups.subgroup_frame`)."""
        essays = self.essays.filter(pl.col("essay_id").is_in(list(essay_ids)))
        return subgroup_frame(essays, self.attributes)

    def second_ratings_of(self, essay_ids: Sequence[str]) -> pl.DataFrame | None:
        """`essay_id, label, value` of the second ratings of these essays, or None."""
        if self.second_ratings is None:
            return None
        return self.second_ratings.filter(pl.col("essay_id").is_in(list(essay_ids))).select(
            "essay_id", "label", "value"
        )

    def labels_of(self, family: Family) -> pl.DataFrame:
        """The label table `family` learns from (`Family.label_asset`)."""
        tables = {
            "swedish_grade_labels": self.grade_labels,
            "cefr_labels": self.cefr_labels,
            "skill_labels": self.skill_labels,
        }
        return tables[family.label_asset]

    def rows(
        self, model_name: str, high_skill_threshold: float, split: str = "test"
    ) -> pl.DataFrame:
        """Rows of `split` that carry the model's label, with a `target` column (and
        `rating`, for skills) selected as the model's family says."""
        model = registered_model(model_name)
        labels = model.select_labels(self.labels_of(model.family), high_skill_threshold)
        return (
            labels.drop_nulls("target")
            .join(self.splits.filter(pl.col("split") == split).select("essay_id"), on="essay_id")
            .join(self.feature_table, on="essay_id")
            .join(self.essays.select("essay_id", "prompt_id", "source"), on="essay_id", how="left")
            .sort("essay_id")
        )


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
    family: str
    gates: list[GateResult]
    metrics: dict[str, float]
    report_path: Path
    champion_version: str | None
    plots: dict[str, Path] = field(default_factory=dict)
    baselines: BaselineComparison | None = None
    """The model against the trivial and ridge baselines on the same holdout essays."""
    provenance: ReportProvenance | None = None
    """What the report states under its title: data watermark, dataset hash, code, who, when."""

    @property
    def passed(self) -> bool:
        return summarize(self.gates)[0]

    @property
    def verdict(self) -> str:
        return summarize(self.gates)[1]

    def report_row(self, run_id: str | None) -> dict[str, Any]:
        """This validation as a `VALIDATION_SCHEMA` row, what promotion decides on."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "run_id": run_id,
            "passed": self.passed,
            "verdict": self.verdict,
            "report_uri": str(self.report_path),
            "champion_version": self.champion_version,
            "gates": self.gates_json(),
        }

    def gates_json(self) -> str:
        return json.dumps(
            [
                {
                    "gate": g.gate,
                    "passed": g.passed,
                    "value": g.value,
                    "threshold": g.threshold,
                    "comparison": g.comparison,
                    "low": g.low,
                    "high": g.high,
                    "interval_level": g.interval_level,
                    "message": g.message,
                    "blocking": g.blocking,
                }
                for g in self.gates
            ]
        )


def report_folder(reports_dir: Path, model_name: str, version: str, purpose: str) -> Path:
    """A new, empty folder for a report on `version`: `<model>/v<version>/` for the first
    validation (the one training writes), else `<model>/v<version>/<purpose>-<UTC time>/`, so
    a later comparison or promotion never rewrites the report a decision was based on."""
    base = reports_dir / model_name / f"v{version}"
    if purpose == "validation" and not (base / REPORT_FILENAME).exists():
        base.mkdir(parents=True, exist_ok=True)
        return base
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        folder = base / (f"{purpose}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free report folder under {base}")


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
    gamed: GamedFeatures | None = None,
    gaming_tolerance_sd: float = 0.0,
    purpose: str = "validation",
    mlflow_run_id: str | None = None,
    dagster_run_id: str | None = None,
) -> ModelValidation:
    """Report and gates for one version on the holdout; writes report.md and plots into a
    folder of their own (`report_folder`): a written report is never changed.

    What is reported, compared with the champion and with the trivial and ridge baselines
    (fitted on the holdout's training split), gated and drawn is the model's family's
    (`modeling.families`). The report opens with its provenance (`report_provenance`: the
    version's MLflow run and the Dagster run writing it, when given) and every family gets
    RSMTool's human–machine agreement table (`human_machine_agreement`)."""
    from huleedu_pipelines.modeling.plots import fairness_plots, write_report_bundle

    model = registered_model(model_name)
    family = model.family
    test = holdout.rows(model_name, high_skill_threshold)
    if test.is_empty():
        raise ValueError(f"the holdout has no labelled essays for {model_name}")
    X = feature_matrix(test)
    prediction = bundle.predict(X)
    parity = family.parity(bundle, X)
    folder = report_folder(reports_dir, model_name, version, purpose)
    evidence = HoldoutEvidence(
        model=model,
        rows=test,
        prediction=prediction,
        training_targets=lambda: holdout.rows(model_name, high_skill_threshold, "train")[
            "target"
        ].to_numpy(),
        subgroups=holdout.subgroups(test["essay_id"].to_list()),
        second_ratings=holdout.second_ratings_of(test["essay_id"].to_list()),
    )
    report = family.report(evidence, seed)
    fairness = family.fairness(evidence, min_n_per_group=thresholds.min_n_per_group, seed=seed)
    agreement = family.rater_agreement(evidence, min_n=thresholds.min_n_per_group, seed=seed)
    gaming = gaming_check(bundle, family, gamed, gaming_tolerance_sd)
    comparison: ChampionComparison | None = None
    champion_version = None
    if champion is not None and champion[0] != version:
        champion_version, champion_bundle = champion
        if champion_bundle.feature_columns != bundle.feature_columns:
            raise PromotionError(
                f"champion {model_name} v{champion_version} reads other features than v{version}; "
                "compare them by hand and promote with `registry promote --force --reason`"
            )
        comparison = family.compare_with_champion(
            evidence.y_true,
            prediction,
            champion_bundle.predict(X),
            champion_version=champion_version,
            seed=seed,
        )
    baselines = compare_with_baselines(
        model,
        holdout,
        evidence,
        X,
        high_skill_threshold=high_skill_threshold,
        confidence=thresholds.baseline_confidence,
        seed=seed,
    )
    gates = family.gates(
        report,
        thresholds,
        parity=parity,
        latency=latency,
        champion=comparison,
        baselines=baselines,
        fairness=fairness,
        gaming=gaming,
        rater_agreement=agreement,
    )
    plots = family.plots(report, evidence, folder) | fairness_plots(
        fairness, folder, threshold=thresholds.max_abs_subgroup_smd
    )
    provenance = report_provenance(
        holdout,
        model,
        test,
        bundle,
        purpose=purpose,
        high_skill_threshold=high_skill_threshold,
        mlflow_run_id=mlflow_run_id,
        dagster_run_id=dagster_run_id,
    )
    human_machine = human_machine_agreement(family, evidence, fairness.scale)
    markdown = render_markdown(
        f"{model_name} v{version} — validation report",
        model_name=model_name,
        model_version=version,
        gates=gates,
        latency=latency,
        champion=comparison,
        baselines=baselines,
        fairness=fairness,
        gaming=gaming,
        gaming_unjudged=thresholds.gaming_warned,
        rater_agreement=agreement,
        cutpoints=bundle.info.get("cutpoints"),
        plots=plots,
        relative_to=folder,
        oracle_qwk=oracle_qwk if family.reports_oracle_qwk else None,
        provenance=provenance,
        human_machine=human_machine,
        **{family.report_section: report},
    )
    report_path = write_report_bundle(folder, markdown, plots)
    return ModelValidation(
        model_name=model_name,
        version=version,
        family=family.name,
        gates=gates,
        metrics={k: float(v) for k, v in report.metrics.items()}
        | fairness_metrics(fairness)
        | gaming_metrics(gaming)
        | rater_agreement_metrics(agreement)
        | human_machine_metrics(human_machine),
        report_path=report_path,
        champion_version=champion_version,
        plots=plots,
        baselines=baselines,
        provenance=provenance,
    )


def report_operator() -> str:
    """Who generates a report: `HULEEDU_OPERATOR` when set, else the OS user ("unknown" when
    the process has none, e.g. a container without a passwd entry)."""
    from huleedu_pipelines.settings import get_settings

    configured = get_settings().operator
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _as_utc(value: object) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def latest_time(frame: pl.DataFrame | None, columns: Sequence[str]) -> dt.datetime | None:
    """The latest timestamp in any of `columns` of `frame` (naive times read as UTC); None when
    the frame has none of them or they are empty."""
    if frame is None:
        return None
    times = [_as_utc(frame[column].max()) for column in columns if column in frame.columns]
    present = [moment for moment in times if moment is not None]
    return max(present) if present else None


HASHED_COLUMNS = ("essay_id", "target", "rating", "feature_hash")
"""What the dataset hash of a report covers, per holdout row, where the rows have it."""


def holdout_dataset_hash(rows: pl.DataFrame) -> tuple[str, str]:
    """A stable content hash of the holdout rows a report is computed on, and what it covers.

    The sha256 (first 32 hex digits, as the versions' `dataset_hash` tag) of one line per row,
    sorted by essay id: essay id, target, the mean rating (skills) and the feature hash (the
    content hash of the essay and the feature version). Rows without a feature hash hash
    their feature values instead."""
    columns = [column for column in HASHED_COLUMNS if column in rows.columns]
    ordered = rows.sort("essay_id")
    digest = hashlib.sha256()
    for row in ordered.select(columns).iter_rows():
        digest.update(("|".join(str(value) for value in row) + "\n").encode())
    described = [*columns]
    if "feature_hash" not in rows.columns:
        digest.update(np.ascontiguousarray(feature_matrix(ordered)).tobytes())
        described.append("feature values")
    return (
        digest.hexdigest()[:32],
        f"sha256 (first 32 hex digits) of the {rows.height} holdout rows sorted by essay, "
        f"each row as ({', '.join(described)})",
    )


def report_provenance(
    holdout: Holdout,
    model: RegisteredModel,
    test: pl.DataFrame,
    bundle: ModelBundle,
    *,
    purpose: str,
    high_skill_threshold: float,
    mlflow_run_id: str | None = None,
    dagster_run_id: str | None = None,
    now: dt.datetime | None = None,
) -> ReportProvenance:
    """The provenance a report states under its title, from what the holdout records: the
    label and essay watermarks of its rows `test` (and of every split of the training run the
    holdout comes from), their hash, the feature versions, the code and who runs it."""
    labelled = (
        model.select_labels(holdout.labels_of(model.family), high_skill_threshold)
        .drop_nulls("target")
        .join(holdout.splits.select("essay_id"), on="essay_id")
    )
    essays = holdout.essays.filter(pl.col("essay_id").is_in(test["essay_id"].to_list()))
    package, _, commit = code_version().rpartition("+")
    dataset_hash, hashed = holdout_dataset_hash(test)
    versions = (
        tuple(sorted(str(v) for v in test["feature_version"].unique().to_list()))
        if "feature_version" in test.columns
        else ()
    )
    return ReportProvenance(
        purpose=purpose,
        generated_at=now or dt.datetime.now(dt.UTC),
        generated_by=report_operator(),
        package_version=package,
        git_commit=commit,
        dataset_hash=dataset_hash,
        dataset_hash_of=hashed,
        n_rows=test.height,
        feature_version=bundle.feature_version,
        holdout_feature_versions=versions,
        label_watermark=latest_time(test, ("labelled_at",)),
        essay_watermark=latest_time(essays, ("submitted_at", "updated_at")),
        run_label_watermark=latest_time(labelled, ("labelled_at",)),
        mlflow_run_id=mlflow_run_id,
        dagster_run_id=dagster_run_id,
    )


def human_machine_agreement(
    family: Family, evidence: HoldoutEvidence, scores_described: str
) -> HumanMachineAgreement:
    """RSMTool's agreement statistics (`metrics.agreement_summary`) of the model with the human
    scores on every holdout essay, and of the second human and the model with the first on the
    double-scored essays, on the family's rater scale (`Family.rater_scores`: the grade or
    CEFR index, the served half band, the rating-scale score rounded to half points)."""
    raters = family.rater_scores(evidence)
    scale = raters.scale
    if raters.machine is None:
        return HumanMachineAgreement(
            scores_described, scale.description, scale.step, whole=None, note=raters.note
        )

    def summary(human: np.ndarray, other: np.ndarray) -> AgreementSummary:
        codes = scale.to_codes(human), scale.to_codes(other)
        return agreement_summary(human, other, *codes, scale.n_classes)

    first, second, machine = raters.first, raters.second, raters.machine
    both = np.isfinite(first) & np.isfinite(second)
    double = both.any()
    return HumanMachineAgreement(
        scores=scores_described,
        scale=scale.description,
        step=scale.step,
        whole=summary(first, machine),
        human_human=summary(first[both], second[both]) if double else None,
        human_machine_double_scored=summary(first[both], machine[both]) if double else None,
        note=raters.note,
    )


def human_machine_metrics(agreement: HumanMachineAgreement) -> dict[str, float]:
    """Pearson r and R² of the model with the human scores, logged with the validation metrics
    (QWK, agreement and SMD are logged under their family's names already)."""
    if agreement.whole is None:
        return {}
    return {
        "human_machine_pearson_r": agreement.whole.pearson_r,
        "human_machine_r2": agreement.whole.r2,
    }


def gaming_check(
    bundle: ModelBundle, family: Family, gamed: GamedFeatures | None, tolerance_sd: float
) -> GamingReport | None:
    """How each perturbation moves this model's served score (`Family.gaming_score`), and
    which copies its validity advisories send to review."""
    if gamed is None:
        return None
    checked = advisories.stored(bundle.info)

    def score(rows: pl.DataFrame) -> np.ndarray:
        return family.gaming_score(bundle.predict(feature_matrix(rows)))

    def sent_to_review(rows: pl.DataFrame) -> np.ndarray:
        return advisories.advisory_flags(rows, checked)

    return gaming_report(score, gamed, tolerance_sd, sent_to_review)


def gaming_metrics(gaming: GamingReport | None) -> dict[str, float]:
    """Each perturbation's share of risen scores, logged with the validation metrics."""
    if gaming is None:
        return {}
    return {
        f"gaming_{measure}_{e.perturbation}": value
        for e in gaming.effects
        for measure, value in (
            ("share_risen", e.share_risen),
            ("share_sent_to_review", e.share_sent_to_review),
        )
    }


def rater_agreement_metrics(agreement: RaterAgreement) -> dict[str, float]:
    """Human–human and human–machine QWK on the double-scored essays, when there are any."""
    if agreement.n == 0:
        return {}
    metrics = {"double_scored_essays": float(agreement.n)}
    if agreement.human_human is not None:
        metrics["human_human_qwk"] = agreement.human_human.qwk
    if agreement.human_machine is not None:
        metrics["human_machine_qwk_double_scored"] = agreement.human_machine.qwk
        metrics["qwk_degradation"] = agreement.degradation
    return metrics


def fairness_metrics(fairness: FairnessReport) -> dict[str, float]:
    """The fairness figures logged with the version's validation metrics."""
    worst = fairness.worst
    return {
        "fairness_smd": fairness.smd,
        "fairness_pooled_sd": fairness.pooled_sd,
        "fairness_worst_subgroup_abs_smd": abs(worst.smd) if worst is not None else math.nan,
        "fairness_subgroups_gated": float(len(fairness.gated)),
        "length_partial_r": fairness.length_partial_r,
    }


def compare_with_baselines(
    model: RegisteredModel,
    holdout: Holdout,
    evidence: HoldoutEvidence,
    X_test: np.ndarray,
    *,
    high_skill_threshold: float,
    confidence: float,
    seed: int,
) -> BaselineComparison:
    """The trivial and ridge baselines fitted on the holdout's training split and scored on
    its test rows, against the model's predictions there (paired bootstrap over essays).

    With no training rows, or a baseline that cannot be fitted, the comparison says why and
    the baseline gates fail on it: a missing baseline is never a pass."""
    family = model.family
    train = holdout.rows(model.name, high_skill_threshold, "train")
    if train.is_empty():
        return BaselineComparison.not_available(
            family.baseline_metric,
            f"the holdout's training split has no labelled essays for {model.name}, so no "
            "baseline could be fitted",
            n=evidence.rows.height,
            n_train=0,
            confidence=confidence,
        )
    X_train = feature_matrix(train)
    ratings = train["rating"].to_numpy() if "rating" in train.columns else None
    guesses, unfitted = {}, {}
    for name in BASELINE_GATES.values():
        try:
            guesses[name] = family.fit_baseline(
                name, X_train, train["target"].to_numpy(), X_test, ratings_train=ratings, seed=seed
            )
        except (ValueError, np.linalg.LinAlgError) as error:
            unfitted[name] = f"{error} (on {train.height} training essays)"
    comparison = family.compare_with_baselines(
        evidence.y_true,
        evidence.prediction,
        guesses,
        n_train=train.height,
        confidence=confidence,
        seed=seed,
    )
    return replace(comparison, unfitted=unfitted)


# --------------------------------------------------------------------------- validation


VALIDATION_SCHEMA = {
    "model_name": pl.String,
    "version": pl.String,
    "run_id": pl.String,
    "passed": pl.Boolean,
    "verdict": pl.String,
    "report_uri": pl.String,
    "champion_version": pl.String,
    "gates": pl.String,
}
"""One row per validated version; `gates` is JSON (gate, passed, value, threshold...)."""


@dataclass(frozen=True)
class ValidationPolicy:
    """How a version is validated: the gate thresholds, the bootstrap seed, the rating from
    which a skill counts as high, where reports are written and how the anti-gaming check runs
    (None: it does not, and `max_gaming_share` fails saying so)."""

    thresholds: GateThresholds
    seed: int
    high_skill_threshold: float
    reports_dir: Path
    gaming: GamingCheck | None = None
    dagster_run_id: str | None = None
    """The Dagster run validating, named in each report's provenance (None outside a run)."""


def gamed_holdout_features(holdout: Holdout, policy: ValidationPolicy) -> GamedFeatures | None:
    """Features of the perturbed copies of up to `max_essays` test essays, built once and shared
    by every model of the run."""
    if policy.gaming is None:
        return None
    test_ids = holdout.splits.filter(pl.col("split") == "test")["essay_id"].to_list()
    essays = essays_to_game(holdout.essays, test_ids, policy.gaming.max_essays, policy.seed)
    return build_gamed_features(
        essays,
        holdout.feature_table,
        policy.gaming.featurize,
        CJ_FEATURE_COLUMNS,
        policy.seed,
    )


@dataclass(frozen=True)
class ChallengerValidations:
    """The validation of every registered challenger of one training run."""

    results: list[ModelValidation]
    reports: pl.DataFrame
    """`VALIDATION_SCHEMA` rows, one per result."""
    latency: LatencyReport | None
    oracle_qwk: float | None
    gamed: GamedFeatures | None = None
    """The anti-gaming copies every model was scored on (their build time is the check's
    cost)."""


def champion_to_beat(
    registry: ModelRegistry, model_name: str, version: str
) -> tuple[str, ModelBundle] | None:
    """The champion's version and verified bundle, unless there is none or it is `version`."""

    ref = registry.get_version(model_name, CHAMPION)
    if ref is None or ref.version == version:
        return None
    return ref.version, load_registered_bundle(registry, model_name, ref.version)


def oracle_qwk(latent_truth_path: Path | None, test_ids: list[str], labels: pl.DataFrame):
    """Best achievable grade QWK on these essays, when the demo generator's truth is at hand."""
    if latent_truth_path is None or not latent_truth_path.exists():
        return None
    truth = pl.read_parquet(latent_truth_path).select("essay_id", "true_grade_ordinal")
    joined = labels.filter(pl.col("essay_id").is_in(test_ids)).join(truth, on="essay_id")
    if joined.is_empty():
        return None
    return quadratic_weighted_kappa(
        joined["grade_ordinal"].to_numpy(), joined["true_grade_ordinal"].to_numpy(), 8
    )


def validate_challengers(
    model_cards: pl.DataFrame,
    holdout: Holdout,
    registry: ModelRegistry,
    policy: ValidationPolicy,
    *,
    latent_truth_path: Path | None = None,
    log: logging.Logger | None = None,
) -> ChallengerValidations:
    """Validate every version a training run registered (`model_cards` rows with status
    `registered`) against today's champion, and record each report, its figures and the
    verdict on the version's MLflow run and tags.

    Latency is measured once for all the run's bundles together (they serve side by side)."""
    cards = model_cards.filter(pl.col("status") == "registered")
    bundles = {
        card["model_name"]: ModelBundle.load(Path(card["bundle_dir"]))
        for card in cards.iter_rows(named=True)
    }
    test_ids = holdout.splits.filter(pl.col("split") == "test")["essay_id"].to_list()
    X_test = feature_matrix(holdout.feature_table.filter(pl.col("essay_id").is_in(test_ids)))
    latency = measure_serving_latency(list(bundles.values()), X_test) if bundles else None
    oracle = oracle_qwk(latent_truth_path, test_ids, holdout.grade_labels)
    gamed = gamed_holdout_features(holdout, policy) if bundles else None
    if gamed is not None and log is not None:
        log.info(f"anti-gaming copies featurized in {gamed.seconds:.1f} s")
    results, rows = [], []
    for card in cards.iter_rows(named=True):
        name, version = card["model_name"], card["version"]
        result = validate_version(
            model_name=name,
            version=version,
            bundle=bundles[name],
            holdout=holdout,
            champion=champion_to_beat(registry, name, version),
            latency=latency,
            thresholds=policy.thresholds,
            seed=policy.seed,
            high_skill_threshold=policy.high_skill_threshold,
            reports_dir=policy.reports_dir,
            oracle_qwk=oracle,
            gamed=gamed,
            gaming_tolerance_sd=policy.gaming.tolerance_sd if policy.gaming else 0.0,
            mlflow_run_id=card["run_id"],
            dagster_run_id=policy.dagster_run_id,
        )
        if log is not None:
            log.info(f"{name} v{version}: {result.verdict}")
        _record_validation(registry, card["run_id"], result)
        results.append(result)
        rows.append(result.report_row(card["run_id"]))
    reports = pl.DataFrame(rows, schema=VALIDATION_SCHEMA)
    return ChallengerValidations(results, reports, latency, oracle, gamed)


def _record_validation(registry: ModelRegistry, run_id: str, result: ModelValidation) -> None:
    registry.log_run_artifacts(run_id, result.report_path.parent, "validation_report")
    registry.log_run_metrics(
        run_id, {f"holdout_{k}": v for k, v in result.metrics.items() if np.isfinite(v)}
    )
    registry.set_version_tags(
        result.model_name,
        result.version,
        {
            "gate_verdict": "passed" if result.passed else "failed",
            "validation_report": str(result.report_path),
        },
    )


def validate_registered(
    registry: ModelRegistry,
    holdout: Holdout,
    policy: ValidationPolicy,
    model_name: str,
    version: str,
    purpose: str,
) -> ModelValidation:
    """Gates for one registered version on the last training run's holdout, against today's
    champion (what `registry compare` and `registry promote` decide on), in a report of its
    own named after `purpose`. The bundle is the registered one, verified; latency is this
    model's alone on its holdout rows."""

    bundle = load_registered_bundle(registry, model_name, version)
    test = holdout.rows(model_name, policy.high_skill_threshold)
    return validate_version(
        model_name=model_name,
        version=version,
        bundle=bundle,
        holdout=holdout,
        champion=champion_to_beat(registry, model_name, version),
        latency=measure_serving_latency([bundle], feature_matrix(test)),
        thresholds=policy.thresholds,
        seed=policy.seed,
        high_skill_threshold=policy.high_skill_threshold,
        reports_dir=policy.reports_dir,
        gamed=gamed_holdout_features(holdout, policy),
        gaming_tolerance_sd=policy.gaming.tolerance_sd if policy.gaming else 0.0,
        purpose=purpose,
        mlflow_run_id=registry.get_version_by_number(model_name, version).run_id,
        dagster_run_id=policy.dagster_run_id,
    )


def write_comparison(reports_dir: Path, first: ModelValidation, second: ModelValidation) -> Path:
    """A document of its own for `registry compare`: the two versions' metrics side by side on
    the same holdout essays, their verdicts and links to their reports (written for this
    comparison, so neither version's training report is changed)."""
    folder = report_folder(
        reports_dir, first.model_name, f"{first.version}-v{second.version}", "compare"
    )
    lines = [
        f"# {first.model_name}: v{first.version} vs v{second.version}",
        "",
        f"Compared on the last training run's holdout, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"| metric | v{first.version} | v{second.version} | delta |",
        "|---|---:|---:|---:|",
    ]
    for metric, a in first.metrics.items():
        b = second.metrics.get(metric, float("nan"))
        lines.append(f"| {metric} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    lines.append("")
    for result in (first, second):
        link = result.report_path.relative_to(reports_dir / first.model_name).as_posix()
        lines.append(f"- v{result.version}: {result.verdict} ([report](../../{link}))")
    path = folder / REPORT_FILENAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- promotion


def move_alias(
    engine: sa.Engine,
    registry: ModelRegistry,
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
    After the commit, a `champion` move copies the row's reason, time and report onto the
    version's tags and removes them from the version it replaced (`_tag_champion`).
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
    if alias == CHAMPION:
        replaced = {recorded, moved_from.version if moved_from is not None else None}
        _tag_champion(registry, row, replaced - {None, version})
    return row


def _tag_champion(registry: ModelRegistry, row: Mapping[str, Any], replaced: set[str]) -> None:
    """Why the new champion serves and since when, as version tags; gone from the ones it
    replaced (a rollback has no report, so the restored version's old link is removed)."""
    for previous in sorted(replaced):
        registry.set_version_tags(
            row["model_name"],
            previous,
            {CHAMPION_REASON_TAG: None, CHAMPION_SINCE_TAG: None, CHAMPION_REPORT_TAG: None},
        )
    registry.set_version_tags(
        row["model_name"],
        row["version"],
        {
            CHAMPION_REASON_TAG: row["reason"],
            CHAMPION_SINCE_TAG: row["decided_at"].isoformat(),
            CHAMPION_REPORT_TAG: row["report_uri"],
        },
    )


def _shown(version: str | None) -> str:
    return f"v{version}" if version else "no version"


@dataclass(frozen=True)
class PromotionDecision:
    """What promotion did with one validated version."""

    model_name: str
    version: str
    action: str
    """`promoted`, `already champion`, or `kept champion: <verdict>` when a gate failed."""
    previous_version: str | None
    move: dict[str, Any] | None = None
    """The `model_promotions` row, when the alias moved."""

    @property
    def blocked(self) -> bool:
        return self.action.startswith("kept champion")


def promote(
    engine: sa.Engine,
    registry: ModelRegistry,
    report: Mapping[str, Any],
    *,
    by_operator: bool = False,
    force_reason: str | None = None,
) -> PromotionDecision:
    """Make a validated version champion if it passed every gate (or, by an operator, with a
    `force_reason`); the move is recorded with the verdict and the report (see `move_alias`).

    `report` is a `VALIDATION_SCHEMA` row (`ModelValidation.report_row`)."""
    name, version, verdict = report["model_name"], report["version"], report["verdict"]
    if not report["passed"] and force_reason is None:
        return PromotionDecision(
            name, version, f"kept champion: {verdict}", report["champion_version"]
        )
    if force_reason is not None:
        reason = f"forced by operator: {force_reason}; gates: {verdict}"
    elif by_operator:
        reason = f"promoted by operator; {verdict}"
    else:
        reason = verdict
    moved = move_alias(
        engine,
        registry,
        model_name=name,
        version=version,
        reason=reason,
        report_uri=report["report_uri"],
    )
    if moved is None:
        return PromotionDecision(name, version, "already champion", version)
    return PromotionDecision(name, version, "promoted", moved["previous_version"], moved)


def rollback_champion(
    engine: sa.Engine, registry: ModelRegistry, model_name: str
) -> dict[str, Any]:
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
