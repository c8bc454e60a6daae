"""Coherence of a training run's challengers on the holdout: every registered model scores
every essay of the test split, and `modeling.coherence` puts their outputs on the CEFR scale,
measures how often each pair agrees and flags the essays two or more levels apart, linked by
the references the bundles recorded at training, exactly as nightly scoring does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from huleedu_pipelines.features.build import feature_matrix
from huleedu_pipelines.modeling import coherence
from huleedu_pipelines.modeling.bundle import ModelBundle

FLAGGED_SCHEMA = {"essay_id": pl.String, "reasons": pl.String}


@dataclass(frozen=True)
class HoldoutCoherence:
    """The agreement matrix (`coherence.MATRIX_SCHEMA`), the flagged essays with their
    reasons, how many essays were compared and the models compared (name -> version)."""

    matrix: pl.DataFrame
    flagged: pl.DataFrame
    n_essays: int
    models: dict[str, str]

    @property
    def share_flagged(self) -> float:
        return self.flagged.height / self.n_essays if self.n_essays else float("nan")

    def markdown(self) -> str:
        versions = ", ".join(f"{name} v{version}" for name, version in sorted(self.models.items()))
        return (
            coherence.render_markdown(
                self.matrix,
                n_essays=self.n_essays,
                flagged=list(self.flagged.iter_rows()),
                where="the holdout (test split)",
            )
            + f"\nModels: {versions or 'none registered'}.\n"
        )


def holdout_coherence(
    model_cards: pl.DataFrame,
    feature_table: pl.DataFrame,
    splits: pl.DataFrame,
    split: str = "test",
) -> HoldoutCoherence:
    """Coherence of the versions a training run registered (`model_cards` rows with status
    `registered`, bundles read from their `bundle_dir`) on every essay of `split`."""
    cards = model_cards.filter(pl.col("status") == "registered")
    essay_ids = splits.filter(pl.col("split") == split).select("essay_id")
    rows = feature_table.join(essay_ids, on="essay_id").sort("essay_id")
    X = feature_matrix(rows)
    outputs, models = [], {}
    for card in cards.iter_rows(named=True):
        bundle = ModelBundle.load(Path(card["bundle_dir"]))
        outputs.append(coherence.ModelOutput.of(bundle, bundle.predict(X)))
        models[card["model_name"]] = card["version"]
    pairs = coherence.compared_pairs(coherence.level_views(outputs)) if rows.height else []
    reasons = coherence.incoherence_reasons(pairs, rows.height)
    flagged = pl.DataFrame(
        [
            (essay_id, "; ".join(essay_reasons))
            for essay_id, essay_reasons in zip(rows["essay_id"], reasons, strict=True)
            if essay_reasons
        ],
        schema=FLAGGED_SCHEMA,
        orient="row",
    )
    return HoldoutCoherence(coherence.agreement_matrix(pairs), flagged, rows.height, models)
