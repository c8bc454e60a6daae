"""Settings are the one declaration of every default: resources carry none of their own, and
`build_resources` passes each setting (its env var) through to the resource field that uses it."""

import dataclasses
from pathlib import Path

import pytest

from huleedu_pipelines.modeling.gates import GateThresholds
from huleedu_pipelines.resources import build_resources
from huleedu_pipelines.settings import GATE_SETTINGS_OF_THEIR_OWN_NAME, Settings, get_settings

NOT_SETTINGS = {
    ("io_manager", "keep_runs"),  # how many run copies of an intermediate the IO manager keeps
    ("embedder", "batch_size"),  # properties of the bundled embedding model
    ("embedder", "max_tokens"),
}
"""Resource fields that no setting backs, and so may keep a default of their own."""

WIRING = [
    # env var, value, (resource key, field), expected field value
    ("HULEEDU_SEED", "7", ("training", "seed"), 7),
    ("HULEEDU_N_JOBS", "3", ("training", "n_jobs"), 3),
    ("HULEEDU_N_JOBS", "3", ("scoring", "n_jobs"), 3),
    ("HULEEDU_N_JOBS", "3", ("embedder", "num_threads"), 3),
    ("HULEEDU_MIN_LABELS_TO_TRAIN", "9", ("training", "min_labels_to_train"), 9),
    ("HULEEDU_HIGH_SKILL_THRESHOLD", "4.0", ("training", "high_skill_threshold"), 4.0),
    ("HULEEDU_GATE_MIN_QWK", "0.61", ("validation", "min_qwk"), 0.61),
    ("HULEEDU_GATE_MIN_ADJACENT_AGREEMENT", "0.8", ("validation", "min_adjacent_agreement"), 0.8),
    ("HULEEDU_GATE_MAX_ECE", "0.2", ("validation", "max_ece"), 0.2),
    (
        "HULEEDU_GATE_MAX_GRADE_SHARE_DIFFERENCE",
        "0.3",
        ("validation", "max_grade_share_difference"),
        0.3,
    ),
    (
        "HULEEDU_GATE_MAX_ONNX_SHARE_OVER_TOLERANCE",
        "0.02",
        ("validation", "max_onnx_share_over_tolerance"),
        0.02,
    ),
    ("HULEEDU_GATE_MAX_ONNX_SHARE_FLIPPED", "0.03", ("validation", "max_onnx_share_flipped"), 0.03),
    ("HULEEDU_GATE_MAX_P95_SINGLE_MS", "250", ("validation", "max_p95_single_ms"), 250.0),
    ("HULEEDU_GATE_MAX_BATCH50_MS", "9000", ("validation", "max_batch50_ms"), 9000.0),
    ("HULEEDU_GATE_MIN_SKILL_R", "0.3", ("validation", "min_skill_pearson_r"), 0.3),
    ("HULEEDU_GATE_MAX_QWK_DROP", "0.05", ("validation", "max_qwk_drop"), 0.05),
    ("HULEEDU_GATE_MAX_BAND_MAE", "0.8", ("validation", "max_band_mae"), 0.8),
    ("HULEEDU_GATE_MIN_CEFR_QWK", "0.55", ("validation", "min_cefr_qwk"), 0.55),
    ("HULEEDU_GATE_MIN_SKILL_ROC_AUC", "0.6", ("validation", "min_skill_roc_auc"), 0.6),
    ("HULEEDU_GATE_BASELINE_CONFIDENCE", "0.8", ("validation", "baseline_confidence"), 0.8),
    ("HULEEDU_GATE_MAX_ABS_SMD", "0.2", ("validation", "max_abs_smd"), 0.2),
    ("HULEEDU_GATE_MAX_ABS_SUBGROUP_SMD", "0.12", ("validation", "max_abs_subgroup_smd"), 0.12),
    ("HULEEDU_MIN_N_PER_GROUP", "50", ("validation", "min_n_per_group"), 50),
    ("HULEEDU_GATE_MAX_QWK_DEGRADATION", "0.05", ("validation", "max_qwk_degradation"), 0.05),
    ("HULEEDU_REVIEW_CONFIDENCE_THRESHOLD", "0.5", ("scoring", "review_confidence_threshold"), 0.5),
    ("HULEEDU_REVIEW_TARGET_SHARE", "0.2", ("training", "review_target_share"), 0.2),
    ("HULEEDU_EXPLAIN_SCOPE", "all", ("scoring", "explain_scope"), "all"),
    ("HULEEDU_SHADOW_SCORING", "false", ("scoring", "shadow_scoring"), False),
    ("HULEEDU_SCORING_CHUNK_SIZE", "700", ("scoring", "chunk_size"), 700),
    ("HULEEDU_MONITOR_PSI_WARN", "0.4", ("monitoring", "psi_warn"), 0.4),
    ("HULEEDU_MONITOR_MIN_SKILL_R", "0.2", ("monitoring", "min_skill_r"), 0.2),
    ("HULEEDU_MONITOR_MIN_RATED_ESSAYS", "12", ("monitoring", "min_rated_essays"), 12),
    ("HULEEDU_RETRAIN_MIN_NEW_LABELS", "40", ("retrain_trigger", "min_new_labels"), 40),
    (
        "HULEEDU_MAX_FUTURE_SKEW_SECONDS",
        "60",
        ("retrain_trigger", "max_future_skew_seconds"),
        60.0,
    ),
    ("HULEEDU_WAREHOUSE_URL", "sqlite:////srv/w.db", ("warehouse", "url"), "sqlite:////srv/w.db"),
    ("MLFLOW_TRACKING_URI", "http://mlflow:5000", ("mlflow", "tracking_uri"), "http://mlflow:5000"),
    ("MLFLOW_TRACKING_URI", "http://mlflow:5000", ("mlflow", "artifact_location"), None),
]


def test_no_resource_field_declares_a_default_of_its_own(home: Path) -> None:
    for key, resource in build_resources(get_settings()).items():
        for name, field in type(resource).model_fields.items():
            if (key, name) not in NOT_SETTINGS:
                assert field.is_required(), f"{key}.{name} declares a default; Settings holds it"


@pytest.mark.parametrize(("variable", "value", "target", "expected"), WIRING)
def test_each_setting_reaches_its_resource_field(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    target: tuple[str, str],
    expected: object,
) -> None:
    key, field = target
    default = getattr(build_resources(get_settings())[key], field)
    assert default != expected, "pick a test value other than the default"
    monkeypatch.setenv(variable, value)
    assert getattr(build_resources(get_settings())[key], field) == expected


def test_locations_follow_the_home(home: Path) -> None:
    resources = build_resources(get_settings())
    assert resources["io_manager"].base_dir == str(home.resolve() / "storage")
    assert resources["training"].models_dir == str(home.resolve() / "models")
    assert resources["validation"].reports_dir == str(home.resolve() / "reports")
    assert resources["mlflow"].tracking_uri == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert resources["mlflow"].artifact_location == (home.resolve() / "mlartifacts").as_uri()


def test_every_gate_setting_is_a_gate_threshold_of_the_same_name() -> None:
    gate_settings = {
        name.removeprefix("gate_") for name in Settings.model_fields if name.startswith("gate_")
    }
    own_name = set(GATE_SETTINGS_OF_THEIR_OWN_NAME)
    assert own_name <= set(Settings.model_fields)
    assert gate_settings | own_name == {field.name for field in dataclasses.fields(GateThresholds)}
    assert Settings.model_construct().gate_thresholds().max_qwk_drop == 0.01


def test_fairness_settings_reach_the_thresholds(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = Settings.model_construct().gate_thresholds()
    assert (defaults.max_abs_smd, defaults.max_abs_subgroup_smd, defaults.min_n_per_group) == (
        0.15,
        0.10,
        30,
    )
    monkeypatch.setenv("HULEEDU_GATE_MAX_ABS_SMD", "0.2")
    monkeypatch.setenv("HULEEDU_GATE_MAX_ABS_SUBGROUP_SMD", "0.12")
    monkeypatch.setenv("HULEEDU_MIN_N_PER_GROUP", "50")
    thresholds = get_settings().gate_thresholds()
    assert (thresholds.max_abs_smd, thresholds.max_abs_subgroup_smd) == (0.2, 0.12)
    assert thresholds.min_n_per_group == 50
    assert build_resources(get_settings())["validation"].thresholds() == thresholds


def test_new_gate_settings_reach_the_thresholds_the_gates_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = Settings.model_construct().gate_thresholds()
    assert (
        defaults.max_band_mae,
        defaults.min_cefr_qwk,
        defaults.min_skill_roc_auc,
        defaults.min_skill_pearson_r,
        defaults.baseline_confidence,
    ) == (1.0, 0.40, 0.70, 0.50, 0.90)
    for variable, value in {
        "HULEEDU_GATE_MAX_BAND_MAE": "0.75",
        "HULEEDU_GATE_MIN_CEFR_QWK": "0.5",
        "HULEEDU_GATE_MIN_SKILL_ROC_AUC": "0.8",
        "HULEEDU_GATE_BASELINE_CONFIDENCE": "0.95",
    }.items():
        monkeypatch.setenv(variable, value)
    thresholds = get_settings().gate_thresholds()
    assert (
        thresholds.max_band_mae,
        thresholds.min_cefr_qwk,
        thresholds.min_skill_roc_auc,
        thresholds.baseline_confidence,
    ) == (0.75, 0.5, 0.8, 0.95)
    assert build_resources(get_settings())["validation"].thresholds() == thresholds


@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_a_baseline_confidence_outside_0_to_1_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HULEEDU_GATE_BASELINE_CONFIDENCE", value)
    with pytest.raises(ValueError, match="HULEEDU_GATE_BASELINE_CONFIDENCE"):
        get_settings()
