"""Promotion gates as blocking ERROR checks on `validation_reports`, one check per gate.

A gate that only warns (`GateResult.blocking` false, e.g. `max_gaming_share` until
`HULEEDU_GAMING_GATE_BLOCKS` is set) fails with WARN severity, which does not stop promotion.

A gate passes when every model it applies to passes it; the check's metadata lists each
model's value and threshold, and its description names the failures.
"""

import json
from collections.abc import Iterator

import dagster as dg
import polars as pl

from huleedu_pipelines.assets.validation import validation_reports
from huleedu_pipelines.modeling.families import GATE_NAMES

ALL_GATES: tuple[str, ...] = tuple(
    dict.fromkeys(gate for names in GATE_NAMES.values() for gate in names)
)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name=f"gate_{gate}",
            asset=validation_reports,
            blocking=True,
            description=f"Promotion gate `{gate}` for every model it applies to "
            "(thresholds: HULEEDU_GATE_* settings).",
        )
        for gate in ALL_GATES
    ],
    can_subset=False,
)
def check_promotion_gates(validation_reports: pl.DataFrame) -> Iterator[dg.AssetCheckResult]:
    """Each gate over every validated challenger."""
    results: dict[str, list[dict]] = {gate: [] for gate in ALL_GATES}
    for row in validation_reports.iter_rows(named=True):
        for gate in json.loads(row["gates"]):
            results.setdefault(gate["gate"], []).append(
                gate | {"model": f"{row['model_name']} v{row['version']}"}
            )
    for gate in ALL_GATES:
        outcomes = results[gate]
        failed = [o for o in outcomes if not o["passed"]]
        blocks = any(o.get("blocking", True) for o in failed)
        yield dg.AssetCheckResult(
            check_name=f"gate_{gate}",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if blocks else dg.AssetCheckSeverity.WARN,
            metadata={
                "models_checked": len(outcomes),
                "results": dg.MetadataValue.md(
                    "| model | passed | value | threshold | message |\n|---|---|---|---|---|\n"
                    + "\n".join(
                        f"| {o['model']} | {o['passed']} | {o['value']} | "
                        f"{o['comparison']} {o['threshold']} | {o['message']} |"
                        for o in outcomes
                    )
                    if outcomes
                    else "No model this gate applies to was validated."
                ),
            },
            description="; ".join(f"{o['model']}: {o['message']}" for o in failed) or None,
        )
