"""The report a psychometrician signs: provenance under the title, RSMTool's human–machine
agreement table (with human–human beside it where essays were scored twice) and the sign-off
block, asserted on the values rendered from given data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from huleedu_pipelines.modeling import metrics as m
from huleedu_pipelines.modeling.figures import ChampionComparison
from huleedu_pipelines.modeling.gates import GateResult
from huleedu_pipelines.modeling.report import (
    HumanMachineAgreement,
    ReportProvenance,
    render_markdown,
)

WHEN = dt.datetime(2026, 11, 30, 9, 15, 0, tzinfo=dt.UTC)


def _provenance(purpose: str = "validation", **changes: object) -> ReportProvenance:
    fields: dict[str, object] = {
        "purpose": purpose,
        "generated_at": WHEN,
        "generated_by": "a.reviewer",
        "package_version": "0.9.1",
        "git_commit": "abc1234",
        "dataset_hash": "0123456789abcdef0123456789abcdef",
        "dataset_hash_of": "sha256 of 3 holdout rows sorted by essay: (essay_id, target)",
        "n_rows": 3,
        "feature_version": "fv-7",
        "holdout_feature_versions": ("fv-7",),
        "label_watermark": dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC),
        "essay_watermark": dt.datetime(2026, 10, 30, 8, 30, tzinfo=dt.UTC),
        "run_label_watermark": dt.datetime(2026, 11, 3, 7, 45, tzinfo=dt.UTC),
        "mlflow_run_id": "mlflow-run-42",
        "dagster_run_id": "dagster-run-9",
    }
    return ReportProvenance(**(fields | changes))  # type: ignore[arg-type]


def _gate(name: str, passed: bool, blocking: bool = True) -> GateResult:
    return GateResult(name, passed, 0.5, 0.7, ">=", f"{name} message", blocking=blocking)


def _summary(human: np.ndarray, machine: np.ndarray, n_classes: int = 8) -> m.AgreementSummary:
    codes = np.clip(np.rint(human), 0, n_classes - 1), np.clip(np.rint(machine), 0, n_classes - 1)
    return m.agreement_summary(human, machine, *codes, n_classes)


def _row(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# --------------------------------------------------------------------------- metrics


def test_r2_is_the_coefficient_of_determination_not_r_squared() -> None:
    human = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    shifted = human + 1.0  # perfectly correlated, one point too high
    assert m.pearson_r(human, shifted) == pytest.approx(1.0)
    expected = 1 - np.sum((human - shifted) ** 2) / np.sum((human - human.mean()) ** 2)
    assert m.r2_score(human, shifted) == pytest.approx(expected) == pytest.approx(0.5)
    assert m.r2_score(human, human) == 1.0
    assert np.isnan(m.r2_score(np.ones(4), np.arange(4.0)))


def test_agreement_summary_matches_numpy_and_rsmtool_definitions() -> None:
    rng = np.random.default_rng(3)
    human = rng.integers(0, 8, 200).astype(float)
    machine = np.clip(human + rng.normal(0.4, 0.9, 200), 0, 7)
    summary = _summary(human, machine)

    assert summary.n == 200
    assert summary.pearson_r == pytest.approx(np.corrcoef(human, machine)[0, 1])
    ss_res = np.sum((human - machine) ** 2)
    ss_tot = np.sum((human - human.mean()) ** 2)
    assert summary.r2 == pytest.approx(1 - ss_res / ss_tot)
    pooled = np.sqrt((human.var(ddof=1) + machine.var(ddof=1)) / 2)
    assert summary.pooled_sd == pytest.approx(pooled)
    assert summary.smd == pytest.approx((machine.mean() - human.mean()) / pooled)
    assert summary.smd > 0  # the machine scores higher on average
    codes = np.rint(machine)
    assert summary.qwk == pytest.approx(m.quadratic_weighted_kappa(human, codes, 8))
    assert summary.exact_agreement == pytest.approx(np.mean(human == codes))
    assert summary.adjacent_agreement == pytest.approx(np.mean(np.abs(human - codes) <= 1))


# --------------------------------------------------------------------------- agreement table


def test_the_agreement_table_shows_r_r2_smd_and_the_pooled_sd() -> None:
    human = np.array([3.0, 4.0, 2.0, 5.0, 6.0, 1.0, 4.0, 3.0])
    machine = np.array([2.4, 3.6, 2.2, 4.1, 5.3, 1.5, 3.2, 2.9])  # lower than the humans
    whole = _summary(human, machine)
    hm = HumanMachineAgreement(
        scores="grade index 0..7 (F..A)", scale="grade codes", step="grade", whole=whole
    )
    text = render_markdown("t", model_name="m", model_version="1", gates=[], human_machine=hm)

    assert "## Agreement with the human scores" in text
    assert "| statistic | human–machine, all holdout (n=8) |" in text
    assert _row(text, "Pearson r")[1] == f"{np.corrcoef(human, machine)[0, 1]:.3f}"
    r2 = 1 - np.sum((human - machine) ** 2) / np.sum((human - human.mean()) ** 2)
    assert _row(text, "R² (1 − SS_res / SS_tot)")[1] == f"{r2:.3f}"
    pooled = np.sqrt((human.var(ddof=1) + machine.var(ddof=1)) / 2)
    smd = (machine.mean() - human.mean()) / pooled
    assert smd < 0
    assert _row(text, "SMD (mean machine − mean human) / pooled SD")[1] == f"{smd:+.3f}"
    assert f"**pooled SD = {pooled:.3f}**" in text
    assert _row(text, "Pooled SD sqrt((s_h² + s_m²) / 2)")[1] == f"{pooled:.3f}"
    assert (
        _row(text, "Adjacent agreement (within one grade)")[1] == f"{whole.adjacent_agreement:.3f}"
    )
    assert _row(text, "Machine mean")[1] == f"{machine.mean():.3f}"
    assert "human–human" not in text  # no double-scored essays, no such column


def test_human_human_stands_beside_human_machine_with_the_degradation() -> None:
    rng = np.random.default_rng(5)
    first = rng.integers(0, 8, 60).astype(float)
    machine = np.clip(first + rng.integers(-2, 3, 60), 0, 7)
    second = np.clip(first + rng.integers(-1, 2, 60), 0, 7)
    double = slice(0, 40)
    hm = HumanMachineAgreement(
        scores="grades",
        scale="grade codes",
        step="grade",
        whole=_summary(first, machine),
        human_human=_summary(first[double], second[double]),
        human_machine_double_scored=_summary(first[double], machine[double]),
    )
    text = render_markdown("t", model_name="m", model_version="1", gates=[], human_machine=hm)

    assert (
        "| statistic | human–machine, all holdout (n=60) | human–machine, double-scored (n=40) "
        "| human–human (n=40) | human–human − human–machine |"
    ) in text
    qwk = _row(text, "QWK")
    hh = m.quadratic_weighted_kappa(first[double], second[double], 8)
    hm_double = m.quadratic_weighted_kappa(first[double], machine[double], 8)
    assert qwk[1:4] == [
        f"{m.quadratic_weighted_kappa(first, machine, 8):.3f}",
        f"{hm_double:.3f}",
        f"{hh:.3f}",
    ]
    assert qwk[4] == f"**{hh - hm_double:+.3f}** (degradation)"
    r = _row(text, "Pearson r")
    assert r[3] == f"{np.corrcoef(first[double], second[double])[0, 1]:.3f}"
    assert _row(text, "Human mean")[4] == ""  # differences only for agreement statistics
    assert _row(text, "Machine (or second human) mean")[3] == f"{second[double].mean():.3f}"


def test_a_model_without_a_score_on_the_human_scale_says_so() -> None:
    hm = HumanMachineAgreement(
        "ratings", "half points", "half point", whole=None, note="no rating-scale output"
    )
    text = render_markdown("t", model_name="m", model_version="1", gates=[], human_machine=hm)
    assert "Not measured on the human scale: no rating-scale output." in text


# --------------------------------------------------------------------------- provenance


def test_provenance_is_stated_right_under_the_title() -> None:
    text = render_markdown(
        "huleedu-grade-sv v3 — validation report",
        model_name="huleedu-grade-sv",
        model_version="3",
        gates=[_gate("min_qwk", True)],
        provenance=_provenance(),
    )
    lines = text.splitlines()
    assert lines[0] == "# huleedu-grade-sv v3 — validation report"
    assert lines[2] == "| provenance |  |"
    head = text[: text.index("**Verdict")]
    assert _row(head, "Model")[1] == ("`huleedu-grade-sv` version `3` (MLflow run `mlflow-run-42`)")
    assert _row(head, "Purpose")[1].startswith("`validation`: validation of a newly trained")
    assert _row(head, "Data watermark")[1] == (
        "labels up to 2026-11-02 12:00:00 UTC, essays submitted or updated up to "
        "2026-10-30 08:30:00 UTC (the 3 holdout essays); every split of the training run the "
        "holdout comes from: labels up to 2026-11-03 07:45:00 UTC"
    )
    assert _row(head, "Dataset hash")[1] == (
        "`0123456789abcdef0123456789abcdef`: sha256 of 3 holdout rows sorted by essay: "
        "(essay_id, target)"
    )
    assert _row(head, "Feature version")[1] == "`fv-7` (model and holdout rows)"
    assert _row(head, "Code")[1] == "huleedu-pipelines 0.9.1, git commit `abc1234`"
    assert _row(head, "Generated")[1] == (
        "2026-11-30 09:15:00 UTC by a.reviewer, Dagster run `dagster-run-9`"
    )


def test_provenance_says_what_is_missing_and_when_feature_versions_differ() -> None:
    provenance = _provenance(
        label_watermark=None,
        essay_watermark=None,
        run_label_watermark=None,
        mlflow_run_id=None,
        dagster_run_id=None,
        holdout_feature_versions=("fv-8",),
        git_commit="unknown",
    )
    text = render_markdown("t", model_name="m", model_version="1", gates=[], provenance=provenance)
    assert "(MLflow run not recorded)" in text
    assert _row(text, "Data watermark")[1] == (
        "not recorded: the holdout's labels and essays carry no times"
    )
    assert "`fv-7` (model); holdout rows: `fv-8` (**differs** from the model's)" in text
    assert "git commit `unknown`" in text
    assert _row(text, "Generated")[1] == "2026-11-30 09:15:00 UTC by a.reviewer"
    partly = _provenance(essay_watermark=None)
    text = render_markdown("t", model_name="m", model_version="1", gates=[], provenance=partly)
    assert "essays submitted or updated up to not recorded (the 3 holdout essays)" in text


# --------------------------------------------------------------------------- sign-off


def test_sign_off_names_the_failed_gates_and_says_the_champion_stays() -> None:
    gates = [
        _gate("min_qwk", False),
        _gate("max_ece", True),
        _gate("max_gaming_share", False, blocking=False),
        _gate("non_inferiority", False),
    ]
    champion = ChampionComparison("5", "qwk", {"qwk": (-0.05, -0.08, -0.02)}, 0.05, 100)
    text = render_markdown(
        "t",
        model_name="m",
        model_version="6",
        gates=gates,
        champion=champion,
        provenance=_provenance(),
        plots={"Confusion matrix": "grade_confusion.png"},
    )
    assert "![Confusion matrix](grade_confusion.png)" in text  # the image line format is kept
    signoff = text[text.index("## Sign-off") :]
    assert text.index("## Plots") < text.index("## Sign-off")
    assert _row(signoff, "Decision")[1] == (
        "**FAIL** — blocked: `champion` stays on v5; the version stays registered as `challenger`"
    )
    assert _row(signoff, "Gates passed (1 of 4)")[1] == "`max_ece`"
    assert _row(signoff, "Gates failed (2, blocking)")[1] == "`min_qwk`, `non_inferiority`"
    assert _row(signoff, "Gates failed (1, warning only)")[1] == "`max_gaming_share`"
    assert _row(signoff, "Generated by")[1] == (
        "a.reviewer (Dagster run `dagster-run-9`), huleedu-pipelines 0.9.1"
    )
    assert _row(signoff, "Generated at")[1] == "2026-11-30 09:15:00 UTC"
    for blank in ("Name", "Role", "Date", "Signature", "Comments"):
        assert f"| {blank} |  |" in signoff
    assert text.rstrip().endswith("| Comments |  |")


@pytest.mark.parametrize(
    ("purpose", "decision"),
    [
        ("validation", "**PASS** — promoted: `promoted_models` moves `champion` to this version"),
        ("promote", "**PASS** — promoted: `registry promote` moves `champion` to this version"),
        ("compare", "**PASS** — no alias moves: this report was written for a comparison"),
    ],
)
def test_sign_off_says_what_a_pass_does_for_each_purpose(purpose: str, decision: str) -> None:
    text = render_markdown(
        "t",
        model_name="m",
        model_version="1",
        gates=[_gate("min_qwk", True), _gate("max_ece", True)],
        provenance=_provenance(purpose),
    )
    assert _row(text[text.index("## Sign-off") :], "Decision")[1].startswith(decision)
    assert "| Gates failed (0, blocking) | none |" in text


def test_a_forced_promotion_is_the_only_way_past_a_failed_promote_report() -> None:
    text = render_markdown(
        "t",
        model_name="m",
        model_version="1",
        gates=[_gate("min_qwk", False)],
        provenance=_provenance("promote"),
    )
    decision = _row(text[text.index("## Sign-off") :], "Decision")[1]
    assert decision.startswith("**FAIL** — blocked: `champion` does not move")
    assert "`--force --reason`" in decision
