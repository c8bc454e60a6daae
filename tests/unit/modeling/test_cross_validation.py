import math

import numpy as np
import pytest

from huleedu_pipelines.modeling.cross_validation import (
    corrected_standard_error,
    estimate,
    grouped_stratified_folds,
    repeated_grouped_folds,
)


def _school(n_students: int = 120, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Students with 1-4 essays each; a student's grades cluster around their ability."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for student in range(n_students):
        ability = rng.integers(0, 8)
        for _ in range(rng.integers(1, 5)):
            labels.append(int(np.clip(ability + rng.integers(-1, 2), 0, 7)))
            groups.append(f"s{student}")
    return np.asarray(labels), np.asarray(groups)


def test_every_row_is_tested_once_per_repeat_and_no_student_is_on_both_sides():
    labels, groups = _school()
    folds = repeated_grouped_folds(labels, groups, n_folds=5, repeats=3, seed=7)
    assert len(folds) == 15
    for repeat in range(3):
        tested = np.concatenate([f.test for f in folds if f.repeat == repeat])
        assert np.array_equal(np.sort(tested), np.arange(labels.size))
    for fold in folds:
        assert set(groups[fold.train]).isdisjoint(groups[fold.test])
        assert fold.train.size + fold.test.size == labels.size


def test_folds_are_stratified_by_label():
    labels, groups = _school(n_students=300)
    assignment = grouped_stratified_folds(labels, groups, n_folds=5, seed=11)
    overall = np.bincount(labels, minlength=8) / labels.size
    for k in range(5):
        in_fold = labels[assignment == k]
        assert 0.16 < in_fold.size / labels.size < 0.24
        shares = np.bincount(in_fold, minlength=8) / in_fold.size
        assert np.abs(shares - overall).max() < 0.04


def test_repeats_differ_and_the_same_seed_gives_the_same_folds():
    labels, groups = _school()
    first = repeated_grouped_folds(labels, groups, n_folds=4, repeats=2, seed=5)
    again = repeated_grouped_folds(labels, groups, n_folds=4, repeats=2, seed=5)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(first, again, strict=True))
    repeat_0 = {tuple(f.test) for f in first if f.repeat == 0}
    repeat_1 = {tuple(f.test) for f in first if f.repeat == 1}
    assert repeat_0 != repeat_1


def test_too_few_students_for_the_folds_is_refused():
    with pytest.raises(ValueError, match="3 students cannot fill 5 folds"):
        grouped_stratified_folds([0, 1, 2], ["a", "b", "c"], n_folds=5, seed=1)


def test_the_corrected_standard_error_exceeds_the_naive_one():
    scores = [0.70, 0.74, 0.72, 0.69, 0.75, 0.71, 0.73, 0.70, 0.74, 0.72]
    naive = np.std(scores, ddof=1) / math.sqrt(len(scores))
    corrected = corrected_standard_error(scores, test_share=0.2)
    # variance × (1/10 + 0.2/0.8) = variance × 0.35 against the naive variance × 0.1
    assert corrected == pytest.approx(naive * math.sqrt(3.5))
    figure = estimate(scores, n_folds=5)
    assert figure.mean == pytest.approx(np.mean(scores))
    assert figure.standard_error == pytest.approx(corrected)
    assert str(figure) == f"{np.mean(scores):.3f} ± {corrected:.3f}"
