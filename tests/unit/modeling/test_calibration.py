from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from huleedu_pipelines.modeling.calibration import (
    PLATT_C,
    apply_calibrator,
    apply_multiclass_calibrator,
    fit_calibrator,
    fit_multiclass_calibrator,
)
from huleedu_pipelines.modeling.metrics import expected_calibration_error


def _overconfident_binary(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities p; scores pushed towards 0/1 (a sharpened logit), as boosters do."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    y = (rng.random(n) < p).astype(int)
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-3 * logit - 0.5)), y


def _round_trip(params: dict) -> dict:
    return json.loads(json.dumps(params))


def test_isotonic_params_reproduce_sklearn() -> None:
    scores, y = _overconfident_binary(0, 2000)
    params = _round_trip(fit_calibrator("isotonic", scores, y))
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, y)
    fresh = np.concatenate([np.linspace(-0.2, 1.2, 301), _overconfident_binary(1, 500)[0]])
    np.testing.assert_allclose(
        apply_calibrator(params, fresh), reference.predict(fresh), atol=1e-12
    )


@pytest.mark.parametrize("platt_input", ["logit", "score"])
def test_platt_params_reproduce_sklearn(platt_input: str) -> None:
    scores, y = _overconfident_binary(2, 2000)
    params = _round_trip(fit_calibrator("platt", scores, y, platt_input=platt_input))
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    feature = np.log(clipped / (1 - clipped)) if platt_input == "logit" else scores
    reference = LogisticRegression(C=PLATT_C, max_iter=1000).fit(feature[:, None], y)
    fresh, _ = _overconfident_binary(3, 500)
    fresh_clipped = np.clip(fresh, 1e-7, 1 - 1e-7)
    fresh_feature = np.log(fresh_clipped / (1 - fresh_clipped)) if platt_input == "logit" else fresh
    np.testing.assert_allclose(
        apply_calibrator(params, fresh),
        reference.predict_proba(fresh_feature[:, None])[:, 1],
        atol=1e-10,
    )
    if platt_input == "logit":
        # The sharpening was 3x on the logit: Platt should undo most of it.
        assert params["a"] == pytest.approx(1 / 3, abs=0.08)


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_calibration_lowers_ece_on_held_out_rows(kind: str) -> None:
    fit_scores, fit_y = _overconfident_binary(4, 3000)
    test_scores, test_y = _overconfident_binary(5, 3000)
    params = fit_calibrator(kind, fit_scores, fit_y)
    before = expected_calibration_error(test_y, test_scores)
    after = expected_calibration_error(test_y, apply_calibrator(params, test_scores))
    assert before > 0.05
    assert after < before / 2


def _overconfident_multiclass(seed: int, n: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, k))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (np.cumsum(true, axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    sharp = np.exp(3 * logits)
    return sharp / sharp.sum(axis=1, keepdims=True), y


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_multiclass_calibration(kind: str) -> None:
    fit_probs, fit_y = _overconfident_multiclass(6, 3000)
    test_probs, test_y = _overconfident_multiclass(7, 3000)
    params = _round_trip(fit_multiclass_calibrator(kind, fit_probs, fit_y))
    calibrated = apply_multiclass_calibrator(params, test_probs)
    assert calibrated.shape == test_probs.shape
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert np.all(calibrated >= 0)
    before = expected_calibration_error(test_y, test_probs)
    after = expected_calibration_error(test_y, calibrated)
    assert after < before / 2


def test_a_class_never_seen_is_left_alone() -> None:
    probs, y = _overconfident_multiclass(8, 500, k=4)
    y = np.where(y == 3, 2, y)
    params = fit_multiclass_calibrator("isotonic", probs, y)
    assert params["classes"][3] == {"kind": "identity"}
    np.testing.assert_allclose(apply_multiclass_calibrator(params, probs).sum(axis=1), 1.0)


def test_calibrator_errors() -> None:
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        fit_calibrator("beta", [0.1, 0.9], [0, 1])
    with pytest.raises(ValueError, match="both outcomes"):
        fit_calibrator("platt", [0.1, 0.9], [1, 1])
    with pytest.raises(ValueError, match="row 1"):
        fit_calibrator("isotonic", [0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="0/1"):
        fit_calibrator("isotonic", [0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        apply_calibrator({"kind": "beta"}, [0.5])
