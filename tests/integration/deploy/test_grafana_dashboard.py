"""The Grafana dashboard in deploy/grafana/dashboards: it loads as Grafana's file provisioning
expects, every panel queries the provisioned Prometheus datasource, and every metric its
PromQL names is one the scoring API exports, read from the service's own definitions (so a
renamed series fails here): the registry of huleedu_pipelines/serving/metrics.py, and the
`huleedu_nightly_*` families the collector in serving/batch_metrics.py builds (their names
depend on what the stores hold, so they are read from the family constructors' arguments)."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from huleedu_pipelines.serving import batch_metrics
from huleedu_pipelines.serving.metrics import ServingMetrics

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"

# PromQL words that are not metric names: functions, aggregations, modifiers, keywords.
PROMQL_WORDS = frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "avg",
        "avg_over_time",
        "bool",
        "bottomk",
        "by",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "count",
        "count_over_time",
        "count_values",
        "delta",
        "deriv",
        "exp",
        "floor",
        "group",
        "group_left",
        "group_right",
        "histogram_quantile",
        "idelta",
        "ignoring",
        "increase",
        "inf",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log2",
        "log10",
        "max",
        "max_over_time",
        "min",
        "min_over_time",
        "nan",
        "offset",
        "on",
        "or",
        "and",
        "predict_linear",
        "quantile",
        "quantile_over_time",
        "rate",
        "resets",
        "round",
        "scalar",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev",
        "stdvar",
        "sum",
        "sum_over_time",
        "time",
        "timestamp",
        "topk",
        "unless",
        "vector",
        "without",
    ]
)


def exported_series() -> set[str]:
    """Every series name the scoring API's /metrics can show (histograms' _bucket/_sum/_count,
    counters' _total/_created), from the app's own registry."""
    names: set[str] = set()
    for family in ServingMetrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
            names.add(f"{family.name}_created")
        else:
            names.add(family.name)
    return names | nightly_series()


def nightly_series() -> set[str]:
    """The `huleedu_nightly_*` series: first arguments of `Gauge(...)`, `GaugeMetricFamily(...)`
    and `CounterMetricFamily(...)` (exposed with `_total`) in serving/batch_metrics.py."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(batch_metrics))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if node.func.id in ("Gauge", "GaugeMetricFamily"):
            names.add(first.value)
        elif node.func.id == "CounterMetricFamily":
            names.add(f"{first.value}_total")
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left after dropping strings,
    label matchers, `by (...)`-style label lists, ranges, numbers and PromQL's own words."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([\w\s,]*\)", r"\1", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    identifiers = re.findall(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr)
    return {name for name in identifiers if name.lower() not in PROMQL_WORDS}


def datasource_uid() -> str:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    return datasource["uid"]


def panels_of(dashboard: dict[str, Any], rows: bool = False) -> list[dict[str, Any]]:
    """Every panel, rows' collapsed panels included; the rows themselves only if `rows`."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] != "row" or rows:
            found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'histogram_quantile(0.95, sum by (le, endpoint) (rate(a_seconds_bucket{x=~"/v1.*"}'
            "[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        (
            "sum by (layer) (rate(hits_total[5m])) / on() group_left() (sum(misses_total))",
            {"hits_total", "misses_total"},
        ),
        ('max by (model_name, version) (info{alias="champion"}) == 1', {"info"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_there_is_a_dashboard_to_provision() -> None:
    assert [path.name for path in DASHBOARDS] == ["scoring-api.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_has_the_structure_grafana_provisions(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["title"] and dashboard["uid"]
    assert len(dashboard["uid"]) <= 40  # Grafana's limit on dashboard uids
    assert "id" not in dashboard or dashboard["id"] is None  # Grafana assigns ids on import
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in panels_of(dashboard, rows=True)]
    panels = panels_of(dashboard)
    assert panels
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    uid = datasource_uid()
    for panel in panels:
        where = f"panel {panel['id']} ({panel.get('title')})"
        assert panel["title"] and panel["type"], where
        grid = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(grid) and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert panel["targets"], f"{where} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid, where
            assert target["expr"].strip(), where


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_queried_metric_is_exported_by_the_scoring_api(path: Path) -> None:
    exported = exported_series()
    assert "huleedu_serving_request_duration_seconds_bucket" in exported
    used: set[str] = set()
    for panel in panels_of(json.loads(path.read_text())):
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"no metric in {target['expr']}"
            unknown = names - exported
            assert not unknown, f"panel {panel['title']!r} queries {sorted(unknown)}"
            used |= names
    # The panels the issue asks for: latency, throughput, grades, model versions, reloads
    # and their failures, the feature cache.
    assert {
        "huleedu_serving_request_duration_seconds_bucket",
        "huleedu_serving_requests_total",
        "huleedu_serving_grade_predictions_total",
        "huleedu_serving_model_info",
        "huleedu_serving_model_reloads_total",
        "huleedu_serving_model_reload_failures_total",
        "huleedu_serving_feature_cache_hits_total",
        "huleedu_serving_feature_cache_misses_total",
        # drift and nightly run health, from the batch side
        "huleedu_nightly_drift_psi",
        "huleedu_nightly_last_success_timestamp_seconds",
        "huleedu_nightly_duration_seconds",
    } <= used


def test_nightly_series_are_found_in_the_collector() -> None:
    assert {
        "huleedu_nightly_drift_psi",
        "huleedu_nightly_essays_scored",
        "huleedu_nightly_source_read_failed",
        "huleedu_nightly_source_read_failures_total",
    } <= nightly_series()
