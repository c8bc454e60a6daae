"""Scoring essays one request at a time (the scoring API): input rules, features and rows,
through the nightly job's code.

- Input: the rules ingest applies (`domain.input_rules.essay_text_problem`), so an essay the
  API scores is one the nightly job would score too.
- Features: `build_scoring_features` (the training and nightly path, with its compute-once
  cache on disk) for texts not seen before, kept in memory by content hash so a repeat costs no
  embedding; CJ features from the warehouse's comparisons of the essay's batches, judged by the
  same comparison rule as the nightly job (`comparisons_of`). The row is assembled by
  `assemble_feature_table`, so its `feature_hash` is the one the nightly job computes.
- Rows: `score_rows.score_feature_rows`, the rows the nightly job writes.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.domain.input_rules import comparison_problem, essay_text_problem
from huleedu_pipelines.features.bradley_terry import COMPARISON_COLUMNS
from huleedu_pipelines.features.build import (
    EMBEDDING_COLUMNS,
    TEXT_FEATURE_COLUMNS,
    assemble_feature_table,
    cj_feature_frame,
    feature_version,
)
from huleedu_pipelines.features.embeddings import SentenceEmbedder
from huleedu_pipelines.features.store import CONTENT_HASH, with_content_hash
from huleedu_pipelines.modeling.names import CHALLENGER, CHAMPION
from huleedu_pipelines.services.ingest import split_valid_rows
from huleedu_pipelines.services.score_rows import ScoredRows, explained_models, score_feature_rows
from huleedu_pipelines.services.scoring import (
    ServingModels,
    build_scoring_features,
    skill_targets,
)
from huleedu_pipelines.warehouse.queries import IN_LIST_LIMIT, read_frame
from huleedu_pipelines.warehouse.tables import cj_comparison_pairs, essays

TEXT_TOO_LONG = "text_too_long"
"""The input rule whose breach is a payload too large (HTTP 413), not a malformed one (422)."""


@dataclass(frozen=True)
class EssayInput:
    text: str
    prompt: str | None = None
    essay_id: str | None = None
    student_id: str | None = None


@dataclass(frozen=True)
class InputError:
    """Why one essay was not scored: the field, the rule and a sentence for the caller."""

    field: str
    rule: str
    detail: str

    @property
    def too_large(self) -> bool:
        return self.rule == TEXT_TOO_LONG


def input_error(essay: EssayInput, max_chars: int) -> InputError | None:
    """The first input rule `essay` breaks: its text (ingest's essay rule, `max_chars` the
    smaller of the API's and ingest's limits) or a prompt longer than `max_chars`."""
    problem = essay_text_problem(essay.text, max_chars)
    if problem is not None:
        return InputError("text", problem.rule, problem.detail)
    if essay.prompt is not None and len(essay.prompt) > max_chars:
        return InputError(
            "prompt",
            TEXT_TOO_LONG,
            f"prompt has {len(essay.prompt):,} characters, more than the limit of {max_chars:,}",
        )
    return None


def canary_alias(essay: EssayInput, share: float) -> str:
    """`challenger` for a `share` of students, else `champion`: a hash of the student id (else
    the essay id, else the text) decides, so a student's essays always go to the same
    models, in every process and after every restart."""
    if share <= 0:
        return CHAMPION
    if essay.student_id is not None:
        key = f"student:{essay.student_id}"
    elif essay.essay_id is not None:
        key = f"essay:{essay.essay_id}"
    else:
        key = f"text:{essay.text}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
    return CHALLENGER if bucket < share else CHAMPION


# --------------------------------------------------------------------------- CJ comparisons


def comparisons_of(
    connection: sa.Connection, essay_ids: Sequence[str], max_essay_chars: int
) -> pl.DataFrame:
    """The comparisons of every CJ batch that compared one of `essay_ids`, without those the
    nightly job drops: a comparison naming an essay that breaks an input rule (or is missing),
    a self-comparison, a winner outside the pair.

    Bradley–Terry abilities are fitted per batch, so the batches' own comparisons give an
    essay the CJ features the nightly job gives it from the whole table."""
    ids = sorted(set(essay_ids))
    empty = read_frame(connection, sa.select(cj_comparison_pairs).where(sa.false()))
    if not ids or len(ids) > IN_LIST_LIMIT:
        return empty
    table = cj_comparison_pairs
    batches = sa.select(table.c.batch_id).where(
        sa.or_(table.c.essay_a_id.in_(ids), table.c.essay_b_id.in_(ids))
    )
    comparisons = read_frame(connection, sa.select(table).where(table.c.batch_id.in_(batches)))
    if comparisons.is_empty():
        return comparisons
    involved = sorted(set(comparisons["essay_a_id"]) | set(comparisons["essay_b_id"]))
    texts = read_frame(
        connection,
        sa.select(essays.c.essay_id, essays.c.text).where(essays.c.essay_id.in_(involved)),
    )
    valid, _ = split_valid_rows(
        texts, essays, lambda row: essay_text_problem(row["text"], max_essay_chars)
    )
    known = set(valid["essay_id"].to_list())
    kept, _ = split_valid_rows(
        comparisons,
        table,
        lambda r: comparison_problem(r["essay_a_id"], r["essay_b_id"], r["winner_essay_id"], known),
    )
    return kept


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class _Remembered:
    """One text's features held in memory: text feature values (in `TEXT_FEATURE_COLUMNS`
    order) and its embedding. Plain values: a one-row frame per text costs ~100 kB."""

    text: tuple[Any, ...]
    embedding: np.ndarray


@dataclass
class FeatureCounts:
    """Per essay: features held in memory, found in the disk cache, or computed now."""

    memory_hits: int = 0
    disk_hits: int = 0
    computed: int = 0


@dataclass(frozen=True)
class RequestFeatures:
    table: pl.DataFrame
    """One row per essay that has features, in input order: `position` (the essay's index in
    the request), essay_id, student_id, feature_version, feature_hash and the model columns."""
    failures: dict[int, InputError]
    counts: FeatureCounts
    seconds: float


class OnlineFeatures:
    """Feature rows for the essays of a request.

    Text features and embeddings depend only on (text, prompt): they are kept in memory by
    content hash (least recently used first out, `max_entries` at most), and what is not in
    memory goes through `build_scoring_features`, which reads the disk cache the nightly job
    fills and adds to it. One build runs at a time: the disk cache's part files are written
    and compacted by one writer in this process.
    """

    def __init__(
        self,
        cache_root: Path,
        embedder: SentenceEmbedder,
        *,
        max_entries: int,
        engine: sa.Engine | None,
        max_essay_chars: int,
    ) -> None:
        self.cache_root = Path(cache_root)
        self.embedder = embedder
        self.max_entries = max_entries
        self.engine = engine
        self.max_essay_chars = max_essay_chars
        self.version = feature_version(embedder)
        self._memory: OrderedDict[str, _Remembered] = OrderedDict()
        self._text_schema: dict[str, pl.DataType] | None = None
        self._memory_lock = threading.Lock()
        self._build_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the embedding model and the text features' lexicons now rather than on the
        first request (nothing is written to the cache)."""
        from huleedu_pipelines.features.text import compute_text_features

        sample = "Warming up: the models read this sentence once before the first request."
        self.embedder.embed([sample])
        compute_text_features([sample], ["A prompt."])

    def _remembered(self, hashes: Sequence[str]) -> dict[str, _Remembered]:
        with self._memory_lock:
            found = {}
            for key in hashes:
                entry = self._memory.get(key)
                if entry is not None:
                    self._memory.move_to_end(key)
                    found[key] = entry
            return found

    def _remember(self, entries: dict[str, _Remembered]) -> None:
        with self._memory_lock:
            for key, entry in entries.items():
                self._memory[key] = entry
                self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)

    def _build(self, missing: pl.DataFrame) -> tuple[dict[str, _Remembered], dict[str, str], int]:
        """Text features and embeddings of distinct (text, prompt) rows keyed by content hash
        (used as the essay id: the features of a text do not depend on which essay it is);
        also the hashes whose features failed, and how many embeddings came from disk."""
        selected = missing.select(
            pl.col(CONTENT_HASH).alias("essay_id"),
            pl.lit(None, pl.String).alias("student_id"),
            "text",
            "prompt_text",
            pl.lit("online").alias("selected_because"),
        )
        with self._build_lock:
            built = build_scoring_features(
                selected, self._no_comparisons(), self.cache_root, self.embedder
            )
        text = built.table.select(TEXT_FEATURE_COLUMNS)
        if self._text_schema is None:
            self._text_schema = dict(text.schema)
        embeddings = built.table.select(EMBEDDING_COLUMNS).to_numpy().astype(np.float32)
        entries = {
            key: _Remembered(values, embeddings[i])
            for i, (key, values) in enumerate(
                zip(built.table["essay_id"].to_list(), text.iter_rows(), strict=True)
            )
        }
        failed = {entry.source_key: entry.detail for entry in built.failures}
        return entries, failed, built.embeddings_reused

    @staticmethod
    def _no_comparisons() -> pl.DataFrame:
        return pl.DataFrame(schema=dict.fromkeys(COMPARISON_COLUMNS, pl.String))

    def comparisons(self, essay_ids: Sequence[str]) -> pl.DataFrame:
        if self.engine is None or not essay_ids:
            return self._no_comparisons()
        with self.engine.connect() as connection:
            return comparisons_of(connection, essay_ids, self.max_essay_chars)

    def build(self, items: Sequence[tuple[int, EssayInput]]) -> RequestFeatures:
        """Features of `items` ((position, essay) pairs that passed the input rules)."""
        started = time.perf_counter()
        counts = FeatureCounts()
        ids = [essay.essay_id or f"request:{uuid.uuid4().hex}" for _, essay in items]
        frame = with_content_hash(
            pl.DataFrame(
                {
                    "position": [position for position, _ in items],
                    "essay_id": ids,
                    "student_id": [essay.student_id for _, essay in items],
                    "text": [essay.text for _, essay in items],
                    "prompt_text": [essay.prompt for _, essay in items],
                },
                schema={
                    "position": pl.Int64,
                    "essay_id": pl.String,
                    "student_id": pl.String,
                    "text": pl.String,
                    "prompt_text": pl.String,
                },
            )
        )
        hashes = frame[CONTENT_HASH].to_list()
        known = self._remembered(hashes)
        counts.memory_hits = sum(1 for key in hashes if key in known)
        failures: dict[int, InputError] = {}
        missing = frame.filter(~pl.col(CONTENT_HASH).is_in(list(known))).unique(
            CONTENT_HASH, keep="first", maintain_order=True
        )
        if not missing.is_empty():
            fresh, failed, from_disk = self._build(missing)
            self._remember(fresh)
            known.update(fresh)
            counts.disk_hits = from_disk
            counts.computed = missing.height - from_disk - len(failed)
            for position, key in zip(frame["position"], hashes, strict=True):
                if key in failed:
                    failures[position] = InputError("text", "features_failed", failed[key])
        usable = frame.filter(pl.col(CONTENT_HASH).is_in(list(known)))
        if usable.is_empty():
            return RequestFeatures(usable, failures, counts, time.perf_counter() - started)
        distinct = list(dict.fromkeys(usable[CONTENT_HASH].to_list()))
        keys = pl.Series(CONTENT_HASH, distinct, dtype=pl.String)
        text = pl.DataFrame(
            [known[key].text for key in distinct], schema=self._text_schema, orient="row"
        ).insert_column(0, keys)
        embeddings = pl.DataFrame(
            np.stack([known[key].embedding for key in distinct]), schema=list(EMBEDDING_COLUMNS)
        ).insert_column(0, keys)
        real_ids = [essay.essay_id for _, essay in items if essay.essay_id]
        comparisons = self.comparisons(real_ids)
        cj = cj_feature_frame(usable["essay_id"].unique(maintain_order=True), comparisons)
        table = assemble_feature_table(
            usable.select("essay_id", CONTENT_HASH),
            text,
            embeddings,
            cj,
            self.version,
        )
        table = pl.concat(
            [usable.select("position", "student_id"), table.drop(CONTENT_HASH)], how="horizontal"
        )
        return RequestFeatures(table, failures, counts, time.perf_counter() - started)


# --------------------------------------------------------------------------- scoring


@dataclass
class ScoredRequest:
    """Each essay's rows (or why it has none), in request order."""

    results: list[dict[str, Any] | InputError]
    counts: FeatureCounts = field(default_factory=FeatureCounts)
    feature_seconds: float = 0.0
    model_seconds: float = 0.0
    seconds_by_model: dict[str, float] = field(default_factory=dict)


def _decode(value: str | None) -> Any:
    import json

    return None if value is None else json.loads(value)


def essay_results(
    table: pl.DataFrame, rows: ScoredRows, models: ServingModels, alias: str
) -> dict[int, dict[str, Any]]:
    """Per request position, what the essay reads under `alias` (`explained_models`): its
    grade row (the champions' when no grade, CEFR or band model has a differing challenger)
    and one row per skill, as the warehouse stores them with the JSON columns decoded, and
    the models that made them."""
    by_alias = {frame["model_alias"][0]: frame for frame in rows.grade_frames if frame.height}
    grades = by_alias.get(alias, by_alias.get(CHAMPION))
    grade_rows = list(grades.iter_rows(named=True)) if grades is not None else None
    view = explained_models(models, alias)
    skill_frames = [
        frame
        for (_, model), frame in zip(skill_targets(models), rows.skill_frames, strict=True)
        if view.get(model.name) is model
    ]
    skill_rows = [list(frame.iter_rows(named=True)) for frame in skill_frames]
    used = [
        {"model_name": m.name, "version": m.version, "alias": m.alias}
        for m in sorted(view.values(), key=lambda m: m.name)
    ]
    out: dict[int, dict[str, Any]] = {}
    for index, position in enumerate(table["position"].to_list()):
        grade = None
        if grade_rows is not None:
            grade = dict(grade_rows[index])
            for column in ("grade_probabilities", "cefr_probabilities"):
                grade[column] = _decode(grade[column])
        skills_of = []
        for frame_rows in skill_rows:
            row = dict(frame_rows[index])
            row["top_features"] = _decode(row["top_features"])
            skills_of.append(row)
        out[position] = {
            "essay_id": table["essay_id"][index],
            "feature_version": table["feature_version"][index],
            "feature_hash": table["feature_hash"][index],
            "alias": alias,
            "models": used,
            "grade_row": grade,
            "skill_rows": skills_of,
        }
    return out


def score_request(
    items: Sequence[EssayInput],
    features: OnlineFeatures,
    models: ServingModels,
    *,
    aliases: Sequence[str] | None = None,
    max_chars: int,
    review_threshold: float,
    explain_scope: str,
    n_jobs: int,
) -> ScoredRequest:
    """Score `items` with `models` (one snapshot: every essay of the request sees the same
    versions): input rules per essay, features for those that pass (built together), then
    one vectorised scoring per alias. `aliases` gives each essay's (`champion` by default,
    or `challenger`: its differing challengers and the other champions). An essay that fails
    gets its `InputError`; the others are scored."""
    aliases = list(aliases) if aliases is not None else [CHAMPION] * len(items)
    results: list[dict[str, Any] | InputError | None] = [None] * len(items)
    passing: list[tuple[int, EssayInput]] = []
    for position, essay in enumerate(items):
        error = input_error(essay, max_chars)
        if error is None:
            passing.append((position, essay))
        else:
            results[position] = error
    request = ScoredRequest(results=[])
    if passing:
        built = features.build(passing)
        request.counts, request.feature_seconds = built.counts, built.seconds
        for position, error in built.failures.items():
            results[position] = error
        table = built.table.with_columns(
            pl.Series("alias", [aliases[p] for p in built.table["position"]], dtype=pl.String)
        )
        started = time.perf_counter()
        for alias in dict.fromkeys(table["alias"].to_list()):
            part = table.filter(pl.col("alias") == alias).drop("alias")
            # Champion essays are scored by the champions alone (no challenger work for them);
            # scoring notes problems in its copy, never in the shared snapshot.
            scoring = ServingModels(
                champions=models.champions,
                challengers=models.challengers if alias != CHAMPION else {},
                problems=dict(models.problems),
                refused=set(models.refused),
            )
            rows = score_feature_rows(
                part,
                scoring,
                review_threshold=review_threshold,
                explain_scope=explain_scope,
                explain_alias=alias,
                n_jobs=n_jobs,
            )
            for key, seconds in rows.seconds_by_model.items():
                request.seconds_by_model[key] = request.seconds_by_model.get(key, 0.0) + seconds
            for position, result in essay_results(part, rows, scoring, alias).items():
                result["student_id"] = items[position].student_id
                result["essay_id"] = items[position].essay_id
                results[position] = result
        request.model_seconds = time.perf_counter() - started
    request.results = [
        r if r is not None else InputError("text", "not_scored", "essay was not scored")
        for r in results
    ]
    return request


__all__ = [
    "TEXT_TOO_LONG",
    "EssayInput",
    "InputError",
    "OnlineFeatures",
    "ScoredRequest",
    "canary_alias",
    "comparisons_of",
    "input_error",
    "score_request",
]
