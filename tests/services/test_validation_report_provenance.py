"""What `validate_version` writes above and below the evidence: the provenance of the report
(watermarks, dataset hash, code, operator, runs), RSMTool's agreement table for every family
and the sign-off block, on the promotion service with a tiny real bundle."""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib.metadata import version as package_version

import numpy as np
import polars as pl
import pytest

from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.bundle import BundlePrediction, ModelBundle
from huleedu_pipelines.modeling.families import HoldoutEvidence, registered_model
from huleedu_pipelines.modeling.names import BAND_MODEL, GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.modeling.rater_agreement import rater_agreement
from huleedu_pipelines.services.promotion import (
    Holdout,
    ValidationPolicy,
    gamed_holdout_features,
    holdout_dataset_hash,
    human_machine_agreement,
    measure_serving_latency,
    validate_version,
)

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def _dated(holdout: Holdout) -> Holdout:
    """Label times a day apart in essay order and essay times an hour before each label, so
    the holdout's (test) and the whole run's watermarks differ (train essays come last)."""
    n = holdout.grade_labels.height
    labelled = [START + dt.timedelta(days=i) for i in range(n)]
    return dataclasses.replace(
        holdout,
        grade_labels=holdout.grade_labels.with_columns(pl.Series("labelled_at", labelled)),
        essays=holdout.essays.with_columns(
            pl.Series("submitted_at", [t - dt.timedelta(hours=2) for t in labelled]),
            pl.Series("updated_at", [t - dt.timedelta(hours=1) for t in labelled]),
        ),
    )


def _off_by_one(holdout: Holdout, essays: int) -> Holdout:
    """The first `essays` grades one step up (one down from A), so the model is not perfect."""
    grade = pl.col("grade_ordinal")
    moved = pl.when(pl.int_range(pl.len()) < essays).then(
        pl.when(grade < 7).then(grade + 1).otherwise(grade - 1)
    )
    return dataclasses.replace(
        holdout,
        grade_labels=holdout.grade_labels.with_columns(
            moved.otherwise(grade).alias("grade_ordinal")
        ),
    )


def _validate(holdout: Holdout, bundle: ModelBundle, policy: ValidationPolicy, **extra):
    test = holdout.rows(GRADE_MODEL, policy.high_skill_threshold)
    return validate_version(
        model_name=GRADE_MODEL,
        version="2",
        bundle=bundle,
        holdout=holdout,
        champion=None,
        latency=measure_serving_latency([bundle], feature_matrix(test)),
        thresholds=policy.thresholds,
        seed=policy.seed,
        high_skill_threshold=policy.high_skill_threshold,
        reports_dir=policy.reports_dir,
        gamed=gamed_holdout_features(holdout, policy),
        gaming_tolerance_sd=policy.gaming.tolerance_sd,
        **extra,
    )


def _cells(report: str, label: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_report_states_its_provenance(
    grade_bundle: ModelBundle,
    policy: ValidationPolicy,
    grade_holdout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HULEEDU_OPERATOR", "Ada Examiner")
    holdout = _dated(grade_holdout(grade_bundle))
    result = _validate(
        holdout, grade_bundle, policy, mlflow_run_id="mlflow-abc", dagster_run_id="dagster-xyz"
    )
    provenance = result.provenance
    assert provenance is not None
    test = holdout.rows(GRADE_MODEL, policy.high_skill_threshold)
    n_test = test.height
    # The conftest holdout puts the test essays first, so its labels end before the run's.
    assert provenance.label_watermark == START + dt.timedelta(days=n_test - 1)
    assert provenance.essay_watermark == provenance.label_watermark - dt.timedelta(hours=1)
    assert provenance.run_label_watermark == START + dt.timedelta(days=2 * n_test - 1)
    assert provenance.dataset_hash == holdout_dataset_hash(test)[0]
    assert len(provenance.dataset_hash) == 32
    assert provenance.package_version == package_version("huleedu-pipelines")
    assert provenance.git_commit  # a commit in a checkout, "unknown" elsewhere
    assert provenance.feature_version == grade_bundle.feature_version
    assert provenance.generated_by == "Ada Examiner"
    assert provenance.purpose == "validation"

    report = result.report_path.read_text()
    head = report[: report.index("**Verdict")]
    assert _cells(head, "Model")[1] == f"`{GRADE_MODEL}` version `2` (MLflow run `mlflow-abc`)"
    assert f"`{provenance.dataset_hash}`: sha256 (first 32 hex digits) of the {n_test}" in head
    assert "each row as (essay_id, target, feature_hash)" in head
    assert "labels up to 2026-10-30 00:00:00 UTC" in head  # day 59 after 1 September
    assert "Ada Examiner, Dagster run `dagster-xyz`" in head
    assert f"huleedu-pipelines {package_version('huleedu-pipelines')}, git commit" in head
    signoff = report[report.index("## Sign-off") :]
    assert _cells(signoff, "Generated by")[1].startswith("Ada Examiner (Dagster run `dagster-xyz`)")


def test_the_dataset_hash_is_stable_and_changes_with_a_target(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    first = _validate(holdout, grade_bundle, policy).provenance
    again = _validate(holdout, grade_bundle, policy).provenance
    changed = _validate(_off_by_one(holdout, 1), grade_bundle, policy).provenance
    assert first is not None and again is not None and changed is not None
    assert again.dataset_hash == first.dataset_hash
    assert changed.dataset_hash != first.dataset_hash


def test_the_agreement_table_and_the_sign_off_in_a_written_report(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    holdout = _off_by_one(grade_holdout(grade_bundle), 12)
    result = _validate(holdout, grade_bundle, policy)
    test = holdout.rows(GRADE_MODEL, policy.high_skill_threshold)
    human = test["target"].to_numpy().astype(float)
    machine = grade_bundle.predict(feature_matrix(test)).labels.astype(float)

    report = result.report_path.read_text()
    section = report[report.index("## Agreement with the human scores") :]
    r = np.corrcoef(human, machine)[0, 1]
    r2 = 1 - np.sum((human - machine) ** 2) / np.sum((human - human.mean()) ** 2)
    smd = (machine.mean() - human.mean()) / np.sqrt((human.var(ddof=1) + machine.var(ddof=1)) / 2)
    assert _cells(section, "Pearson r")[1] == f"{r:.3f}"
    assert _cells(section, "R² (1 − SS_res / SS_tot)")[1] == f"{r2:.3f}"
    assert _cells(section, "SMD (mean machine − mean human) / pooled SD")[1] == f"{smd:+.3f}"
    assert _cells(section, "QWK")[1] == f"{m.quadratic_weighted_kappa(human, machine, 8):.3f}"
    assert result.metrics["human_machine_pearson_r"] == pytest.approx(r)
    assert result.metrics["human_machine_r2"] == pytest.approx(r2)
    # SMD here is the fairness section's overall SMD: the same scores on the same scale.
    assert result.metrics["fairness_smd"] == pytest.approx(smd)

    failed = [g.gate for g in result.gates if not g.passed and g.blocking]
    passed = [g.gate for g in result.gates if g.passed]
    signoff = report[report.index("## Sign-off") :]
    decision = _cells(signoff, "Decision")[1]
    gates_failed = next(
        line for line in signoff.splitlines() if line.startswith("| Gates failed (")
    )
    assert gates_failed.endswith(f"| {', '.join(f'`{g}`' for g in failed) or 'none'} |")
    assert f"Gates passed ({len(passed)} of {len(result.gates)})" in signoff
    if failed:
        assert decision.startswith("**FAIL** — blocked: `champion` does not move")
    else:
        assert decision.startswith("**PASS** — promoted")


def test_a_failing_version_signs_off_as_blocked_naming_its_gates(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = _validate(grade_holdout(grade_bundle, shift=4), grade_bundle, policy)
    assert not result.passed
    signoff = result.report_path.read_text().split("## Sign-off", 1)[1]
    failed = [g.gate for g in result.gates if not g.passed and g.blocking]
    assert "min_qwk" in failed
    assert _cells(signoff, f"Gates failed ({len(failed)}, blocking)")[1] == ", ".join(
        f"`{g}`" for g in failed
    )
    assert _cells(signoff, "Decision")[1].startswith("**FAIL** — blocked")


# --------------------------------------------------------------------------- other families


def _evidence(model_name: str, rows: pl.DataFrame, prediction: BundlePrediction, second):
    return HoldoutEvidence(
        model=registered_model(model_name),
        rows=rows,
        prediction=prediction,
        training_targets=lambda: rows["target"].to_numpy(),
        subgroups=pl.DataFrame({"essay_id": [], "group": [], "value": []}),
        second_ratings=second,
    )


def test_band_agreement_is_on_half_bands_with_human_human_beside_it() -> None:
    rng = np.random.default_rng(11)
    n = 50
    ids = [f"e{i:02d}" for i in range(n)]
    bands = rng.integers(8, 17, n) / 2
    served = np.clip(bands + rng.choice([-0.5, 0.0, 0.5, 1.0], n), 0, 9)
    second = np.clip(bands + rng.choice([-0.5, 0.0, 0.5], n), 0, 9)
    rows = pl.DataFrame({"essay_id": ids, "target": bands})
    prediction = BundlePrediction(served, None, served + 0.1, np.ones(n))
    ratings = pl.DataFrame(
        {"essay_id": ids[:35], "label": ["band"] * 35, "value": [str(b) for b in second[:35]]}
    )
    evidence = _evidence(BAND_MODEL, rows, prediction, ratings)
    family = evidence.model.family

    agreement = human_machine_agreement(family, evidence, "bands")
    whole = agreement.whole
    assert whole is not None and whole.n == n
    assert agreement.step == "half band"
    assert whole.qwk == pytest.approx(m.quadratic_weighted_kappa(bands * 2, served * 2, 19))
    assert whole.adjacent_agreement == pytest.approx(np.mean(np.abs(bands - served) <= 0.5))
    assert whole.pearson_r == pytest.approx(np.corrcoef(bands, served)[0, 1])
    hh, hm = agreement.human_human, agreement.human_machine_double_scored
    assert hh is not None and hm is not None and hh.n == hm.n == 35
    # The degradation is the human–human section's, on the same essays and scale.
    degradation = family.rater_agreement(evidence, min_n=30, seed=0).degradation
    assert hh.qwk - hm.qwk == pytest.approx(degradation)


def test_skill_agreement_rounds_the_rating_scale_score_to_half_points() -> None:
    rng = np.random.default_rng(12)
    n = 40
    ids = [f"e{i:02d}" for i in range(n)]
    rating = rng.integers(2, 11, n) / 2
    score = np.clip(rating + rng.normal(0, 0.4, n), 1, 5)
    rows = pl.DataFrame({"essay_id": ids, "target": (rating >= 3.5).astype(int), "rating": rating})
    prediction = BundlePrediction(
        (score >= 3.5).astype(int), None, (score - 1) / 4, np.ones(n), rating_scale_score=score
    )
    evidence = _evidence(SKILL_MODELS["grammar"], rows, prediction, None)

    agreement = human_machine_agreement(evidence.model.family, evidence, "ratings")
    whole = agreement.whole
    assert whole is not None and agreement.human_human is None
    assert whole.pearson_r == pytest.approx(np.corrcoef(rating, score)[0, 1])
    codes = np.floor((score - 1) * 2 + 0.5)
    assert whole.exact_agreement == pytest.approx(np.mean(codes == (rating - 1) * 2))
    assert whole.qwk == pytest.approx(m.quadratic_weighted_kappa((rating - 1) * 2, codes, 9))

    no_scale = dataclasses.replace(
        evidence, prediction=dataclasses.replace(prediction, rating_scale_score=None)
    )
    missing = human_machine_agreement(no_scale.model.family, no_scale, "ratings")
    assert missing.whole is None and "no rating-scale output" in (missing.note or "")
    # The rater module agrees there is no machine score to put beside the humans.
    assert (
        rater_agreement(
            no_scale.model.family.rater_scores(no_scale), min_n=30, seed=0
        ).human_machine
        is None
    )
