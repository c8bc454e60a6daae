"""Column schemas list every column: the 444 model inputs in their three groups, and the
warehouse outputs with their SQL types, nullability and unique key."""

import polars as pl

from huleedu_pipelines.assets.metadata import (
    FEATURE_GROUP_TAG,
    column_schema,
    frame_metadata,
    sql_table_schema,
)
from huleedu_pipelines.features.bradley_terry import CJ_FEATURE_COLUMNS
from huleedu_pipelines.features.build import (
    EMBEDDING_COLUMNS,
    MODEL_FEATURE_COLUMNS,
    TEXT_FEATURE_COLUMNS,
)
from huleedu_pipelines.warehouse.tables import essay_grade_predictions, skill_assessments


def _feature_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"essay_id": ["e1", "e2"], "feature_hash": ["h1", "h2"]}
        | {name: [0.5, 1.5] for name in MODEL_FEATURE_COLUMNS}
    )


def test_every_feature_column_is_in_the_schema_with_its_group() -> None:
    frame = _feature_frame()

    schema = column_schema(frame)

    assert [column.name for column in schema.columns] == frame.columns
    groups: dict[str, list[str]] = {}
    for column in schema.columns:
        if column.tags:
            groups.setdefault(column.tags[FEATURE_GROUP_TAG], []).append(column.name)
    assert groups == {
        "text": list(TEXT_FEATURE_COLUMNS),
        "cj": list(CJ_FEATURE_COLUMNS),
        "embedding": list(EMBEDDING_COLUMNS),
    }
    assert len(MODEL_FEATURE_COLUMNS) == 444
    by_name = {column.name: column for column in schema.columns}
    assert by_name["emb_007"].description.startswith("[embedding] dimension 7 ")
    assert by_name["essay_id"].tags == {} and by_name["essay_id"].type == "String"


def test_frame_metadata_previews_a_few_columns_but_describes_all() -> None:
    frame = _feature_frame()

    metadata = frame_metadata(frame, preview_columns=3)

    assert metadata["dagster/row_count"].value == 2
    assert len(metadata["dagster/column_schema"].columns) == frame.width
    header = metadata["preview"].value.splitlines()[0]
    assert header == "| essay_id | feature_hash | " + TEXT_FEATURE_COLUMNS[0] + " |"


def test_warehouse_output_schemas_follow_the_tables() -> None:
    for table in (skill_assessments, essay_grade_predictions):
        schema = sql_table_schema(table)
        assert [c.name for c in schema.columns] == [c.name for c in table.columns]
        for column, described in zip(table.columns, schema.columns, strict=True):
            assert described.constraints.nullable == column.nullable
            assert described.description  # every output column says what it holds

    columns = {c.name: c for c in sql_table_schema(skill_assessments).columns}
    assert columns["score"].type == "FLOAT"
    assert columns["essay_id"].constraints.other == ["part of the unique key"]
    assert not columns["score"].constraints.other
    assert columns["top_features"].constraints.nullable is True
