"""Training records what scoring's review flags need in each bundle: the grade model's
confidence threshold, derived on the validation split so that the target share of its essays
falls below it, and every model's side of the coherence link."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fakes import FakeRegistry, feature_rows

from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling import coherence
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.families import registered_model
from huleedu_pipelines.modeling.names import GRADE_MODEL, SKILL_MODELS
from huleedu_pipelines.modeling.training import TrainingConfig
from huleedu_pipelines.services.training import TrainingRun, train_and_register

N_ESSAYS = 360
TARGET_SHARE = 0.15
LOG = logging.getLogger("test-training-review")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


@pytest.fixture(scope="module")
def essays() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Feature rows, and a split with 90 validation essays of which 30 carry no labels."""
    features = feature_rows(N_ESSAYS, seed=4)
    split = ["train"] * 200 + ["validation"] * 90 + ["test"] * 70
    ids = features["essay_id"].to_list()
    splits = pl.DataFrame({"essay_id": ids, "group": ids, "split": split})
    return features, splits


def _run(tmp_path: Path) -> TrainingRun:
    return TrainingRun(
        config=TrainingConfig(seed=3, n_jobs=1),
        min_labels_to_train=50,
        high_skill_threshold=3.5,
        models_dir=tmp_path / "models",
        run_id="run-review",
        review_target_share=TARGET_SHARE,
    )


def _latent(features: pl.DataFrame) -> np.ndarray:
    X = features.select(MODEL_FEATURE_COLUMNS[:3]).to_numpy()
    return X @ np.array([1.0, 0.7, 0.5]) + 0.6 * np.random.default_rng(9).normal(size=len(X))


def _unlabelled(splits: pl.DataFrame) -> set[str]:
    return set(splits.filter(pl.col("split") == "validation")["essay_id"].to_list()[:30])


def test_the_grade_threshold_puts_the_target_share_of_validation_essays_under_it(
    essays, tmp_path: Path
) -> None:
    features, splits = essays
    latent = _latent(features)
    codes = np.digitize(latent, np.quantile(latent, np.linspace(0, 1, 9)[1:-1]))
    labels = pl.DataFrame({"essay_id": features["essay_id"], "grade_ordinal": codes}).filter(
        ~pl.col("essay_id").is_in(_unlabelled(splits))
    )
    card = train_and_register(
        registered_model(GRADE_MODEL),
        features,
        splits,
        labels,
        _run(tmp_path),
        FakeRegistry(tmp_path / "registry"),
        LOG,
    )

    assert card["status"] == "registered"
    bundle = ModelBundle.load(Path(card["bundle_dir"]))
    review = bundle.info[coherence.REVIEW_KEY]
    threshold = coherence.stored_review_threshold(bundle.info)
    assert review["target_share"] == TARGET_SHARE and review["n"] == 90  # labelled or not
    validation = features.join(splits.filter(pl.col("split") == "validation"), on="essay_id")
    confidence = bundle.predict(feature_matrix(validation)).confidence
    assert np.mean(confidence < threshold) == pytest.approx(TARGET_SHARE, abs=1.5 / 90)
    assert review["share_below"] == pytest.approx(np.mean(confidence < threshold), abs=1e-6)
    test_rows = features.join(splits.filter(pl.col("split") == "test"), on="essay_id")
    test_share = np.mean(bundle.predict(feature_matrix(test_rows)).confidence < threshold)
    assert 0.0 < test_share < 0.4  # new essays: near the target, never all or none
    reference = coherence.LevelReference.from_info(bundle.info)
    assert reference is not None and reference.n == 90 and reference.level_shares is None


def test_a_skill_model_records_its_link_but_no_review_threshold(essays, tmp_path: Path) -> None:
    features, splits = essays
    rating = np.clip(np.round((3 + _latent(features)) * 2) / 2, 1, 5)
    labels = pl.DataFrame({"essay_id": features["essay_id"], "rating_grammar": rating})
    card = train_and_register(
        registered_model(SKILL_MODELS["grammar"]),
        features,
        splits,
        labels,
        _run(tmp_path),
        FakeRegistry(tmp_path / "registry"),
        LOG,
    )

    bundle = ModelBundle.load(Path(card["bundle_dir"]))
    assert coherence.REVIEW_KEY not in bundle.info
    reference = coherence.LevelReference.from_info(bundle.info)
    assert reference is not None and reference.n == 90
    validation = features.join(splits.filter(pl.col("split") == "validation"), on="essay_id")
    scores = bundle.predict(feature_matrix(validation)).rating_scale_score
    assert reference.quantiles[50] == pytest.approx(np.median(scores), abs=1e-5)
