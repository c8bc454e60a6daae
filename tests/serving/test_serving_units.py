"""The scoring API's parts without a server: the model holder's reload decisions (fake
registry, real SQLite warehouse, tiny real bundles), input rules, JSON logs, metric names, and
the layering that keeps the Dagster code location free of the API."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path

import pytest
from fakes import FEATURE_VERSION, FakeRegistry, tiny_bundle
from prometheus_client.parser import text_string_to_metric_families

import huleedu_pipelines
from huleedu_pipelines.modeling.names import (
    ALL_MODELS,
    CEFR_MODEL,
    CHALLENGER,
    CHAMPION,
    GRADE_MODEL,
)
from huleedu_pipelines.services.online_scoring import EssayInput, canary_alias, input_error
from huleedu_pipelines.services.promotion import move_alias
from huleedu_pipelines.serving.holder import ModelHolder
from huleedu_pipelines.serving.logs import JsonFormatter, new_request_id, request_id_var
from huleedu_pipelines.serving.metrics import ServingMetrics
from huleedu_pipelines.warehouse.engine import make_engine, migrate

MODELS = (GRADE_MODEL, CEFR_MODEL)


@pytest.fixture
def warehouse(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(tmp_path / "registry")


def _promote(engine, registry: FakeRegistry, name: str, version: str) -> None:
    move_alias(engine, registry, model_name=name, version=version, reason="test", report_uri=None)


def _holder(engine, registry: FakeRegistry) -> tuple[ModelHolder, ServingMetrics]:
    metrics = ServingMetrics()
    holder = ModelHolder(
        lambda: registry,
        engine,
        feature_version=FEATURE_VERSION,
        interval=60.0,
        metrics=metrics,
        model_names=MODELS,
    )
    return holder, metrics


def _value(metrics: ServingMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name} {labels} not exposed")


def test_holder_swaps_when_a_champion_moves_and_keeps_serving_on_a_bad_bundle(
    warehouse, registry: FakeRegistry
) -> None:
    for name in MODELS:
        _promote(warehouse, registry, name, registry.register(name, tiny_bundle(name)))
    holder, metrics = _holder(warehouse, registry)
    assert not holder.ready and holder.check()
    first = holder.snapshot
    assert first.versions() == {CEFR_MODEL: "1", GRADE_MODEL: "1"} and holder.ready
    assert not holder.check()  # nothing moved: nothing loaded, same snapshot
    assert holder.snapshot is first

    _promote(
        warehouse,
        registry,
        GRADE_MODEL,
        registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, 1)),
    )
    assert holder.check()
    second = holder.snapshot
    assert second.versions() == {CEFR_MODEL: "1", GRADE_MODEL: "2"}
    # The unchanged model is the same loaded bundle, not a reload.
    assert second.models.champions[CEFR_MODEL] is first.models.champions[CEFR_MODEL]
    assert first.versions()[GRADE_MODEL] == "1"  # a request holding the old snapshot keeps it
    assert _value(metrics, "huleedu_serving_model_reloads_total") == 2
    assert _value(metrics, "huleedu_serving_model_info", model_name=GRADE_MODEL, version="2") == 1
    with pytest.raises(AssertionError):
        _value(metrics, "huleedu_serving_model_info", model_name=GRADE_MODEL, version="1")

    # A CEFR bundle registered under the grade model's name does not verify: kept v2, counted
    # once, not retried while the targets stay the same.
    wrong = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, family_of=CEFR_MODEL))
    _promote(warehouse, registry, GRADE_MODEL, wrong)
    assert not holder.check() and not holder.check()
    assert holder.snapshot is second and holder.ready
    assert _value(metrics, "huleedu_serving_model_reload_failures_total", reason="refused") == 1
    assert GRADE_MODEL in holder.status.last_error and "kept the serving models" in (
        holder.status.last_error
    )
    # Rolling the alias back to a good version swaps again.
    _promote(warehouse, registry, GRADE_MODEL, "1")
    assert holder.check() and holder.snapshot.versions()[GRADE_MODEL] == "1"


def test_holder_waits_one_check_when_registry_and_record_disagree(
    warehouse, registry: FakeRegistry
) -> None:
    for name in MODELS:
        _promote(warehouse, registry, name, registry.register(name, tiny_bundle(name)))
    holder, metrics = _holder(warehouse, registry)
    assert holder.check()
    # The alias moved but the record did not (yet): the first check waits, the second loads
    # and refuses, as the nightly job would (an alias moved outside the product).
    new = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, 2))
    registry.set_alias(GRADE_MODEL, CHAMPION, new)
    assert not holder.check()
    assert _value(metrics, "huleedu_serving_model_reload_failures_total", reason="refused") == 0
    assert not holder.check()
    assert _value(metrics, "huleedu_serving_model_reload_failures_total", reason="refused") == 1
    assert holder.snapshot.versions()[GRADE_MODEL] == "1"
    assert "outside the product" in holder.status.last_error


def test_holder_counts_an_unreadable_registry_and_keeps_serving(
    warehouse, registry: FakeRegistry
) -> None:
    _promote(
        warehouse, registry, GRADE_MODEL, registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL))
    )
    holder, metrics = _holder(warehouse, registry)
    assert holder.check()

    def down(*_args):
        raise ConnectionError("registry is down")

    registry.get_version = down
    assert not holder.check()
    assert _value(metrics, "huleedu_serving_model_reload_failures_total", reason="check_error") == 1
    assert holder.ready and holder.snapshot.versions() == {GRADE_MODEL: "1"}


def test_first_load_without_any_champion_is_not_ready(warehouse, registry: FakeRegistry) -> None:
    holder, _ = _holder(warehouse, registry)
    holder.check()
    assert not holder.ready
    assert "no `champion` version" in holder.describe()["problems"][GRADE_MODEL]


@pytest.mark.parametrize(
    ("essay", "field", "rule", "too_large"),
    [
        (EssayInput("x" * 101), "text", "text_too_long", True),
        (EssayInput("   \n"), "text", "empty_text", False),
        (EssayInput("Hello\x00world"), "text", "control_characters", False),
        (EssayInput("1234 !!"), "text", "no_letters", False),
        (EssayInput("A fine essay.", prompt="p" * 101), "prompt", "text_too_long", True),
    ],
)
def test_input_rules_name_the_field_and_tell_413_from_422(
    essay: EssayInput, field: str, rule: str, too_large: bool
) -> None:
    error = input_error(essay, 100)
    assert (error.field, error.rule, error.too_large) == (field, rule, too_large)
    assert input_error(EssayInput("A fine essay.", prompt="Write."), 100) is None


def test_json_log_lines_carry_the_request_id_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("huleedu_pipelines.test_serving_logs")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("abc-123")
    try:
        logger.warning("scored %d essays", 3, extra={"duration_ms": 12.5})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "scored 3 essays" and line["level"] == "warning"
    assert line["request_id"] == "abc-123" and line["duration_ms"] == 12.5
    assert new_request_id("req-1.2:3") == "req-1.2:3"
    for bad in (None, "", "a b", "x" * 129, "evil\nline"):
        generated = new_request_id(bad)
        assert generated != bad and len(generated) == 32


def test_metric_names_follow_prometheus_conventions() -> None:
    exposed = {
        family.name: family.type
        for family in text_string_to_metric_families(ServingMetrics().exposition().decode())
    }
    assert exposed["huleedu_serving_requests"] == "counter"
    assert exposed["huleedu_serving_request_duration_seconds"] == "histogram"
    assert exposed["huleedu_serving_model_reload_failures"] == "counter"
    assert exposed["huleedu_serving_feature_cache_hits"] == "counter"
    assert exposed["huleedu_serving_model_info"] == "gauge"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_code_location_never_imports_the_api_and_the_api_never_imports_dagster() -> None:
    root = Path(huleedu_pipelines.__file__).parent
    web = ("huleedu_pipelines.serving", "fastapi", "uvicorn", "prometheus_client", "starlette")
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        names = _imports(path)
        if relative.startswith("serving/"):
            assert not any(n.split(".")[0] == "dagster" for n in names), relative
            assert not any(
                n.startswith(("huleedu_pipelines.assets", "huleedu_pipelines.resources"))
                for n in names
            ), relative
        elif relative not in ("cli/serve.py",):
            assert not any(n.startswith(web) for n in names), relative
    assert len(ALL_MODELS) == 10


def test_canary_routing_is_sticky_by_student_and_takes_its_share() -> None:
    assert canary_alias(EssayInput("Some text.", student_id="s1"), 0.0) == CHAMPION
    assert canary_alias(EssayInput("Some text.", student_id="s1"), 1.0) == CHALLENGER
    routed = [canary_alias(EssayInput("Same text.", student_id=f"s{i}"), 0.3) for i in range(4000)]
    assert abs(routed.count(CHALLENGER) / len(routed) - 0.3) < 0.03
    for i in range(50):  # the student decides, whatever the essay or its id
        student = f"s{i}"
        first = canary_alias(EssayInput("One essay.", essay_id="e1", student_id=student), 0.3)
        assert first == canary_alias(EssayInput("Another.", essay_id="e2", student_id=student), 0.3)
        assert first == routed[i]
    # Without a student, the essay id decides; without either, the text.
    by_essay = [canary_alias(EssayInput(f"t{i}", essay_id="e-7"), 0.5) for i in range(20)]
    assert len(set(by_essay)) == 1
    assert canary_alias(EssayInput("x y"), 0.5) == canary_alias(EssayInput("x y"), 0.5)


def test_holder_loads_differing_challengers_only_for_the_canary(
    warehouse, registry: FakeRegistry
) -> None:
    for name in MODELS:
        _promote(warehouse, registry, name, registry.register(name, tiny_bundle(name)))
    challenger = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, 3))
    holder, _ = _holder(warehouse, registry)
    assert holder.check() and not holder.snapshot.models.challengers

    canary = ModelHolder(
        lambda: registry,
        warehouse,
        feature_version=FEATURE_VERSION,
        interval=60.0,
        metrics=ServingMetrics(),
        model_names=MODELS,
        load_challengers=True,
    )
    assert canary.check()
    snapshot = canary.snapshot
    assert {n: m.version for n, m in snapshot.models.challengers.items()} == {
        GRADE_MODEL: challenger
    }
    assert snapshot.version_of(GRADE_MODEL, CHALLENGER) == challenger
    assert snapshot.version_of(CEFR_MODEL, CHALLENGER) == "1"  # no challenger: the champion
    assert snapshot.version_of(GRADE_MODEL, CHAMPION) == "1"
    listed = {(m["model_name"], m["alias"]): m["version"] for m in canary.describe()["models"]}
    assert listed[(GRADE_MODEL, CHALLENGER)] == challenger and len(listed) == 3
    assert (
        _value(
            canary.metrics, "huleedu_serving_model_info", model_name=GRADE_MODEL, alias=CHALLENGER
        )
        == 1
    )
    # The challenger alias moving is a change for the canary holder only.
    newer = registry.register(GRADE_MODEL, tiny_bundle(GRADE_MODEL, 4))
    assert canary.check() and canary.snapshot.version_of(GRADE_MODEL, CHALLENGER) == newer
    assert not holder.check()
