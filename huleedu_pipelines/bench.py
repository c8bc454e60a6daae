"""Benchmarks behind `huleedu-pipelines bench ...`: figures, never pass/fail.

Each benchmark measures the pipeline's way and a naive baseline in the same run, on the same
generated essays, prints a readable table and ends with one line of JSON (DESIGN.md §8).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from typing import Any

AS_OF = dt.date(2026, 11, 1)


def _rate(count: int, work: Callable[[], Any]) -> tuple[float, float]:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    return count / seconds, seconds


def _essays(n: int, seed: int) -> tuple[list[str], list[str | None]]:
    from huleedu_pipelines.demo_data.generator import generate_demo_warehouse

    demo = generate_demo_warehouse(n_essays=n, seed=seed, as_of=AS_OF)
    prompts = {p["prompt_id"]: p["text"] for p in demo.prompts}
    texts = [e["text"] for e in demo.essays]
    return texts, [prompts.get(e["prompt_id"]) for e in demo.essays]


def bench_features(n_essays: int, n_embed: int, seed: int = 11) -> dict[str, Any]:
    """Text features batched vs one essay at a time; embeddings batched vs one at a time."""
    from huleedu_pipelines.features.embeddings import SentenceEmbedder
    from huleedu_pipelines.features.text import compute_text_features, compute_text_features_naive

    texts, prompts = _essays(n_essays, seed)
    words = sum(len(text.split()) for text in texts) / len(texts)
    compute_text_features(texts[:2], prompts[:2])  # load word lists once, outside the timing
    text_rate, _ = _rate(len(texts), lambda: compute_text_features(texts, prompts))
    naive_n = min(len(texts), 200)
    naive_rate, _ = _rate(
        naive_n, lambda: compute_text_features_naive(texts[:naive_n], prompts[:naive_n])
    )

    embedder = SentenceEmbedder(num_threads=2)
    embedder.embed(texts[:2])  # load the model outside the timing
    sample = texts[:n_embed]
    embed_rate, _ = _rate(len(sample), lambda: embedder.embed(sample))
    one_rate, _ = _rate(len(sample), lambda: embedder.embed_one_at_a_time(sample))
    return {
        "benchmark": "features",
        "essays": len(texts),
        "mean_words_per_essay": round(words, 1),
        "text_features_essays_per_s": round(text_rate, 1),
        "text_features_naive_essays_per_s": round(naive_rate, 1),
        "text_features_speedup": round(text_rate / naive_rate, 2),
        "embedding_essays": len(sample),
        "embeddings_essays_per_s": round(embed_rate, 2),
        "embeddings_one_at_a_time_essays_per_s": round(one_rate, 2),
        "embeddings_speedup": round(embed_rate / one_rate, 2),
        "python": platform.python_version(),
    }


def bench_training(n_essays: int, seed: int = 7) -> dict[str, Any]:
    """Wall time of each training step and of the whole training job on demo data, run
    in-process in a temporary home (features are computed first and timed apart)."""
    import os
    import tempfile
    from pathlib import Path

    import dagster as dg

    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.engine import make_engine

    home = Path(tempfile.mkdtemp(prefix="huleedu-bench-"))
    os.environ["HULEEDU_HOME"] = str(home)
    for variable in ("HULEEDU_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        os.environ.pop(variable, None)
    settings = get_settings()
    seed_demo_warehouse(
        make_engine(settings.resolved_warehouse_url),
        n_essays=n_essays,
        seed=seed,
        as_of=AS_OF,
        bad_rows=0,
        latent_truth_path=home / "demo_latent_truth.parquet",
    )
    features_job = dg.define_asset_job(
        "bench_features_job", selection=dg.AssetSelection.groups("ingest", "labels", "features")
    )
    training_job = dg.define_asset_job(
        "bench_training_job", selection=dg.AssetSelection.groups("training")
    )
    defs = dg.Definitions.merge(
        build_definitions(settings), dg.Definitions(jobs=[features_job, training_job])
    )
    instance = dg.DagsterInstance.ephemeral()
    _, feature_seconds = _rate(
        1, lambda: defs.resolve_job_def("bench_features_job").execute_in_process(instance=instance)
    )
    start = time.perf_counter()
    result = defs.resolve_job_def("bench_training_job").execute_in_process(instance=instance)
    job_seconds = time.perf_counter() - start
    steps = {
        event.step_key: round(event.event_specific_data.duration_ms / 1000.0, 2)
        for event in result.all_events
        if event.is_step_success
        and event.step_key
        in {"training_splits", "grade_model", "cefr_model", "ielts_band_model", "skill_models"}
    }
    return {
        "benchmark": "training",
        "essays": n_essays,
        "optuna_trials": settings.optuna_trials,
        "n_jobs": settings.n_jobs,
        "features_seconds": round(feature_seconds, 1),
        "training_job_seconds": round(job_seconds, 1),
        **{f"{step}_seconds": seconds for step, seconds in sorted(steps.items())},
        "skill_model_mean_seconds": round(steps.get("skill_models", 0.0) / 7, 2),
    }


def print_figures(figures: dict[str, Any]) -> None:
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures, sort_keys=True))
