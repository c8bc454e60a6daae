import choix
import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from huleedu_pipelines.features.bradley_terry import (
    CJ_FEATURE_COLUMNS,
    attach_cj_features,
    cj_features,
    fit_bradley_terry,
)


def _simulate(
    n_items: int, comparisons_per_item: int, seed: int, sd: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random pairs, winners drawn from the Bradley–Terry model with N(0, sd²) abilities."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, sd, n_items)
    n_comparisons = n_items * comparisons_per_item // 2
    first = rng.integers(0, n_items, n_comparisons)
    second = (first + rng.integers(1, n_items, n_comparisons)) % n_items
    first_wins = rng.random(n_comparisons) < 1.0 / (1.0 + np.exp(-(true[first] - true[second])))
    winners = np.where(first_wins, first, second)
    losers = np.where(first_wins, second, first)
    return true, winners, losers


@pytest.mark.parametrize("prior_variance", [0.5, 2.0, 10.0])
def test_matches_choix_map_estimate(prior_variance: float) -> None:
    # choix penalises alpha * sum(theta**2) (choix/opt.py, PairwiseFcts.objective), which is
    # the negative log-density of N(0, 1 / (2 * alpha)) - not 1 / alpha as its docstring says.
    _, winners, losers = _simulate(n_items=25, comparisons_per_item=10, seed=1)
    data = list(zip(winners.tolist(), losers.tolist(), strict=True))

    ability, _ = fit_bradley_terry(winners, losers, 25, prior_variance=prior_variance)
    reference = choix.opt_pairwise(25, data, alpha=1.0 / (2.0 * prior_variance), tol=1e-10)

    np.testing.assert_allclose(ability, reference - reference.mean(), atol=1e-3)
    assert abs(ability.mean()) < 1e-12


def test_matches_choix_ilsr_maximum_likelihood_when_prior_is_negligible() -> None:
    # Dense enough that every item both wins and loses, so the ML estimate exists.
    _, winners, losers = _simulate(n_items=15, comparisons_per_item=30, seed=2, sd=1.0)
    data = list(zip(winners.tolist(), losers.tolist(), strict=True))

    ability, _ = fit_bradley_terry(winners, losers, 15, prior_variance=1e8)
    reference = choix.ilsr_pairwise(15, data, alpha=0.0, tol=1e-12)

    np.testing.assert_allclose(ability, reference - reference.mean(), atol=1e-3)


@pytest.mark.parametrize(("wins", "losses"), [(3, 1), (7, 2), (5, 5), (1, 9)])
def test_two_items_ability_difference_is_log_odds(wins: int, losses: int) -> None:
    winners = np.array([0] * wins + [1] * losses)
    losers = 1 - winners

    ability, se = fit_bradley_terry(winners, losers, 2, prior_variance=1e6)

    assert ability[0] - ability[1] == pytest.approx(np.log(wins / losses), abs=1e-4)
    assert ability[0] == pytest.approx(-ability[1])
    # The difference has the binomial log-odds SE 1 / sqrt(n p (1 - p)); each centred
    # ability is half the difference.
    n, p = wins + losses, wins / (wins + losses)
    assert se == pytest.approx([0.5 / np.sqrt(n * p * (1 - p))] * 2, rel=1e-4)


def test_unbeaten_and_winless_items_stay_finite() -> None:
    # Item 0 beats everyone, item 3 loses to everyone: no finite ML estimate exists.
    winners = np.array([0, 0, 0, 1, 2, 1])
    losers = np.array([1, 2, 3, 2, 3, 3])

    ability, se = fit_bradley_terry(winners, losers, 4)

    assert np.all(np.isfinite(ability))
    assert np.all(np.isfinite(se))
    assert np.argsort(-ability).tolist() == [0, 1, 2, 3]


def test_disconnected_components_and_uncompared_items_are_finite() -> None:
    # {0, 1} and {2, 3} are never compared with each other; item 4 never appears.
    winners = np.array([0, 0, 1, 2, 3, 2])
    losers = np.array([1, 1, 0, 3, 2, 3])

    ability, se = fit_bradley_terry(winners, losers, 5, prior_variance=4.0)

    assert np.all(np.isfinite(ability))
    assert np.all(np.isfinite(se))
    # The prior centres each component on its own and leaves the lone item at its mean.
    assert ability[0] + ability[1] == pytest.approx(0.0, abs=1e-9)
    assert ability[2] + ability[3] == pytest.approx(0.0, abs=1e-9)
    assert ability[4] == pytest.approx(0.0, abs=1e-12)
    # Centring leaves the lone item with the prior's variance less its share of the mean.
    assert se[4] == pytest.approx(np.sqrt(4.0 * (1 - 1 / 5)))


def test_standard_error_shrinks_with_more_comparisons() -> None:
    base_winners = np.array([0, 1, 2, 0, 1, 2])
    base_losers = np.array([1, 2, 0, 2, 0, 1])

    standard_errors = []
    for repeats in (1, 4, 16):
        _, se = fit_bradley_terry(np.tile(base_winners, repeats), np.tile(base_losers, repeats), 3)
        standard_errors.append(se[0])

    assert standard_errors[0] > standard_errors[1] > standard_errors[2]
    # Information grows linearly in the number of comparisons, so SE halves for 4x the data
    # (up to the prior's small contribution).
    assert standard_errors[1] / standard_errors[2] == pytest.approx(2.0, rel=0.05)


def test_recovers_simulated_ordering() -> None:
    true, winners, losers = _simulate(n_items=40, comparisons_per_item=15, seed=20240601)

    ability, se = fit_bradley_terry(winners, losers, 40)

    assert spearmanr(ability, true).statistic >= 0.8
    assert np.all(se > 0)


def test_rejects_bad_indices() -> None:
    with pytest.raises(ValueError, match="against itself"):
        fit_bradley_terry(np.array([0, 1]), np.array([1, 1]), 2)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        fit_bradley_terry(np.array([0]), np.array([2]), 2)


def _comparisons(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["batch_id", "essay_a_id", "essay_b_id", "winner_essay_id"],
        orient="row",
    )


def test_cj_features_exact_counts_ranks_and_win_rates() -> None:
    comparisons = _comparisons(
        [
            ("b1", "e1", "e2", "e1"),
            ("b1", "e1", "e3", "e1"),
            ("b1", "e2", "e3", "e2"),
            ("b1", "e3", "e1", "e1"),
            ("b1", "e2", "e3", "e3"),
            ("b1", "e4", "e1", "e4"),
        ]
    )

    features = cj_features(comparisons)

    assert features.columns == ["essay_id", *CJ_FEATURE_COLUMNS]
    rows = {row["essay_id"]: row for row in features.iter_rows(named=True)}
    assert set(rows) == {"e1", "e2", "e3", "e4"}
    assert [rows[e]["cj_comparison_count"] for e in ("e1", "e2", "e3", "e4")] == [4, 3, 4, 1]
    assert [rows[e]["cj_win_rate"] for e in ("e1", "e2", "e3", "e4")] == [
        0.75,
        pytest.approx(1 / 3),
        0.25,
        1.0,
    ]
    assert [rows[e]["cj_rank"] for e in ("e1", "e2", "e3", "e4")] == [2, 3, 4, 1]
    assert all(rows[e]["cj_has_data"] == 1 for e in rows)
    assert features["cj_bt_ability"].sum() == pytest.approx(0.0, abs=1e-9)
    assert (features["cj_comparison_variance"] > 0).all()
    assert (features["cj_comparison_variance"] < 1).all()


def test_cj_comparison_variance_is_mean_squared_residual() -> None:
    comparisons = _comparisons(
        [("b1", "x", "y", "x"), ("b1", "x", "y", "x"), ("b1", "y", "x", "y")]
    )

    features = cj_features(comparisons).sort("essay_id")

    winners, losers = np.array([0, 0, 1]), np.array([1, 1, 0])
    ability, _ = fit_bradley_terry(winners, losers, 2)
    p_x = 1.0 / (1.0 + np.exp(-(ability[0] - ability[1])))
    expected = (2 * (1 - p_x) ** 2 + (0 - p_x) ** 2) / 3
    assert features["cj_comparison_variance"].to_list() == pytest.approx([expected, expected])


def test_cj_features_tied_records_share_a_rank() -> None:
    comparisons = _comparisons(
        [("b1", "p", "q", "p"), ("b1", "q", "p", "q"), ("b1", "p", "r", "p"), ("b1", "q", "r", "q")]
    )

    ranks = dict(cj_features(comparisons).select("essay_id", "cj_rank").iter_rows())

    assert ranks == {"p": 1, "q": 1, "r": 3}


def test_cj_features_pools_an_essay_across_batches() -> None:
    comparisons = _comparisons(
        [
            ("b1", "a", "b", "a"),
            ("b1", "a", "b", "a"),
            ("b1", "b", "a", "b"),
            ("b2", "a", "c", "c"),
        ]
    )
    per_batch = {
        batch: cj_features(comparisons.filter(pl.col("batch_id") == batch)).filter(
            pl.col("essay_id") == "a"
        )
        for batch in ("b1", "b2")
    }

    row = cj_features(comparisons).filter(pl.col("essay_id") == "a").row(0, named=True)

    weights = {b: 1 / f["cj_bt_se"][0] ** 2 for b, f in per_batch.items()}
    expected_ability = sum(weights[b] * per_batch[b]["cj_bt_ability"][0] for b in weights) / sum(
        weights.values()
    )
    assert row["cj_bt_ability"] == pytest.approx(expected_ability)
    assert row["cj_bt_se"] == pytest.approx(sum(weights.values()) ** -0.5)
    assert row["cj_comparison_count"] == 4
    assert row["cj_win_rate"] == pytest.approx(0.5)
    # b1 has three comparisons and the smaller SE; "a" is first there.
    assert row["cj_rank"] == 1


def test_cj_features_rejects_invalid_rows() -> None:
    with pytest.raises(ValueError, match="row 1"):
        cj_features(_comparisons([("b", "a", "b", "a"), ("b", "a", "b", "c")]))
    with pytest.raises(ValueError, match="winner_essay_id"):
        cj_features(pl.DataFrame({"batch_id": ["b"], "essay_a_id": ["a"], "essay_b_id": ["b"]}))


def test_cj_features_of_no_comparisons_is_empty_with_schema() -> None:
    features = cj_features(_comparisons([("b", "a", "b", "a")]).head(0))

    assert features.height == 0
    assert features.columns == ["essay_id", *CJ_FEATURE_COLUMNS]


def test_attach_gives_every_essay_a_row_in_order() -> None:
    features = cj_features(_comparisons([("b", "e1", "e2", "e2"), ("b", "e1", "e2", "e1")]))

    attached = attach_cj_features(["e9", "e2", "e1"], features)

    assert attached["essay_id"].to_list() == ["e9", "e2", "e1"]
    assert attached["cj_has_data"].to_list() == [0, 1, 1]
    missing = attached.row(0, named=True)
    assert all(missing[column] is None for column in CJ_FEATURE_COLUMNS[:-1])
    assert attached.schema == features.schema


def test_attach_accepts_a_series_and_no_features() -> None:
    empty = cj_features(_comparisons([("b", "a", "b", "a")]).head(0))

    attached = attach_cj_features(pl.Series("id", ["a", "b"]), empty)

    assert attached["cj_has_data"].to_list() == [0, 0]
    assert attached["cj_bt_ability"].null_count() == 2


def test_cj_features_are_bit_identical_whatever_the_row_order() -> None:
    """A night reads a few batches in index order, a backfill the whole table: the features,
    and so the feature hashes, must not depend on the order the rows came in."""
    rng = np.random.default_rng(4)
    essays = [f"e{i:02d}" for i in range(30)]
    rows = []
    for k in range(400):
        batch = f"b{k % 3}"
        a, b = rng.choice(10, size=2, replace=False) + 10 * (k % 3) - (5 if k % 3 else 0)
        a, b = essays[max(a, 0)], essays[max(b, 0)]
        if a == b:
            continue
        rows.append((batch, a, b, a if rng.random() < 0.6 else b))
    comparisons = pl.DataFrame(
        rows, schema=["batch_id", "essay_a_id", "essay_b_id", "winner_essay_id"], orient="row"
    )
    shuffled = comparisons.sample(fraction=1.0, shuffle=True, seed=9)

    assert cj_features(shuffled).equals(cj_features(comparisons))
