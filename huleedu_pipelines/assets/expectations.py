"""Great Expectations 1.x run inside Dagster asset checks (dagster-ge targets GX 0.x)."""

import os
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType
from typing import Any

import dagster as dg
import polars as pl


@cache
def _gx_context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_with_expectations(
    frame: pl.DataFrame,
    name: str,
    build_expectations: Callable[[ModuleType], Sequence[Any]],
    extra_metadata: dict[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """Validate `frame` with the expectations `build_expectations(gx.expectations)` returns.

    The check fails (ERROR) if any expectation fails; its metadata lists each expectation with
    its unexpected count and a sample of bad values, so the UI says what is wrong.
    """
    import great_expectations.expectations as gxe

    context = _gx_context()
    source_name = f"huleedu_{name}"
    try:
        data_source = context.data_sources.get(source_name)
        batch_definition = data_source.get_asset(name).get_batch_definition("all_rows")
    except (KeyError, ValueError, LookupError):
        data_source = context.data_sources.add_pandas(source_name)
        asset = data_source.add_dataframe_asset(name)
        batch_definition = asset.add_batch_definition_whole_dataframe("all_rows")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    suite = _suite(name, build_expectations(gxe))
    result = batch.validate(suite)

    lines = ["| expectation | column | passed | unexpected | sample |", "|---|---|---|---|---|"]
    failed: list[str] = []
    for item in result.results:
        config = item.expectation_config
        column = config.kwargs.get("column", config.kwargs.get("column_A", ""))
        unexpected = item.result.get("unexpected_count", 0) or 0
        sample = item.result.get("partial_unexpected_list", [])[:3]
        lines.append(f"| {config.type} | {column} | {item.success} | {unexpected} | {sample} |")
        if not item.success:
            failed.append(f"{config.type}({column}): {unexpected} unexpected, e.g. {sample}")
    metadata: dict[str, Any] = {
        "expectations": dg.MetadataValue.md("\n".join(lines)),
        "rows_validated": frame.height,
        "failed_expectations": len(failed),
    }
    if failed:
        metadata["failures"] = dg.MetadataValue.text("; ".join(failed))
    metadata.update(extra_metadata or {})
    return dg.AssetCheckResult(
        passed=bool(result.success),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=None if result.success else "; ".join(failed),
    )


def _suite(name: str, expectations: Sequence[Any]):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{name}_suite")
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite
