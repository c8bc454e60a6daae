"""The stack learns from out-of-fold predictions only, and its bundles serve like any other."""

import numpy as np
import pytest

from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.onnx_export import parity_report
from huleedu_pipelines.modeling.stacking import fit_stack
from huleedu_pipelines.modeling.training import SplitData, TrainingConfig, train_stacked_bundle

N_HANDCRAFTED, N_EMBEDDING = 12, 40
COLUMNS = [f"hc_{i}" for i in range(N_HANDCRAFTED)] + [f"emb_{i:03d}" for i in range(N_EMBEDDING)]
EMBEDDINGS = list(range(N_HANDCRAFTED, N_HANDCRAFTED + N_EMBEDDING))


def _essays(n: int, seed: int, signal: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose target is linear in the embeddings plus a threshold effect of one
    handcrafted feature (or pure noise); one or two essays per student."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_HANDCRAFTED + N_EMBEDDING))
    X[rng.random(n) < 0.05, 3] = np.nan  # missing values reach ridge and booster alike
    if signal:
        y = X[:, EMBEDDINGS[:5]].sum(axis=1) + 2.0 * (X[:, 0] > 0.5) + 0.3 * rng.normal(size=n)
    else:
        y = rng.normal(size=n)
    groups = np.asarray([f"s{i // 2}" for i in range(n)])
    return X, y, groups


def test_out_of_fold_predictions_carry_no_signal_when_there_is_none():
    """52 columns and 90 rows: an in-sample ridge or booster would fit the noise, so any
    leak of a row's own label into its stacked prediction shows as correlation."""
    X, y, groups = _essays(90, seed=1, signal=False)
    stack = fit_stack(X, y, groups, embedding_columns=EMBEDDINGS, seed=3, n_jobs=1)
    assert abs(np.corrcoef(stack.oof_score, y)[0, 1]) < 0.25
    in_sample = stack.blend.apply(X, stack.booster.predict(stack.stacked_input.booster_input(X)))
    assert np.corrcoef(in_sample, y)[0, 1] > abs(np.corrcoef(stack.oof_score, y)[0, 1])


def test_the_stack_beats_each_linear_part_on_a_mixed_signal():
    X, y, groups = _essays(600, seed=2)
    stack = fit_stack(
        X[:500], y[:500], groups[:500], embedding_columns=EMBEDDINGS, seed=3, n_jobs=1
    )
    predicted = stack.blend.apply(
        X[500:], stack.booster.predict(stack.stacked_input.booster_input(X[500:]))
    )
    ridge_all = stack.blend.ridge_all.predict(X[500:])
    assert np.mean((predicted - y[500:]) ** 2) < np.mean((ridge_all - y[500:]) ** 2)
    assert set(stack.oof_mse) == {"0", "0.25", "0.5", "0.75", "1"}
    assert stack.oof_mse[f"{stack.blend.weight:g}"] == min(stack.oof_mse.values())


@pytest.mark.parametrize(
    ("task", "class_labels"),
    [("ordinal", tuple("ABCDE")), ("regression", ()), ("binary", ("not_high", "high"))],
)
def test_stacked_bundles_agree_with_onnx_round_trip_and_are_reproducible(
    task, class_labels, tmp_path
):
    X, y, groups = _essays(260, seed=4)
    ratings = np.clip(np.round(3 + y / 2, 1), 1, 5)
    if task == "ordinal":
        labels = np.clip(np.rint(y / 2 + 2), 0, 4).astype(np.int64)
    elif task == "regression":
        labels = np.clip(5 + y / 2, 0, 9)
    else:
        labels = (ratings >= 3.5).astype(np.int64)
    data = SplitData(
        X_train=X[:180],
        y_train=labels[:180],
        groups_train=groups[:180],
        X_val=X[180:220],
        y_val=labels[180:220],
        groups_val=groups[180:220],
        ratings_train=ratings[:180] if task == "binary" else None,
        ratings_val=ratings[180:220] if task == "binary" else None,
    )
    config = TrainingConfig(seed=7, n_jobs=1)

    def train() -> ModelBundle:
        return train_stacked_bundle(
            model_name="m",
            task=task,
            data=data,
            class_labels=class_labels,
            feature_columns=COLUMNS,
            config=config,
        )

    bundle = train()
    assert train().manifest_sha256 == bundle.manifest_sha256  # same data + seed, same bytes
    assert bundle.info["fit_target"] == ("rating" if task == "binary" else "label")
    test = X[220:]
    served, native = bundle.predict(test), bundle.predict(test, native=True)
    output = "probabilities" if task == "ordinal" else "score"
    kind = {"ordinal": "multiclass", "regression": "regression", "binary": "binary"}[task]
    assert parity_report(getattr(native, output), getattr(served, output), kind=kind)["passed"]
    if task == "ordinal":
        assert served.probabilities.shape == (40, 5)
        assert np.allclose(served.probabilities.sum(axis=1), 1.0)
    if task == "binary":
        assert served.score.min() >= 0.0 and served.score.max() <= 1.0
        assert np.corrcoef(served.score, ratings[220:])[0, 1] > 0.5
    assert bundle.booster_feature_names[-2:] == ["ridge_embeddings", "ridge_handcrafted"]
    reloaded = ModelBundle.load(
        bundle.save(tmp_path / task), expected_manifest_sha256=bundle.manifest_sha256
    )
    assert np.array_equal(reloaded.predict(test).score, served.score)
