"""The optional compiled scorer (`modeling.compiled_trees`, the `compiled` extra): parity with
native LightGBM and the ONNX graph, and a bundle that scores through it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from huleedu_pipelines.modeling import compiled_trees
from huleedu_pipelines.modeling.bundle import ModelBundle

pytestmark = pytest.mark.skipif(
    not compiled_trees.available(),
    reason="lleaves with llvmlite<0.45 is not installed (pip install '.[compiled]')",
)


@pytest.fixture(scope="module")
def bundle_and_rows() -> tuple[ModelBundle, np.ndarray]:
    import lightgbm as lgb

    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 6))
    y = 2.0 * X[:, 0] - X[:, 1] + 0.2 * rng.normal(size=400) + 4.5
    X[rng.random(X.shape) < 0.1] = np.nan
    params = {"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=30)
    bundle = ModelBundle.from_boosters(
        model_name="test-band",
        task="regression",
        feature_columns=[f"f{i}" for i in range(6)],
        class_labels=[],
        boosters=[booster],
        booster_kinds=["regression"],
    )
    holdout = rng.normal(size=(300, 6))
    holdout[rng.random(holdout.shape) < 0.1] = np.nan
    return bundle, holdout


def test_compiled_trees_reproduce_native_and_agree_with_onnx(bundle_and_rows, tmp_path: Path):
    bundle, holdout = bundle_and_rows
    compiled = compiled_trees.compile_bundle(bundle, tmp_path)
    parity = compiled_trees.check_parity(bundle, compiled, holdout)
    assert parity.rows == 300
    assert parity.max_abs_vs_native <= 1e-9
    assert parity.max_abs_vs_onnx < 1e-4  # ONNX sums float32 trees
    assert parity.label_agreement_vs_onnx >= 0.99
    assert parity.passed
    # The compiled object is cached by the booster's sha256: a second compile loads it.
    assert len(list(tmp_path.glob("*.o"))) == 1
    again = compiled_trees.compile_bundle(bundle, tmp_path)
    np.testing.assert_array_equal(
        again.raw_outputs(bundle.booster_input(holdout))[0],
        compiled.raw_outputs(bundle.booster_input(holdout))[0],
    )


def test_a_bundle_that_passed_scores_through_its_compiled_trees(bundle_and_rows, tmp_path):
    bundle, holdout = bundle_and_rows
    copy = dataclasses.replace(bundle, compiled=None)  # a fresh, unshared bundle
    checked = compiled_trees.use_compiled_trees({"band": copy}, holdout, tmp_path)
    assert checked["band"].passed and copy.compiled is not None
    native = copy.predict(holdout, native=True)
    served = copy.predict(holdout)
    np.testing.assert_allclose(served.score, native.score, atol=1e-9)
    np.testing.assert_array_equal(served.labels, native.labels)
