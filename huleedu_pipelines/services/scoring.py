"""Nightly batch scoring: which essays to score, the models that score them, and the rows
written to `skill_assessments` and `essay_grade_predictions` (behind the `current_*` views).

An essay is scored when it is new or changed: submitted or updated on the partition day, its
current `feature_hash` differs from the one its current scores carry (new CJ comparisons, a
new feature version), or it lacks a row from a version that is champion now (after a
promotion or a rollback to a version that never scored it). A backfill considers every essay.
For each model (and alias) an essay is skipped when a row for that model version and alias
already carries its current `feature_hash`, so running a day twice, or again after a crash,
writes nothing new.

Rows are written per chunk of essays, one transaction per table and chunk, as upserts on the
tables' unique keys: a killed run leaves whole chunks that the next run skips.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain.input_rules import comparison_problem, essay_text_problem
from huleedu_pipelines.domain.shards import in_shard, shard_of
from huleedu_pipelines.features.build import (
    EMBEDDING_COLUMNS,
    MODEL_FEATURE_COLUMNS,
    ProgressCallback,
    build_features,
    current_feature_hashes,
    feature_matrix,
    feature_version,
)
from huleedu_pipelines.features.embeddings import SentenceEmbedder
from huleedu_pipelines.modeling import advisories, coherence
from huleedu_pipelines.modeling.bundle import BundlePrediction, ModelBundle
from huleedu_pipelines.modeling.families import family_of
from huleedu_pipelines.modeling.names import (
    ALL_MODELS,
    CHALLENGER,
    CHAMPION,
    SKILL_MODELS,
)
from huleedu_pipelines.registry import (
    ModelRegistry,
    ModelVersionNotFoundError,
    load_registered_bundle,
)
from huleedu_pipelines.services.ingest import split_valid_rows
from huleedu_pipelines.warehouse import nightly_selection
from huleedu_pipelines.warehouse.bulk import write_frame
from huleedu_pipelines.warehouse.nightly_selection import GRADE_VERSION_COLUMNS
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT, in_values, read_frame
from huleedu_pipelines.warehouse.serving import CURRENT_VIEWS, serving_versions
from huleedu_pipelines.warehouse.tables import (
    cj_comparison_pairs,
    essay_grade_predictions,
    essays,
    skill_assessments,
)
from huleedu_pipelines.warehouse.writes import QuarantineEntry, write_quarantine

SELECTED_NEW = "new_or_updated"
SELECTED_CHANGED = "features_changed"
SELECTED_MISSING = "missing_current_score"
SELECTED_BACKFILL = "backfill"
EXPLAIN_SCOPES = ("all", "needs_review", "none")
TOP_FEATURES = 5
SKILL_KEY = ("essay_id", "skill", "model_name", "model_version")
GRADE_KEY = ("essay_id", "grade_model_version", "cefr_model_version", "ielts_band_model_version")
Log = Callable[[str], None]
WRITERS = 2


# --------------------------------------------------------------------------- selection


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a partition day in UTC."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def submitted_or_updated_on(day: dt.date) -> pl.Expr:
    """True for essays submitted or updated on the partition day (UTC)."""
    start, end = day_window(day)
    return pl.any_horizontal(
        pl.col(column).is_between(start, end, closed="left").fill_null(False)
        for column in ("submitted_at", "updated_at")
    )


def read_essays(connection: sa.Connection) -> pl.DataFrame:
    """Every essay with its prompt text (what the features depend on)."""
    return read_frame(connection, nightly_selection.essays_with_prompts())


def read_comparisons(connection: sa.Connection) -> pl.DataFrame:
    return read_frame(connection, cj_comparison_pairs)


def current_scores(connection: sa.Connection) -> pl.DataFrame:
    """essay_id and feature_hash of every row readers see now (both `current_*` views)."""
    frames = [
        read_frame(connection, sa.select(view.c.essay_id, view.c.feature_hash))
        for view in CURRENT_VIEWS
    ]
    return pl.concat(frames)


def expected_current_rows(champions: Mapping[str, str]) -> int:
    """Rows a fully scored essay has in the `current_*` views: one per skill model with a
    recorded champion, plus one grade row when any of the grade, CEFR and band models has one."""
    skills = sum(1 for name in SKILL_MODELS.values() if name in champions)
    return skills + int(any(name in champions for name in GRADE_VERSION_COLUMNS))


def select_essays(
    hashed: pl.DataFrame, current: pl.DataFrame, day: dt.date | None, expected_rows: int
) -> pl.DataFrame:
    """The essays to consider, with `selected_because`.

    `hashed` has essay_id, submitted_at, updated_at and the current feature_hash; `current` is
    `current_scores`. An essay is selected when it was submitted or updated on `day`, when a
    current row carries another feature hash, or when it has fewer than `expected_rows`
    current rows. With `day` None (a backfill) every essay is considered.
    """
    if day is None:
        return hashed.with_columns(pl.lit(SELECTED_BACKFILL).alias("selected_because"))
    per_essay = (
        current.join(hashed.select("essay_id", "feature_hash"), on="essay_id", suffix="_now")
        .group_by("essay_id")
        .agg(
            pl.len().alias("current_rows"),
            (pl.col("feature_hash") != pl.col("feature_hash_now")).any().alias("stale"),
        )
    )
    joined = hashed.join(per_essay, on="essay_id", how="left", maintain_order="left")
    return (
        joined.with_columns(
            pl.when(submitted_or_updated_on(day))
            .then(pl.lit(SELECTED_NEW))
            .when(pl.col("stale").fill_null(False))
            .then(pl.lit(SELECTED_CHANGED))
            .when(pl.col("current_rows").fill_null(0) < expected_rows)
            .then(pl.lit(SELECTED_MISSING))
            .otherwise(None)
            .alias("selected_because")
        )
        .drop_nulls("selected_because")
        .drop("current_rows", "stale")
    )


@dataclass(frozen=True)
class ScoringFeatures:
    table: pl.DataFrame
    """essay_id, student_id, selected_because, feature_version, feature_hash and the model
    columns."""
    failures: list[QuarantineEntry]
    embeddings_computed: int
    embeddings_reused: int


def build_scoring_features(
    selected: pl.DataFrame,
    comparisons: pl.DataFrame,
    cache_root: Path,
    embedder: SentenceEmbedder,
    progress: ProgressCallback | None = None,
) -> ScoringFeatures:
    """Features for the selected essays through the training path (`build_features`, cache
    reused). If the batch fails, essays are built one at a time so only the essays that fail
    are quarantined; rows whose embedding is not finite are quarantined too."""
    try:
        build = build_features(
            selected.select("essay_id", "text", "prompt_text"),
            comparisons,
            cache_root,
            embedder,
            progress,
        )
        tables, failures = [build.table], []
        computed, reused = build.embeddings_computed, build.embeddings_reused
    except Exception:
        tables, failures, computed, reused = [], [], 0, 0
        for row in selected.iter_rows(named=True):
            one = pl.DataFrame([row]).select("essay_id", "text", "prompt_text")
            try:
                build = build_features(one, comparisons, cache_root, embedder)
            except Exception as error:
                failures.append(_feature_failure(row, f"{type(error).__name__}: {error}"))
                continue
            tables.append(build.table)
            computed += build.embeddings_computed
            reused += build.embeddings_reused
    table = pl.concat(tables) if tables else None
    if table is None or table.is_empty():
        empty = selected.head(0).select("essay_id", "student_id", "selected_because")
        return ScoringFeatures(
            empty.with_columns(
                pl.lit(None, pl.String).alias("feature_version"),
                pl.lit(None, pl.String).alias("feature_hash"),
                *(pl.lit(None, pl.Float64).alias(c) for c in MODEL_FEATURE_COLUMNS),
            ),
            failures,
            computed,
            reused,
        )
    finite = np.isfinite(table.select(EMBEDDING_COLUMNS).to_numpy()).all(axis=1)
    by_id = {row["essay_id"]: row for row in selected.iter_rows(named=True)}
    for essay_id in table.filter(~pl.Series(finite))["essay_id"].to_list():
        failures.append(
            _feature_failure(by_id[essay_id], "the essay's embedding has non-finite values")
        )
    table = table.filter(pl.Series(finite))
    joined = selected.select("essay_id", "student_id", "selected_because").join(
        table.select("essay_id", "feature_version", "feature_hash", *MODEL_FEATURE_COLUMNS),
        on="essay_id",
    )
    return ScoringFeatures(joined, failures, computed, reused)


def _feature_failure(row: Mapping[str, Any], detail: str) -> QuarantineEntry:
    return QuarantineEntry(
        essays.name,
        str(row["essay_id"]),
        "features_failed",
        f"features could not be computed ({detail}); fix the essay text and update the essay",
        {key: row.get(key) for key in ("essay_id", "student_id", "text")},
    )


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    alias: str
    bundle: ModelBundle


@dataclass
class ServingModels:
    """The champions, the challengers that differ from them, and why any model cannot serve.

    `refused` names the models whose champion exists but may not serve (not verifiable, not
    the model its name says, or not the version the product recorded): they write no rows.
    """

    champions: dict[str, ServingModel] = field(default_factory=dict)
    challengers: dict[str, ServingModel] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)


def load_serving_models(
    registry: ModelRegistry,
    model_names: Sequence[str] = ALL_MODELS,
    *,
    recorded_champions: Mapping[str, str],
    feature_version: str | None = None,
    shadow: bool = True,
) -> ServingModels:
    """Champion (and, with `shadow`, differing challenger) bundles from the registry.

    A champion serves only if the registry's `champion` alias points at the version the
    product recorded (`recorded_champions`, from `serving_models`: an alias moved straight
    through the MLflow client is refused, and the message says how to record it) and its
    bundle verifies whole and is the model its name says (`load_registered_bundle`). A model
    without a champion, or refused, is recorded in `problems` with what to do; the other
    models still serve.
    """
    from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError

    models = ServingModels()
    for name in model_names:
        champion = registry.get_version(name, CHAMPION)
        recorded = recorded_champions.get(name)
        if champion is None and recorded is None:
            models.problems[name] = (
                f"{name} has no `{CHAMPION}` version, so it scored nothing: run training_job "
                f"(or `huleedu-pipelines train`) until one passes the gates, or promote a "
                f"version with `huleedu-pipelines registry promote {name} VERSION`"
            )
            continue
        found = champion.version if champion is not None else None
        if found != recorded:
            models.refused.add(name)
            fix = (
                f"record the move with `huleedu-pipelines registry promote {name} {found} "
                "--force --reason ...`"
                if found
                else f"move the alias back to v{recorded}"
            )
            models.problems[name] = (
                f"{name}: the registry's `{CHAMPION}` alias points at "
                f"{f'v{found}' if found else 'no version'} but the product recorded "
                f"{f'v{recorded}' if recorded else 'none'} (serving_models): the alias was moved "
                f"outside the product, so it scores nothing; {fix}"
            )
            continue
        refs = [(CHAMPION, champion)]
        challenger = registry.get_version(name, CHALLENGER) if shadow else None
        if challenger is not None and challenger.version != champion.version:
            refs.append((CHALLENGER, challenger))
        for alias, ref in refs:
            key = name if alias == CHAMPION else f"{name}@{alias}"
            try:
                bundle = load_registered_bundle(
                    registry, name, ref.version, feature_version=feature_version
                )
                if bundle.feature_columns != list(MODEL_FEATURE_COLUMNS):
                    raise ArtifactIntegrityError(
                        f"{name} v{ref.version} reads other feature columns than this code "
                        "builds (it was trained by another feature version); retrain it"
                    )
            except (ArtifactIntegrityError, FileNotFoundError, ModelVersionNotFoundError) as error:
                if alias == CHAMPION:
                    models.refused.add(name)
                    models.problems[key] = f"{name} {alias} v{ref.version} cannot serve: {error}"
                    break
                models.problems[key] = f"shadow scoring skipped: {error}"
                continue
            target = models.champions if alias == CHAMPION else models.challengers
            target[name] = ServingModel(name, ref.version, alias, bundle)
    return models


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class GradeModels:
    """The three models behind one `essay_grade_predictions` row, for one alias, and the skill
    models its coherence check reads (`modeling.coherence`; not part of the row's key)."""

    alias: str
    grade: ServingModel | None
    cefr: ServingModel | None
    band: ServingModel | None
    skills: tuple[ServingModel, ...] = ()

    @property
    def members(self) -> list[ServingModel]:
        return [m for m in (self.grade, self.cefr, self.band) if m is not None]

    def versions(self) -> dict[str, str]:
        return {
            column: next((m.version for m in self.members if m.name == name), "")
            for name, column in GRADE_VERSION_COLUMNS.items()
        }


def grade_targets(models: ServingModels) -> list[GradeModels]:
    """The champion trio, and a shadow trio when any of the three has a differing challenger
    (models without one are taken from the champions, as they would serve after promotion).

    None when any of the three is refused: a grade row without its refused model would be a
    wrong answer, so nothing is written until the model serves again."""
    refused = models.refused.intersection(GRADE_VERSION_COLUMNS)
    if refused:
        models.problems["essay_grade_predictions"] = (
            f"no essay_grade_predictions rows were written: {', '.join(sorted(refused))} "
            "is refused (see its problem)"
        )
        return []
    champions = GradeModels(
        CHAMPION,
        *(models.champions.get(name) for name in GRADE_VERSION_COLUMNS),
        skills=tuple(models.champions[n] for n in SKILL_MODELS.values() if n in models.champions),
    )
    targets = [champions] if champions.members else []
    if any(name in models.challengers for name in GRADE_VERSION_COLUMNS):

        def shadow(name: str) -> ServingModel | None:
            return models.challengers.get(name) or models.champions.get(name)

        targets.append(
            GradeModels(
                CHALLENGER,
                *(shadow(name) for name in GRADE_VERSION_COLUMNS),
                skills=tuple(
                    m for m in (shadow(n) for n in SKILL_MODELS.values()) if m is not None
                ),
            )
        )
    return targets


def skill_targets(models: ServingModels) -> list[tuple[str, ServingModel]]:
    targets = []
    for skill, name in SKILL_MODELS.items():
        for serving in (models.champions.get(name), models.challengers.get(name)):
            if serving is not None:
                targets.append((skill, serving))
    return targets


@dataclass(frozen=True)
class Needs:
    """Per feature row: must it be scored for a target, and is there no row under its key."""

    score: np.ndarray
    new: np.ndarray


def _needs(
    connection: sa.Connection,
    features: pl.DataFrame,
    table: sa.Table,
    alias: str,
    key_filter: Sequence[Any],
) -> Needs:
    """A row must be (re)written unless one under its key already has this alias and the
    current feature_hash; `new` marks rows with no row under the key at all."""
    where = list(key_filter)
    if features.height <= IN_LIST_LIMIT:  # a night's few essays: use the unique key's index
        where.append(in_values(connection, table.c.essay_id, features["essay_id"].to_list()))
    existing = read_frame(
        connection,
        sa.select(table.c.essay_id, table.c.feature_hash, table.c.model_alias).where(*where),
    ).rename({"feature_hash": "stored_hash", "model_alias": "stored_alias"})
    joined = features.select("essay_id", "feature_hash").join(
        existing, on="essay_id", how="left", maintain_order="left"
    )
    new = joined["stored_hash"].is_null()
    current = (joined["stored_hash"] == joined["feature_hash"]) & (joined["stored_alias"] == alias)
    return Needs(score=(new | ~current.fill_null(False)).to_numpy(), new=new.to_numpy())


def grade_needs(connection: sa.Connection, features: pl.DataFrame, target: GradeModels) -> Needs:
    table = essay_grade_predictions
    key = [table.c[column] == version for column, version in target.versions().items()]
    return _needs(connection, features, table, target.alias, key)


def skill_needs(connection: sa.Connection, features: pl.DataFrame, model: ServingModel) -> Needs:
    table = skill_assessments
    key = [table.c.model_name == model.name, table.c.model_version == model.version]
    return _needs(connection, features, table, model.alias, key)


# --------------------------------------------------------------------------- rows


class ChunkPredictions:
    """Each serving model's predictions on one chunk's feature rows, computed once: the grade
    row's coherence check reads the skill models' predictions, and the skill rows reuse them.
    The time each model takes is added to `timings` under `<name>@<alias>`."""

    def __init__(self, X: np.ndarray, timings: dict[str, float]) -> None:
        self.X = X
        self.timings = timings
        self._predictions: dict[tuple[str, str], BundlePrediction] = {}

    def __call__(self, model: ServingModel) -> BundlePrediction:
        key = (model.name, model.version)
        if key not in self._predictions:
            started = time.perf_counter()
            self._predictions[key] = model.bundle.predict(self.X)
            timing = f"{model.name}@{model.alias}"
            self.timings[timing] = self.timings.get(timing, 0.0) + time.perf_counter() - started
        return self._predictions[key]


def _prediction_rows(prediction: BundlePrediction, keep: np.ndarray) -> BundlePrediction:
    """The rows of `prediction` where `keep` is True."""
    return BundlePrediction(
        *(
            None if value is None else value[keep]
            for value in (
                prediction.labels,
                prediction.probabilities,
                prediction.score,
                prediction.confidence,
                prediction.rating_scale_score,
            )
        )
    )


def _json_probabilities(labels: Sequence[str], probabilities: np.ndarray) -> pl.Series:
    """Each row's probabilities as a JSON object keyed by class label, rounded to 6 places
    (encoded column-wise by polars: per-row json.dumps was a third of the scoring time)."""
    frame = pl.DataFrame(np.round(probabilities, 6), schema=list(labels), orient="row")
    return frame.select(pl.struct(pl.all()).struct.json_encode()).to_series()


def _explain_method(method: str | None) -> str:
    """`method`, or the configured `HULEEDU_EXPLAIN_METHOD` when None, so that the nightly job
    and the API explain the same way without each caller passing it. The setting is read
    once per process, as the API reads its settings at start: building `Settings` costs
    milliseconds, which a single essay's explanation must not pay."""
    return method if method is not None else _configured_explain_method()


_CONFIGURED: dict[str, str] = {}


def _configured_explain_method() -> str:
    if "explain_method" not in _CONFIGURED:
        from huleedu_pipelines.settings import get_settings

        _CONFIGURED["explain_method"] = get_settings().explain_method
    return _CONFIGURED["explain_method"]


def top_contributions(
    bundle: ModelBundle,
    X: np.ndarray,
    k: int = TOP_FEATURES,
    n_jobs: int = 1,
    method: str | None = None,
) -> list[list[dict[str, float | str]]]:
    """Per row, the `k` booster inputs with the largest absolute contribution to the first
    booster's raw output (before calibration), largest first: Saabas path attribution by
    default or LightGBM's TreeSHAP (`HULEEDU_EXPLAIN_METHOD`; `modeling.explanations`).
    Inputs that contribute nothing are left out, so a model using few features lists fewer.
    For a stacked model the inputs are its handcrafted features and the two ridge predictions
    (`ridge_embeddings`: what the essay's meaning says; `ridge_handcrafted`)."""
    from huleedu_pipelines.modeling.explanations import top_k

    contributions = bundle.contributions(X, method=_explain_method(method), n_jobs=n_jobs)
    return top_k(contributions, bundle.booster_feature_names, k)


def grade_frame(
    target: GradeModels,
    chunk: pl.DataFrame,
    X: np.ndarray,
    *,
    review_threshold: float,
    run_id: str | None,
    scored_at: dt.datetime,
    timings: dict[str, float],
    predictions: ChunkPredictions | None = None,
) -> pl.DataFrame:
    """One `essay_grade_predictions` row per row of `chunk` (JSON columns as text).

    `needs_review` is set, with every reason in `review_reasons`, when the grade model's
    confidence is below its threshold (the one its bundle recorded at training; bundles
    without one use `review_threshold`), when the models disagree by `MIN_LEVEL_GAP` or more
    CEFR levels (`modeling.coherence`: grade, CEFR, the band's CEFR and the profile of
    `target.skills`), when a validity advisory of any of those models finds the essay unlike
    every essay they were trained on (`modeling.advisories`), and always when there is no
    grade model to be confident about."""
    predict = predictions if predictions is not None else ChunkPredictions(X, timings)
    n = chunk.height
    columns: dict[str, pl.Series] = {
        "essay_id": chunk["essay_id"],
        "model_alias": pl.Series([target.alias] * n, dtype=pl.String),
        "grade": pl.Series([None] * n, dtype=pl.String),
        "grade_probabilities": pl.Series([None] * n, dtype=pl.String),
        "confidence": pl.Series([None] * n, dtype=pl.Float64),
        "cefr": pl.Series([None] * n, dtype=pl.String),
        "cefr_probabilities": pl.Series([None] * n, dtype=pl.String),
        "ielts_band": pl.Series([None] * n, dtype=pl.Float64),
    }
    reasons: list[list[str]] = [[] for _ in range(n)]
    outputs: list[coherence.ModelOutput] = []
    if target.grade is None:
        for essay_reasons in reasons:
            essay_reasons.append("no grade model serves")
    for model in target.members:
        prediction = predict(model)
        outputs.append(coherence.ModelOutput.of(model.bundle, prediction))
        labels = model.bundle.class_labels
        family = family_of(model.name)
        column = str(family.prediction_column)
        if family.task == "regression":
            columns[column] = pl.Series(prediction.labels, dtype=pl.Float64)
        else:
            names = np.asarray(labels, dtype=object)[prediction.labels.astype(np.int64)]
            columns[column] = pl.Series(names.tolist(), dtype=pl.String)
            columns[f"{column}_probabilities"] = _json_probabilities(
                labels, prediction.probabilities
            ).alias(f"{column}_probabilities")
        if family.confidence_decides_review:
            columns["confidence"] = pl.Series(prediction.confidence, dtype=pl.Float64)
            stored = coherence.stored_review_threshold(model.bundle.info)
            threshold = review_threshold if stored is None else stored
            for row in np.flatnonzero(prediction.confidence < threshold):
                reasons[row].append(
                    coherence.low_confidence_reason(
                        float(prediction.confidence[row]), threshold, family.name
                    )
                )
    outputs += [coherence.ModelOutput.of(m.bundle, predict(m)) for m in target.skills]
    pairs = coherence.compared_pairs(coherence.level_views(outputs))
    for essay_reasons, disagreements in zip(
        reasons, coherence.incoherence_reasons(pairs, n), strict=True
    ):
        essay_reasons.extend(disagreements)
    checked = advisories.strictest(
        [a for m in (*target.members, *target.skills) for a in advisories.stored(m.bundle.info)]
    )
    for essay_reasons, unlike in zip(
        reasons, advisories.advisory_reasons(chunk, checked), strict=True
    ):
        essay_reasons.extend(unlike)
    columns["needs_review"] = pl.Series([bool(r) for r in reasons], dtype=pl.Boolean)
    columns["review_reasons"] = pl.Series(
        ["; ".join(r) if r else None for r in reasons], dtype=pl.String
    )
    versions = {name: pl.lit(value, pl.String) for name, value in target.versions().items()}
    return pl.DataFrame(columns).with_columns(
        **versions,
        feature_hash=chunk["feature_hash"],
        run_id=pl.lit(run_id, pl.String),
        scored_at=pl.lit(scored_at, pl.Datetime("us", "UTC")),
    )


def skill_frame(
    skill: str,
    model: ServingModel,
    chunk: pl.DataFrame,
    X: np.ndarray,
    explain: np.ndarray,
    *,
    run_id: str | None,
    scored_at: dt.datetime,
    n_jobs: int,
    timings: dict[str, float],
    prediction: BundlePrediction | None = None,
    explain_method: str | None = None,
    explain_timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """One `skill_assessments` row per row of `chunk`; `top_features` (JSON text, as
    `top_contributions` lists them) only where `explain` is True. `prediction`: the model's
    on these rows, when already computed. The time is added to `timings` under
    `<name>@<alias>`, the explaining part to `explain_timings` instead when given."""
    from huleedu_pipelines.modeling.explanations import top_k_json

    started = time.perf_counter()
    if prediction is None:
        prediction = model.bundle.predict(X)
    key = f"{model.name}@{model.alias}"
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - started
    top: list[str | None] = [None] * chunk.height
    if explain.any():
        started = time.perf_counter()
        contributions = model.bundle.contributions(
            X[explain], method=_explain_method(explain_method), n_jobs=n_jobs
        )
        texts = top_k_json(contributions, model.bundle.booster_feature_names, TOP_FEATURES)
        for position, text in zip(np.flatnonzero(explain).tolist(), texts, strict=True):
            top[position] = text
        spent = timings if explain_timings is None else explain_timings
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
    return chunk.select("student_id", "essay_id").with_columns(
        skill=pl.lit(skill, pl.String),
        score=pl.Series(prediction.score, dtype=pl.Float64),
        confidence=pl.Series(prediction.confidence, dtype=pl.Float64),
        top_features=pl.Series(top, dtype=pl.String),
        model_name=pl.lit(model.name, pl.String),
        model_version=pl.lit(model.version, pl.String),
        model_alias=pl.lit(model.alias, pl.String),
        feature_hash=chunk["feature_hash"],
        run_id=pl.lit(run_id, pl.String),
        scored_at=pl.lit(scored_at, pl.Datetime("us", "UTC")),
    )


# --------------------------------------------------------------------------- the run


@dataclass
class ScoringOutcome:
    essays_considered: int = 0
    essays_scored: int = 0
    essays_unchanged: int = 0
    skill_rows: int = 0
    grade_rows: int = 0
    shadow_rows: int = 0
    explained_rows: int = 0
    explain_method: str = ""
    """How `top_features` were computed (`saabas` or `treeshap`; `modeling.explanations`)."""
    compiled_models: dict[str, bool] = field(default_factory=dict)
    """With the compiled scorer: per `<name>@<alias>`, whether its compiled trees passed the
    parity check (and so scored) or it kept ONNX."""
    seconds_by_model: dict[str, float] = field(default_factory=dict)
    explain_seconds_by_model: dict[str, float] = field(default_factory=dict)
    """The part of each model's time spent on `top_features` (not in `seconds_by_model`)."""
    write_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def essays_per_second(self) -> float:
        return self.essays_scored / self.total_seconds if self.total_seconds > 0 else 0.0


def _compiled_scorer(enabled: bool | None) -> bool:
    if enabled is not None:
        return enabled
    from huleedu_pipelines.settings import get_settings

    return get_settings().compiled_scorer


def _use_compiled_trees(
    models: ServingModels, rows: pl.DataFrame, log: Log | None
) -> dict[str, bool]:
    """Switch every serving model whose compiled trees pass the parity check on `rows` to
    them (compiled once per machine, cached under the home's `compiled_trees`)."""
    from huleedu_pipelines.modeling.compiled_trees import use_compiled_trees
    from huleedu_pipelines.settings import get_settings

    serving = [*models.champions.values(), *models.challengers.values()]
    bundles = {f"{m.name}@{m.alias}": m.bundle for m in serving}
    checked = use_compiled_trees(bundles, feature_matrix(rows), get_settings().compiled_trees_dir)
    for key, parity in checked.items():
        if not parity.passed and log is not None:
            log(f"{key} keeps ONNX: its compiled trees failed the parity check ({parity})")
    return {key: bundle.compiled is not None for key, bundle in bundles.items()}


class _FrozenHeap:
    """While scoring, the objects alive before it (models, modules, the feature frame) are
    moved out of the cyclic garbage collector's generations (`gc.freeze`): each chunk makes
    tens of thousands of small lists and strings, and the collections they trigger otherwise
    rescan that whole heap (about 7% of end-to-end scoring, measured)."""

    def __enter__(self) -> None:
        import gc

        gc.freeze()

    def __exit__(self, *_: object) -> None:
        import gc

        gc.unfreeze()


@dataclass
class _Chunk:
    skills: list[tuple[pl.DataFrame, np.ndarray]] = field(default_factory=list)
    grades: list[tuple[pl.DataFrame, np.ndarray]] = field(default_factory=list)


def score_essays(
    engine: sa.Engine,
    features: pl.DataFrame,
    models: ServingModels,
    *,
    run_id: str | None,
    review_threshold: float,
    explain_scope: str = "needs_review",
    chunk_size: int = 5000,
    n_jobs: int = 1,
    scored_at: dt.datetime | None = None,
    log: Log | None = None,
    explain_method: str | None = None,
    compiled_scorer: bool | None = None,
) -> ScoringOutcome:
    """Score `features` (essay_id, student_id, feature_hash and the model columns) with every
    serving model and write the rows: one transaction per chunk of essays, both tables.

    Chunks are written by WRITERS background threads (one on SQLite), each on its own
    connection, while the next chunk is scored: the models, the COPY and the database's work
    overlap. Each chunk is whole or absent whatever order the chunks commit in; a failed write
    stops the run with its error. `explain_method`: `saabas` or `treeshap`
    (`modeling.explanations`), by default HULEEDU_EXPLAIN_METHOD. `compiled_scorer` (by
    default HULEEDU_COMPILED_SCORER): score with each model's lleaves-compiled trees where
    they match it on the first rows to score (`modeling.compiled_trees`), ONNX elsewhere.
    """
    if explain_scope not in EXPLAIN_SCOPES:
        raise ValueError(f"explain_scope must be one of {EXPLAIN_SCOPES}, got {explain_scope!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    from concurrent.futures import Future, ThreadPoolExecutor

    from huleedu_pipelines.modeling.explanations import EXPLAIN_METHODS

    started = time.perf_counter()
    scored_at = scored_at or dt.datetime.now(dt.UTC)
    outcome = ScoringOutcome(essays_considered=features.height, problems=dict(models.problems))
    outcome.explain_method = explain_method = _explain_method(explain_method)
    if explain_method not in EXPLAIN_METHODS:
        raise ValueError(f"explain_method must be one of {EXPLAIN_METHODS}, got {explain_method!r}")
    grades, skills = grade_targets(models), skill_targets(models)
    with engine.connect() as connection:
        grade_needs_ = [grade_needs(connection, features, t) for t in grades]
        skill_needs_ = [skill_needs(connection, features, m) for _, m in skills]
    needed = np.zeros(features.height, dtype=bool)
    for needs in grade_needs_ + skill_needs_:
        needed |= needs.score
    outcome.essays_scored = int(needed.sum())
    outcome.essays_unchanged = features.height - outcome.essays_scored
    positions = np.flatnonzero(needed)
    timings = outcome.seconds_by_model
    if positions.size and _compiled_scorer(compiled_scorer):
        outcome.compiled_models = _use_compiled_trees(models, features[positions[:2000]], log)

    def write(chunk: _Chunk) -> tuple[float, int, int, int]:
        write_started = time.perf_counter()
        with engine.begin() as connection:
            for frame, new in chunk.skills:
                write_frame(connection, skill_assessments, frame, SKILL_KEY, new=new)
            for frame, new in chunk.grades:
                write_frame(connection, essay_grade_predictions, frame, GRADE_KEY, new=new)
        frames = [frame for frame, _ in chunk.skills + chunk.grades]
        return (
            time.perf_counter() - write_started,
            sum(frame.height for frame, _ in chunk.skills),
            sum(frame.height for frame, _ in chunk.grades),
            sum(int((frame["model_alias"] == CHALLENGER).sum()) for frame in frames),
        )

    def collect(future: Future) -> None:
        seconds, skill_rows, grade_rows, shadow_rows = future.result()
        outcome.write_seconds += seconds
        outcome.skill_rows += skill_rows
        outcome.grade_rows += grade_rows
        outcome.shadow_rows += shadow_rows
        if log is not None:
            log(
                f"written: {outcome.skill_rows} skill rows, {outcome.grade_rows} grade rows "
                f"({len(positions)} essays to score)"
            )

    # SQLite takes one writer at a time: a second would only wait on its lock.
    writers = 1 if engine.dialect.name == "sqlite" else WRITERS
    pending: deque[Future] = deque()
    starts = list(range(0, positions.size, chunk_size))

    def read_chunk(start: int) -> tuple[np.ndarray, pl.DataFrame, np.ndarray]:
        rows_at = positions[start : start + chunk_size]
        chunk = features[rows_at]
        # float64: stacked models compute their ridge stage from the exact features and
        # hand the boosters' ONNX graph its float32 input themselves.
        return rows_at, chunk, feature_matrix(chunk)

    with (
        _FrozenHeap(),
        ThreadPoolExecutor(max_workers=writers, thread_name_prefix="huleedu-writer") as writer,
        # The next chunk's rows and feature matrix are gathered (by polars, off the GIL) while
        # this one is scored.
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="huleedu-reader") as reader,
    ):
        upcoming = reader.submit(read_chunk, starts[0]) if starts else None
        for index in range(len(starts)):
            assert upcoming is not None
            rows_at, chunk, X = upcoming.result()
            if index + 1 < len(starts):
                upcoming = reader.submit(read_chunk, starts[index + 1])
            predict = ChunkPredictions(X, timings)
            out = _Chunk()
            review = np.ones(len(rows_at), dtype=bool)
            for target, needs in zip(grades, grade_needs_, strict=True):
                frame = grade_frame(
                    target,
                    chunk,
                    X,
                    review_threshold=review_threshold,
                    run_id=run_id,
                    scored_at=scored_at,
                    timings=timings,
                    predictions=predict,
                )
                if target.alias == CHAMPION:
                    review = frame["needs_review"].to_numpy()
                keep = needs.score[rows_at]
                if keep.any():
                    out.grades.append((frame.filter(pl.Series(keep)), needs.new[rows_at][keep]))
            for (skill, model), needs in zip(skills, skill_needs_, strict=True):
                keep = needs.score[rows_at]
                if not keep.any():
                    continue
                if model.alias != CHAMPION or explain_scope == "none":
                    explain = np.zeros(int(keep.sum()), dtype=bool)
                elif explain_scope == "all":
                    explain = np.ones(int(keep.sum()), dtype=bool)
                else:
                    explain = review[keep]
                every = bool(keep.all())  # the usual case: no copy of the chunk
                prediction = predict(model)
                frame = skill_frame(
                    skill,
                    model,
                    chunk if every else chunk.filter(pl.Series(keep)),
                    X if every else X[keep],
                    explain,
                    run_id=run_id,
                    scored_at=scored_at,
                    n_jobs=n_jobs,
                    timings=timings,
                    prediction=prediction if every else _prediction_rows(prediction, keep),
                    explain_method=explain_method,
                    explain_timings=outcome.explain_seconds_by_model,
                )
                out.skills.append((frame, needs.new[rows_at][keep]))
                outcome.explained_rows += int(explain.sum())
            while len(pending) >= writers:
                collect(pending.popleft())
            pending.append(writer.submit(write, out))
        while pending:
            collect(pending.popleft())
    outcome.total_seconds = time.perf_counter() - started
    return outcome


# --------------------------------------------------------------------------- a day


@dataclass(frozen=True)
class DayFeatures:
    """The model inputs of the essays to score for a day, and the essays quarantined instead."""

    table: pl.DataFrame
    """essay_id, student_id, selected_because, feature_version, feature_hash and the model
    columns (`build_scoring_features`)."""
    quarantined: list[QuarantineEntry]
    embeddings_computed: int
    embeddings_reused: int
    essays_read: int = 0
    """Essays whose text was read: the candidates and their CJ batch-mates (every essay in a
    backfill)."""
    text_bytes_read: int = 0

    def selected_because(self) -> dict[str, int]:
        return dict(
            self.table.group_by("selected_because").len().sort("selected_because").iter_rows()
        )


@dataclass(frozen=True)
class _Inputs:
    essays: pl.DataFrame
    """essays_with_prompts rows: the candidates and the batch-mates their comparisons name."""
    candidates: pl.Series | None
    """essay ids that may need scoring; None in a backfill (every essay)."""
    comparisons: pl.DataFrame
    current: pl.DataFrame
    champions: dict[str, str]


def _backfill_inputs(connection: sa.Connection) -> _Inputs:
    return _Inputs(
        read_essays(connection),
        None,
        read_comparisons(connection),
        current_scores(connection),
        serving_versions(connection, CHAMPION),
    )


def _night_inputs(
    connection: sa.Connection, day: dt.date, shard: tuple[int, int] | None
) -> _Inputs:
    """What a night reads, through indexed queries: the candidates (submitted or updated on
    `day`, in a CJ batch compared since `day` began, or lacking a champion's row), then the
    text, batch comparisons and current scores of those essays only."""
    champions = serving_versions(connection, CHAMPION)
    start, end = day_window(day)
    candidates = nightly_selection.submitted_or_updated_between(
        connection, start, end
    ) | nightly_selection.in_batches_compared_since(connection, start)
    candidates |= nightly_selection.lacking_champion_rows(connection, champions, candidates)
    if shard is not None:
        index, count = shard
        candidates = {essay_id for essay_id in candidates if shard_of(essay_id, count) == index}
    comparisons = nightly_selection.read_batches_of(connection, candidates)
    named = set(comparisons["essay_a_id"].to_list()) | set(comparisons["essay_b_id"].to_list())
    return _Inputs(
        nightly_selection.read_essays_by_id(connection, candidates | named),
        pl.Series("essay_id", sorted(candidates), dtype=pl.String),
        comparisons,
        nightly_selection.read_current_scores_of(connection, candidates),
        champions,
    )


def features_for_day(
    engine: sa.Engine,
    day: dt.date,
    *,
    backfill: bool,
    embedder: SentenceEmbedder,
    cache_root: Path,
    max_essay_chars: int,
    run_id: str | None,
    log: logging.Logger,
    progress: ProgressCallback | None = None,
    shard: tuple[int, int] | None = None,
) -> DayFeatures:
    """Select the day's essays to score (every essay lacking a current score in a backfill),
    build their features through the training path, and quarantine the essays that break an
    input rule or whose features cannot be computed.

    Outside a backfill the selection reads only the candidates (`_night_inputs`), so a night
    costs what its new work costs, not what the warehouse holds. Ingest's length limit applies
    here too: no essay costs minutes of embedding every night. Outside a backfill only the
    day's broken essays are quarantined (older ones were already). With `shard` (index, count)
    only the essays of that shard (`domain.shards.shard_of`) are kept, before any feature is
    built."""
    with engine.connect() as connection:
        inputs = _backfill_inputs(connection) if backfill else _night_inputs(connection, day, shard)
    read = inputs.essays
    valid, bad_essays = split_valid_rows(
        read, essays, lambda row: essay_text_problem(row["text"], max_essay_chars)
    )
    if not backfill:
        on_day = set(read.filter(submitted_or_updated_on(day))["essay_id"].to_list())
        bad_essays = [entry for entry in bad_essays if entry.source_key in on_day]
    known = set(valid["essay_id"].to_list())
    comparisons, _ = split_valid_rows(
        inputs.comparisons,
        cj_comparison_pairs,
        lambda r: comparison_problem(r["essay_a_id"], r["essay_b_id"], r["winner_essay_id"], known),
    )
    if inputs.candidates is not None:
        valid = valid.filter(pl.col("essay_id").is_in(inputs.candidates.implode()))
    hashes = current_feature_hashes(
        valid.select("essay_id", "text", "prompt_text"), comparisons, feature_version(embedder)
    )
    selected = select_essays(
        valid.join(hashes.select("essay_id", "feature_hash"), on="essay_id"),
        inputs.current,
        None if backfill else day,
        expected_current_rows(inputs.champions),
    )
    if shard is not None:
        index, count = shard
        keep = in_shard(selected["essay_id"].to_list(), index, count)
        selected = selected.filter(pl.Series(keep, dtype=pl.Boolean))
        bad_essays = [entry for entry in bad_essays if shard_of(entry.source_key, count) == index]
        log.info(f"shard {index} of {count}")
    log.info(
        f"{selected.height} essays to consider for {day} "
        f"({'backfill' if backfill else 'new, updated or changed'}), "
        f"{read.height} essays read; building features"
    )
    build = build_scoring_features(selected, comparisons, cache_root, embedder, progress)
    quarantined = bad_essays + build.failures
    with engine.begin() as connection:
        write_quarantine(connection, quarantined, run_id=run_id)
    for entry in quarantined[:20]:
        log.warning(f"quarantined essay {entry.source_key}: {entry.reason}")
    return DayFeatures(
        build.table,
        quarantined,
        build.embeddings_computed,
        build.embeddings_reused,
        essays_read=read.height,
        text_bytes_read=int(read["text"].str.len_bytes().sum() or 0),
    )


class NoChampionError(RuntimeError):
    """No model can serve, so a day cannot be scored; `problems` says why, per model."""

    def __init__(self, message: str, problems: Mapping[str, str]) -> None:
        super().__init__(message)
        self.problems = dict(problems)


@dataclass(frozen=True)
class ScoredDay:
    models: ServingModels
    outcome: ScoringOutcome
    load_seconds: float


def _prepare_explainers(models: ServingModels) -> None:
    """Build each champion skill model's path explainer with the models, once per run: it
    costs tens of milliseconds per model whether a night explains ten essays or ten thousand."""
    from huleedu_pipelines.modeling.explanations import SAABAS

    if _explain_method(None) != SAABAS:
        return
    for _, model in skill_targets(models):
        if model.alias == CHAMPION:
            _ = model.bundle.path_explainer  # a cached property: built here, used per chunk


def score_day(
    engine: sa.Engine,
    features: pl.DataFrame,
    registry: ModelRegistry,
    *,
    run_id: str | None,
    shadow: bool,
    review_threshold: float,
    explain_scope: str,
    chunk_size: int,
    n_jobs: int,
    log: logging.Logger,
) -> ScoredDay:
    """Score a day's feature rows with every champion that may serve (and each differing
    challenger, with `shadow`) and write the rows (`score_essays`).

    Raises `NoChampionError` when no champion can serve: nothing is written then."""
    loading = time.perf_counter()
    with engine.connect() as connection:
        recorded = serving_versions(connection, CHAMPION)
    versions = features["feature_version"].unique().to_list()
    models = load_serving_models(
        registry,
        recorded_champions=recorded,
        feature_version=versions[0] if len(versions) == 1 else None,
        shadow=shadow,
    )
    if explain_scope != "none":
        _prepare_explainers(models)
    load_seconds = time.perf_counter() - loading
    for problem in models.problems.values():
        log.error(problem)
    if not models.champions:
        raise NoChampionError(
            "No champion can serve, so nothing was scored: "
            + (
                f"{len(models.refused)} champions were refused (see problems)"
                if models.refused
                else "no model has a champion version; run training_job (or "
                "`huleedu-pipelines train`) until models pass their gates"
            ),
            models.problems,
        )
    outcome = score_essays(
        engine,
        features,
        models,
        run_id=run_id,
        review_threshold=review_threshold,
        explain_scope=explain_scope,
        chunk_size=chunk_size,
        n_jobs=n_jobs,
        log=log.info,
    )
    log.info(
        f"scored {outcome.essays_scored} essays ({outcome.essays_unchanged} unchanged) in "
        f"{outcome.total_seconds:.1f} s: {outcome.skill_rows} skill rows, "
        f"{outcome.grade_rows} grade rows ({outcome.shadow_rows} shadow)"
    )
    return ScoredDay(models, outcome, load_seconds)
