"""The `second_ratings` ingest asset: the demo's second teacher grades flow through untouched
and apart from the grade labels; rows a service wrote directly are judged by the import rules."""

import datetime as dt

import dagster as dg
import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.demo_data.generator import generate_demo_warehouse
from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.warehouse.tables import essays, quarantine, second_ratings

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def metadata_of(result, name: str) -> dict:
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(name)
    )


def test_the_demo_second_grades_reach_the_asset_and_not_the_grade_labels(
    warehouse: sa.Engine, warehouse_url: str, materialize_groups, home, as_of
) -> None:
    seed_demo_warehouse(
        warehouse,
        n_essays=300,
        seed=7,
        as_of=as_of,
        bad_rows=0,
        latent_truth_path=home / "truth.parquet",
    )
    demo = generate_demo_warehouse(300, seed=7, as_of=as_of)
    result = materialize_groups(warehouse_url, "ingest", "labels")
    assert result.success

    frame = result.output_for_node("second_ratings")
    assert frame.columns == ["essay_id", "label", "value", "rated_at"]
    assert frame.select("essay_id", "label", "value").rows() == sorted(
        (row["essay_id"], row["label"], row["value"]) for row in demo.second_ratings
    )
    assert len(demo.second_ratings) > 40
    assert metadata_of(result, "second_ratings")["essays_by_label"].value == {
        "grade": len(demo.second_ratings)
    }
    # Grade labels are the first teachers' grades: one per graded essay, none averaged in.
    labels = result.output_for_node("swedish_grade_labels")
    assert labels["n_grades"].max() == 1
    first = {row["essay_id"]: row["grade"] for row in demo.teacher_grades}
    assert dict(labels.select("essay_id", "grade").iter_rows()) == first


def test_rows_a_service_wrote_directly_are_judged_by_the_import_rules(
    warehouse: sa.Engine, warehouse_url: str, materialize_groups
) -> None:
    with warehouse.begin() as connection:
        connection.execute(
            sa.insert(essays),
            [
                {
                    "essay_id": e,
                    "source": "school",
                    "text": "An essay about trees.",
                    "language": "en",
                }
                for e in ("e1", "e2")
            ],
        )
        connection.execute(
            sa.insert(second_ratings),
            [
                {"essay_id": "e1", "label": "grade", "value": "B", "rated_at": T0},
                {"essay_id": "e1", "label": "band", "value": "6.5", "rated_at": T0},
                {"essay_id": "e1", "label": "grammar", "value": "7", "rated_at": T0},
                {"essay_id": "e2", "label": "spelling", "value": "3", "rated_at": T0},
                {"essay_id": "e9", "label": "grade", "value": "C", "rated_at": T0},
            ],
        )
    result = materialize_groups(warehouse_url, "ingest")
    assert result.success
    frame = result.output_for_node("second_ratings")
    assert frame.select("essay_id", "label", "value").rows() == [
        ("e1", "band", "6.5"),
        ("e1", "grade", "B"),
    ]
    assert frame.schema["rated_at"] == pl.Datetime("us", "UTC")
    assert metadata_of(result, "second_ratings")["quarantined_by_rule"].value == {
        "rating_out_of_range": 1,
        "unknown_second_rating_label": 1,
        "unknown_essay_reference": 1,
    }
    with warehouse.connect() as connection:
        keys = connection.execute(
            sa.select(quarantine.c.source_key).where(quarantine.c.source_table == "second_ratings")
        ).scalars()
        assert sorted(keys) == ["e1|grammar", "e2|spelling", "e9|grade"]
