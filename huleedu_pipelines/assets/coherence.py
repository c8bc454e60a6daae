"""Group `validation`: the coherence report, how often the challengers of a training run agree
with each other on the holdout essays once grade, CEFR, the band's CEFR and the skill profile
are put on one CEFR scale (`modeling.coherence`). Reported beside the validation reports; it
does not gate promotion."""

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.metadata import OWNERS, markdown_table
from huleedu_pipelines.resources.validation import ValidationResource
from huleedu_pipelines.services.coherence import holdout_coherence

GROUP = "validation"


@dg.asset(group_name=GROUP, kinds={"polars", "python"}, owners=OWNERS)
def model_coherence_report(
    context: dg.AssetExecutionContext,
    grade_model: pl.DataFrame,
    cefr_model: pl.DataFrame,
    ielts_band_model: pl.DataFrame,
    skill_models: pl.DataFrame,
    feature_table: pl.DataFrame,
    training_splits: pl.DataFrame,
    validation: ValidationResource,
) -> dg.Output[pl.DataFrame]:
    """Agreement matrix of the challengers on the holdout: per pair of grade, CEFR, CEFR from
    band and skill profile, exact and within-one-level CEFR agreement, the share two or more
    levels apart (what scoring flags for review) and Spearman's rho."""
    result = holdout_coherence(
        pl.concat([grade_model, cefr_model, ielts_band_model, skill_models]),
        feature_table,
        training_splits,
    )
    markdown = result.markdown()
    folder = validation.reports_root / "coherence" / context.run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "coherence.md").write_text(markdown, encoding="utf-8")
    context.log.info(
        f"coherence on {result.n_essays} holdout essays: {result.flagged.height} flagged "
        f"({len(result.matrix)} pairs compared)"
    )
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(result.matrix.height),
        "coherence_report": dg.MetadataValue.md(markdown),
        "essays_compared": dg.MetadataValue.int(result.n_essays),
        "essays_flagged": dg.MetadataValue.int(result.flagged.height),
        "report_path": dg.MetadataValue.path(str(folder / "coherence.md")),
    }
    if result.n_essays:
        metadata["share_flagged"] = dg.MetadataValue.float(round(result.share_flagged, 4))
    if not result.flagged.is_empty():
        metadata["flagged_preview"] = dg.MetadataValue.md(markdown_table(result.flagged, 10))
    return dg.Output(result.matrix, metadata=metadata)
