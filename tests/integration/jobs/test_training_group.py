"""Layer 3/4: the training group on a generated warehouse, with a real MLflow store."""

import json

import polars as pl
import pytest

from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.modeling.names import ALL_MODELS, CHALLENGER, GRADE_MODEL
from huleedu_pipelines.registry import build_registry
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_feature_cache):
    """One training run shared by the tests of this module (it is the slow part)."""
    import datetime

    import dagster as dg
    from support import isolate_environment, run_groups

    root = tmp_path_factory.mktemp("training")
    url = f"sqlite:///{root / 'warehouse.db'}"
    with pytest.MonkeyPatch.context() as patch:
        isolate_environment(patch, root / "home", shared_feature_cache)
        seed_demo_warehouse(
            make_engine(url),
            n_essays=420,
            seed=5,
            as_of=datetime.date(2026, 11, 1),
            bad_rows=0,
            latent_truth_path=root / "truth.parquet",
        )
        instance = dg.DagsterInstance.ephemeral()
        first = run_groups(instance, url, "ingest", "labels", "features", "training")
        second = run_groups(instance, url, "training")
        yield get_settings(), first, second


def test_every_model_is_trained_registered_and_served_by_onnx(trained) -> None:
    settings, result, _ = trained
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    parity = {name: ok for name, ok in checks.items() if name.endswith("onnx_parity")}
    assert len(parity) == 4 and all(parity.values())

    cards = pl.concat(
        [
            result.output_for_node(a)
            for a in ("grade_model", "cefr_model", "ielts_band_model", "skill_models")
        ]
    )
    assert sorted(cards["model_name"]) == sorted(ALL_MODELS)
    assert (cards["status"] == "registered").all(), cards.select("model_name", "message")

    registry = build_registry(settings)
    for card in cards.iter_rows(named=True):
        ref = registry.get_version_by_number(card["model_name"], card["version"])
        assert card["version"] == "1"
        challenger = registry.get_version(card["model_name"], CHALLENGER)
        assert challenger is not None and challenger.version == "2"  # the retrain moved it
        for tag in ("dataset_hash", "data_watermark", "feature_version", "code_version"):
            assert ref.tags.get(tag), f"{card['model_name']} lacks tag {tag}"
        assert ref.tags["onnx_sha256"] == card["onnx_sha256"]
        logged = registry.run_metrics(ref.run_id)
        metrics = json.loads(card["test_metrics"])
        assert logged["test_n"] == metrics["n"]
        if card["model_name"] == GRADE_MODEL:
            assert {
                "test_qwk",
                "test_mae",
                "test_accuracy",
                "test_adjacent_agreement",
                "test_macro_f1",
                "test_ece",
                "test_brier",
            } <= set(logged)
            assert metrics["qwk"] > 0.6
        if card["model_name"].startswith("huleedu-skill-"):
            assert {"test_roc_auc", "test_pearson_r"} <= set(logged)
        onnx = registry.download_onnx(card["model_name"], card["version"])
        assert len(onnx) > 1000


def test_retraining_with_the_same_seed_gives_identical_models(trained) -> None:
    _, first, second = trained

    def hashes(result) -> dict[str, str]:
        cards = pl.concat(
            [
                result.output_for_node(a)
                for a in ("grade_model", "cefr_model", "ielts_band_model", "skill_models")
            ]
        )
        return dict(cards.select("model_name", "onnx_sha256").iter_rows())

    assert hashes(first) == hashes(second)
    versions = pl.concat([second.output_for_node(a) for a in ("grade_model", "skill_models")])[
        "version"
    ].to_list()
    assert set(versions) == {"2"}  # a new registered version each run, same bytes
