"""Validation with a second rater: the report's human–human section and the gate
`max_qwk_degradation`, on the promotion service with a tiny real bundle."""

from __future__ import annotations

import dataclasses

import polars as pl
from support import validate_on_holdout

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.metrics import quadratic_weighted_kappa
from huleedu_pipelines.services.promotion import (
    STORAGE_FILES,
    Holdout,
    ValidationPolicy,
)

DOUBLE_SCORED = 40
"""Test essays a second teacher graded (of N_HOLDOUT)."""


def _with_second_grades(holdout: Holdout, *, off_by_one_every: int) -> Holdout:
    """Second grades for the first DOUBLE_SCORED test essays (and for every training essay,
    which must not count): the first grade, one step off on every `off_by_one_every`-th."""
    labels = holdout.grade_labels.join(holdout.splits, on="essay_id")
    test = labels.filter(pl.col("split") == "test").head(DOUBLE_SCORED)
    train = labels.filter(pl.col("split") == "train")
    rows = []
    for i, (essay_id, code) in enumerate(
        pl.concat([test, train]).select("essay_id", "grade_ordinal").iter_rows()
    ):
        second = code
        if off_by_one_every and i % off_by_one_every == 0:
            second = code + 1 if code < 7 else code - 1
        rows.append({"essay_id": essay_id, "label": "grade", "value": SWEDISH_GRADES[second]})
    return dataclasses.replace(holdout, second_ratings=pl.DataFrame(rows))


def test_a_model_as_close_to_the_teachers_as_a_second_teacher_passes_and_the_report_shows_both(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    # The model predicts the first grades exactly; the second teacher is one off on 1 in 4.
    holdout = _with_second_grades(grade_holdout(grade_bundle), off_by_one_every=4)
    result = validate_on_holdout(holdout, grade_bundle, policy)

    gate = next(gate for gate in result.gates if gate.gate == "max_qwk_degradation")
    first = holdout.grade_labels.head(DOUBLE_SCORED)["grade_ordinal"].to_numpy()
    second = holdout.second_ratings.head(DOUBLE_SCORED)["value"].to_list()
    human_human = quadratic_weighted_kappa(first, [SWEDISH_GRADES.index(g) for g in second], 8)
    assert 0.8 < human_human < 1.0
    assert gate.passed and gate.value == human_human - 1.0  # the model agrees perfectly
    assert gate.message.startswith(f"QWK degradation on {DOUBLE_SCORED} double-scored essays")
    assert result.metrics["double_scored_essays"] == DOUBLE_SCORED
    assert result.metrics["human_human_qwk"] == human_human
    assert result.metrics["human_machine_qwk_double_scored"] == 1.0

    report = result.report_path.read_text()
    section = report[report.index("## Human–human agreement") :]
    n_test = holdout.splits.filter(pl.col("split") == "test").height
    assert f"{DOUBLE_SCORED} of the {n_test} holdout essays were scored by a second" in section
    assert f"| statistic | human–human (n={DOUBLE_SCORED}) | human–machine (n=40) |" in section
    assert f"| QWK | {human_human:.3f} [" in section and "] | 1.000 [1.000, 1.000] |" in section
    assert "| Exact agreement | 0.750 | 1.000 |" in section
    assert "gate `max_qwk_degradation` ≤ 0.1: PASS" in section


def test_a_model_far_worse_than_a_second_teacher_is_blocked(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    # Teachers agree with each other exactly; their grades are 4 steps from the model's.
    holdout = _with_second_grades(grade_holdout(grade_bundle, shift=4), off_by_one_every=0)
    result = validate_on_holdout(holdout, grade_bundle, policy)

    gate = next(gate for gate in result.gates if gate.gate == "max_qwk_degradation")
    assert not gate.passed and gate.value > 1.0  # human–human 1.0, human–machine below 0
    assert gate.low > 0.1
    assert "human–human 1.000" in gate.message
    assert "max_qwk_degradation" in result.verdict
    assert "gate `max_qwk_degradation` ≤ 0.1: **FAIL**" in result.report_path.read_text()


def test_without_second_ratings_the_gate_does_not_apply_and_there_is_no_section(
    grade_bundle: ModelBundle, policy: ValidationPolicy, grade_holdout
) -> None:
    result = validate_on_holdout(grade_holdout(grade_bundle), grade_bundle, policy)
    gate = next(gate for gate in result.gates if gate.gate == "max_qwk_degradation")
    assert gate.passed and gate.value is None
    assert gate.message == "no double-scored essays: not applicable (max_qwk_degradation passes)"
    assert "Human–human agreement" not in result.report_path.read_text()
    assert "human_human_qwk" not in result.metrics


def test_holdout_from_storage_reads_second_ratings_when_the_file_exists(
    tmp_path, grade_bundle: ModelBundle, grade_holdout
) -> None:
    holdout = grade_holdout(grade_bundle)
    for key, name in STORAGE_FILES.items():
        getattr(holdout, key).write_parquet(tmp_path / name)
    assert Holdout.from_storage(tmp_path).second_ratings is None  # trained before they existed

    rated = _with_second_grades(holdout, off_by_one_every=4)
    rated.second_ratings.write_parquet(tmp_path / "second_ratings.parquet")
    newer = Holdout.from_storage(tmp_path)
    ids = rated.second_ratings["essay_id"].to_list()[:3]
    assert newer.second_ratings_of(ids).rows() == rated.second_ratings.head(3).rows()
