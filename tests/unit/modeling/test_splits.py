from __future__ import annotations

import numpy as np
import pytest

from huleedu_pipelines.modeling.splits import (
    grouped_stratified_split,
    leaking_groups,
    split_summary,
)

FRACTIONS = (0.7, 0.15, 0.15)


def _essays(seed: int = 0, n_students: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Students with 1-6 essays; grades skewed and correlated within a student; 10% unlabelled."""
    rng = np.random.default_rng(seed)
    essays_per_student = rng.integers(1, 7, n_students)
    groups = np.repeat([f"student-{i:04d}" for i in range(n_students)], essays_per_student)
    ability = np.repeat(rng.normal(0, 1.2, n_students), essays_per_student)
    labels = np.clip(np.round(ability + 3.5 + rng.normal(0, 0.8, groups.size)), 0, 7)
    labels = labels.astype(object)
    labels[rng.random(groups.size) < 0.1] = None
    return labels, groups


def _shares(labels: np.ndarray) -> np.ndarray:
    present = np.asarray([v for v in labels if v is not None], dtype=int)
    return np.bincount(present, minlength=8) / present.size


def test_no_student_on_two_sides_and_every_row_assigned() -> None:
    labels, groups = _essays()
    assignment = grouped_stratified_split(labels, groups, seed=1)
    assert assignment.shape == labels.shape
    assert set(assignment) == {"train", "validation", "test"}
    assert leaking_groups(groups, assignment) == []
    unlabelled = np.array([v is None for v in labels])
    assert np.all(np.isin(assignment[unlabelled], ["train", "validation", "test"]))


def test_reproducible_from_seed_and_independent_of_row_order() -> None:
    labels, groups = _essays()
    first = grouped_stratified_split(labels, groups, seed=3)
    np.testing.assert_array_equal(first, grouped_stratified_split(labels, groups, seed=3))
    assert np.any(first != grouped_stratified_split(labels, groups, seed=4))
    order = np.random.default_rng(0).permutation(labels.size)
    shuffled = grouped_stratified_split(labels[order], groups[order], seed=3)
    np.testing.assert_array_equal(shuffled, first[order])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fractions_and_stratification_within_tolerance(seed: int) -> None:
    labels, groups = _essays(seed)
    assignment = grouped_stratified_split(labels, groups, seed=seed, fractions=FRACTIONS)
    overall = _shares(labels)
    for name, fraction in zip(("train", "validation", "test"), FRACTIONS, strict=True):
        part = assignment == name
        assert part.mean() == pytest.approx(fraction, abs=0.01)
        assert np.max(np.abs(_shares(labels[part]) - overall)) < 0.01


def test_stratifies_better_than_a_random_group_split() -> None:
    labels, groups = _essays(9)
    ours = grouped_stratified_split(labels, groups, seed=9)
    rng = np.random.default_rng(9)
    unique = np.unique(groups)
    random_side = dict(
        zip(
            unique,
            rng.choice(["train", "validation", "test"], unique.size, p=FRACTIONS),
            strict=True,
        )
    )
    naive = np.array([random_side[g] for g in groups])
    overall = _shares(labels)

    def worst_gap(assignment: np.ndarray) -> float:
        return max(
            np.max(np.abs(_shares(labels[assignment == name]) - overall))
            for name in ("validation", "test")
        )

    assert worst_gap(ours) < worst_gap(naive)


def test_string_labels_nan_and_custom_names() -> None:
    labels = np.array(["A", "B", np.nan, "C", "A", None, "B", "C"] * 20, dtype=object)
    groups = np.repeat(np.arange(40), 4)
    assignment = grouped_stratified_split(
        labels, groups, seed=0, fractions=(0.5, 0.5), names=("fit", "holdout")
    )
    assert set(assignment) == {"fit", "holdout"}
    assert leaking_groups(groups, assignment) == []
    summary = split_summary(labels, groups, assignment)
    assert summary["fit"]["rows"] + summary["holdout"]["rows"] == labels.size
    assert summary["fit"]["groups"] + summary["holdout"]["groups"] == 40
    assert summary["fit"]["labelled_rows"] < summary["fit"]["rows"]


def test_all_labels_missing_still_splits_by_group() -> None:
    groups = np.repeat(np.arange(100), 2)
    assignment = grouped_stratified_split([None] * 200, groups, seed=0)
    assert leaking_groups(groups, assignment) == []
    assert (assignment == "train").mean() == pytest.approx(0.7, abs=0.02)


def test_bad_input_is_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="row 1"):
        grouped_stratified_split([1, 2, 3], ["a", None, "c"], seed=0)
    with pytest.raises(ValueError, match="sum to 1"):
        grouped_stratified_split([1, 2], ["a", "b"], seed=0, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="3 labels but 2 groups"):
        grouped_stratified_split([1, 2, 3], ["a", "b"], seed=0)
