"""A snapshot of the graph: an accidental change to assets, groups, checks or jobs fails here."""

import subprocess
import sys

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle

from huleedu_pipelines.definitions import build_definitions
from huleedu_pipelines.jobs.retries import transient_retry_policy
from huleedu_pipelines.settings import Settings, get_settings

EXPECTED_GROUPS = {
    "raw_essays": "ingest",
    "raw_labels": "ingest",
    "cj_comparisons": "ingest",
    "essay_attributes": "ingest",
    "second_ratings": "ingest",
    "swedish_grade_labels": "labels",
    "cefr_labels": "labels",
    "skill_labels": "labels",
    "text_features": "features",
    "essay_embeddings": "features",
    "cj_features": "features",
    "feature_table": "features",
    "training_splits": "training",
    "grade_model": "training",
    "cefr_model": "training",
    "ielts_band_model": "training",
    "skill_models": "training",
    "validation_reports": "validation",
    "promoted_models": "validation",
    "model_coherence_report": "validation",
}
NIGHTLY_GROUPS = {
    "inference_features": "inference",
    "skill_assessments": "inference",
    "essay_grade_predictions": "inference",
    "prediction_monitoring": "monitoring",
}

EXPECTED_CHECKS = {
    ("raw_essays", "check_raw_essays"),
    ("raw_labels", "check_raw_labels"),
    ("cj_comparisons", "check_cj_comparisons"),
    ("swedish_grade_labels", "check_swedish_grade_labels"),
    ("cefr_labels", "check_cefr_labels"),
    ("feature_table", "check_feature_table_values"),
    ("essay_embeddings", "check_embedding_norms"),
    ("cj_features", "check_cj_standard_errors"),
    ("grade_model", "check_grade_model_onnx_parity"),
    ("cefr_model", "check_cefr_model_onnx_parity"),
    ("ielts_band_model", "check_ielts_band_model_onnx_parity"),
    ("skill_models", "check_skill_models_onnx_parity"),
    *(
        ("validation_reports", f"gate_{gate}")
        for gate in (
            "min_qwk",
            "min_adjacent_agreement",
            "max_ece",
            "max_grade_share_difference",
            "onnx_parity_over_tolerance",
            "onnx_parity_flipped",
            "latency_p95_single",
            "latency_p95_batch50",
            "non_inferiority",
            "min_skill_pearson_r",
            "beats_trivial",
            "not_worse_than_ridge",
            "max_band_mae",
            "min_cefr_qwk",
            "min_skill_roc_auc",
            "max_abs_smd",
            "max_abs_subgroup_smd",
            "max_gaming_share",
            "max_qwk_degradation",
        )
    ),
}
NIGHTLY_CHECKS = {
    ("skill_assessments", "check_skill_assessments_current"),
    ("essay_grade_predictions", "check_grade_predictions_current"),
    ("prediction_monitoring", "check_prediction_drift"),
    ("prediction_monitoring", "check_skill_agreement_with_teachers"),
}

HEAVY_MODULES = ("torch", "mlflow", "great_expectations", "lightgbm", "sentence_transformers")


def test_asset_graph_snapshot(home) -> None:
    defs = build_definitions(get_settings())
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_GROUPS | NIGHTLY_GROUPS
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS | NIGHTLY_CHECKS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owners"
        assert node.kinds, f"{key.to_user_string()} has no kinds"
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "training_job",
        "nightly_inference_job",
    }
    training = defs.resolve_job_def("training_job")
    assert {k.to_user_string() for k in training.asset_layer.executable_asset_keys} == set(
        EXPECTED_GROUPS
    )
    nightly = defs.resolve_job_def("nightly_inference_job")
    assert {k.to_user_string() for k in nightly.asset_layer.executable_asset_keys} == set(
        NIGHTLY_GROUPS
    )
    assert nightly.partitions_def is not None
    assert nightly.partitions_def.get_partition_keys()[0] == "2024-01-01|0"  # <date>|<shard>


def test_automation_snapshot(home) -> None:
    defs = build_definitions(get_settings())
    schedules = {s.name: (s.cron_schedule, s.job_name) for s in defs.schedules}
    assert schedules == {
        "weekly_retrain_schedule": ("0 2 * * 0", "training_job"),
        "nightly_inference_schedule": ("0 1 * * *", "nightly_inference_job"),
    }
    sensors = {s.name: [t.job_name for t in s.targets] for s in defs.sensors}
    # The alert sensor launches nothing: it watches every job of the code location.
    assert sensors == {"new_labels_sensor": ["training_job"], "run_failure_alert_sensor": []}
    alert = next(s for s in defs.sensors if s.name == "run_failure_alert_sensor")
    assert isinstance(alert, dg.RunStatusSensorDefinition)
    assert alert.sensor_type.name == "RUN_STATUS"
    # The sensor reads its threshold from this resource; without it, it fails only when it runs.
    assert "retrain_trigger" in defs.resources


def test_training_checks_block_downstream_work_and_nightly_checks_do_not(home) -> None:
    """A bad input or model stops training; a nightly finding is reported, never blocking."""
    graph = build_definitions(get_settings()).resolve_asset_graph()
    for key in graph.asset_check_keys:
        nightly = (key.asset_key.to_user_string(), key.name) in NIGHTLY_CHECKS
        assert graph.get_check_spec(key).blocking is not nightly, key.name


def test_loading_definitions_imports_no_heavy_library(home) -> None:
    """Keeps the code location fast to load (< 3 s): heavy libraries load inside functions."""
    code = (
        "import sys, huleedu_pipelines.definitions as d; "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_definitions_object_is_importable() -> None:
    from huleedu_pipelines.definitions import defs

    assert isinstance(defs, dg.Definitions)


def test_scores_depend_on_the_promoted_models(home) -> None:
    """A champion move makes the day's scores stale in the UI: inference reads promotions."""
    graph = build_definitions(get_settings()).resolve_asset_graph()
    upstream = {
        key.to_user_string() for key in graph.get(dg.AssetKey("inference_features")).parent_keys
    }
    assert "promoted_models" in upstream
    downstream = graph.get(dg.AssetKey("promoted_models")).child_keys
    assert dg.AssetKey("inference_features") in downstream


def test_nightly_steps_retry_with_backoff_and_training_steps_do_not(home) -> None:
    """Nightly writes are idempotent upserts, so its steps retry; training registers models."""
    defs = build_definitions(get_settings())
    defaults = Settings()
    expected = dg.RetryPolicy(
        max_retries=defaults.retry_max_retries,
        delay=defaults.retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
    assert expected.max_retries == 3 and expected.delay == 10.0
    nightly = defs.resolve_job_def("nightly_inference_job")
    policies = {
        node.name: nightly.get_retry_policy_for_handle(NodeHandle(node.name, None))
        for node in nightly.graph.nodes
    }
    assert {"inference_features", "nightly_scores", "prediction_monitoring"} <= set(policies)
    assert set(policies.values()) == {expected}
    training = defs.resolve_job_def("training_job")
    assert training.graph.nodes
    assert all(
        training.get_retry_policy_for_handle(NodeHandle(node.name, None)) is None
        for node in training.graph.nodes
    )


def test_retry_policy_follows_the_settings() -> None:
    policy = transient_retry_policy(
        Settings(HULEEDU_RETRY_MAX_RETRIES=5, HULEEDU_RETRY_DELAY_SECONDS=0.5)
    )
    assert (policy.max_retries, policy.delay) == (5, 0.5)
    assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
