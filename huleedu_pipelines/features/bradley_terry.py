"""Bradley–Terry features from comparative-judgement (CJ) comparisons.

Each CJ batch is a set of essays that judges compared in pairs. Within a batch we fit a
Bradley–Terry model, P(a beats b) = sigmoid(theta_a - theta_b), by maximum a posteriori
estimation with a weak Gaussian prior theta ~ N(0, prior_variance). The prior is what keeps
an essay that won (or lost) every comparison, or a batch made of disconnected groups, at a
finite ability; with the default variance it moves well-measured abilities by very little.

Abilities are log-strengths on the logit scale and are only comparable within a batch: every
batch is centred to mean 0 on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def expit(x: np.ndarray) -> np.ndarray:
    """Logistic function, numerically stable for large |x| (scipy stays out of module load)."""
    return np.exp(-np.logaddexp(0.0, -x))


DEFAULT_PRIOR_VARIANCE = 10.0
"""Variance of the Gaussian prior on abilities: a standard deviation of ~3.2 logits, wide
against the ±2–3 logits that CJ batches usually span, so it only matters for items whose
likelihood has no finite maximum (unbeaten, winless, disconnected)."""

CJ_FEATURE_COLUMNS: tuple[str, ...] = (
    "cj_bt_ability",
    "cj_bt_se",
    "cj_rank",
    "cj_comparison_count",
    "cj_win_rate",
    "cj_comparison_variance",
    "cj_has_data",
)
"""Feature columns added by :func:`cj_features`, in order (the key column is ``essay_id``)."""

COMPARISON_COLUMNS: tuple[str, ...] = ("batch_id", "essay_a_id", "essay_b_id", "winner_essay_id")

_FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "cj_bt_ability": pl.Float64(),
    "cj_bt_se": pl.Float64(),
    "cj_rank": pl.Int64(),
    "cj_comparison_count": pl.Int64(),
    "cj_win_rate": pl.Float64(),
    "cj_comparison_variance": pl.Float64(),
    "cj_has_data": pl.Int64(),
}


class BradleyTerryConvergenceError(RuntimeError):
    """Newton–Raphson did not reach the requested tolerance within max_iter iterations."""


def fit_bradley_terry(
    winners: np.ndarray,
    losers: np.ndarray,
    n_items: int,
    prior_variance: float = DEFAULT_PRIOR_VARIANCE,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """MAP Bradley–Terry abilities and their standard errors.

    ``winners[k]`` beat ``losers[k]`` in comparison k; both hold item indices in
    ``0..n_items-1``. The log-posterior (Bradley–Terry log-likelihood plus the log-density of
    N(0, prior_variance) on every ability) is strictly concave, so damped Newton–Raphson from 0
    converges to its unique mode. Iteration stops when the largest step is below ``tol``.

    Returns ``(ability, standard_error)``: ability centred to mean 0 (at the mode the prior
    already makes every connected component sum to 0, so centring only removes rounding), and
    the Laplace-approximation standard error of each *centred* ability, ``sqrt(diag(C H^-1
    C))`` with H the negative Hessian of the log-posterior at the mode and C the centring
    matrix. Plain ``sqrt(diag(H^-1))`` would add ``prior_variance / n_items`` for the overall
    location, which the comparisons cannot identify and the centring fixes. An item without
    comparisons gets ability 0 and ``sqrt(prior_variance * (1 - 1 / n_items))``.
    """
    winners = np.asarray(winners, dtype=np.int64).ravel()
    losers = np.asarray(losers, dtype=np.int64).ravel()
    _check_fit_inputs(winners, losers, n_items, prior_variance)
    if n_items == 0:
        return np.zeros(0), np.zeros(0)

    wins_matrix = np.zeros((n_items, n_items))
    np.add.at(wins_matrix, (winners, losers), 1.0)
    pair_counts = wins_matrix + wins_matrix.T
    wins = wins_matrix.sum(axis=1)
    precision = 1.0 / prior_variance

    def log_posterior(theta: np.ndarray) -> float:
        diff = theta[:, None] - theta[None, :]
        log_lik = -np.sum(wins_matrix * np.logaddexp(0.0, -diff))
        return float(log_lik - 0.5 * precision * theta @ theta)

    def negative_hessian(prob: np.ndarray) -> np.ndarray:
        info = pair_counts * prob * (1.0 - prob)
        hessian = -info
        hessian[np.diag_indices(n_items)] = info.sum(axis=1) + precision
        return hessian

    theta = np.zeros(n_items)
    current = log_posterior(theta)
    for _ in range(max_iter):
        prob = expit(theta[:, None] - theta[None, :])
        gradient = wins - (pair_counts * prob).sum(axis=1) - precision * theta
        step = np.linalg.solve(negative_hessian(prob), gradient)
        # Step halving keeps Newton monotone when a near-separable batch makes the
        # quadratic model overshoot; a full step is accepted in the usual case.
        scale = 1.0
        candidate = theta + step
        value = log_posterior(candidate)
        while value < current - 1e-12 * max(1.0, abs(current)) and scale > 1e-8:
            scale *= 0.5
            candidate = theta + scale * step
            value = log_posterior(candidate)
        theta, current = candidate, value
        if np.max(np.abs(scale * step)) < tol:
            break
    else:
        raise BradleyTerryConvergenceError(
            f"Bradley–Terry fit did not converge in {max_iter} Newton iterations "
            f"(n_items={n_items}, comparisons={winners.size}); raise max_iter or loosen tol"
        )

    prob = expit(theta[:, None] - theta[None, :])
    covariance = np.linalg.inv(negative_hessian(prob))
    # Standard errors of the *centred* abilities, diag(C H^-1 C) with C = I - 11'/n. The
    # likelihood only sees differences, so H^-1 carries prior_variance / n of variance along
    # the common shift of all items, which no amount of comparisons can reduce; centring
    # removes exactly that (1 is an eigenvector of H), so the SE shrinks with more data.
    column_mean = covariance.mean(axis=0)
    centred_variance = np.diag(covariance) - 2.0 * column_mean + column_mean.mean()
    standard_error = np.sqrt(np.clip(centred_variance, 0.0, None))
    return theta - theta.mean(), standard_error


def _check_fit_inputs(
    winners: np.ndarray, losers: np.ndarray, n_items: int, prior_variance: float
) -> None:
    if winners.shape != losers.shape:
        raise ValueError(
            f"winners and losers must have the same length, got {winners.size} and {losers.size}"
        )
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if not np.isfinite(prior_variance) or prior_variance <= 0:
        raise ValueError(f"prior_variance must be a positive finite number, got {prior_variance}")
    if winners.size:
        low = min(winners.min(), losers.min())
        high = max(winners.max(), losers.max())
        if low < 0 or high >= n_items:
            raise ValueError(f"item indices must lie in 0..{n_items - 1}, found {low}..{high}")
        self_play = np.flatnonzero(winners == losers)
        if self_play.size:
            raise ValueError(
                f"comparison {int(self_play[0])} pits item {int(winners[self_play[0]])} "
                "against itself"
            )


def cj_features(comparisons: pl.DataFrame) -> pl.DataFrame:
    """One row per essay that appears in any comparison: ``essay_id`` + :data:`CJ_FEATURE_COLUMNS`.

    Per batch, with the Bradley–Terry model fitted to that batch's comparisons:

    - ``cj_bt_ability``, ``cj_bt_se``: MAP ability (batch-centred) and its standard error;
    - ``cj_rank``: 1 = highest ability in the batch; equal abilities share the lowest rank;
    - ``cj_comparison_count``: comparisons the essay took part in;
    - ``cj_win_rate``: wins / comparisons;
    - ``cj_comparison_variance``: mean over the essay's comparisons of the squared residual
      ``(y - p)**2``, with y = 1 for a win and 0 for a loss and p the fitted probability that
      the essay wins that comparison. The MAP equations make an essay's residuals sum to
      ``ability / prior_variance`` (≈ 0), so this is the residuals' variance. It is the Brier
      score of the model on that essay: 0 when every result was predicted with certainty,
      0.25 for coin-flip comparisons, above 0.25 when the essay's results were upsets;
    - ``cj_has_data``: 1.

    The result does not depend on the order of the rows. An essay found in several batches
    gets one row: the inverse-variance-weighted mean of its
    batch abilities, the combined SE ``1 / sqrt(sum(1 / se**2))``, counts summed, win rate
    and comparison variance pooled over all its comparisons, and the rank from its most
    precise batch (smallest SE). Abilities from different batches are each centred on their
    own batch, so the weighted mean assumes batches are of comparable quality.
    """
    missing = [column for column in COMPARISON_COLUMNS if column not in comparisons.columns]
    if missing:
        raise ValueError(
            f"comparisons is missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(COMPARISON_COLUMNS)}"
        )
    invalid = comparisons.with_row_index("row").filter(
        (pl.col("essay_a_id") == pl.col("essay_b_id"))
        | (
            (pl.col("winner_essay_id") != pl.col("essay_a_id"))
            & (pl.col("winner_essay_id") != pl.col("essay_b_id"))
        )
        | pl.any_horizontal(pl.col(COMPARISON_COLUMNS).is_null())
    )
    if invalid.height:
        first = invalid.row(0, named=True)
        raise ValueError(
            f"{invalid.height} comparison row(s) are invalid (null field, an essay compared "
            f"with itself, or a winner that is neither essay); first is row {first['row']}: "
            f"{ {key: first[key] for key in COMPARISON_COLUMNS} }. Quarantine them upstream."
        )

    # Fitted in one canonical order: the same comparisons read in another order (a night reads
    # a few batches, a backfill the whole table) give bit-identical features, and so the same
    # feature hash.
    canonical = comparisons.select(COMPARISON_COLUMNS).sort(COMPARISON_COLUMNS)
    per_batch = [
        _batch_features(batch) for _, batch in canonical.group_by("batch_id", maintain_order=True)
    ]
    if not per_batch:
        return pl.DataFrame(
            schema={"essay_id": comparisons.schema["essay_a_id"], **_FEATURE_SCHEMA}
        )
    return _combine_batches(pl.concat(per_batch))


def _batch_features(batch: pl.DataFrame) -> pl.DataFrame:
    essay_a = batch["essay_a_id"].to_numpy()
    essay_b = batch["essay_b_id"].to_numpy()
    a_won = (batch["winner_essay_id"] == batch["essay_a_id"]).to_numpy()
    essay_ids, codes = np.unique(np.concatenate([essay_a, essay_b]), return_inverse=True)
    index_a, index_b = codes[: batch.height], codes[batch.height :]
    winners = np.where(a_won, index_a, index_b)
    losers = np.where(a_won, index_b, index_a)

    ability, standard_error = fit_bradley_terry(winners, losers, essay_ids.size)

    n_items = essay_ids.size
    count = np.bincount(index_a, minlength=n_items) + np.bincount(index_b, minlength=n_items)
    wins = np.bincount(winners, minlength=n_items)
    # Residual of each comparison from the winner's side; the loser's residual has the
    # opposite sign and the same square.
    winner_residual = 1.0 - expit(ability[winners] - ability[losers])
    squared = winner_residual**2
    squared_sum = np.bincount(winners, squared, n_items) + np.bincount(losers, squared, n_items)

    return pl.DataFrame(
        {
            "essay_id": pl.Series(essay_ids.tolist(), dtype=batch.schema["essay_a_id"]),
            "ability": ability,
            "se": standard_error,
            # Rounded so that essays with identical records, whose abilities differ only by
            # floating-point noise, share a rank.
            "rank": pl.Series(np.round(ability, 9))
            .rank(method="min", descending=True)
            .cast(pl.Int64),
            "count": count.astype(np.int64),
            "wins": wins.astype(np.int64),
            "squared_residual_sum": squared_sum,
        }
    )


def _combine_batches(rows: pl.DataFrame) -> pl.DataFrame:
    weight = 1.0 / pl.col("se") ** 2
    return (
        rows.group_by("essay_id", maintain_order=True)
        .agg(
            cj_bt_ability=(weight * pl.col("ability")).sum() / weight.sum(),
            cj_bt_se=1.0 / weight.sum().sqrt(),
            cj_rank=pl.col("rank").sort_by(["se", "count"], descending=[False, True]).first(),
            cj_comparison_count=pl.col("count").sum(),
            cj_win_rate=pl.col("wins").sum() / pl.col("count").sum(),
            cj_comparison_variance=pl.col("squared_residual_sum").sum() / pl.col("count").sum(),
        )
        .with_columns(cj_has_data=pl.lit(1, dtype=pl.Int64))
        .cast(_FEATURE_SCHEMA)
        .sort("essay_id")
    )


def attach_cj_features(
    essay_ids: Sequence[str] | pl.Series, features: pl.DataFrame
) -> pl.DataFrame:
    """Left-join CJ features onto every essay, in the order given.

    Essays without CJ data get nulls in the numeric columns and ``cj_has_data = 0``, so a
    model can tell "not compared" from any real value.
    """
    ids = essay_ids if isinstance(essay_ids, pl.Series) else pl.Series(list(essay_ids))
    frame = pl.DataFrame({"essay_id": ids.rename("essay_id")})
    if frame["essay_id"].dtype == pl.Null:
        frame = frame.cast({"essay_id": features.schema.get("essay_id", pl.String())})
    missing = [column for column in ("essay_id", *CJ_FEATURE_COLUMNS) if column not in features]
    if missing:
        raise ValueError(
            f"features is missing column(s) {', '.join(missing)}; build it with cj_features()"
        )
    joined = frame.join(
        features.select("essay_id", *CJ_FEATURE_COLUMNS).cast(
            {"essay_id": frame.schema["essay_id"]}
        ),
        on="essay_id",
        how="left",
        maintain_order="left",
    )
    return joined.with_columns(pl.col("cj_has_data").fill_null(0)).cast(_FEATURE_SCHEMA)
