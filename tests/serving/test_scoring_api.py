"""The scoring API as a user runs it: `huleedu-pipelines serve` in its own process on a free
loopback port, over a home trained by the real training job (real MLflow store, real models)
and scored by the real nightly job.

The tests share the module's home and server and run in file order: the last ones promote
new champions under load, so they come after the ones that compare with the nightly rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from fakes import register_in_mlflow
from prometheus_client.parser import text_string_to_metric_families

from huleedu_pipelines.assets.partitions import nightly_partition_keys
from huleedu_pipelines.modeling.names import (
    BAND_MODEL,
    CEFR_MODEL,
    CHALLENGER,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.registry import build_registry, load_registered_bundle
from huleedu_pipelines.services.online_scoring import EssayInput, canary_alias
from huleedu_pipelines.services.promotion import move_alias
from huleedu_pipelines.services.scoring import read_essays
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.serving import (
    current_essay_grade_predictions,
    current_skill_assessments,
)
from huleedu_pipelines.warehouse.tables import cj_comparison_pairs

pytestmark = pytest.mark.slow

BACKFILL_DAY = "2026-10-31"
N_ESSAYS = 420  # and seed 5: the essays other trained modules embed (shared feature cache)
RELOAD_SECONDS = 1.0
MAX_BATCH = 8
MAX_TEXT_CHARS = 20_000
FLOAT_REL = 1e-12
"""The same code gives the same numbers, but numpy's matrix products round differently for one
row than for many (a stacked model's ridge stage): a single essay's score can differ from the
nightly job's, which scored 420 at once, in the last two bits (measured: 2e-16)."""
ROUNDED_ABS = 1.5e-6
"""Probabilities and contributions are stored rounded to 6 places; such a last-bit difference
could move one across a rounding boundary."""
NEW_TEXT = (
    "My favourite place is the small library near our school. It is quiet, and the people "
    "who work there always help me find books about history and science. I think every town "
    "should have a library like that, because it gives young people a calm place to read."
)


@dataclass
class Home:
    root: Path
    url: str
    engine: sa.Engine


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def post(self, path: str, body: Any, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, timeout=120, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=60)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_feature_cache) -> Iterator[Home]:
    """A trained home whose every essay the nightly job scored (explaining every row)."""
    import dagster as dg
    from support import TRAINING_GROUPS, run_groups, seed_small_trainable_home

    from huleedu_pipelines.definitions import build_definitions

    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        url = seed_small_trainable_home(patch, root, shared_feature_cache, n_essays=N_ESSAYS)
        patch.setenv("HULEEDU_EXPLAIN_SCOPE", "all")
        patch.setenv("HULEEDU_SERVE_RELOAD_SECONDS", str(RELOAD_SECONDS))
        patch.setenv("HULEEDU_SERVE_MAX_BATCH", str(MAX_BATCH))
        patch.setenv("HULEEDU_SERVE_MAX_TEXT_CHARS", str(MAX_TEXT_CHARS))
        instance = dg.DagsterInstance.ephemeral()
        assert run_groups(instance, url, *TRAINING_GROUPS).success
        nightly = build_definitions(get_settings()).resolve_job_def("nightly_inference_job")
        for key in nightly_partition_keys(BACKFILL_DAY):  # every shard of the day
            scored = nightly.execute_in_process(
                instance=instance,
                partition_key=str(key),
                run_config={"ops": {"inference_features": {"config": {"backfill": True}}}},
            )
            assert scored.success
        yield Home(root, url, make_engine(url))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(home: Home, log_name: str, **env: str) -> Iterator[Server]:
    """`huleedu-pipelines serve` on a free port with the home's environment (plus `env`),
    once `/readyz` says ready; stopped (SIGTERM, then SIGKILL) on exit."""
    port = _free_port()
    log_path = home.root / log_name
    command = [str(Path(sys.executable).parent / "huleedu-pipelines"), "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, f"serve exited:\n{served.log_tail()}"
            try:
                if served.get("/readyz").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"not ready in 300 s:\n{served.log_tail()}"
            time.sleep(0.5)
        yield served
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def server(home: Home) -> Iterator[Server]:
    with serving(home, "serve.log") as served:
        yield served


def _champions() -> dict[str, str]:
    registry = build_registry(get_settings())
    return {
        name: registry.get_version(name, CHAMPION).version
        for name in (GRADE_MODEL, CEFR_MODEL, BAND_MODEL, *SKILL_MODELS.values())
    }


def _rows(engine: sa.Engine, view: sa.Table, essay_ids: list[str]) -> list[dict]:
    with engine.connect() as connection:
        query = sa.select(view).where(view.c.essay_id.in_(essay_ids))
        return [dict(row) for row in connection.execute(query).mappings()]


def test_api_scores_equal_the_nightly_rows(home: Home, server: Server) -> None:
    with home.engine.connect() as connection:
        essays = read_essays(connection)
        pairs = connection.execute(sa.select(cj_comparison_pairs.c.essay_a_id)).scalars().all()
    compared = sorted(set(pairs))
    plain = sorted(set(essays["essay_id"]) - set(pairs))
    chosen = compared[:6] + plain[:4]
    assert len(chosen) == 10 and len(compared) >= 6
    body = {
        row["essay_id"]: {
            "text": row["text"],
            "prompt": row["prompt_text"],
            "essay_id": row["essay_id"],
            "student_id": row["student_id"],
        }
        for row in essays.filter(essays["essay_id"].is_in(chosen)).iter_rows(named=True)
    }
    batch = server.post("/v1/score/batch", {"essays": [body[e] for e in chosen[:MAX_BATCH]]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["failed"] == 0
    scored = {item["essay_id"]: item["result"] for item in batch.json()["results"]}
    for essay_id in chosen[MAX_BATCH:]:
        single = server.post("/v1/score", body[essay_id])
        assert single.status_code == 200, single.text
        scored[essay_id] = single.json()

    grades = {
        row["essay_id"]: row for row in _rows(home.engine, current_essay_grade_predictions, chosen)
    }
    skills: dict[str, dict[str, dict]] = {}
    for row in _rows(home.engine, current_skill_assessments, chosen):
        skills.setdefault(row["essay_id"], {})[row["skill"]] = row
    champions = _champions()
    for essay_id in chosen:
        api, night = scored[essay_id], grades[essay_id]
        # The feature hash covers the text, the prompt and the CJ features' values.
        assert api["feature_hash"] == night["feature_hash"], essay_id
        for column in ("grade", "cefr", "ielts_band", "needs_review", "review_reasons"):
            assert api[column] == night[column], (essay_id, column)
        assert api["confidence"] == pytest.approx(night["confidence"], rel=FLOAT_REL)
        for column in ("grade_probabilities", "cefr_probabilities"):
            assert api[column] == pytest.approx(night[column], abs=ROUNDED_ABS), column
        assert len(api["grade_probabilities"]) == 8
        assert {m["model_name"]: m["version"] for m in api["models"]} == champions
        assert {m["alias"] for m in api["models"]} == {CHAMPION} and api["model_alias"] == CHAMPION
        assert night["grade_model_version"] == champions[GRADE_MODEL]
        assert len(api["skills"]) == 7
        for skill in api["skills"]:
            stored = skills[essay_id][skill["skill"]]
            assert api["student_id"] == stored["student_id"]
            assert skill["model_version"] == stored["model_version"]
            assert skill["score"] == pytest.approx(stored["score"], rel=FLOAT_REL)
            assert skill["confidence"] == pytest.approx(stored["confidence"], rel=1e-9)
            assert skill["top_features"] and len(skill["top_features"]) == len(
                stored["top_features"]
            )
            for mine, theirs in zip(skill["top_features"], stored["top_features"], strict=True):
                assert mine["feature"] == theirs["feature"]
                assert mine["contribution"] == pytest.approx(
                    theirs["contribution"], abs=ROUNDED_ABS
                )


def test_a_repeated_text_reuses_its_features(server: Server) -> None:
    essay = {"text": NEW_TEXT, "prompt": "Describe a place you like."}
    misses = server.metric("huleedu_serving_feature_cache_misses_total")
    hits = server.metric("huleedu_serving_feature_cache_hits_total", layer="memory")
    started = time.perf_counter()
    first = server.post("/v1/score", essay)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    second = server.post("/v1/score", {**essay, "essay_id": "another-id"})
    warm = time.perf_counter() - started
    assert first.status_code == second.status_code == 200
    assert server.metric("huleedu_serving_feature_cache_misses_total") == misses + 1
    assert server.metric("huleedu_serving_feature_cache_hits_total", layer="memory") == hits + 1
    same = ("grade_probabilities", "feature_hash", "skills", "needs_review")
    assert {k: first.json()[k] for k in same} == {k: second.json()[k] for k in same}
    assert second.json()["essay_id"] == "another-id" and first.json()["essay_id"] is None
    print(f"cold {cold * 1000:.0f} ms, cached {warm * 1000:.0f} ms")


def _errors(response: requests.Response) -> dict[str, str]:
    body = response.json()
    assert "Traceback" not in response.text and body["request_id"]
    return {error["field"]: error["code"] for error in body["errors"]}


def test_bad_input_is_422_naming_the_field_and_oversized_is_413(server: Server) -> None:
    fine = {"text": NEW_TEXT}
    cases = [
        ({}, 422, {"text": "missing"}),
        ({"text": 42}, 422, {"text": "string_type"}),
        ({"text": "   "}, 422, {"text": "empty_text"}),
        ({"text": "Hello\x07there"}, 422, {"text": "control_characters"}),
        ({**fine, "essay_id": ""}, 422, {"essay_id": "string_too_short"}),
        ({**fine, "grade": "A"}, 422, {"grade": "extra_forbidden"}),
        ({"text": "a" * (MAX_TEXT_CHARS + 1)}, 413, {"text": "text_too_long"}),
        ({**fine, "prompt": "p" * (MAX_TEXT_CHARS + 1)}, 413, {"prompt": "text_too_long"}),
    ]
    for body, status, fields in cases:
        response = server.post("/v1/score", body)
        assert response.status_code == status, (body.keys(), response.text)
        assert _errors(response) == fields
    broken = requests.post(
        f"{server.url}/v1/score",
        data=b"{not json",
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and "Traceback" not in broken.text

    too_many = server.post("/v1/score/batch", {"essays": [fine] * (MAX_BATCH + 1)})
    assert too_many.status_code == 413 and _errors(too_many) == {"essays": "batch_too_large"}
    assert server.post("/v1/score/batch", {"essays": []}).status_code == 422
    nested = server.post("/v1/score/batch", {"essays": [fine, {"txt": "x"}]})
    assert nested.status_code == 422
    assert _errors(nested) == {"essays.1.text": "missing", "essays.1.txt": "extra_forbidden"}

    # Per-essay errors do not fail the batch: the others are scored.
    mixed = server.post(
        "/v1/score/batch",
        {"essays": [fine, {"text": ""}, {"text": "b" * (MAX_TEXT_CHARS + 1)}, fine]},
    )
    assert mixed.status_code == 200
    results = mixed.json()["results"]
    assert mixed.json()["scored"] == 2 and mixed.json()["failed"] == 2
    assert [r["error"]["status"] if r["error"] else 200 for r in results] == [200, 422, 413, 200]
    assert results[1]["error"]["field"] == "essays.1.text"
    assert (
        results[0]["result"]["grade_probabilities"] == results[3]["result"]["grade_probabilities"]
    )

    huge = requests.post(
        f"{server.url}/v1/score",
        data=b"x" * (MAX_BATCH * 8 * MAX_TEXT_CHARS + 10**6),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert huge.status_code == 413 and "bytes" in huge.json()["detail"]


def test_models_health_and_openapi(server: Server) -> None:
    models = server.get("/v1/models").json()
    champions = _champions()
    assert (
        models["ready"] and {m["model_name"]: m["version"] for m in models["models"]} == champions
    )
    grade = next(m for m in models["models"] if m["model_name"] == GRADE_MODEL)
    assert 0 < grade["metrics"]["test_qwk"] <= 1 and grade["loaded_at"]
    assert models["reload_interval_seconds"] == RELOAD_SECONDS
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/readyz").json() == {"ready": True, "models": champions}
    paths = server.get("/openapi.json").json()["paths"]
    assert {"/v1/score", "/v1/score/batch", "/v1/models", "/healthz", "/readyz"} <= set(paths)
    assert "413" in paths["/v1/score"]["post"]["responses"]


def test_metrics_name_the_series_after_requests(server: Server) -> None:
    grade_version = _champions()[GRADE_MODEL]
    before = server.metric("huleedu_serving_grade_predictions_total")
    response = server.post("/v1/score/batch", {"essays": [{"text": NEW_TEXT}] * 3})
    assert response.status_code == 200
    grades = [item["result"]["grade"] for item in response.json()["results"]]
    assert server.metric("huleedu_serving_grade_predictions_total") == before + 3
    assert (
        server.metric(
            "huleedu_serving_grade_predictions_total", grade=grades[0], model_version=grade_version
        )
        >= 3
    )
    assert (
        server.metric(
            "huleedu_serving_requests_total",
            endpoint="/v1/score/batch",
            status="200",
            model_version=grade_version,
        )
        >= 1
    )
    assert server.metric("huleedu_serving_requests_total", endpoint="/v1/score", status="422") >= 1
    assert (
        server.metric(
            "huleedu_serving_request_duration_seconds_count",
            endpoint="/v1/score",
            model_version=grade_version,
        )
        >= 1
    )
    assert server.metric("huleedu_serving_cefr_predictions_total") >= 3
    assert server.metric("huleedu_serving_model_info") == 10
    assert (
        server.metric(
            "huleedu_serving_model_info",
            model_name=GRADE_MODEL,
            version=grade_version,
            alias=CHAMPION,
        )
        == 1
    )
    assert server.metric("huleedu_serving_model_reloads_total") == 1
    assert server.metric("huleedu_serving_model_reload_failures_total") == 0
    assert server.metric("huleedu_serving_feature_cache_hits_total", layer="memory") >= 2
    assert server.metric("huleedu_serving_stage_duration_seconds_count", stage="models") >= 1
    assert server.metric("huleedu_serving_ready") == 1


def test_log_lines_are_json_with_the_request_id(server: Server) -> None:
    response = server.post("/v1/score", {"text": NEW_TEXT}, headers={"X-Request-ID": "req-4711"})
    assert response.headers["X-Request-ID"] == "req-4711"
    generated = server.post("/v1/score", {"text": ""}).headers["X-Request-ID"]
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in server.log_path.read_text(errors="replace").splitlines()
            if line.startswith("{")
        ]
        by_id = {line.get("request_id"): line for line in lines if line.get("event") == "request"}
        if {"req-4711", generated} <= set(by_id) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert by_id["req-4711"]["status"] == 200 and by_id["req-4711"]["path"] == "/v1/score"
    assert by_id[generated]["status"] == 422 and by_id["req-4711"]["duration_ms"] > 0
    assert any(line.get("event") == "models_swapped" for line in lines)


def _new_version_of(name: str, version: str, folder: Path, *, bundle_of: str | None = None) -> str:
    """Register a copy of `version`'s bundle (or of `bundle_of`'s champion) as a new version."""
    registry = build_registry(get_settings())
    source = bundle_of or name
    source_version = version if bundle_of is None else _champions()[bundle_of]
    bundle = load_registered_bundle(registry, source, source_version)
    return register_in_mlflow(registry, name, bundle, folder)


def test_canary_students_stick_to_the_challenger_and_are_labelled(home: Home) -> None:
    champion = _champions()[GRADE_MODEL]
    challenger = _new_version_of(GRADE_MODEL, champion, home.root / "canary")
    share = 0.5
    with serving(home, "serve-canary.log", HULEEDU_SERVE_CANARY_SHARE=str(share)) as canary:
        models = canary.get("/v1/models").json()["models"]
        assert {(m["model_name"], m["alias"]) for m in models if m["version"] == challenger} == {
            (GRADE_MODEL, CHALLENGER)
        }
        students = [f"student-{i}" for i in range(24)]
        expected = {s: canary_alias(EssayInput(NEW_TEXT, student_id=s), share) for s in students}
        assert 4 <= sum(a == CHALLENGER for a in expected.values()) <= 20
        for student in students:
            for text in (NEW_TEXT, NEW_TEXT + " It has a garden too."):  # sticky: any essay
                body = canary.post("/v1/score", {"text": text, "student_id": student}).json()
                assert body["model_alias"] == expected[student], student
                used = {m["model_name"]: (m["version"], m["alias"]) for m in body["models"]}
                if expected[student] == CHALLENGER:
                    assert used[GRADE_MODEL] == (challenger, CHALLENGER)
                else:
                    assert used[GRADE_MODEL] == (champion, CHAMPION)
                # Models without a differing challenger score canary essays as champions.
                assert used[CEFR_MODEL][1] == CHAMPION and len(used) == 10
                assert all(skill["top_features"] for skill in body["skills"])
        batch = canary.post(
            "/v1/score/batch",
            {"essays": [{"text": NEW_TEXT, "student_id": s} for s in students[:MAX_BATCH]]},
        ).json()
        assert [r["result"]["model_alias"] for r in batch["results"]] == [
            expected[s] for s in students[:MAX_BATCH]
        ]
        routed = 2 * sum(a == CHALLENGER for a in expected.values()) + sum(
            expected[s] == CHALLENGER for s in students[:MAX_BATCH]
        )
        assert (
            canary.metric(
                "huleedu_serving_grade_predictions_total",
                model_version=challenger,
                alias=CHALLENGER,
            )
            == routed
        )
        assert (
            canary.metric(
                "huleedu_serving_grade_predictions_total", model_version=champion, alias=CHAMPION
            )
            == 2 * len(students) + MAX_BATCH - routed
        )
        assert (
            canary.metric(
                "huleedu_serving_model_info",
                model_name=GRADE_MODEL,
                version=challenger,
                alias=CHALLENGER,
            )
            == 1
        )
        assert canary.metric(
            "huleedu_serving_requests_total",
            endpoint="/v1/score",
            alias=CHALLENGER,
            model_version=challenger,
        ) == 2 * sum(a == CHALLENGER for a in expected.values())


def test_a_new_champion_serves_under_load_without_a_failed_request(
    home: Home, server: Server
) -> None:
    old = _champions()[GRADE_MODEL]
    new = _new_version_of(GRADE_MODEL, old, home.root / "copy")
    essays = [{"text": NEW_TEXT}, {"text": NEW_TEXT + " And I like music too."}]
    outcomes: list[tuple[float, float, int, str | None]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{server.url}/v1/score", json=essays[worker % 2], timeout=60
                )
                versions = {
                    m["model_name"]: m["version"] for m in response.json().get("models", [])
                }
                outcomes.append(
                    (sent, time.monotonic(), response.status_code, versions.get(GRADE_MODEL))
                )
            except requests.RequestException as error:
                outcomes.append((sent, time.monotonic(), 0, repr(error)))

    workers = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2)
        promoted_at = time.monotonic()
        move_alias(
            home.engine,
            build_registry(get_settings()),
            model_name=GRADE_MODEL,
            version=new,
            reason="test: promoted under load",
            report_uri=None,
        )
        deadline = promoted_at + 60
        while time.monotonic() < deadline and not any(o[3] == new for o in outcomes):
            time.sleep(0.1)
        time.sleep(1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    failed = [o for o in outcomes if o[2] != 200]
    assert not failed, failed[:5]
    first_new = min(o[1] for o in outcomes if o[3] == new)
    seconds_to_new = first_new - promoted_at
    print(f"{len(outcomes)} requests, new version served {seconds_to_new:.1f} s after promotion")
    # Within the interval, plus the time to download, verify and warm one model on a busy
    # 2-core machine.
    assert seconds_to_new < RELOAD_SECONDS + 20
    assert {o[3] for o in outcomes if o[1] < promoted_at} == {old}
    # Once a response named the new version, every request sent after it did too.
    assert {o[3] for o in outcomes if o[0] > first_new} == {new}
    assert server.metric("huleedu_serving_model_reloads_total") == 2
    assert server.metric("huleedu_serving_model_info", model_name=GRADE_MODEL, version=new) == 1
    assert server.metric("huleedu_serving_model_info", model_name=GRADE_MODEL, version=old) == 0


def test_a_champion_that_does_not_verify_leaves_the_serving_models(
    home: Home, server: Server
) -> None:
    serving = _champions()[GRADE_MODEL]
    wrong = _new_version_of(GRADE_MODEL, serving, home.root / "wrong", bundle_of=CEFR_MODEL)
    move_alias(
        home.engine,
        build_registry(get_settings()),
        model_name=GRADE_MODEL,
        version=wrong,
        reason="test: a CEFR bundle under the grade name",
        report_uri=None,
    )
    deadline = time.monotonic() + 60
    while server.metric("huleedu_serving_model_reload_failures_total", reason="refused") < 1:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.3)
    models = server.get("/v1/models").json()
    assert GRADE_MODEL in models["last_error"] and models["ready"]
    response = server.post("/v1/score", {"text": NEW_TEXT})
    assert response.status_code == 200
    versions = {m["model_name"]: m["version"] for m in response.json()["models"]}
    assert versions[GRADE_MODEL] == serving
    time.sleep(3 * RELOAD_SECONDS)  # the same targets are not tried (nor counted) again
    assert server.metric("huleedu_serving_model_reload_failures_total", reason="refused") == 1
    assert dt.datetime.fromisoformat(models["last_check_at"]) > dt.datetime.fromisoformat(
        models["swapped_at"]
    )
