"""Group `ingest`: validated snapshots of the platform's input tables.

Each asset reads its tables through the warehouse resource, sends rows that break a rule to
`quarantine` (with the rule and a sentence saying what is wrong), and passes the good rows on.
"""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.metadata import LABEL_WATERMARK_KEY, OWNERS, frame_metadata
from huleedu_pipelines.domain.input_rules import comparison_problem
from huleedu_pipelines.resources import WarehouseResource
from huleedu_pipelines.services.ingest import (
    split_valid_rows,
    valid_attributes,
    valid_essays,
    valid_labels,
    valid_second_ratings,
)
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.queries import read_frame
from huleedu_pipelines.warehouse.tables import cj_comparison_pairs
from huleedu_pipelines.warehouse.writes import QuarantineEntry, write_quarantine

GROUP = "ingest"


def _quarantine_and_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, entries: list[QuarantineEntry]
) -> dict[str, Any]:
    with warehouse.engine().begin() as connection:
        write_quarantine(connection, entries, run_id=context.run_id)
    by_rule: dict[str, int] = {}
    for entry in entries:
        by_rule[entry.rule] = by_rule.get(entry.rule, 0) + 1
    for entry in entries[:20]:
        context.log.warning(f"quarantined {entry.source_table} {entry.source_key}: {entry.reason}")
    return {
        "quarantined_rows": dg.MetadataValue.int(len(entries)),
        "quarantined_by_rule": dg.MetadataValue.json(by_rule),
    }


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def raw_essays(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.Output[pl.DataFrame]:
    """Essays with usable text, joined with their prompt text; bad essays are quarantined."""
    settings = get_settings()
    with warehouse.migrated_engine().connect() as connection:
        good, entries = valid_essays(
            connection,
            max_essay_chars=settings.max_essay_chars,
            max_future_skew=settings.max_future_skew,
            now=dt.datetime.now(dt.UTC),
        )
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    return dg.Output(good, metadata=frame_metadata(good) | quarantine_metadata)


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def raw_labels(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_essays: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Teacher grades, IELTS bands and skill ratings in one long table, for valid essays only."""
    with warehouse.migrated_engine().connect() as connection:
        labels, entries = valid_labels(
            connection,
            known_essays=set(raw_essays["essay_id"].to_list()),
            max_future_skew=get_settings().max_future_skew,
            now=dt.datetime.now(dt.UTC),
        )
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    counts = labels.group_by("label_kind").len().sort("label_kind")
    newest = labels["labelled_at"].max()
    return dg.Output(
        labels,
        metadata=frame_metadata(labels)
        | quarantine_metadata
        | {
            "labels_by_kind": dg.MetadataValue.json(dict(counts.iter_rows())),
            # The newest label this snapshot holds; `new_labels_sensor` counts labels after it.
            LABEL_WATERMARK_KEY: dg.MetadataValue.text(newest.isoformat() if newest else ""),
        },
    )


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def cj_comparisons(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_essays: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Comparative-judgement pairs between two different valid essays, winner from the pair."""
    known = set(raw_essays["essay_id"].to_list())
    with warehouse.migrated_engine().connect() as connection:
        frame = read_frame(connection, cj_comparison_pairs)
    good, entries = split_valid_rows(
        frame,
        cj_comparison_pairs,
        lambda r: comparison_problem(r["essay_a_id"], r["essay_b_id"], r["winner_essay_id"], known),
    )
    good = good.sort("batch_id", "comparison_id")
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    return dg.Output(
        good,
        metadata=frame_metadata(good)
        | quarantine_metadata
        | {"batches": dg.MetadataValue.int(good["batch_id"].n_unique())},
    )


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def essay_attributes(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.Output[pl.DataFrame]:
    """Subgroup attributes of essays (e.g. gender, school), one row per essay and name, for
    fairness analysis beside the built-in groups prompt, source and length band."""
    with warehouse.migrated_engine().connect() as connection:
        good, entries = valid_attributes(connection)
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    counts = good.group_by("name").len().sort("name")
    return dg.Output(
        good,
        metadata=frame_metadata(good)
        | quarantine_metadata
        | {
            "attribute_names": dg.MetadataValue.json(counts["name"].to_list()),
            "essays_by_attribute": dg.MetadataValue.json(dict(counts.iter_rows())),
        },
    )


@dg.asset(group_name=GROUP, kinds={"sql", "polars"}, owners=OWNERS)
def second_ratings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_essays: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """Second raters' grades, bands and skill ratings of valid essays (`<label>_rater2` in CSV
    imports), kept apart from the labels, for human–human agreement in validation reports."""
    with warehouse.migrated_engine().connect() as connection:
        good, entries = valid_second_ratings(
            connection,
            known_essays=set(raw_essays["essay_id"].to_list()),
            max_future_skew=get_settings().max_future_skew,
            now=dt.datetime.now(dt.UTC),
        )
    quarantine_metadata = _quarantine_and_report(context, warehouse, entries)
    counts = good.group_by("label").len().sort("label")
    return dg.Output(
        good,
        metadata=frame_metadata(good)
        | quarantine_metadata
        | {"essays_by_label": dg.MetadataValue.json(dict(counts.iter_rows()))},
    )
