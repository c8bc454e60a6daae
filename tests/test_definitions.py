"""A snapshot of the graph: an accidental change to assets, groups, checks or jobs fails here."""

import subprocess
import sys

import dagster as dg

from huleedu_pipelines.definitions import build_definitions
from huleedu_pipelines.settings import get_settings

EXPECTED_GROUPS = {
    "raw_essays": "ingest",
    "raw_labels": "ingest",
    "cj_comparisons": "ingest",
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
        )
    ),
}

HEAVY_MODULES = ("torch", "mlflow", "great_expectations", "lightgbm", "sentence_transformers")


def test_asset_graph_snapshot(home) -> None:
    defs = build_definitions(get_settings())
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_GROUPS
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owners"
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"training_job"}
    training = defs.resolve_job_def("training_job")
    assert set(EXPECTED_GROUPS) <= {
        k.to_user_string() for k in training.asset_layer.executable_asset_keys
    }


def test_ingest_checks_block_downstream_work(home) -> None:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).blocking, f"{key.name} should be blocking"


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
