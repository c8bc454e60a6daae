"""Materialization metadata the Dagster UI renders: row counts, column schema, previews."""

from typing import Any

import dagster as dg
import polars as pl

OWNERS = ["team:ml-platform"]
"""Who answers for every asset of the pipeline (shown in the UI)."""

LABEL_WATERMARK_KEY = "label_watermark"
"""`raw_labels` metadata: the newest label time a training run saw (ISO-8601 UTC; "" for no
labels); the retrain sensor counts labels newer than the last recorded one."""

_PREVIEW_CELL_CHARS = 60


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= _PREVIEW_CELL_CHARS else text[: _PREVIEW_CELL_CHARS - 1] + "…"


def markdown_table(frame: pl.DataFrame, max_rows: int = 10, max_columns: int = 12) -> str:
    columns = frame.columns[:max_columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in frame.select(columns).head(max_rows).iter_rows():
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    if len(frame.columns) > max_columns:
        lines.append(f"\n_{len(frame.columns) - max_columns} more columns not shown._")
    return "\n".join(lines)


FEATURE_GROUP_TAG = "feature_group"
"""Column tag naming a model-input column's group (text, cj, embedding) in column schemas."""


def _feature_column_notes() -> dict[str, tuple[str, str]]:
    """Per model-input column: its group and what it holds (text features' own definitions)."""
    from huleedu_pipelines.features.bradley_terry import CJ_FEATURE_COLUMNS
    from huleedu_pipelines.features.build import EMBEDDING_COLUMNS
    from huleedu_pipelines.features.text import TEXT_FEATURES

    notes = {spec.name: ("text", f"{spec.definition} ({spec.unit})") for spec in TEXT_FEATURES}
    notes |= {
        name: ("cj", "Bradley–Terry feature from the essay's CJ batch (null without comparisons)")
        for name in CJ_FEATURE_COLUMNS
    }
    notes |= {
        name: ("embedding", f"dimension {i} of the L2-normalised 384-dim sentence embedding")
        for i, name in enumerate(EMBEDDING_COLUMNS)
    }
    return notes


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    """Every column of `frame` with its type; model-input columns also carry their group (tag
    `feature_group`) and meaning, so the 444 feature columns read as three groups."""
    notes = _feature_column_notes()
    columns = []
    for name, dtype in frame.schema.items():
        group, description = notes.get(name, (None, None))
        columns.append(
            dg.TableColumn(
                name,
                str(dtype),
                description=f"[{group}] {description}" if group else None,
                tags={FEATURE_GROUP_TAG: group} if group else None,
            )
        )
    return dg.TableSchema(columns=columns)


def sql_table_schema(table: Any) -> dg.TableSchema:
    """The columns of a warehouse table (a SQLAlchemy `Table`): SQL type, nullability, the
    columns of its unique key, and the column's `doc` (or comment) as its description."""
    unique = {
        column.name
        for constraint in table.constraints
        if type(constraint).__name__ in {"UniqueConstraint", "PrimaryKeyConstraint"}
        for column in constraint.columns
    }
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                str(column.type),
                description=column.doc or column.comment,
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable),
                    other=["part of the unique key"] if column.name in unique else None,
                ),
            )
            for column in table.columns
        ]
    )


def frame_metadata(
    frame: pl.DataFrame, preview_rows: int = 10, preview_columns: int = 12
) -> dict[str, Any]:
    """Standard metadata for a table asset: `dagster/row_count`, the schema of every column,
    and a preview of the first `preview_columns` columns."""
    return {
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "dagster/column_schema": column_schema(frame),
        "preview": dg.MetadataValue.md(
            markdown_table(frame, preview_rows, max_columns=preview_columns)
        ),
    }


def k8s_step_resources(cpu: str, memory: str) -> dict[str, Any]:
    """Op tags that give a step's pod its CPU and memory requests (and a memory limit 1.5
    times the request) under `k8s_job_executor`; every other executor ignores them."""
    limit = f"{int(memory.removesuffix('Gi')) * 3 // 2}Gi"
    return {
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory},
                    "limits": {"memory": limit},
                }
            }
        }
    }
