"""`huleedu-pipelines bench serving`: a bounded load on the scoring API, localhost only.

The benchmark starts `huleedu-pipelines serve` itself on a free 127.0.0.1 port, on the current
home's champions, with a temporary feature cache (so "cold" texts are really new and the
home's cache is not touched), waits for `/readyz`, then runs four phases of `duration`
seconds each with `concurrency` client threads:

    single cold    POST /v1/score, every request a text the server has not seen
    single cached  POST /v1/score, repeating a few texts already scored (memory hits)
    batch cold     POST /v1/score/batch with 50 new texts a request
    batch cached   POST /v1/score/batch with the same 50 texts

Texts come from the demo generator with a fresh seed (not the demo's), so no data file is
needed. Per phase it prints p50/p95/p99 latency, requests/s and essays/s, the feature-cache
hit rate the server counted, and the share of the server's scoring time in features (text
features, embedding and CJ, timed together by the service) and in models, read from
`huleedu_serving_stage_duration_seconds` on /metrics. Embedding and text features are not
timed apart by the service, so their split is not measured. The server is stopped at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BATCH_SIZE = 50
CACHED_SINGLE_TEXTS = 8
AS_OF = dt.date(2026, 11, 1)
PHASES = (("single", "cold"), ("single", "cached"), ("batch", "cold"), ("batch", "cached"))
NO_CHAMPION = "no champion model on this home: run `huleedu-pipelines demo` first"

_STAGE_SUM = re.compile(
    r'^huleedu_serving_stage_duration_seconds_sum\{stage="(?P<stage>[^"]+)"\}\s+(?P<value>\S+)$',
    re.M,
)
_COUNTER = re.compile(
    r"^(?P<name>huleedu_serving_feature_cache_(?:hits|misses)_total)(?:\{[^}]*\})?\s+(?P<value>\S+)$",
    re.M,
)


class BenchError(RuntimeError):
    """The benchmark cannot run (no champion, the server did not start); the message says why."""


# -- pure parts: percentiles, summaries, /metrics readings -----------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(
    latencies: Sequence[float], seconds: float, essays_per_request: int, errors: int = 0
) -> dict[str, Any]:
    """Latency percentiles (ms) and rates of one phase: `latencies` of the successful
    requests in seconds, over `seconds` of wall time."""
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if n else None,
        "p95_ms": round(percentile(latencies, 95) * 1000, 2) if n else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if n else None,
        "requests_per_s": round(n / seconds, 2) if seconds > 0 else None,
        "essays_per_s": round(n * essays_per_request / seconds, 2) if seconds > 0 else None,
    }


@dataclass(frozen=True)
class ServerReading:
    """What the phases need from one scrape of /metrics."""

    stage_seconds: dict[str, float] = field(default_factory=dict)
    cache_hits: float = 0.0
    cache_misses: float = 0.0


def read_metrics(exposition: str) -> ServerReading:
    stages = {m["stage"]: float(m["value"]) for m in _STAGE_SUM.finditer(exposition)}
    hits = misses = 0.0
    for match in _COUNTER.finditer(exposition):
        if match["name"].endswith("hits_total"):
            hits += float(match["value"])
        else:
            misses += float(match["value"])
    return ServerReading(stages, hits, misses)


def server_shares(before: ServerReading, after: ServerReading) -> dict[str, Any]:
    """Share of the server's scoring time per stage, and the feature-cache hit rate, between
    two scrapes."""
    spent = {
        stage: after.stage_seconds.get(stage, 0.0) - before.stage_seconds.get(stage, 0.0)
        for stage in sorted(set(before.stage_seconds) | set(after.stage_seconds))
    }
    total = sum(spent.values())
    hits = after.cache_hits - before.cache_hits
    looked_up = hits + after.cache_misses - before.cache_misses
    return {
        "share_features": round(spent.get("features", 0.0) / total, 3) if total > 0 else None,
        "share_models": round(spent.get("models", 0.0) / total, 3) if total > 0 else None,
        "cache_hit_rate": round(hits / looked_up, 3) if looked_up > 0 else None,
    }


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_champion() -> str:
    """The grade champion's version on the current home's registry, or BenchError."""
    from huleedu_pipelines.modeling.names import CHAMPION, GRADE_MODEL
    from huleedu_pipelines.registry import build_registry
    from huleedu_pipelines.registry.mlflow import sqlite_database
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    database = sqlite_database(settings.resolved_mlflow_tracking_uri)
    if database is not None and not database.exists():
        raise BenchError(f"{NO_CHAMPION} (no registry at {database})")
    ref = build_registry(settings).get_version(GRADE_MODEL, CHAMPION)
    if ref is None:
        raise BenchError(f"{NO_CHAMPION} ({GRADE_MODEL} has no {CHAMPION} alias)")
    return ref.version


@contextlib.contextmanager
def running_server(port: int, workdir: Path, startup_timeout: float) -> Iterator[str]:
    """`huleedu-pipelines serve` on 127.0.0.1:`port`, ready; stopped (its process group) on
    exit. Yields the base URL."""
    import requests

    env = dict(os.environ)
    env["HULEEDU_FEATURE_CACHE_DIR"] = str(workdir / "feature_cache")
    env["HULEEDU_SERVE_RELOAD_SECONDS"] = "3600"  # no registry checks inside the phases
    env["HULEEDU_SERVE_MAX_BATCH"] = str(BATCH_SIZE)
    log_path = workdir / "serve.log"
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-c",
        "from huleedu_pipelines.cli import app; app()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                raise BenchError(f"the server exited ({server.returncode}):\n{_tail(log_path)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the server was not ready after {startup_timeout:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield base
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- the load --------------------------------------------------------------------------------


def essay_texts(n: int, seed: int) -> list[dict[str, str]]:
    """`n` generated essays as request bodies (text, prompt, essay_id, student_id)."""
    from huleedu_pipelines.demo_data.generator import generate_demo_warehouse

    demo = generate_demo_warehouse(n_essays=n, seed=seed, as_of=AS_OF)
    prompts = {p["prompt_id"]: p["text"] for p in demo.prompts}
    bodies = []
    for index, essay in enumerate(demo.essays):
        body = {"text": essay["text"], "essay_id": f"bench-{seed}-{index}"}
        if prompts.get(essay["prompt_id"]):
            body["prompt"] = prompts[essay["prompt_id"]]
        bodies.append(body)
    return bodies


def run_phase(
    send: Callable[[Any, Any], bool],
    next_payload: Callable[[], Any | None],
    duration: float,
    concurrency: int,
) -> tuple[list[float], int, float]:
    """`concurrency` threads send `next_payload()` with `send(session, payload)` until
    `duration` seconds pass or the payloads run out. Returns the successful requests'
    latencies, the number of failures and the wall time."""
    import requests

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    started = time.perf_counter()
    stop_at = started + duration

    def worker() -> None:
        nonlocal errors
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                with lock:
                    payload = next_payload()
                if payload is None:
                    return
                begin = time.perf_counter()
                ok = send(session, payload)
                elapsed = time.perf_counter() - begin
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def _payloads(kind: str, texts: Sequence[dict[str, str]], repeat: bool) -> Callable[[], Any]:
    """A payload source: a single essay or a batch of 50, new each time (None when the texts
    run out) or cycling over the same ones."""
    size = 1 if kind == "single" else BATCH_SIZE
    position = 0

    def next_payload() -> Any | None:
        nonlocal position
        if repeat:
            start = position % len(texts)
            chunk = [texts[(start + i) % len(texts)] for i in range(size)]
        else:
            if position + size > len(texts):
                return None
            chunk = list(texts[position : position + size])
        position += size
        return chunk[0] if kind == "single" else {"essays": chunk}

    return next_payload


def bench_serving(
    duration: float,
    concurrency: int,
    essays: int,
    seed: int | None = None,
    startup_timeout: float = 600.0,
) -> dict[str, Any]:
    """The four phases against a server started here; figures as one flat dict."""
    import requests

    champion = check_champion()
    seed = seed if seed is not None else int(time.time()) % 1_000_000
    texts = essay_texts(essays, seed)
    words = sum(len(body["text"].split()) for body in texts) / len(texts)
    warm = {"single": texts[:CACHED_SINGLE_TEXTS], "batch": texts[:BATCH_SIZE]}
    cold = list(texts[BATCH_SIZE:])
    cold_split = len(cold) // 4  # a quarter for single essays, the rest for batches
    cold_texts = {"single": cold[:cold_split], "batch": cold[cold_split:]}

    figures: dict[str, Any] = {
        "benchmark": "serving",
        "grade_champion_version": champion,
        "duration_s_per_phase": duration,
        "concurrency": concurrency,
        "essays_generated": len(texts),
        "mean_words_per_essay": round(words, 1),
        "seed": seed,
        "embedding_vs_text_features": "not measured (the service times them together as "
        "'features')",
    }
    with (
        tempfile.TemporaryDirectory(prefix="huleedu-bench-serving-") as workdir,
        running_server(free_port(), Path(workdir), startup_timeout) as base,
    ):

        def send(session: Any, payload: Any) -> bool:
            path = "/v1/score" if "essays" not in payload else "/v1/score/batch"
            response = session.post(f"{base}{path}", json=payload, timeout=120)
            if response.status_code != 200:
                return False
            return path == "/v1/score" or response.json()["failed"] == 0

        def scrape() -> ServerReading:
            return read_metrics(requests.get(f"{base}/metrics", timeout=10).text)

        with requests.Session() as session:  # the cached phases' texts, scored once
            for body in warm["single"]:
                send(session, body)
            send(session, {"essays": warm["batch"]})

        for kind, cache in PHASES:
            before = scrape()
            latencies, errors, seconds = run_phase(
                send,
                _payloads(
                    kind,
                    warm[kind] if cache == "cached" else cold_texts[kind],
                    repeat=cache == "cached",
                ),
                duration,
                concurrency,
            )
            summary = summarise(latencies, seconds, 1 if kind == "single" else BATCH_SIZE, errors)
            summary |= server_shares(before, scrape())
            for key, value in summary.items():
                figures[f"{kind}_{cache}_{key}"] = value
    figures["python"] = platform.python_version()
    figures["cpus"] = os.cpu_count()
    return figures


def print_serving(figures: Mapping[str, Any]) -> None:
    """A table per phase, then the figures as one JSON line."""
    head = {k: v for k, v in figures.items() if not k.startswith(("single_", "batch_"))}
    for key, value in head.items():
        print(f"{key:<28}  {value}")
    columns = (
        "requests",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "requests_per_s",
        "essays_per_s",
        "cache_hit_rate",
        "share_features",
        "share_models",
    )
    print()
    print(f"{'phase':<14}" + "".join(f"{column:>16}" for column in columns))
    for kind, cache in PHASES:
        cells = [figures.get(f"{kind}_{cache}_{column}") for column in columns]
        print(f"{kind + ' ' + cache:<14}" + "".join(f"{cell!s:>16}" for cell in cells))
    print(json.dumps(dict(figures), sort_keys=True))
