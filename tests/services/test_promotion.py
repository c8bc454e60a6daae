"""Validate a version, promote it, roll it back: the promotion service on a fake registry and a
SQLite warehouse, with real (tiny) bundles, reports and gates."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from fakes import FakeRegistry, feature_rows, tiny_bundle
from support import validate_on_holdout

from huleedu_pipelines.domain import CEFR_LEVELS
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.families import GATE_NAMES
from huleedu_pipelines.modeling.metrics import quadratic_weighted_kappa
from huleedu_pipelines.modeling.names import CEFR_MODEL, CHALLENGER, CHAMPION, GRADE_MODEL
from huleedu_pipelines.services.promotion import (
    STORAGE_FILES,
    Holdout,
    PromotionError,
    ValidationPolicy,
    promote,
    rollback_champion,
    validate_challengers,
    validate_registered,
    write_comparison,
)
from huleedu_pipelines.services.training import MODEL_CARD_SCHEMA
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import model_promotions, serving_models


def _rows(engine: sa.Engine, table: sa.Table) -> pl.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, table)


def test_validate_version_passes_every_gate_on_labels_the_model_predicts(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = validate_on_holdout(grade_holdout(grade_bundle), grade_bundle, policy)

    assert result.passed and result.verdict == f"all {len(GATE_NAMES['grade'])} gates passed"
    gates = {gate.gate: gate for gate in result.gates}
    assert gates["min_qwk"].value == pytest.approx(1.0)
    assert gates["min_adjacent_agreement"].value == pytest.approx(1.0)
    assert gates["onnx_parity_flipped"].value == 0.0
    assert "no champion" in gates["non_inferiority"].message
    assert result.champion_version is None
    assert result.metrics["qwk"] == pytest.approx(1.0)
    # The report is written beside its plots, and names the version and each gate.
    assert result.report_path == policy.reports_dir / GRADE_MODEL / "v2" / "report.md"
    report = result.report_path.read_text()
    assert f"{GRADE_MODEL} v2" in report
    assert all(name in report for name in gates)
    assert result.plots and all(path.is_file() for path in result.plots.values())
    row = result.report_row(run_id="run-2")
    assert (row["passed"], row["run_id"], row["report_uri"]) == (
        True,
        "run-2",
        str(result.report_path),
    )
    assert {g["gate"] for g in json.loads(row["gates"])} == set(gates)


def test_the_model_is_compared_with_baselines_fitted_on_the_training_split(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    result = validate_on_holdout(holdout, grade_bundle, policy)

    baselines = result.baselines
    train = holdout.rows(GRADE_MODEL, policy.high_skill_threshold, "train")
    test = holdout.rows(GRADE_MODEL, policy.high_skill_threshold)
    assert baselines is not None and baselines.metric == "qwk"
    assert (baselines.n, baselines.n_train, baselines.confidence) == (
        test.height,
        train.height,
        0.9,
    )
    assert baselines.model_value == pytest.approx(1.0)
    mode = int(np.bincount(train["target"].to_numpy()).argmax())
    trivial_qwk = quadratic_weighted_kappa(test["target"], np.full(test.height, mode), 8)
    assert baselines.margins["trivial"].value == trivial_qwk == 0.0
    assert baselines.margins["trivial"].margin == pytest.approx(1.0)
    gates = {gate.gate: gate for gate in result.gates}
    for name in ("beats_trivial", "not_worse_than_ridge"):
        assert gates[name].passed and gates[name].low > 0, gates[name].message
        assert f"n={test.height} holdout essays, baseline fitted on {train.height}" in (
            gates[name].message
        )
    report = result.report_path.read_text()
    assert "## Baselines" in report and "| trivial | 0.000 | +1.000 |" in report


def test_the_gates_json_carries_each_interval(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = validate_on_holdout(grade_holdout(grade_bundle, shift=1), grade_bundle, policy)
    written = {g["gate"]: g for g in json.loads(result.report_row("run-1")["gates"])}
    gates = {gate.gate: gate for gate in result.gates}
    for name in ("min_qwk", "min_adjacent_agreement", "beats_trivial", "not_worse_than_ridge"):
        assert written[name]["low"] == gates[name].low is not None
        assert written[name]["high"] == gates[name].high is not None
        assert written[name]["low"] <= written[name]["value"] <= written[name]["high"]
    assert (
        written["min_qwk"]["interval_level"],
        written["not_worse_than_ridge"]["interval_level"],
    ) == (
        0.95,
        0.9,
    )
    # Parity and latency are measured, not sampled: no interval to give.
    assert written["onnx_parity_flipped"]["low"] is None
    assert written["latency_p95_single"]["high"] is None


def test_baseline_gates_fail_when_the_training_split_has_no_rows(
    policy: ValidationPolicy,
) -> None:
    n = 40
    bundle = tiny_bundle(CEFR_MODEL)
    features = feature_rows(n)
    levels = bundle.predict(feature_matrix(features)).labels.astype(np.int64)
    ids = features["essay_id"].to_list()
    no_labels = pl.DataFrame({"essay_id": ids})
    holdout = Holdout(
        feature_table=features,
        splits=pl.DataFrame({"essay_id": ids, "group": ids, "split": ["test"] * n}),
        grade_labels=no_labels,
        cefr_labels=pl.DataFrame(
            {
                "essay_id": ids,
                "cefr_ordinal": levels,
                "cefr": [CEFR_LEVELS[level] for level in levels],
                "ielts_band": [5.0] * n,
            }
        ),
        skill_labels=no_labels,
        essays=pl.DataFrame(
            {
                "essay_id": ids,
                "prompt_id": ["p1"] * n,
                "source": ["ielts"] * n,
                "text": ["An essay."] * n,
                "prompt_text": ["Write an essay."] * n,
            }
        ),
    )
    result = validate_on_holdout(holdout, bundle, policy, model_name=CEFR_MODEL)

    gates = {gate.gate: gate for gate in result.gates}
    assert list(gates) == list(GATE_NAMES["cefr"])
    assert gates["min_cefr_qwk"].passed and gates["min_cefr_qwk"].value == pytest.approx(1.0)
    reason = (
        f"the holdout's training split has no labelled essays for {CEFR_MODEL}, so no baseline "
        "could be fitted"
    )
    for name, baseline in (("beats_trivial", "trivial"), ("not_worse_than_ridge", "ridge")):
        assert not gates[name].passed and gates[name].value is None
        assert gates[name].message == f"no {baseline} baseline to compare with: {reason} ({name})"
    assert not result.passed
    assert f"No baseline was compared: {reason}." in result.report_path.read_text()


def test_a_baseline_that_cannot_be_fitted_fails_its_own_gate(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    train_ids = holdout.splits.filter(pl.col("split") == "train")["essay_id"].to_list()
    kept = set(train_ids[:2])  # ridge needs three rows; the mode needs one
    splits = holdout.splits.with_columns(
        pl.when((pl.col("split") == "train") & ~pl.col("essay_id").is_in(kept))
        .then(pl.lit("validation"))
        .otherwise(pl.col("split"))
        .alias("split")
    )
    holdout = Holdout(**{**holdout.__dict__, "splits": splits})
    result = validate_on_holdout(holdout, grade_bundle, policy)

    gates = {gate.gate: gate for gate in result.gates}
    assert gates["beats_trivial"].passed
    ridge = gates["not_worse_than_ridge"]
    assert not ridge.passed and ridge.value is None
    assert ridge.message == (
        "the ridge baseline could not be fitted: ridge needs at least 3 rows, got 2 (on 2 "
        "training essays) (not_worse_than_ridge)"
    )


def test_validate_version_fails_the_quality_gates_on_labels_far_from_the_predictions(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = validate_on_holdout(grade_holdout(grade_bundle, shift=4), grade_bundle, policy)

    assert not result.passed
    failed = {gate.gate for gate in result.gates if not gate.passed}
    # Labels four grades from the predictions (mod 8): worse than the mode and than ridge, and
    # the mean grade moves too, so the fairness gates fail with them.
    assert failed == {
        "min_qwk",
        "min_adjacent_agreement",
        "beats_trivial",
        "not_worse_than_ridge",
        "max_abs_smd",
        "max_abs_subgroup_smd",
    }
    qwk = next(gate for gate in result.gates if gate.gate == "min_qwk")
    assert qwk.value < policy.thresholds.min_qwk
    assert "min_qwk" in result.verdict
    assert result.report_path.is_file()  # a failed version still gets its report


def _with_gender(holdout: Holdout) -> Holdout:
    """The holdout with a `gender` attribute, F, F, M, M, ... over its essays (so it does not
    follow the prompts, which alternate)."""
    ids = holdout.essays["essay_id"].to_list()
    genders = ["F", "F", "M", "M"] * (len(ids) // 4)
    attributes = pl.DataFrame({"essay_id": ids, "name": ["gender"] * len(ids), "value": genders})
    return dataclasses.replace(holdout, attributes=attributes)


def test_the_report_shows_fairness_per_attribute_and_length_band(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = validate_on_holdout(_with_gender(grade_holdout(grade_bundle)), grade_bundle, policy)

    gates = {gate.gate: gate for gate in result.gates}
    assert gates["max_abs_smd"].passed and gates["max_abs_smd"].value == 0.0
    subgroup = gates["max_abs_subgroup_smd"]
    assert subgroup.passed and subgroup.value == 0.0
    # 60 test essays: 30 per gender and per prompt and 30 of 150-299 words are gated; the
    # other length bands are smaller, and the one source is the whole holdout.
    assert "of 5 subgroups with >= 30 essays, 0 lie wholly beyond ±0.1" in subgroup.message
    report = result.report_path.read_text()
    for heading in ("prompt", "source", "length_band", "gender"):
        assert f"### By {heading} (60 of 60 holdout essays have a value)" in report
    assert "| <150 | 10 | too few essays |" in report
    assert "![SMD by subgroup](fairness_smd.png)" in report
    assert (result.report_path.parent / "fairness_smd.png").is_file()
    assert result.metrics["fairness_smd"] == 0.0
    assert result.metrics["fairness_subgroups_gated"] == 5.0
    assert "| demo | 60 |" in report and "| whole holdout: `max_abs_smd` judges it |" in report


def test_a_model_that_grades_one_gender_higher_is_blocked_by_the_subgroup_gate(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = _with_gender(grade_holdout(grade_bundle))
    female = holdout.attributes.filter(pl.col("value") == "F")["essay_id"]
    # The teachers gave every F essay a grade lower than the model does (where there is one).
    labels = holdout.grade_labels.with_columns(
        pl.when(pl.col("essay_id").is_in(female.implode()) & (pl.col("grade_ordinal") > 0))
        .then(pl.col("grade_ordinal") - 1)
        .otherwise(pl.col("grade_ordinal"))
        .alias("grade_ordinal")
    )
    result = validate_on_holdout(
        dataclasses.replace(holdout, grade_labels=labels), grade_bundle, policy
    )

    gate = next(gate for gate in result.gates if gate.gate == "max_abs_subgroup_smd")
    assert not gate.passed and gate.value > 0.3
    assert gate.message.startswith("subgroup gender=F (n=30): SMD +")
    assert gate.low > 0.1  # the whole interval lies beyond the threshold
    assert "max_abs_subgroup_smd" in result.verdict
    report = result.report_path.read_text()
    assert "lies beyond ±0.1 (✗, fails the gate):** gender=F (n=30, SMD +" in report


def test_holdout_from_storage_reads_attributes_when_the_file_exists(
    tmp_path, grade_bundle: ModelBundle, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    for key, name in STORAGE_FILES.items():
        getattr(holdout, key).write_parquet(tmp_path / name)

    older_home = Holdout.from_storage(tmp_path)  # trained before essay attributes existed
    assert older_home.attributes is None
    ids = holdout.essays["essay_id"].to_list()[:4]
    assert sorted(set(older_home.subgroups(ids)["group"])) == ["length_band", "prompt", "source"]

    _with_gender(holdout).attributes.write_parquet(tmp_path / "essay_attributes.parquet")
    newer = Holdout.from_storage(tmp_path)
    gender = newer.subgroups(ids).filter(pl.col("group") == "gender")
    assert gender.select("essay_id", "value").rows() == list(
        zip(ids, ["F", "F", "M", "M"], strict=True)
    )


def test_validate_version_compares_with_the_champion_on_the_same_rows(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    result = validate_on_holdout(holdout, grade_bundle, policy, champion=("1", grade_bundle))

    assert result.champion_version == "1"
    non_inferiority = next(gate for gate in result.gates if gate.gate == "non_inferiority")
    assert non_inferiority.passed and non_inferiority.value == pytest.approx(0.0)


def test_validated_challengers_are_recorded_promoted_then_rolled_back(
    sqlite_warehouse: sa.Engine,
    fake_registry: FakeRegistry,
    grade_bundle: ModelBundle,
    policy: ValidationPolicy,
    grade_holdout,
    tmp_path,
) -> None:
    holdout = grade_holdout(grade_bundle)

    def train_andvalidate_on_holdout(bundle: ModelBundle):
        """What a training run does: a registered challenger and its model card."""
        version = fake_registry.register(GRADE_MODEL, bundle)
        ref = fake_registry.get_version_by_number(GRADE_MODEL, version)
        card = {
            "model_name": GRADE_MODEL,
            "status": "registered",
            "version": version,
            "run_id": ref.run_id,
            "bundle_dir": str(bundle.save(tmp_path / "cards" / version)),
        }
        skipped = {"model_name": "huleedu-cefr", "status": "skipped", "message": "few labels"}
        cards = pl.DataFrame([card, skipped], schema=MODEL_CARD_SCHEMA)
        return validate_challengers(cards, holdout, fake_registry, policy), ref.run_id

    first, run_id = train_andvalidate_on_holdout(grade_bundle)
    assert first.reports.height == 1  # the skipped model is not validated
    report = first.reports.row(0, named=True)
    assert (report["version"], report["passed"], report["champion_version"]) == ("1", True, None)
    # The report, its figures and the verdict are recorded on the version's run and tags.
    run = fake_registry.runs[run_id]
    assert (run["artifacts"]["validation_report"] / "report.md").is_file()
    assert run["metrics"]["holdout_qwk"] == pytest.approx(1.0)
    tags = fake_registry.get_version_by_number(GRADE_MODEL, "1").tags
    assert tags["gate_verdict"] == "passed" and tags["validation_report"] == report["report_uri"]
    assert first.latency is not None and first.latency.n_models == 1

    decision = promote(sqlite_warehouse, fake_registry, report)
    assert (decision.action, decision.previous_version) == ("promoted", None)
    assert fake_registry.get_version(GRADE_MODEL, CHAMPION).version == "1"
    assert promote(sqlite_warehouse, fake_registry, report).action == "already champion"

    # A second challenger is compared with champion v1 and replaces it.
    second, _ = train_andvalidate_on_holdout(tiny_bundle(GRADE_MODEL, seed=0))
    report = second.reports.row(0, named=True)
    assert (report["version"], report["champion_version"]) == ("2", "1")
    decision = promote(sqlite_warehouse, fake_registry, report)
    assert (decision.action, decision.previous_version) == ("promoted", "1")
    assert decision.move is not None and decision.move["reason"] == report["verdict"]

    audit = _rows(sqlite_warehouse, model_promotions).sort("promotion_id")
    assert audit.select("version", "previous_version", "alias").rows() == [
        ("1", None, CHAMPION),
        ("2", "1", CHAMPION),
    ]
    assert audit["report_uri"].to_list()[-1] == report["report_uri"]
    serving = _rows(sqlite_warehouse, serving_models)
    assert serving.select("model_name", "alias", "version").rows() == [(GRADE_MODEL, CHAMPION, "2")]

    row = rollback_champion(sqlite_warehouse, fake_registry, GRADE_MODEL)
    assert (row["version"], row["previous_version"]) == ("1", "2")
    assert row["reason"] == "rollback from v2 to v1"
    assert fake_registry.get_version(GRADE_MODEL, CHAMPION).version == "1"
    assert _rows(sqlite_warehouse, serving_models)["version"].to_list() == ["1"]
    assert _rows(sqlite_warehouse, model_promotions).height == 3
    with pytest.raises(PromotionError, match="replaced no earlier champion"):
        rollback_champion(sqlite_warehouse, fake_registry, GRADE_MODEL)


def test_a_failed_version_keeps_the_champion_unless_an_operator_forces_it(
    sqlite_warehouse: sa.Engine,
    fake_registry: FakeRegistry,
    grade_bundle: ModelBundle,
    policy: ValidationPolicy,
    grade_holdout,
) -> None:
    version = fake_registry.register(GRADE_MODEL, grade_bundle)
    result = validate_registered(
        fake_registry, grade_holdout(grade_bundle, shift=4), policy, GRADE_MODEL, version, "promote"
    )
    assert not result.passed and result.version == version

    kept = promote(sqlite_warehouse, fake_registry, result.report_row(None), by_operator=True)
    assert kept.blocked and kept.action == f"kept champion: {result.verdict}"
    assert fake_registry.get_version(GRADE_MODEL, CHAMPION) is None
    assert fake_registry.get_version(GRADE_MODEL, CHALLENGER).version == version
    assert _rows(sqlite_warehouse, model_promotions).is_empty()
    assert _rows(sqlite_warehouse, serving_models).is_empty()

    forced = promote(
        sqlite_warehouse,
        fake_registry,
        result.report_row(None),
        by_operator=True,
        force_reason="known label problem",
    )
    assert not forced.blocked and forced.action == "promoted"
    assert fake_registry.get_version(GRADE_MODEL, CHAMPION).version == version
    reason = _rows(sqlite_warehouse, model_promotions)["reason"].to_list()
    assert reason == [f"forced by operator: known label problem; gates: {result.verdict}"]
    assert _rows(sqlite_warehouse, serving_models)["version"].to_list() == [version]


def test_a_written_report_is_never_rewritten_and_a_comparison_writes_its_own(
    fake_registry: FakeRegistry,
    grade_bundle: ModelBundle,
    policy: ValidationPolicy,
    grade_holdout,
) -> None:
    holdout = grade_holdout(grade_bundle)
    first = validate_on_holdout(holdout, grade_bundle, policy)
    written = first.report_path.read_text()
    version = fake_registry.register(GRADE_MODEL, grade_bundle)

    again = validate_on_holdout(holdout, grade_bundle, policy)
    compared = [
        validate_registered(fake_registry, holdout, policy, GRADE_MODEL, v, "compare")
        for v in (version, version)
    ]
    comparison = write_comparison(policy.reports_dir, *compared)

    assert first.report_path.read_text() == written
    paths = {first.report_path, again.report_path, *(r.report_path for r in compared)}
    assert len(paths) == 4 and all(path.is_file() for path in paths)
    assert again.report_path.parent.name.startswith("validation-")
    assert all(r.report_path.parent.name.startswith("compare-") for r in compared)
    document = comparison.read_text()
    assert f"| qwk | {compared[0].metrics['qwk']:.4f} |" in document
    assert document.count("[report](") == 2
    assert comparison not in paths
