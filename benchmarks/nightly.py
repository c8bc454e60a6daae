"""`bench nightly`: what a night costs beside a full backfill of the same warehouse.

A temporary PostgreSQL database gets `n_essays` essays (the trained home's essays, each made
distinct by a numbered closing line) and the home's champions. Their features are put in a
temporary cache first, copied from the home's feature table, so neither run embeds: the
figures are the selection and the scoring (what the issue calls "excluding embedding the new
essays"). Then one run scores everything (backfill), the night's new essays arrive (a share
of the warehouse, submitted on the night's day, and one CJ batch gets a comparison), and the
night runs; a quiet night (the next day, nothing new) follows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2030, 1, 15)
"""The night scored: later than any generated essay, so only the arrivals are new on it."""
BATCH_SIZE = 30
COMPARISONS_PER_BATCH = 60
CJ_SHARE = 0.2
INSERT_CHUNK = 20_000


def _log() -> logging.Logger:
    log = logging.getLogger("bench-nightly")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def _base_rows(settings: Any) -> Any:
    """The home's essays with their cached model features, by essay."""
    import polars as pl

    from huleedu_pipelines.features.build import EMBEDDING_COLUMNS, TEXT_FEATURE_COLUMNS
    from huleedu_pipelines.services.scoring import read_essays
    from huleedu_pipelines.warehouse.engine import make_engine

    source = settings.storage_dir / "feature_table.parquet"
    if not source.exists():
        raise FileNotFoundError(
            f"{source} does not exist: run `make demo` (or `huleedu-pipelines train`) with this "
            "HULEEDU_HOME first; the benchmark scores with its champion models"
        )
    features = pl.read_parquet(source).select("essay_id", *TEXT_FEATURE_COLUMNS, *EMBEDDING_COLUMNS)
    with make_engine(settings.resolved_warehouse_url).connect() as connection:
        texts = read_essays(connection).select("essay_id", "text", "prompt_text")
    return texts.join(features, on="essay_id").drop_nulls("text")


def _essays(base: Any, first: int, count: int, submitted: dt.datetime) -> Any:
    """`count` essays numbered from `first`, cycling through the base essays."""
    import polars as pl

    picks = [(first + i) % base.height for i in range(count)]
    rows = base[picks]
    numbers = range(first, first + count)
    return rows.with_columns(
        pl.Series("essay_id", [f"night-{n:07d}" for n in numbers]),
        pl.Series("student_id", [f"student-{n // 3:06d}" for n in numbers]),
        pl.Series(
            "text", [f"{t}\n\n(Essay {n}.)" for t, n in zip(rows["text"], numbers, strict=True)]
        ),
        pl.lit(submitted).alias("submitted_at"),
    )


def _prefill_cache(rows: Any, cache_root: Path, embedder: Any) -> None:
    """Store the rows' text features and embeddings under their content hashes."""
    from huleedu_pipelines.features.build import EMBEDDING_COLUMNS, TEXT_FEATURE_COLUMNS
    from huleedu_pipelines.features.store import CONTENT_HASH, FeatureCache, with_content_hash
    from huleedu_pipelines.features.text import TEXT_FEATURE_VERSION

    keyed = with_content_hash(rows)
    FeatureCache(cache_root, "text", TEXT_FEATURE_VERSION).store(
        keyed.select(CONTENT_HASH, *TEXT_FEATURE_COLUMNS)
    )
    FeatureCache(cache_root, "embeddings", embedder.version).store(
        keyed.select(CONTENT_HASH, *EMBEDDING_COLUMNS)
    )


def _insert_essays(engine: Any, rows: Any, prompt_ids: dict[str | None, str]) -> None:
    import sqlalchemy as sa

    from huleedu_pipelines.warehouse.tables import essays

    records = [
        {
            "essay_id": row["essay_id"],
            "student_id": row["student_id"],
            "prompt_id": prompt_ids.get(row["prompt_text"]),
            "source": "bench",
            "text": row["text"],
            "language": "en",
            "submitted_at": row["submitted_at"],
            "updated_at": None,
        }
        for row in rows.select(
            "essay_id", "student_id", "prompt_text", "text", "submitted_at"
        ).iter_rows(named=True)
    ]
    with engine.begin() as connection:
        for start in range(0, len(records), INSERT_CHUNK):
            connection.execute(sa.insert(essays), records[start : start + INSERT_CHUNK])


def _comparisons(essay_ids: list[str], created_at: dt.datetime, seed: int) -> list[dict]:
    """CJ batches over a share of the essays, each with random pairings."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen = [e for e in essay_ids if rng.random() < CJ_SHARE]
    pairs = []
    for number, start in enumerate(range(0, len(chosen) - BATCH_SIZE + 1, BATCH_SIZE)):
        members = chosen[start : start + BATCH_SIZE]
        for k in range(COMPARISONS_PER_BATCH):
            a, b = rng.choice(len(members), size=2, replace=False)
            pairs.append(
                {
                    "comparison_id": f"bench-c{number:05d}-{k:03d}",
                    "batch_id": f"bench-b{number:05d}",
                    "essay_a_id": members[a],
                    "essay_b_id": members[b],
                    "winner_essay_id": members[a if rng.random() < 0.5 else b],
                    "created_at": created_at,
                }
            )
    return pairs


def _analyze(engine: Any) -> None:
    """Fresh planner statistics and visibility map after a bulk load, as PostgreSQL's
    autovacuum keeps them (index-only scans rely on the map)."""
    import sqlalchemy as sa

    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))


def _run(
    engine: Any,
    registry: Any,
    settings: Any,
    embedder: Any,
    cache: Path,
    day: dt.date,
    **kw: Any,
) -> dict:
    """One run as the nightly job makes it: the selection and features, then the scoring."""
    from huleedu_pipelines.services.scoring import features_for_day, score_day

    log = _log()
    start = time.perf_counter()
    features = features_for_day(
        engine,
        day,
        embedder=embedder,
        cache_root=cache,
        max_essay_chars=settings.max_essay_chars,
        run_id="bench",
        log=log,
        **kw,
    )
    selected = time.perf_counter()
    scored, load_seconds = 0, 0.0
    if features.table.height:
        day = score_day(
            engine,
            features.table,
            registry,
            run_id="bench",
            shadow=False,
            review_threshold=settings.review_confidence_threshold,
            explain_scope=settings.explain_scope,
            chunk_size=settings.scoring_chunk_size,
            n_jobs=settings.n_jobs,
            log=log,
        )
        scored, load_seconds = day.outcome.essays_scored, day.load_seconds
    end = time.perf_counter()
    return {
        "seconds": round(end - start, 3),
        "selection_seconds": round(selected - start, 3),
        "scoring_seconds": round(end - selected, 3),
        "model_load_seconds": round(load_seconds, 3),
        "essays_selected": features.table.height,
        "essays_scored": scored,
        "essays_read": features.essays_read,
        "text_bytes_read": features.text_bytes_read,
        "embeddings_computed": features.embeddings_computed,
    }


def bench_nightly(
    n_essays: int, postgres_url: str, new_share: float = 0.01, seed: int = 5
) -> dict[str, Any]:
    """Wall time and essay text read by a night with `new_share` new essays, beside a full
    backfill of the same warehouse, in one run (see the module docstring)."""
    import os
    import shutil
    import tempfile

    import sqlalchemy as sa

    from benchmarks.figures import _drop_database, _temporary_database
    from huleedu_pipelines.modeling.names import CHAMPION
    from huleedu_pipelines.registry import build_registry
    from huleedu_pipelines.resources import build_resources
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.engine import make_engine, migrate
    from huleedu_pipelines.warehouse.tables import cj_comparison_pairs, prompts, serving_models

    settings = get_settings()
    base = _base_rows(settings)
    registry = build_registry(settings)
    embedder = build_resources(settings)["embedder"].embedder()
    with make_engine(settings.resolved_warehouse_url).connect() as connection:
        champions = [
            dict(row)
            for row in connection.execute(
                sa.select(serving_models).where(serving_models.c.alias == CHAMPION)
            ).mappings()
        ]
    if not champions:
        raise RuntimeError("the home has no champion: run `make demo` first")
    n_new = max(1, round(n_essays * new_share))
    old_day = dt.datetime.combine(DAY - dt.timedelta(days=30), dt.time(9), tzinfo=dt.UTC)
    on_day = dt.datetime.combine(DAY, dt.time(9), tzinfo=dt.UTC)
    warehouse = _essays(base, 0, n_essays, old_day)
    arrivals = _essays(base, n_essays, n_new, on_day)
    cache = Path(tempfile.mkdtemp(prefix="huleedu-bench-nightly-"))
    database = f"huleedu_bench_nightly_{os.getpid()}"
    url = _temporary_database(postgres_url, database)
    try:
        engine = make_engine(url)
        migrate(engine)
        prompt_texts = sorted({t for t in base["prompt_text"].to_list() if t is not None})
        prompt_ids = {text: f"bench-p{i:03d}" for i, text in enumerate(prompt_texts)}
        comparisons = _comparisons(warehouse["essay_id"].to_list(), old_day, seed)
        with engine.begin() as connection:
            if prompt_ids:
                connection.execute(
                    sa.insert(prompts),
                    [{"prompt_id": pid, "title": None, "text": t} for t, pid in prompt_ids.items()],
                )
            connection.execute(sa.insert(serving_models), champions)
            for start in range(0, len(comparisons), INSERT_CHUNK):
                connection.execute(
                    sa.insert(cj_comparison_pairs), comparisons[start : start + INSERT_CHUNK]
                )
        _prefill_cache(warehouse, cache, embedder)
        _prefill_cache(arrivals, cache, embedder)
        _insert_essays(engine, warehouse, prompt_ids)
        _analyze(engine)
        backfill = _run(engine, registry, settings, embedder, cache, DAY, backfill=True)
        _insert_essays(engine, arrivals, prompt_ids)
        if comparisons:  # a batch gets one more comparison on the night's day
            touched = dict(comparisons[0], comparison_id="bench-night", created_at=on_day)
            with engine.begin() as connection:
                connection.execute(sa.insert(cj_comparison_pairs), touched)
        _analyze(engine)
        night = _run(engine, registry, settings, embedder, cache, DAY, backfill=False)
        quiet = _run(
            engine, registry, settings, embedder, cache, DAY + dt.timedelta(days=1), backfill=False
        )
        engine.dispose()
    finally:
        _drop_database(postgres_url, database)
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "benchmark": "nightly",
        "essays": n_essays,
        "new_essays": n_new,
        "backfill": backfill,
        "night": night,
        "quiet_night": quiet,
        "night_vs_backfill_seconds": round(_work_seconds(night) / _work_seconds(backfill), 4),
        "night_vs_backfill_seconds_with_model_load": round(
            night["seconds"] / backfill["seconds"], 4
        ),
        "night_vs_backfill_text_bytes": round(
            night["text_bytes_read"] / max(backfill["text_bytes_read"], 1), 4
        ),
        "quiet_night_seconds": quiet["seconds"],
    }


def _work_seconds(run: dict) -> float:
    """A run's selection and scoring without loading the models: a fixed cost per run (the
    registry reads and ONNX sessions of ten models), whatever the warehouse holds."""
    return run["seconds"] - run["model_load_seconds"]


def print_nightly(figures: dict[str, Any]) -> None:
    import json

    print(f"warehouse of {figures['essays']:,} essays, {figures['new_essays']:,} new on the night")
    print(
        f"{'run':<12} {'seconds':>9} {'select s':>9} {'score s':>9} {'load s':>9} "
        f"{'scored':>9} {'text MB':>9}"
    )
    for name in ("backfill", "night", "quiet_night"):
        run = figures[name]
        print(
            f"{name:<12} {run['seconds']:>9.2f} {run['selection_seconds']:>9.2f} "
            f"{run['scoring_seconds']:>9.2f} {run['model_load_seconds']:>9.2f} "
            f"{run['essays_scored']:>9,} "
            f"{run['text_bytes_read'] / 1e6:>9.2f}"
        )
    print(
        f"night / backfill: {figures['night_vs_backfill_seconds']:.2%} of the selection and "
        f"scoring time ({figures['night_vs_backfill_seconds_with_model_load']:.2%} with loading "
        f"the models), {figures['night_vs_backfill_text_bytes']:.2%} of the essay text read"
    )
    print(json.dumps(figures, sort_keys=True))
