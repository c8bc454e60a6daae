"""Student-grouped, label-stratified train/validation/test assignment.

Every essay of a student lands in the same split, so no model is evaluated on a student it
has seen. Rows whose label is missing still follow their student: one partition serves the
grade, CEFR, IELTS and skill models alike, even though each sees only its labelled rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

SPLIT_NAMES: tuple[str, str, str] = ("train", "validation", "test")


def _missing(values: np.ndarray) -> NDArray[np.bool_]:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def grouped_stratified_split(
    labels: ArrayLike,
    groups: ArrayLike,
    seed: int,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    names: Sequence[str] = SPLIT_NAMES,
) -> NDArray[np.str_]:
    """Assign each row to a split name, whole groups at a time.

    Greedy stratification: groups are visited largest first (ties in a seeded random order)
    and each goes to the split where it most reduces the squared gap between the split's
    label counts and its target (``fraction × class total``, scaled by the class total so rare
    grades weigh as much as common ones) plus the gap in row count. Deterministic for a seed
    and independent of row order.

    ``labels`` may hold any hashable values with ``None``/``NaN`` for missing; ``groups`` must
    not have missing values (give anonymous essays their essay id as group).
    """
    import pandas as pd

    label_values = np.asarray(labels, dtype=object)
    group_values = np.asarray(groups, dtype=object)
    if label_values.ndim != 1 or group_values.ndim != 1:
        raise ValueError("labels and groups must be one-dimensional")
    if label_values.shape != group_values.shape:
        raise ValueError(f"{label_values.size} labels but {group_values.size} groups")
    if len(fractions) != len(names):
        raise ValueError(f"{len(fractions)} fractions for {len(names)} split names")
    shares = np.asarray(fractions, dtype=np.float64)
    if np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    missing_groups = np.flatnonzero(_missing(group_values))
    if missing_groups.size:
        raise ValueError(
            f"groups are missing at {missing_groups.size} rows (first: row {missing_groups[0]}); "
            "every essay needs a student id (use the essay id for anonymous essays)"
        )
    n_rows = label_values.size
    if n_rows == 0:
        return np.asarray([], dtype=str)

    # Sorting group keys by their string form makes the result independent of row order.
    group_keys, group_index = np.unique(group_values.astype(str), return_inverse=True)
    n_groups = group_keys.size
    labelled = ~_missing(label_values)
    class_index = np.full(n_rows, -1, dtype=np.int64)
    if labelled.any():
        codes, _ = pd.factorize(pd.Series(label_values[labelled]), sort=True)
        class_index[labelled] = codes
    n_classes = int(class_index.max()) + 1

    profile = np.zeros((n_groups, max(n_classes, 1)), dtype=np.float64)
    np.add.at(profile, (group_index[labelled], class_index[labelled]), 1.0)
    sizes = np.bincount(group_index, minlength=n_groups).astype(np.float64)

    class_totals = profile.sum(axis=0)
    class_scale = np.where(class_totals > 0, class_totals, 1.0)
    targets = shares[:, None] * class_totals[None, :]
    row_targets = shares * n_rows

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_groups)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]

    counts = np.zeros_like(targets)
    rows = np.zeros(len(names), dtype=np.float64)
    group_split = np.empty(n_groups, dtype=np.int64)
    open_splits = shares > 0
    for g in order:
        gain = (((counts + profile[g] - targets) ** 2 - (counts - targets) ** 2) / class_scale).sum(
            axis=1
        )
        gain += ((rows + sizes[g] - row_targets) ** 2 - (rows - row_targets) ** 2) / n_rows
        gain[~open_splits] = np.inf
        best = int(np.argmin(gain))
        group_split[g] = best
        counts[best] += profile[g]
        rows[best] += sizes[g]

    return np.asarray(names, dtype=str)[group_split[group_index]]


def leaking_groups(groups: ArrayLike, assignment: ArrayLike) -> list[str]:
    """Groups found in more than one split (empty when the split is clean)."""
    import pandas as pd

    frame = pd.DataFrame({"group": np.asarray(groups).astype(str), "split": assignment})
    per_group = frame.groupby("group")["split"].nunique()
    return sorted(per_group[per_group > 1].index.tolist())


def split_summary(
    labels: ArrayLike, groups: ArrayLike, assignment: ArrayLike
) -> dict[str, dict[str, object]]:
    """Rows, groups, labelled rows and label shares per split, for asset metadata."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "label": np.asarray(labels, dtype=object),
            "group": np.asarray(groups).astype(str),
            "split": np.asarray(assignment),
        }
    )
    summary: dict[str, dict[str, object]] = {}
    for name, part in frame.groupby("split", sort=False):
        present = part["label"].dropna()
        shares = present.astype(str).value_counts(normalize=True).sort_index()
        summary[str(name)] = {
            "rows": len(part),
            "groups": int(part["group"].nunique()),
            "labelled_rows": len(present),
            "label_shares": {str(k): float(v) for k, v in shares.items()},
        }
    return summary
