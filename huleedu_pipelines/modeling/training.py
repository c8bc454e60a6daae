"""Training recipes: tune, fit, calibrate and bundle each kind of model. Pure: no Dagster/MLflow.

Every recipe is reproducible: LightGBM runs with `deterministic=True`, a fixed seed and an
explicit thread count, and Optuna's sampler is seeded, so the same data and seed give
byte-identical boosters (and so the same ONNX sha256).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.calibration import (
    apply_multiclass_calibrator,
    fit_calibrator,
    fit_multiclass_calibrator,
)
from huleedu_pipelines.modeling.metrics import expected_calibration_error
from huleedu_pipelines.modeling.ordinal import (
    compare_ordinal_strategies,
    decode_ordinal,
    fold_indices,
    lightgbm_params,
    out_of_fold_proba,
)


@dataclass(frozen=True)
class TrainingConfig:
    """Seed, threads and search budget come from settings (`HULEEDU_SEED`, `HULEEDU_N_JOBS`,
    `HULEEDU_OPTUNA_TRIALS`); the fold and round counts are fixed parts of the recipe."""

    seed: int
    n_jobs: int
    n_trials: int
    cv_folds: int = 3
    max_rounds: int = 600
    early_stopping_rounds: int = 40
    calibration_folds: int = 5


@dataclass(frozen=True)
class SplitData:
    X_train: NDArray[np.float64]
    y_train: NDArray[Any]
    groups_train: NDArray[Any]
    X_val: NDArray[np.float64]
    y_val: NDArray[Any]


def _suggest(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 60),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


def tune_hyperparameters(
    X: NDArray[np.float64],
    y: NDArray[Any],
    groups: NDArray[Any],
    objective: str,
    config: TrainingConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optuna (seeded TPE) over LightGBM's main knobs, scored by grouped K-fold CV loss with
    early stopping inside the training split. Returns (best params, summary for the run)."""
    import lightgbm as lgb
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stratify = y if objective == "binary" else np.round(y).astype(np.int64)
    folds = list(fold_indices(stratify, config.cv_folds, config.seed, groups))
    metric = "binary_logloss" if objective == "binary" else "l2"

    def objective_fn(trial: Any) -> float:
        params = lightgbm_params(
            _suggest(trial), objective=objective, seed=config.seed, n_jobs=config.n_jobs
        )
        params["metric"] = metric
        result = lgb.cv(
            params,
            lgb.Dataset(X, y, params=params),
            num_boost_round=config.max_rounds,
            folds=folds,
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
        losses = result[f"valid {metric}-mean"]
        trial.set_user_attr("rounds", len(losses))
        return float(losses[-1])

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    study.optimize(objective_fn, n_trials=config.n_trials)
    best = dict(study.best_params)
    summary = {
        "trials": config.n_trials,
        "cv_folds": config.cv_folds,
        "cv_metric": metric,
        "best_cv_loss": study.best_value,
        "best_rounds": study.best_trial.user_attrs["rounds"],
    }
    return best, summary


def train_ordinal_bundle(
    *,
    model_name: str,
    data: SplitData,
    n_classes: int,
    class_labels: Sequence[str],
    feature_columns: Sequence[str],
    config: TrainingConfig,
) -> ModelBundle:
    """Tune, compare ordinal strategies on validation QWK, keep the best, calibrate.

    Platt calibration (one-vs-rest, renormalised) is fitted on out-of-fold training
    probabilities and kept only if it lowers the validation ECE. Platt rather than isotonic:
    isotonic's interpolated steps can be steep enough to turn ONNX's float32 rounding
    (~1e-6 on a regression output) into probability differences above the 1e-5 parity
    tolerance; a sigmoid bounds that amplification.
    """
    params, tuning = tune_hyperparameters(
        data.X_train, data.y_train.astype(np.float64), data.groups_train, "regression", config
    )
    params["n_estimators"] = config.max_rounds
    best, scores, models = compare_ordinal_strategies(
        data.X_train,
        data.y_train,
        data.X_val,
        data.y_val,
        params,
        config.seed,
        config.n_jobs,
        n_classes=n_classes,
        groups=data.groups_train,
        return_models=True,
    )
    model = models[best]
    calibration, calibration_info = _choose_ordinal_calibration(model, data, config)
    return ModelBundle.from_boosters(
        model_name=model_name,
        task="ordinal",
        feature_columns=feature_columns,
        class_labels=class_labels,
        boosters=model.boosters,
        booster_kinds=model.booster_kinds,
        decoding=model.decoding_params(),
        calibration=calibration,
        info={
            "strategy": best,
            "strategy_validation_qwk": scores,
            "params": params,
            "tuning": tuning,
            "best_iterations": model.best_iterations,
            "calibration": calibration_info,
            "n_train": int(data.y_train.size),
            "n_validation": int(data.y_val.size),
        },
    )


def _choose_ordinal_calibration(
    model: Any, data: SplitData, config: TrainingConfig
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    try:
        return _fit_ordinal_calibration(model, data, config)
    except ValueError as error:  # e.g. a fold without both sides of a threshold
        return None, {"method": "none", "reason": str(error)}


def _fit_ordinal_calibration(
    model: Any, data: SplitData, config: TrainingConfig
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    oof = out_of_fold_proba(
        model,
        data.X_train,
        data.y_train,
        n_folds=config.calibration_folds,
        seed=config.seed,
        groups=data.groups_train,
    )
    calibrator = fit_multiclass_calibrator("platt", oof, data.y_train)
    raw_val = decode_ordinal(model.raw_outputs(data.X_val), model.decoding_params())
    labels_val = model.predict(data.X_val)
    ece_raw = expected_calibration_error(data.y_val, raw_val, y_pred=labels_val)
    ece_calibrated = expected_calibration_error(
        data.y_val, apply_multiclass_calibrator(calibrator, raw_val), y_pred=labels_val
    )
    keep = bool(ece_calibrated < ece_raw)
    info = {
        "method": "platt (one-vs-rest, out-of-fold)" if keep else "none",
        "validation_ece_uncalibrated": ece_raw,
        "validation_ece_platt": ece_calibrated,
    }
    return (calibrator if keep else None), info


def _fit_booster(
    params: dict[str, Any],
    X: NDArray[np.float64],
    y: NDArray[Any],
    X_val: NDArray[np.float64] | None,
    y_val: NDArray[Any] | None,
    config: TrainingConfig,
    rounds: int | None = None,
) -> Any:
    import lightgbm as lgb

    train_set = lgb.Dataset(X, y, params=params)
    if rounds is not None:
        booster = lgb.train(params, train_set, num_boost_round=rounds)
    else:
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=config.max_rounds,
            valid_sets=[lgb.Dataset(X_val, y_val, reference=train_set)],
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def train_band_bundle(
    *,
    model_name: str,
    data: SplitData,
    feature_columns: Sequence[str],
    config: TrainingConfig,
) -> ModelBundle:
    """IELTS band regressor (L2), early-stopped on validation; served rounded to half bands."""
    tuned, tuning = tune_hyperparameters(
        data.X_train, data.y_train, data.groups_train, "regression", config
    )
    params = lightgbm_params(tuned, objective="regression", seed=config.seed, n_jobs=config.n_jobs)
    booster = _fit_booster(params, data.X_train, data.y_train, data.X_val, data.y_val, config)
    residual = data.y_val - booster.predict(data.X_val, num_threads=config.n_jobs)
    return ModelBundle.from_boosters(
        model_name=model_name,
        task="regression",
        feature_columns=feature_columns,
        class_labels=[],
        boosters=[booster],
        booster_kinds=["regression"],
        decoding={"residual_sd": float(np.std(residual))},
        info={
            "strategy": "lightgbm_regression",
            "params": tuned,
            "tuning": tuning,
            "best_iterations": [booster.current_iteration()],
            "n_train": int(data.y_train.size),
            "n_validation": int(data.y_val.size),
        },
    )


def train_binary_bundle(
    *,
    model_name: str,
    data: SplitData,
    feature_columns: Sequence[str],
    config: TrainingConfig,
) -> ModelBundle:
    """P(high skill): binary LightGBM with Platt calibration fitted out-of-fold."""
    tuned, tuning = tune_hyperparameters(
        data.X_train, data.y_train, data.groups_train, "binary", config
    )
    params = lightgbm_params(tuned, objective="binary", seed=config.seed, n_jobs=config.n_jobs)
    booster = _fit_booster(params, data.X_train, data.y_train, data.X_val, data.y_val, config)
    rounds = booster.current_iteration()
    oof = np.zeros(data.y_train.size, dtype=np.float64)
    folds = fold_indices(data.y_train, config.calibration_folds, config.seed, data.groups_train)
    for train_rows, held_rows in folds:
        fold = _fit_booster(
            params, data.X_train[train_rows], data.y_train[train_rows], None, None, config, rounds
        )
        oof[held_rows] = fold.predict(data.X_train[held_rows], num_threads=config.n_jobs)
    calibration, calibration_info = _choose_binary_calibration(booster, oof, data, config)
    return ModelBundle.from_boosters(
        model_name=model_name,
        task="binary",
        feature_columns=feature_columns,
        class_labels=["not_high", "high"],
        boosters=[booster],
        booster_kinds=["binary"],
        calibration=calibration,
        info={
            "strategy": "lightgbm_binary",
            "params": tuned,
            "tuning": tuning,
            "best_iterations": [rounds],
            "calibration": calibration_info,
            "n_train": int(data.y_train.size),
            "n_validation": int(data.y_val.size),
            "positive_share_train": float(np.mean(data.y_train)),
        },
    )


def _choose_binary_calibration(
    booster: Any, oof: NDArray[np.float64], data: SplitData, config: TrainingConfig
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Platt on out-of-fold scores, kept only if its slope is positive and it lowers the
    validation Brier score. On small data the folds' models can be no better than the base
    rate, and then out-of-fold scores run against the labels (a fold that holds out more
    positives trains on fewer): a calibrator fitted on them would invert the ranking."""
    from huleedu_pipelines.modeling.calibration import apply_calibrator
    from huleedu_pipelines.modeling.metrics import brier_score

    try:
        calibrator = fit_calibrator("platt", oof, data.y_train)
    except ValueError as error:
        return None, {"method": "none", "reason": str(error)}
    raw_val = booster.predict(data.X_val, num_threads=config.n_jobs)
    brier_raw = brier_score(data.y_val, raw_val)
    brier_platt = brier_score(data.y_val, apply_calibrator(calibrator, raw_val))
    keep = calibrator["a"] > 0 and brier_platt < brier_raw
    info = {
        "method": "platt (out-of-fold)" if keep else "none",
        "platt_slope": calibrator["a"],
        "validation_brier_uncalibrated": brier_raw,
        "validation_brier_platt": brier_platt,
    }
    return (calibrator if keep else None), info
