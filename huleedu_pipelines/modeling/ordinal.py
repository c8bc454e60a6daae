"""Ordinal LightGBM models (Swedish grades 0..7, CEFR 0..5) with numpy-only decoding.

Three strategies share one interface (``fit`` / ``predict_proba`` / ``predict``):

- ``RegressionWithCutpoints``: one regressor on the grade; QWK-optimal cut points learned
  on out-of-fold predictions; probabilities from an ordered-probit reading of the
  regression (normal noise around the prediction, integrated between cut points).
- ``CumulativeBinary``: K-1 binary models for P(y > k), made monotone, differenced.
- ``Multiclass``: one softmax model over the K grades.

Serving never unpickles these objects. Each keeps its LightGBM boosters in ``.boosters``
(exported one by one to ONNX, kinds in ``booster_kinds``) and a JSON-serialisable
``decoding_params()``; ``decode_ordinal(raw_outputs, params)`` turns the boosters' raw
outputs (native or ONNX) into probabilities and ``decode_ordinal_labels`` into grades.
``predict_proba`` is literally that function applied to native outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from huleedu_pipelines.modeling.metrics import quadratic_weighted_kappa

if TYPE_CHECKING:
    import lightgbm as lgb

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DECISIONS = ("argmax", "expected_cost", "median", "cutpoints")
CUTPOINT_OBJECTIVES = ("qwk", "qwk+adjacent")
DEFAULT_LIGHTGBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "verbosity": -1,
}
# Keys that this module sets itself; aliases in user params would silently fight them.
_THREAD_ALIASES = ("n_jobs", "num_threads", "num_thread", "nthread", "nthreads")
_SEED_ALIASES = ("seed", "random_state", "random_seed")
_ROUND_ALIASES = ("n_estimators", "num_boost_round", "num_iterations", "num_iteration", "num_trees")
_RESERVED = ("objective", "num_class", "metric")
_PROB_FLOOR = 1e-12


class OrdinalDecodingError(ValueError):
    """Raw outputs or decoding parameters that do not fit together."""


def lightgbm_params(
    params: dict[str, Any] | None, *, objective: str, seed: int, n_jobs: int, **extra: Any
) -> dict[str, Any]:
    """Defaults, then the caller's params, then the reproducibility settings that must win.

    ``deterministic`` + ``force_row_wise`` + a fixed ``seed`` + explicit ``num_threads`` make
    two fits on the same data byte-identical (``booster.model_to_string()``). Thread, seed
    and round-count keys in ``params`` (``n_jobs``, ``random_state``, ``n_estimators``...)
    are dropped: those come from the arguments and ``rounds_from_params``.
    """
    merged = dict(DEFAULT_LIGHTGBM_PARAMS)
    for key, value in (params or {}).items():
        if key in _THREAD_ALIASES or key in _SEED_ALIASES or key in _ROUND_ALIASES:
            continue
        if key in _RESERVED:
            raise ValueError(f"param {key!r} is set by the ordinal strategy; remove it")
        merged[key] = value
    merged.update(
        objective=objective,
        deterministic=True,
        force_row_wise=True,
        seed=int(seed),
        num_threads=int(n_jobs),
        **extra,
    )
    return merged


def rounds_from_params(params: dict[str, Any] | None, default: int) -> int:
    """``n_estimators`` (or an alias) from a tuned param dict, else ``default``."""
    for key in _ROUND_ALIASES:
        if params and key in params:
            return int(params[key])
    return default


# --------------------------------------------------------------------------- validation


def _check_X(X: ArrayLike, name: str = "X", n_features: int | None = None) -> FloatArray:
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows × features), got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, the model expects {n_features}")
    infinite = np.argwhere(np.isinf(array))
    if infinite.size:
        row, col = infinite[0]
        raise ValueError(f"{name} row {row} column {col} is infinite; use NaN for missing")
    return array


def _check_y(y: ArrayLike, n_classes: int, name: str = "y") -> IntArray:
    array = np.asarray(y, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = np.flatnonzero(
        ~np.isfinite(array) | (array != np.rint(array)) | (array < 0) | (array >= n_classes)
    )
    if bad.size:
        raise ValueError(
            f"{name} row {bad[0]} is {array[bad[0]]!r}; labels must be integers 0..{n_classes - 1} "
            "(drop unlabelled rows before fitting)"
        )
    return array.astype(np.int64)


# --------------------------------------------------------------------------- decoding


def _normalise(probs: FloatArray) -> FloatArray:
    probs = np.clip(probs, 0.0, None)
    total = probs.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise OrdinalDecodingError("a row of probabilities sums to zero")
    return probs / total


def _normal_cdf(z: FloatArray) -> FloatArray:
    from scipy.special import ndtr

    return ndtr(z)


def _raw_arrays(raw_outputs: Sequence[ArrayLike], params: dict[str, Any]) -> list[FloatArray]:
    kinds = params["booster_kinds"]
    if len(raw_outputs) != len(kinds):
        raise OrdinalDecodingError(
            f"{params['strategy']} needs {len(kinds)} raw outputs (one per booster), "
            f"got {len(raw_outputs)}"
        )
    arrays = [np.asarray(raw, dtype=np.float64) for raw in raw_outputs]
    n_rows = arrays[0].shape[0]
    for i, (array, kind) in enumerate(zip(arrays, kinds, strict=True)):
        if array.shape[0] != n_rows:
            raise OrdinalDecodingError(f"raw output {i} has {array.shape[0]} rows, not {n_rows}")
        if kind == "multiclass":
            if array.ndim != 2 or array.shape[1] != params["n_classes"]:
                raise OrdinalDecodingError(
                    f"raw output {i} must be (n, {params['n_classes']}), got {array.shape}"
                )
        elif array.ndim == 2 and array.shape[1] == 1:
            arrays[i] = array[:, 0]
        elif array.ndim != 1:
            raise OrdinalDecodingError(f"raw output {i} must be 1-D, got {array.shape}")
    return arrays


def _regression_probs(value: FloatArray, cutpoints: FloatArray, sigma: float) -> FloatArray:
    cdf = _normal_cdf((cutpoints[None, :] - value[:, None]) / sigma)
    lower = np.concatenate([np.zeros((value.size, 1)), cdf], axis=1)
    upper = np.concatenate([cdf, np.ones((value.size, 1))], axis=1)
    return upper - lower


def _cumulative_probs(exceed: FloatArray) -> FloatArray:
    """P(y > k) columns -> class probabilities; repairs crossing curves by a running minimum."""
    monotone = np.minimum.accumulate(np.clip(exceed, 0.0, 1.0), axis=1)
    n = monotone.shape[0]
    upper = np.concatenate([np.ones((n, 1)), monotone], axis=1)
    lower = np.concatenate([monotone, np.zeros((n, 1))], axis=1)
    return upper - lower


def decode_ordinal(raw_outputs: Sequence[ArrayLike], params: dict[str, Any]) -> FloatArray:
    """Class probabilities (n, K) from the boosters' raw outputs, in booster order.

    Raw outputs are what ``booster.predict(X)`` (or ``OnnxRunner.raw``) returns: the
    regression value, P(positive) per binary booster, or the softmax matrix.
    """
    arrays = _raw_arrays(raw_outputs, params)
    strategy = params["strategy"]
    if strategy == RegressionWithCutpoints.name:
        probs = _regression_probs(
            arrays[0], np.asarray(params["cutpoints"], dtype=np.float64), float(params["sigma"])
        )
    elif strategy == CumulativeBinary.name:
        probs = _cumulative_probs(np.stack(arrays, axis=1))
    elif strategy == Multiclass.name:
        probs = arrays[0]
    else:
        raise OrdinalDecodingError(f"unknown ordinal strategy {strategy!r}")
    return _normalise(probs)


def decide(probs: ArrayLike, decision: str) -> IntArray:
    """Grade from class probabilities.

    ``argmax``: most probable grade. ``expected_cost``: minimises the expected squared grade
    distance (the loss QWK weighs by), i.e. the grade nearest to the expected grade.
    ``median``: the first grade whose cumulative probability reaches 0.5.
    """
    p = np.asarray(probs, dtype=np.float64)
    if decision == "argmax":
        return np.argmax(p, axis=1).astype(np.int64)
    grades = np.arange(p.shape[1], dtype=np.float64)
    if decision == "expected_cost":
        cost = p @ (grades[:, None] - grades[None, :]) ** 2
        return np.argmin(cost, axis=1).astype(np.int64)
    if decision == "median":
        below = np.cumsum(p, axis=1) < 0.5 - 1e-12
        return below.sum(axis=1).clip(0, p.shape[1] - 1).astype(np.int64)
    raise ValueError(f"unknown decision {decision!r}; use argmax, expected_cost or median")


def decode_ordinal_labels(raw_outputs: Sequence[ArrayLike], params: dict[str, Any]) -> IntArray:
    """Predicted grades, using the decision rule stored in ``params``."""
    decision = params["decision"]
    if decision == "cutpoints":
        arrays = _raw_arrays(raw_outputs, params)
        cutpoints = np.asarray(params["cutpoints"], dtype=np.float64)
        return np.searchsorted(cutpoints, arrays[0], side="right").astype(np.int64)
    return decide(decode_ordinal(raw_outputs, params), decision)


# --------------------------------------------------------------------------- fold helpers


def fold_indices(
    y: ArrayLike, n_folds: int, seed: int, groups: ArrayLike | None = None
) -> list[tuple[IntArray, IntArray]]:
    """Stratified (and, with ``groups``, student-grouped) K-fold (train, held-out) indices."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.asarray(y)
    with warnings.catch_warnings():
        # "The least populated class has only n members": expected for rare top grades.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if groups is None:
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            folds = list(splitter.split(np.zeros(labels.size), labels))
        else:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            folds = list(splitter.split(np.zeros(labels.size), labels, np.asarray(groups)))
    return [(train.astype(np.int64), held.astype(np.int64)) for train, held in folds]


def optimise_cutpoints(
    predictions: ArrayLike,
    y: ArrayLike,
    n_classes: int,
    *,
    grid_size: int = 40,
    max_sweeps: int = 25,
    max_share_gap: float | None = None,
    share_predictions: ArrayLike | None = None,
    objective: str = "qwk",
) -> FloatArray:
    """Cut points maximising ``objective`` of ``searchsorted(cuts, prediction)`` against ``y``:
    ``"qwk"``, or ``"qwk+adjacent"`` (QWK plus the share within one class, so adjacent
    agreement is not traded away for QWK).

    Coordinate search: each sweep moves every cut point to the best of ``grid_size``
    values between its neighbours; stops when a sweep gains nothing. Only strict
    improvements move a cut, so the result is deterministic.

    Unconstrained, QWK rewards spreading predictions out, which distorts the predicted grade
    distribution (on the demo data by up to 14 points for one grade, against a 10-point
    gate). With ``max_share_gap`` the search starts from the cut points that reproduce the
    label distribution (quantiles of the predictions) and only accepts moves that keep
    every grade's predicted share within ``max_share_gap`` of its share in ``y``. The shares
    are measured on ``share_predictions`` when given (the final model's predictions on
    held-out rows, whose spread can differ from the out-of-fold models'), else on
    ``predictions``.
    """
    if objective not in CUTPOINT_OBJECTIVES:
        raise ValueError(f"objective must be one of {CUTPOINT_OBJECTIVES}, got {objective!r}")
    pred = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    target_share = np.bincount(labels, minlength=n_classes) / labels.size
    shared = pred if share_predictions is None else np.asarray(share_predictions, np.float64)
    if max_share_gap is None:
        cuts = np.arange(n_classes - 1, dtype=np.float64) + 0.5
    else:
        cuts = np.quantile(shared, np.cumsum(target_share)[:-1])
        cuts = np.maximum.accumulate(cuts)
    low_end = min(float(pred.min()), float(shared.min()), cuts[0]) - 1.0
    high_end = max(float(pred.max()), float(shared.max()), cuts[-1]) + 1.0

    def score(candidate: FloatArray) -> float:
        decoded = np.searchsorted(candidate, pred, side="right")
        if max_share_gap is not None:
            placed = np.searchsorted(candidate, shared, side="right")
            share = np.bincount(placed, minlength=n_classes) / placed.size
            if np.max(np.abs(share - target_share)) > max_share_gap:
                return -np.inf
        kappa = quadratic_weighted_kappa(labels, decoded, n_classes)
        if np.isnan(kappa):
            return -np.inf
        if objective == "qwk+adjacent":
            return kappa + float(np.mean(np.abs(decoded - labels) <= 1))
        return kappa

    best = score(cuts)
    for _ in range(max_sweeps):
        improved = False
        for i in range(n_classes - 1):
            lower = cuts[i - 1] if i > 0 else low_end
            upper = cuts[i + 1] if i < n_classes - 2 else high_end
            for value in np.linspace(lower, upper, grid_size + 2)[1:-1]:
                trial = cuts.copy()
                trial[i] = value
                trial_score = score(trial)
                if trial_score > best + 1e-12:
                    best, cuts, improved = trial_score, trial, True
        if not improved:
            break
    return cuts


def describe_cutpoint_objective(objective: str, max_share_gap: float | None) -> str:
    """What ``optimise_cutpoints(objective=..., max_share_gap=...)`` chose the cut points for,
    in words a report can print."""
    if objective not in CUTPOINT_OBJECTIVES:
        raise ValueError(f"objective must be one of {CUTPOINT_OBJECTIVES}, got {objective!r}")
    goal = "QWK + adjacent agreement" if objective == "qwk+adjacent" else "QWK"
    sentence = f"cut points maximise {goal}"
    if max_share_gap is not None:
        sentence += (
            f" with class shares kept within {100 * max_share_gap:g} points of the training shares"
        )
    return sentence


def fit_cutpoint_sigma(predictions: ArrayLike, y: ArrayLike, cutpoints: ArrayLike) -> float:
    """The noise scale σ that maximises the likelihood of ``y`` under
    P(k) = Φ((c_k − ŷ)/σ) − Φ((c_{k−1} − ŷ)/σ), from out-of-fold predictions ŷ."""
    from scipy.optimize import minimize_scalar

    pred = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    cuts = np.asarray(cutpoints, dtype=np.float64)
    rows = np.arange(labels.size)

    def negative_log_likelihood(log_sigma: float) -> float:
        probs = _regression_probs(pred, cuts, float(np.exp(log_sigma)))
        return -float(np.log(np.maximum(probs[rows, labels], _PROB_FLOOR)).sum())

    spread = max(float(np.std(labels - pred)), 1e-3)
    result = minimize_scalar(
        negative_log_likelihood,
        bounds=(np.log(spread / 20), np.log(spread * 5)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


# --------------------------------------------------------------------------- strategies


class OrdinalLightGBM:
    """Shared plumbing: validation, early stopping, booster bookkeeping, decoding."""

    name: ClassVar[str] = ""
    default_decision: ClassVar[str] = "argmax"

    def __init__(
        self,
        n_classes: int,
        params: dict[str, Any] | None = None,
        *,
        seed: int,
        n_jobs: int,
        n_estimators: int | None = None,
        early_stopping_rounds: int = 50,
        decision: str | None = None,
    ) -> None:
        if n_classes < 2:
            raise ValueError("an ordinal target needs at least 2 classes")
        self.n_classes = int(n_classes)
        self.params = dict(params or {})
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.n_estimators = (
            rounds_from_params(params, 500) if n_estimators is None else int(n_estimators)
        )
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.decision = decision or self.default_decision
        allowed = DECISIONS if self.default_decision == "cutpoints" else DECISIONS[:-1]
        if self.decision not in allowed:
            raise ValueError(f"decision {self.decision!r} is not one of {allowed}")
        self.boosters: list[lgb.Booster] = []
        self.best_iterations: list[int] = []
        self.n_features_in_: int | None = None

    # -- strategy hooks ----------------------------------------------------------------
    @property
    def booster_kinds(self) -> list[str]:
        raise NotImplementedError

    def _targets(self, y: IntArray) -> list[tuple[str, NDArray[Any], dict[str, Any]]]:
        """Per booster: objective, training target, extra LightGBM params."""
        raise NotImplementedError

    def _extra_decoding_params(self) -> dict[str, Any]:
        return {}

    def _fit_decoding(self, X: FloatArray, y: IntArray, groups: ArrayLike | None) -> None:
        """Learn decoding parameters after the boosters (only the regression needs this)."""

    # -- training ----------------------------------------------------------------------
    def _train_boosters(
        self,
        X: FloatArray,
        y: IntArray,
        X_val: FloatArray | None,
        y_val: IntArray | None,
        rounds: Sequence[int] | None,
    ) -> list[lgb.Booster]:
        import lightgbm as lgb

        val_targets = self._targets(y_val) if y_val is not None else None
        boosters = []
        for i, (objective, target, extra) in enumerate(self._targets(y)):
            params = lightgbm_params(
                self.params, objective=objective, seed=self.seed, n_jobs=self.n_jobs, **extra
            )
            train_set = lgb.Dataset(X, target, params=params)
            if rounds is not None:
                booster = lgb.train(params, train_set, num_boost_round=int(rounds[i]))
            elif X_val is not None and val_targets is not None:
                valid_set = lgb.Dataset(X_val, val_targets[i][1], reference=train_set)
                booster = lgb.train(
                    params,
                    train_set,
                    num_boost_round=self.n_estimators,
                    valid_sets=[valid_set],
                    callbacks=[
                        lgb.early_stopping(
                            self.early_stopping_rounds, first_metric_only=True, verbose=False
                        )
                    ],
                )
            else:
                booster = lgb.train(params, train_set, num_boost_round=self.n_estimators)
            best = booster.best_iteration or booster.current_iteration()
            # Keep exactly the trees that predict: the ONNX converter and model_to_string
            # then agree with predict() without anyone passing num_iteration.
            boosters.append(lgb.Booster(model_str=booster.model_to_string(num_iteration=best)))
        return boosters

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        *,
        groups: ArrayLike | None = None,
    ) -> OrdinalLightGBM:
        """Fit on (X, y); with a validation set, stop each booster early on it.

        ``groups`` (student ids of the training rows) keeps internal out-of-fold folds
        student-disjoint.
        """
        features = _check_X(X)
        labels = _check_y(y, self.n_classes)
        if features.shape[0] != labels.size:
            raise ValueError(f"X has {features.shape[0]} rows but y has {labels.size}")
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        val_features = val_labels = None
        if X_val is not None and y_val is not None:
            val_features = _check_X(X_val, "X_val", features.shape[1])
            val_labels = _check_y(y_val, self.n_classes, "y_val")
            if val_features.shape[0] != val_labels.size:
                raise ValueError("X_val and y_val have different row counts")
        self.n_features_in_ = features.shape[1]
        self.boosters = self._train_boosters(features, labels, val_features, val_labels, None)
        self.best_iterations = [b.current_iteration() for b in self.boosters]
        self._fit_decoding(features, labels, groups)
        return self

    # -- inference ---------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.boosters:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def raw_outputs(self, X: ArrayLike) -> list[FloatArray]:
        """Native ``booster.predict`` per booster: the same quantities ONNX returns.

        Threads are passed explicitly: a booster rebuilt from its model string would
        otherwise predict on every core (LightGBM's OpenMP default).
        """
        self._require_fitted()
        features = _check_X(X, n_features=self.n_features_in_)
        return [
            np.asarray(b.predict(features, num_threads=self.n_jobs), dtype=np.float64)
            for b in self.boosters
        ]

    def decoding_params(self) -> dict[str, Any]:
        """Everything ``decode_ordinal`` needs besides the raw outputs; JSON-serialisable."""
        self._require_fitted()
        return {
            "strategy": self.name,
            "n_classes": self.n_classes,
            "n_features": self.n_features_in_,
            "booster_kinds": self.booster_kinds,
            "decision": self.decision,
            **self._extra_decoding_params(),
        }

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        return decode_ordinal(self.raw_outputs(X), self.decoding_params())

    def predict(self, X: ArrayLike) -> IntArray:
        return decode_ordinal_labels(self.raw_outputs(X), self.decoding_params())


class RegressionWithCutpoints(OrdinalLightGBM):
    """L2 regression on the grade, decoded by QWK-optimised cut points that keep the
    predicted grade distribution close to the training labels' (``max_share_gap``).

    Cut points are tuned on ``cv_folds`` out-of-fold predictions of the training rows
    (each fold model uses the final model's number of trees), never on in-sample fits,
    which are too tight. Probabilities: P(k) = Φ((c_k - ŷ)/σ) - Φ((c_{k-1} - ŷ)/σ) with
    c_{-1} = -∞, c_{K-1} = +∞ and σ the maximum-likelihood noise scale on the same
    out-of-fold predictions. ``predict`` uses the cut points directly (``decision="cutpoints"``),
    so it can differ from ``argmax(predict_proba)`` when a narrow grade band holds ŷ.
    """

    name: ClassVar[str] = "regression_cutpoints"
    default_decision: ClassVar[str] = "cutpoints"

    def __init__(
        self, *args: Any, cv_folds: int = 5, max_share_gap: float | None = 0.03, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_share_gap = max_share_gap
        """Keep each grade's predicted share within this of its training share (None: free)."""
        self._validation_features: FloatArray | None = None
        self.cv_folds = int(cv_folds)
        self.cutpoints: FloatArray | None = None
        self.sigma: float | None = None

    def fit(
        self, X: ArrayLike, y: ArrayLike, X_val: ArrayLike | None = None, *args: Any, **kwargs: Any
    ) -> OrdinalLightGBM:
        """As the base class; the validation rows also serve the share constraint, measured on
        the final model's predictions for them."""
        self._validation_features = None if X_val is None else _check_X(X_val, "X_val")
        try:
            return super().fit(X, y, X_val, *args, **kwargs)
        finally:
            self._validation_features = None

    @property
    def booster_kinds(self) -> list[str]:
        return ["regression"]

    def _targets(self, y: IntArray) -> list[tuple[str, NDArray[Any], dict[str, Any]]]:
        return [("regression", y.astype(np.float64), {})]

    def _fit_decoding(self, X: FloatArray, y: IntArray, groups: ArrayLike | None) -> None:
        oof = out_of_fold_raw(self, X, y, n_folds=self.cv_folds, seed=self.seed, groups=groups)[0]
        held_out = None
        if self._validation_features is not None:
            held_out = self.boosters[0].predict(self._validation_features, num_threads=self.n_jobs)
        self.cutpoints = optimise_cutpoints(
            oof, y, self.n_classes, max_share_gap=self.max_share_gap, share_predictions=held_out
        )
        self.sigma = fit_cutpoint_sigma(oof, y, self.cutpoints)

    def _extra_decoding_params(self) -> dict[str, Any]:
        assert self.cutpoints is not None and self.sigma is not None
        return {"cutpoints": [float(c) for c in self.cutpoints], "sigma": self.sigma}


class CumulativeBinary(OrdinalLightGBM):
    """K-1 binary boosters for P(y > k) (Frank & Hall), monotone-repaired and differenced."""

    name: ClassVar[str] = "cumulative_binary"

    @property
    def booster_kinds(self) -> list[str]:
        return ["binary"] * (self.n_classes - 1)

    def _targets(self, y: IntArray) -> list[tuple[str, NDArray[Any], dict[str, Any]]]:
        return [("binary", (y > k).astype(np.int64), {}) for k in range(self.n_classes - 1)]

    def _train_boosters(
        self,
        X: FloatArray,
        y: IntArray,
        X_val: FloatArray | None,
        y_val: IntArray | None,
        rounds: Sequence[int] | None,
    ) -> list[lgb.Booster]:
        absent = sorted(set(range(self.n_classes)) - set(np.unique(y).tolist()))
        if 0 in absent or self.n_classes - 1 in absent:
            raise ValueError(
                f"grades {absent} never occur in the training labels, so a P(y > k) model "
                "would see a single class; use the Multiclass strategy or merge the grades"
            )
        return super()._train_boosters(X, y, X_val, y_val, rounds)


class Multiclass(OrdinalLightGBM):
    """One softmax booster over all grades."""

    name: ClassVar[str] = "multiclass"

    @property
    def booster_kinds(self) -> list[str]:
        return ["multiclass"]

    def _targets(self, y: IntArray) -> list[tuple[str, NDArray[Any], dict[str, Any]]]:
        return [("multiclass", y, {"num_class": self.n_classes})]


ORDINAL_STRATEGIES: dict[str, type[OrdinalLightGBM]] = {
    cls.name: cls for cls in (RegressionWithCutpoints, CumulativeBinary, Multiclass)
}


def make_ordinal_model(
    name: str, n_classes: int, params: dict[str, Any] | None = None, **kwargs: Any
) -> OrdinalLightGBM:
    try:
        cls = ORDINAL_STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown ordinal strategy {name!r}; choose from {sorted(ORDINAL_STRATEGIES)}"
        ) from None
    return cls(n_classes, params, **kwargs)


def out_of_fold_raw(
    model: OrdinalLightGBM,
    X: ArrayLike,
    y: ArrayLike,
    *,
    n_folds: int,
    seed: int,
    groups: ArrayLike | None = None,
) -> list[FloatArray]:
    """Raw outputs per booster for every training row, each from a model that did not see it.

    Fold models copy ``model``'s configuration and use its fitted ``best_iterations``.
    """
    if not model.best_iterations:
        raise RuntimeError("fit the model before asking for out-of-fold outputs")
    features = _check_X(X)
    labels = _check_y(y, model.n_classes)
    outputs: list[FloatArray] | None = None
    for train_rows, held_rows in fold_indices(labels, n_folds, seed, groups):
        fold_boosters = model._train_boosters(
            features[train_rows], labels[train_rows], None, None, model.best_iterations
        )
        raw = [
            np.asarray(b.predict(features[held_rows], num_threads=model.n_jobs), dtype=np.float64)
            for b in fold_boosters
        ]
        if outputs is None:
            outputs = [np.zeros((labels.size, *r.shape[1:]), dtype=np.float64) for r in raw]
        for target, values in zip(outputs, raw, strict=True):
            target[held_rows] = values
    assert outputs is not None
    return outputs


def out_of_fold_proba(
    model: OrdinalLightGBM,
    X: ArrayLike,
    y: ArrayLike,
    *,
    n_folds: int = 5,
    seed: int,
    groups: ArrayLike | None = None,
) -> FloatArray:
    """Out-of-fold class probabilities decoded with the fitted model's parameters.

    This is what ``calibration.fit_multiclass_calibrator`` should be fitted on.
    """
    raw = out_of_fold_raw(model, X, y, n_folds=n_folds, seed=seed, groups=groups)
    return decode_ordinal(raw, model.decoding_params())


def compare_ordinal_strategies(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    params: dict[str, Any] | None,
    seed: int,
    n_jobs: int,
    *,
    n_classes: int | None = None,
    strategies: Sequence[str] = tuple(ORDINAL_STRATEGIES),
    groups: ArrayLike | None = None,
    return_models: bool = False,
) -> Any:
    """Fit each strategy (early stopping on the validation set) and rank by validation QWK.

    Returns ``(best_name, {name: qwk})``, or ``(best_name, scores, {name: model})`` with
    ``return_models=True``. Ties go to the earlier strategy in ``strategies``. Pass
    ``n_classes`` (8 for grades, 6 for CEFR): inferring it from the labels would shrink the
    scale when the top grade happens to be absent.
    """
    labels_val = np.asarray(y_val)
    if n_classes is None:
        n_classes = int(max(np.max(y_train), np.max(labels_val))) + 1
    scores: dict[str, float] = {}
    models: dict[str, OrdinalLightGBM] = {}
    unfit: dict[str, str] = {}
    for name in strategies:
        model = make_ordinal_model(name, n_classes, params, seed=seed, n_jobs=n_jobs)
        try:
            model.fit(X_train, y_train, X_val, y_val, groups=groups)
        except ValueError as error:
            # e.g. cumulative models when an end grade is absent: that strategy cannot run
            # on these labels; the others still compete, and the score records why.
            scores[name] = float("nan")
            unfit[name] = str(error)
            continue
        scores[name] = quadratic_weighted_kappa(labels_val, model.predict(X_val), n_classes)
        models[name] = model
    if not models:
        raise ValueError(f"no ordinal strategy could be fitted: {unfit}")

    def ranked(name: str) -> float:
        return -np.inf if np.isnan(scores[name]) else scores[name]

    best = max(strategies, key=ranked)
    if return_models:
        return best, scores, models
    return best, scores
