"""Fixtures of the service tests: an in-memory registry, a small holdout whose grade labels a
tiny bundle predicts exactly (so every gate can pass), and lenient gate thresholds."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from fakes import FakeRegistry, feature_rows, tiny_bundle

from huleedu_pipelines.domain import SWEDISH_GRADES
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.names import GRADE_MODEL
from huleedu_pipelines.services.gaming import GamingCheck
from huleedu_pipelines.services.promotion import Holdout, ValidationPolicy
from huleedu_pipelines.settings import Settings
from huleedu_pipelines.warehouse.engine import make_engine, migrate

N_HOLDOUT = 60
"""Essays on each side of the holdout (test and train)."""


@pytest.fixture
def fake_registry(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(tmp_path / "registry")


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated, empty SQLite warehouse."""
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def grade_bundle() -> ModelBundle:
    return tiny_bundle(GRADE_MODEL)


def _grade_holdout(bundle: ModelBundle, *, shift: int = 0) -> Holdout:
    """N_HOLDOUT test and N_HOLDOUT train essays whose grade is what `bundle` predicts, moved
    up by `shift` grades (mod 8): 0 gives perfect agreement, 4 gives labels far from it."""
    features = feature_rows(2 * N_HOLDOUT)
    predicted = bundle.predict(feature_matrix(features)).labels.astype(np.int64)
    codes = (predicted + shift) % len(SWEDISH_GRADES)
    ids = features["essay_id"].to_list()
    no_labels = pl.DataFrame({"essay_id": ids})
    return Holdout(
        feature_table=features,
        splits=pl.DataFrame(
            {"essay_id": ids, "group": ids, "split": ["test"] * N_HOLDOUT + ["train"] * N_HOLDOUT}
        ),
        grade_labels=pl.DataFrame(
            {
                "essay_id": ids,
                "grade_ordinal": codes,
                "grade": [SWEDISH_GRADES[code] for code in codes],
            }
        ),
        cefr_labels=no_labels,
        skill_labels=no_labels,
        essays=pl.DataFrame(
            {
                "essay_id": ids,
                "prompt_id": ["p1", "p2"] * N_HOLDOUT,
                "source": ["demo"] * (2 * N_HOLDOUT),
                "text": [essay_text(100 + 5 * i) for i in range(2 * N_HOLDOUT)],
                "prompt_text": ["Write about words."] * (2 * N_HOLDOUT),
            }
        ),
    )


def essay_text(words: int) -> str:
    """An essay of `words` words (its length band is all that is read of it)."""
    return " ".join(["word"] * words)


@pytest.fixture
def grade_holdout():
    """`grade_holdout(bundle, shift=0)`: a holdout labelled by what `bundle` predicts."""
    return _grade_holdout


@pytest.fixture
def policy(tmp_path: Path, home: Path) -> ValidationPolicy:
    """The settings' gates, loosened where a tiny random bundle cannot meet them (calibration,
    grade shares) and for latency on a loaded test machine; QWK and agreement stay as set."""
    thresholds = dataclasses.replace(
        Settings().gate_thresholds(),
        max_ece=1.0,
        max_grade_share_difference=1.0,
        max_p95_single_ms=1000.0,
        max_batch50_ms=20000.0,
    )
    return ValidationPolicy(
        thresholds=thresholds,
        seed=1,
        high_skill_threshold=3.5,
        reports_dir=tmp_path / "reports",
        gaming=GamingCheck(featurize=unchanged_features, max_essays=20, tolerance_sd=0.25),
    )


def unchanged_features(essays: pl.DataFrame) -> pl.DataFrame:
    """A featurizer under which no perturbation changes an essay's features: the anti-gaming
    gate passes, so the other gates decide (the real feature path is exercised by the
    validation integration tests)."""
    return essays.select("essay_id").join(FEATURES_BY_ID, on="essay_id", maintain_order="left")


FEATURES_BY_ID = feature_rows(2 * N_HOLDOUT)
