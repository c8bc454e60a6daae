"""Promotion gates: report figures in, one pass/fail result per gate out.

Which model is gated on what:

- grade: QWK, adjacent agreement, ECE, largest grade-share difference from the training
  labels, ONNX parity, latency, non-inferiority to the champion (QWK).
- IELTS band and CEFR: their quality metrics are *reported* (MAE, QWK on
  half bands; macro-F1 and QWK), not held to a floor, so their gates are ONNX parity,
  latency and non-inferiority — QWK on half bands (band) or CEFR QWK (CEFR) may not fall
  below the champion's by more than ``max_qwk_drop``.
- skills: Pearson r with the mean teacher rating, ONNX parity, non-inferiority on the
  comparison's metric (ROC AUC or Pearson r). Latency is gated once, with the models that
  run per request (grade, band, CEFR), because it is measured for all models together.

Rules that hold for every gate:

- A metric that is ``nan`` (undefined on the holdout) fails, and the message says so.
- A measurement that was not supplied (``parity=None``, ``latency=None``) fails as "not
  measured": promotion needs the evidence, not the absence of a counter-example.
- Non-inferiority passes when no champion exists yet; the message says so.
- Non-inferiority compares the point estimate of the drop with the threshold; the paired
  bootstrap interval is reported beside it.

Gate names are stable identifiers (``*_GATE_NAMES``; per family in
``modeling.families.GATE_NAMES``) usable as Dagster asset-check names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huleedu_pipelines.modeling.figures import (
        BandReport,
        CefrReport,
        ChampionComparison,
        GradeReport,
        LatencyReport,
        SkillReport,
    )


@dataclass(frozen=True)
class GateThresholds:
    """The gates' thresholds. No defaults here: `Settings.gate_thresholds()` builds them from
    the `gate_<field>` settings (env `HULEEDU_GATE_*`), the one place their defaults live."""

    min_qwk: float
    min_adjacent_agreement: float
    max_ece: float
    max_grade_share_difference: float
    max_onnx_share_over_tolerance: float
    max_onnx_share_flipped: float
    max_p95_single_ms: float
    max_batch50_ms: float
    min_skill_pearson_r: float
    max_qwk_drop: float


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: float | None
    threshold: float
    comparison: str
    message: str


_PARITY = ("onnx_parity_over_tolerance", "onnx_parity_flipped")
_LATENCY = ("latency_p95_single", "latency_p95_batch50")

GRADE_GATE_NAMES: tuple[str, ...] = (
    "min_qwk",
    "min_adjacent_agreement",
    "max_ece",
    "max_grade_share_difference",
    *_PARITY,
    *_LATENCY,
    "non_inferiority",
)
"""Every gate ``grade_gates`` returns, in order (one Dagster check per name)."""
REPORTED_QUALITY_GATE_NAMES: tuple[str, ...] = (*_PARITY, *_LATENCY, "non_inferiority")
"""Every gate ``reported_quality_gates`` (band, CEFR) returns, in order."""
SKILL_GATE_NAMES: tuple[str, ...] = ("min_skill_pearson_r", *_PARITY, "non_inferiority")
"""Every gate ``skill_gates`` returns, in order."""

_HOLDS = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    "<": lambda v, t: v < t,
}
_NEGATION = {">=": "<", "<=": ">", "<": ">="}


def _format_pair(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with the fewest decimals that keep them visibly different.

    Three decimals for shares and coefficients, one for milliseconds, scientific notation
    for tiny thresholds such as parity shares (1e-4).
    """
    start = 1 if abs(threshold) >= 10 else 3
    for digits in range(start, start + 6):
        if threshold != 0 and abs(threshold) < 10 ** (-digits + 1):
            a, b = f"{value:.2e}", f"{threshold:.2e}"
        else:
            a, b = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b or value == threshold:
            return a, b
    return repr(value), repr(threshold)


def _compare(
    gate: str, label: str, value: float | None, threshold: float, comparison: str, unit: str = ""
) -> GateResult:
    if value is None:
        return GateResult(
            gate=gate,
            passed=False,
            value=None,
            threshold=threshold,
            comparison=comparison,
            message=f"{label} was not measured; {gate} requires {comparison} {threshold:g}{unit}",
        )
    value = float(value)
    if math.isnan(value):
        return GateResult(
            gate=gate,
            passed=False,
            value=value,
            threshold=threshold,
            comparison=comparison,
            message=f"{label} is undefined (nan) on the holdout; {gate} requires "
            f"{comparison} {threshold:g}{unit}",
        )
    passed = bool(_HOLDS[comparison](value, threshold))
    shown_value, shown_threshold = _format_pair(value, threshold)
    sign = comparison if passed else _NEGATION[comparison]
    message = f"{label} {shown_value}{unit} {sign} {shown_threshold}{unit} ({gate})"
    return GateResult(gate, passed, value, threshold, comparison, message)


# --------------------------------------------------------------------------- shared gates


def _parity_reports(parity: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """One ``parity_report`` dict, or a mapping of part name -> ``parity_report`` dict."""
    if "share_rows_over_tol" in parity:
        return {"": parity}
    reports = {str(name): report for name, report in parity.items()}
    for name, report in reports.items():
        if not isinstance(report, Mapping) or "share_rows_over_tol" not in report:
            raise ValueError(
                f"parity[{name!r}] is not a parity_report() result; pass "
                "onnx_export.parity_report(...) or a mapping of part name to one"
            )
    if not reports:
        raise ValueError("parity is an empty mapping; pass at least one parity_report()")
    return reports


def parity_gates(parity: Mapping[str, Any] | None, thresholds: GateThresholds) -> list[GateResult]:
    """Shares of holdout rows where ONNX differs from native beyond tolerance, or flips class.

    With several parts (e.g. one booster per ordinal threshold) the worst part is gated and
    named in the message.
    """
    checks = (
        (
            _PARITY[0],
            "share_rows_over_tol",
            "ONNX share of rows over tolerance",
            thresholds.max_onnx_share_over_tolerance,
        ),
        (
            _PARITY[1],
            "share_rows_flipped",
            "ONNX share of rows with a flipped class",
            thresholds.max_onnx_share_flipped,
        ),
    )
    if parity is None:
        return [_compare(gate, label, None, limit, "<=") for gate, _, label, limit in checks]
    reports = _parity_reports(parity)
    results = []
    for gate, key, label, limit in checks:
        values = {name: float(report[key]) for name, report in reports.items()}
        undefined = [name for name, value in values.items() if math.isnan(value)]
        worst = undefined[0] if undefined else max(values, key=values.__getitem__)
        result = _compare(
            gate, f"{label} [{worst}]" if worst else label, values[worst], limit, "<="
        )
        part = reports[worst]
        details = []
        if "max_abs_diff" in part:
            details.append(f"max |Δp| {float(part['max_abs_diff']):.2e}")
        if "prob_tol" in part:
            details.append(f"tolerance {float(part['prob_tol']):g}")
        if "n_rows" in part:
            details.append(f"{int(part['n_rows'])} rows")
        if details and not undefined:
            result = replace(result, message=f"{result.message}; {', '.join(details)}")
        results.append(result)
    return results


def latency_gates(latency: LatencyReport | None, thresholds: GateThresholds) -> list[GateResult]:
    """p95 of one essay and of a batch of 50 through every served ONNX model (strictly below)."""
    single = None if latency is None else latency.p95_single_ms
    batch = None if latency is None else latency.p95_batch50_ms
    return [
        _compare(
            _LATENCY[0],
            "p95 latency for one essay",
            single,
            thresholds.max_p95_single_ms,
            "<",
            " ms",
        ),
        _compare(
            _LATENCY[1],
            "p95 latency for a batch of 50",
            batch,
            thresholds.max_batch50_ms,
            "<",
            " ms",
        ),
    ]


def non_inferiority_gate(
    champion: ChampionComparison | None,
    thresholds: GateThresholds,
    *,
    expected_metric: str | None = None,
) -> GateResult:
    """Challenger not worse than the champion by more than ``max_qwk_drop``."""
    gate = "non_inferiority"
    threshold = thresholds.max_qwk_drop
    if champion is None:
        return GateResult(
            gate=gate,
            passed=True,
            value=None,
            threshold=threshold,
            comparison="<=",
            message="no champion is registered yet; non-inferiority does not apply (passes)",
        )
    if expected_metric is not None and champion.metric != expected_metric:
        raise ValueError(
            f"champion comparison is on {champion.metric!r} but this model is gated on "
            f"{expected_metric!r}; call compare_with_champion(..., metric={expected_metric!r})"
        )
    result = _compare(
        gate,
        f"{champion.metric} drop vs champion v{champion.champion_version}",
        champion.drop,
        threshold,
        "<=",
    )
    delta, low, high = champion.deltas.get(champion.metric, (math.nan, math.nan, math.nan))
    return replace(
        result,
        message=f"{result.message}; challenger − champion {delta:+.4f} "
        f"(95% CI {low:+.4f} to {high:+.4f}, n={champion.n})",
    )


# --------------------------------------------------------------------------- per model


def grade_gates(
    report: GradeReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    latency: LatencyReport | None,
    champion: ChampionComparison | None,
) -> list[GateResult]:
    met = report.metrics
    return [
        _compare("min_qwk", "QWK", met["qwk"], thresholds.min_qwk, ">="),
        _compare(
            "min_adjacent_agreement",
            "adjacent agreement",
            met["adjacent_agreement"],
            thresholds.min_adjacent_agreement,
            ">=",
        ),
        # Binned ECE is biased upwards on small holdouts; gate what exceeds sampling noise.
        _compare(
            "max_ece",
            f"ECE beyond sampling noise (raw {met['ece']:.3f}, "
            f"floor {met['ece_sampling_floor']:.3f})",
            met["ece_beyond_sampling"],
            thresholds.max_ece,
            "<=",
        ),
        _compare(
            "max_grade_share_difference",
            f"largest grade-share difference (grade {report.max_share_difference_label})",
            report.max_share_difference,
            thresholds.max_grade_share_difference,
            "<=",
        ),
        *parity_gates(parity, thresholds),
        *latency_gates(latency, thresholds),
        non_inferiority_gate(champion, thresholds, expected_metric="qwk"),
    ]


def reported_quality_gates(
    report: BandReport | CefrReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    latency: LatencyReport | None,
    champion: ChampionComparison | None,
    champion_metric: str,
) -> list[GateResult]:
    """Parity, latency and non-inferiority on ``champion_metric`` for a model whose quality
    figures (band MAE, CEFR macro-F1 ...) are reported, not held to a floor."""
    del report  # reported, not gated; kept so every model's call looks alike
    return [
        *parity_gates(parity, thresholds),
        *latency_gates(latency, thresholds),
        non_inferiority_gate(champion, thresholds, expected_metric=champion_metric),
    ]


band_gates = partial(reported_quality_gates, champion_metric="qwk_half_band")
"""IELTS band: non-inferiority on QWK over half bands; MAE etc. are only reported."""
cefr_gates = partial(reported_quality_gates, champion_metric="qwk")
"""CEFR: non-inferiority on CEFR QWK; macro-F1 and QWK are only reported."""


def skill_gates(
    report: SkillReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    champion: ChampionComparison | None,
    latency: LatencyReport | None = None,
) -> list[GateResult]:
    """Pearson r with the teachers, parity, non-inferiority. ``latency`` is accepted so every
    family's gates are called alike, and ignored: it is gated with the per-request models."""
    del latency
    return [
        _compare(
            "min_skill_pearson_r",
            f"{report.skill}: Pearson r with mean teacher rating",
            report.metrics["pearson_r"],
            thresholds.min_skill_pearson_r,
            ">=",
        ),
        *parity_gates(parity, thresholds),
        non_inferiority_gate(champion, thresholds),
    ]


def summarize(results: Sequence[GateResult]) -> tuple[bool, str]:
    """(all passed?, one-line verdict naming every failed gate with its value and threshold).

    No results is not a pass: nothing was checked.
    """
    if not results:
        return False, "no gates were evaluated, so nothing supports promotion"
    failed = [r for r in results if not r.passed]
    if not failed:
        return True, f"all {len(results)} gates passed"
    details = "; ".join(r.message for r in failed)
    return False, f"{len(failed)} of {len(results)} gates failed: {details}"


__all__ = [
    "GRADE_GATE_NAMES",
    "REPORTED_QUALITY_GATE_NAMES",
    "SKILL_GATE_NAMES",
    "GateResult",
    "GateThresholds",
    "band_gates",
    "cefr_gates",
    "grade_gates",
    "latency_gates",
    "non_inferiority_gate",
    "parity_gates",
    "reported_quality_gates",
    "skill_gates",
    "summarize",
]
