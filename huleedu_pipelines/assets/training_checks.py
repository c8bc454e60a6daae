"""ONNX parity: what is served (ONNX) must equal what was trained (native LightGBM)."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from huleedu_pipelines.assets.training import MODEL_ASSETS
from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling.bundle import ModelBundle
from huleedu_pipelines.modeling.families import FAMILIES, Family, family_of

PARITY_INS = {
    "feature_table": dg.AssetIn("feature_table"),
    "training_splits": dg.AssetIn("training_splits"),
}


def onnx_parity_result(
    model_cards: pl.DataFrame, feature_table: pl.DataFrame, training_splits: pl.DataFrame
) -> dg.AssetCheckResult:
    """Compare ONNX and native outputs on every test-split essay for each registered model.

    Fails when more than 0.01% of rows differ by more than 1e-5 in any probability, or more
    than 0.1% of rows change class (ONNX's float32 split thresholds flip a few rows in 100k).
    """
    test_ids = training_splits.filter(pl.col("split") == "test").select("essay_id")
    X = feature_matrix(feature_table.join(test_ids, on="essay_id"))
    reports = {}
    for card in model_cards.filter(pl.col("status") == "registered").iter_rows(named=True):
        bundle = ModelBundle.load(Path(card["bundle_dir"]))
        report = family_of(card["model_name"]).parity(bundle, X)
        onnx, native = bundle.predict(X), bundle.predict(X, native=True)
        report["labels_differ"] = int(np.sum(native.labels != onnx.labels))
        reports[card["model_name"]] = report
    failed = [name for name, report in reports.items() if not report["passed"]]
    metadata = {
        f"{name}/max_abs_diff": dg.MetadataValue.float(report["max_abs_diff"])
        for name, report in reports.items()
    }
    metadata |= {
        "rows_compared": dg.MetadataValue.int(int(X.shape[0])),
        "models_compared": dg.MetadataValue.int(len(reports)),
        "worst_rows": dg.MetadataValue.json(
            {name: report["worst_rows"][:3] for name, report in reports.items()}
        ),
        "shares": dg.MetadataValue.json(
            {
                name: {
                    "share_rows_over_tol": report["share_rows_over_tol"],
                    "share_rows_flipped": report["share_rows_flipped"],
                }
                for name, report in reports.items()
            }
        ),
    }
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"ONNX differs from native for {failed}" if failed else None,
    )


PARITY_CHECK_DESCRIPTIONS = {
    "grade": "ONNX grade probabilities equal native LightGBM's on the test split.",
    "cefr": "ONNX CEFR probabilities equal native LightGBM's on the test split.",
    "band": "ONNX band estimates equal native LightGBM's on the test split.",
    "skill": "ONNX P(high skill) equals native LightGBM's on the test split, for all seven skills.",
}


def parity_check(family: Family) -> dg.AssetChecksDefinition:
    """The blocking ONNX-parity check on the family's training asset."""

    @dg.asset_check(
        asset=MODEL_ASSETS[family.name],
        name=f"check_{family.training_asset}_onnx_parity",
        description=PARITY_CHECK_DESCRIPTIONS[family.name],
        blocking=True,
        additional_ins=PARITY_INS,
    )
    def check_parity(
        model_cards: pl.DataFrame, feature_table: pl.DataFrame, training_splits: pl.DataFrame
    ) -> dg.AssetCheckResult:
        return onnx_parity_result(model_cards, feature_table, training_splits)

    return check_parity


parity_checks = [parity_check(family) for family in FAMILIES]
