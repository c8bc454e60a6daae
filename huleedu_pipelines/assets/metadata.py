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


def frame_metadata(frame: pl.DataFrame, preview_rows: int = 10) -> dict[str, Any]:
    """Standard metadata for a table asset: `dagster/row_count`, schema and a preview."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(markdown_table(frame, preview_rows)),
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
