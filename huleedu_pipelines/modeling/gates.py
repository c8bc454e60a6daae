"""Promotion gates: report figures in, one pass/fail result per gate out.

Every family has a quality floor, must beat two baselines and must be fair across subgroups
(``max_abs_smd``, ``max_abs_subgroup_smd``: see ``modeling.fairness`` for the definitions):

- grade: QWK, adjacent agreement, ECE, largest grade-share difference from the training
  labels, beats the trivial predictor and ridge (QWK), ONNX parity, latency,
  non-inferiority to the champion (QWK).
- CEFR: QWK (``min_cefr_qwk``), beats trivial and ridge (QWK), ONNX parity, latency,
  non-inferiority (CEFR QWK).
- IELTS band: MAE (``max_band_mae``), beats trivial and ridge (MAE), ONNX parity, latency,
  non-inferiority (QWK on half bands).
- skills: Pearson r with the mean teacher rating and ROC AUC of the high-skill label, beats
  trivial and ridge (ROC AUC), ONNX parity, non-inferiority on the comparison's metric
  (ROC AUC or Pearson r). Latency is gated once, with the models that run per request
  (grade, band, CEFR), because it is measured for all models together.

How the holdout's uncertainty enters the decision:

- A *floor* (``min_*``/``max_*`` on a metric) judges the point estimate against the
  threshold; the metric's 95% percentile bootstrap interval is carried beside it
  (``GateResult.low``/``high``) and shown in the message and the report. A value whose
  interval includes the threshold is still decided by the point estimate, and the message
  says so.
- The *baseline* gates judge the paired bootstrap interval of the model's margin over a
  baseline fitted on the training split (model minus baseline; baseline minus model for MAE),
  at the two-sided level ``baseline_confidence`` (0.90: each end is a one-sided 95% bound).
  ``beats_trivial`` passes only when the lower end is above zero: a model must show it learned
  something. ``not_worse_than_ridge`` passes unless the whole interval lies below zero, i.e.
  unless the holdout shows the model is worse than ridge on all features. Superiority over
  ridge is not demanded of one holdout: at 100 essays a real lead of 0.01–0.02 AUC or QWK has
  an interval of about ±0.02 either side, so the rule would block sound models at random;
  `bench quality` measures that lead with repeated cross-validation instead.
- Non-inferiority compares the point estimate of the drop with the threshold; the paired
  bootstrap interval of the drop is reported beside it.
- ``max_abs_smd`` judges the point estimate of the signed SMD on the whole holdout by its
  size (``|SMD| <=`` the threshold); its 95% bootstrap interval is carried beside it.
- ``max_qwk_degradation`` judges the point estimate of human–human QWK minus human–machine
  QWK on the holdout essays two humans scored (``modeling.rater_agreement``); its paired 95%
  bootstrap interval is carried beside it. It applies only with at least ``min_n_per_group``
  double-scored essays: without any it passes as not applicable, with fewer it passes and
  the figures are reported.
- ``max_abs_subgroup_smd`` fails when a subgroup with at least ``min_n_per_group`` essays has
  its whole 95% SMD interval beyond ±threshold. A point estimate beyond the threshold whose
  interval includes it is named in the message and the report but does not fail: with 30-100
  essays a group's SMD moves ±0.2-0.35 by chance. With no subgroup that large it passes and
  says so.

Rules that hold for every gate:

- A metric that is ``nan`` (undefined on the holdout) fails, and the message says so.
- A measurement that was not supplied (``parity=None``, ``latency=None``,
  ``baselines=None``, or baselines that could not be fitted) fails as "not measured":
  promotion needs the evidence, not the absence of a counter-example.
- Non-inferiority passes when no champion exists yet; the message says so.

Gate names are stable identifiers (``*_GATE_NAMES``; per family in
``modeling.families.GATE_NAMES``) usable as Dagster asset-check names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from huleedu_pipelines.modeling.figures import INTERVAL_LEVEL

if TYPE_CHECKING:
    from huleedu_pipelines.modeling.fairness import FairnessReport
    from huleedu_pipelines.modeling.figures import (
        BandReport,
        BaselineComparison,
        CefrReport,
        ChampionComparison,
        GradeReport,
        Interval,
        LatencyReport,
        SkillReport,
    )
    from huleedu_pipelines.modeling.rater_agreement import RaterAgreement
    from huleedu_pipelines.services.gaming import GamingReport


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
    max_band_mae: float
    min_cefr_qwk: float
    min_skill_roc_auc: float
    baseline_confidence: float
    """Two-sided level of the interval of the margin over a baseline (0.90: its lower end is
    the one-sided 95% bound the baseline gates judge)."""
    max_abs_smd: float
    """Largest |SMD| of the model's scores against the human scores on the whole holdout."""
    max_abs_subgroup_smd: float
    """Largest |SMD| in any subgroup with at least `min_n_per_group` essays."""
    min_n_per_group: int
    """Essays a subgroup needs before its SMD is gated (smaller ones are reported only), and
    double-scored essays `max_qwk_degradation` needs before it applies."""
    max_qwk_degradation: float
    """Largest human–human QWK minus human–machine QWK on the essays two humans scored."""
    max_gaming_share: float
    """Largest share of gamed copies whose score may rise beyond the tolerance, for every
    perturbation (`services.gaming`)."""
    gaming_gate_blocks: bool
    """Whether `max_gaming_share` blocks promotion or only warns (see `gaming_gate`)."""
    gaming_warn_only: str
    """Comma-separated perturbations `max_gaming_share` reports but does not judge."""

    @property
    def gaming_warned(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.gaming_warn_only.split(",") if p.strip())


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: float | None
    threshold: float
    comparison: str
    message: str
    low: float | None = None
    """Lower end of the bootstrap interval of `value`, where the holdout gives one."""
    high: float | None = None
    interval_level: float | None = None
    """Two-sided level of [low, high], e.g. 0.95."""
    blocking: bool = True
    """A failed blocking gate stops promotion; a failed warning gate is reported only."""


_PARITY = ("onnx_parity_over_tolerance", "onnx_parity_flipped")
_LATENCY = ("latency_p95_single", "latency_p95_batch50")

BASELINE_GATES: dict[str, str] = {"beats_trivial": "trivial", "not_worse_than_ridge": "ridge"}
"""Baseline gate -> the baseline (`modeling.baselines.BASELINES`) it compares with."""
_SUPERIORITY_GATES = frozenset({"beats_trivial"})
"""Baseline gates that need the margin's lower end above zero; the others only need its upper
end at or above zero (not shown worse)."""
_BASELINE = tuple(BASELINE_GATES)
FAIRNESS_GATE_NAMES: tuple[str, ...] = ("max_abs_smd", "max_abs_subgroup_smd")
"""The fairness gates every family has (`fairness_gates`)."""
_FAIRNESS = FAIRNESS_GATE_NAMES
RATER_GATE_NAMES: tuple[str, ...] = ("max_qwk_degradation",)
"""The human–human agreement gate every family has (`rater_agreement_gate`)."""
_RATER = RATER_GATE_NAMES
_GAMING = ("max_gaming_share",)

GRADE_GATE_NAMES: tuple[str, ...] = (
    "min_qwk",
    "min_adjacent_agreement",
    "max_ece",
    "max_grade_share_difference",
    *_RATER,
    *_FAIRNESS,
    *_GAMING,
    *_BASELINE,
    *_PARITY,
    *_LATENCY,
    "non_inferiority",
)
"""Every gate ``grade_gates`` returns, in order (one Dagster check per name)."""
CEFR_GATE_NAMES: tuple[str, ...] = (
    "min_cefr_qwk",
    *_RATER,
    *_FAIRNESS,
    *_GAMING,
    *_BASELINE,
    *_PARITY,
    *_LATENCY,
    "non_inferiority",
)
"""Every gate ``cefr_gates`` returns, in order."""
BAND_GATE_NAMES: tuple[str, ...] = (
    "max_band_mae",
    *_RATER,
    *_FAIRNESS,
    *_GAMING,
    *_BASELINE,
    *_PARITY,
    *_LATENCY,
    "non_inferiority",
)
"""Every gate ``band_gates`` returns, in order."""
SKILL_GATE_NAMES: tuple[str, ...] = (
    "min_skill_pearson_r",
    "min_skill_roc_auc",
    *_RATER,
    *_FAIRNESS,
    *_GAMING,
    *_BASELINE,
    *_PARITY,
    "non_inferiority",
)
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
    gate: str,
    label: str,
    value: float | None,
    threshold: float,
    comparison: str,
    unit: str = "",
    *,
    interval: Interval | None = None,
    interval_level: float = INTERVAL_LEVEL,
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
    result = GateResult(gate, passed, value, threshold, comparison, message)
    if interval is None:
        return result
    return _with_interval(result, interval, interval_level, unit)


def _with_interval(result: GateResult, interval: Interval, level: float, unit: str) -> GateResult:
    """The floor's bootstrap interval beside its value; the point estimate still decides."""
    low, high = float(interval[0]), float(interval[1])
    message = (
        f"{result.message}; {level:.0%} bootstrap interval {_format_interval(low, high)}{unit}"
    )
    if low <= result.threshold <= high:
        message += ", which includes the threshold: the point estimate decides"
    return replace(result, message=message, low=low, high=high, interval_level=level)


def _format_interval(low: float, high: float, signed: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a (no resample defined the metric)"
    shown = "+.3f" if signed else ".3f"
    return f"{low:{shown}} to {high:{shown}}"


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
    drop_low, drop_high = champion.drop_interval
    return replace(
        result,
        message=f"{result.message}; challenger − champion {delta:+.4f} "
        f"(95% CI {low:+.4f} to {high:+.4f}, n={champion.n})",
        low=drop_low,
        high=drop_high,
        interval_level=INTERVAL_LEVEL,
    )


def baseline_gates(baselines: BaselineComparison | None) -> list[GateResult]:
    """`beats_trivial`: the margin's interval lies above zero. `not_worse_than_ridge`: it does
    not lie wholly below zero."""
    return [_beats_baseline(gate, name, baselines) for gate, name in BASELINE_GATES.items()]


_LOWER_END_ABOVE = "interval low >"
_UPPER_END_AT_LEAST = "interval high >="
"""A baseline gate's comparison: one end of the margin's interval, not its value."""
_SHOWN_BETTER = "the lower end is above zero: the holdout shows the model beats the baseline"
_NOT_SHOWN_BETTER = (
    "an interval that reaches zero fails: the holdout does not show the model beats the baseline"
)
_NOT_SHOWN_WORSE = (
    "the interval reaches zero or above: the holdout does not show the model is worse than "
    "the baseline"
)
_SHOWN_WORSE = (
    "the whole interval is below zero: the holdout shows the model is worse than the baseline"
)


def _baseline_verdict(low: float, high: float, superiority: bool) -> str:
    if low > 0:
        return _SHOWN_BETTER
    if superiority:
        return _NOT_SHOWN_BETTER
    return _NOT_SHOWN_WORSE if high >= 0 else _SHOWN_WORSE


def _beats_baseline(gate: str, name: str, baselines: BaselineComparison | None) -> GateResult:
    superiority = gate in _SUPERIORITY_GATES
    comparison = _LOWER_END_ABOVE if superiority else _UPPER_END_AT_LEAST

    def failed(message: str) -> GateResult:
        return GateResult(gate, False, None, 0.0, comparison, message)

    if baselines is None:
        return failed(f"the {name} baseline was not measured; {gate} needs it as evidence")
    if baselines.unavailable is not None:
        return failed(f"no {name} baseline to compare with: {baselines.unavailable} ({gate})")
    if name in baselines.unfitted:
        return failed(
            f"the {name} baseline could not be fitted: {baselines.unfitted[name]} ({gate})"
        )
    if name not in baselines.margins:
        return failed(f"the {name} baseline was not fitted; {gate} needs it as evidence")
    margin = baselines.margins[name]
    # nan compares false: an undefined margin fails either way
    passed = bool(margin.low > 0) if superiority else bool(margin.high >= 0)
    direction = "higher" if baselines.higher_is_better else "lower"
    message = (
        f"{baselines.metric} ({direction} is better): model {baselines.model_value:.3f}, "
        f"{name} {margin.value:.3f}; model better by {margin.margin:+.3f} "
        f"({baselines.confidence:.0%} paired bootstrap interval "
        f"{_format_interval(margin.low, margin.high, signed=True)}, n={baselines.n} holdout "
        f"essays, baseline fitted on {baselines.n_train}) ({gate}); "
        + _baseline_verdict(margin.low, margin.high, superiority)
    )
    return GateResult(
        gate,
        passed,
        margin.margin,
        0.0,
        comparison,
        message,
        low=margin.low,
        high=margin.high,
        interval_level=baselines.confidence,
    )


# --------------------------------------------------------------------------- fairness

_SIZE_WITHIN = "|value| <="
"""A fairness gate's comparison: the signed SMD is gated on its size."""


def _smd_gate(
    gate: str, label: str, smd: float, threshold: float, interval: Interval | None
) -> GateResult:
    """|SMD| <= threshold on the point estimate; the signed SMD and its interval are reported."""
    if math.isnan(smd):
        message = (
            f"{label} is undefined (nan) on the holdout; {gate} requires |SMD| <= {threshold:g}"
        )
        return GateResult(gate, False, smd, threshold, _SIZE_WITHIN, message)
    passed = abs(smd) <= threshold
    shown, shown_threshold = _format_pair(abs(smd), threshold)
    message = (
        f"{label} is {smd:+.3f}: |SMD| {shown} {'<=' if passed else '>'} {shown_threshold} ({gate})"
    )
    result = GateResult(gate, passed, smd, threshold, _SIZE_WITHIN, message)
    if interval is None:
        return result
    low, high = float(interval[0]), float(interval[1])
    message += (
        f"; {INTERVAL_LEVEL:.0%} bootstrap interval {_format_interval(low, high, signed=True)}"
    )
    if low <= threshold <= high or low <= -threshold <= high:
        message += ", which includes a threshold: the point estimate decides"
    return replace(result, message=message, low=low, high=high, interval_level=INTERVAL_LEVEL)


def fairness_gates(fairness: FairnessReport | None, thresholds: GateThresholds) -> list[GateResult]:
    """`max_abs_smd` on the whole holdout and `max_abs_subgroup_smd` on the worst subgroup with
    at least `min_n_per_group` essays (passes, saying so, when no subgroup is that large)."""
    if fairness is None:
        limits = (thresholds.max_abs_smd, thresholds.max_abs_subgroup_smd)
        return [
            GateResult(
                gate,
                False,
                None,
                limit,
                _SIZE_WITHIN,
                f"SMD was not measured; {gate} requires |SMD| <= {limit:g}",
            )
            for gate, limit in zip(_FAIRNESS, limits, strict=True)
        ]
    overall = _smd_gate(
        _FAIRNESS[0],
        f"SMD on {fairness.n} holdout essays (pooled SD {fairness.pooled_sd:.3f})",
        fairness.smd,
        thresholds.max_abs_smd,
        fairness.smd_interval,
    )
    return [overall, _subgroup_smd_gate(fairness, thresholds)]


def _subgroup_smd_gate(fairness: FairnessReport, thresholds: GateThresholds) -> GateResult:
    """Fails when a gated subgroup's whole SMD interval lies beyond ±threshold; a point
    estimate beyond it with an interval that includes it is named but does not fail.

    A subgroup of 30-100 essays has an SMD interval about ±0.2-0.35 wide, so its point estimate
    crosses 0.10 by chance alone for most models; only an interval wholly beyond the threshold
    is evidence of a difference that size. A subgroup holding every essay is the overall
    gate's."""
    gate, threshold, min_n = _FAIRNESS[1], thresholds.max_abs_subgroup_smd, fairness.min_n_per_group
    worst = fairness.worst
    if worst is None:
        splitting = [row for row in fairness.subgroups if row.n < fairness.n]
        largest = max(splitting, key=lambda row: row.n, default=None)
        seen = f" (largest: {largest.label}, n={largest.n})" if largest else ""
        return GateResult(
            gate,
            True,
            None,
            threshold,
            _SIZE_WITHIN,
            f"no subgroup has at least {min_n} essays{seen}; {gate} does not apply (passes)",
        )
    beyond = fairness.shown_beyond(threshold)
    judged = beyond[0] if beyond else worst
    low, high = judged.smd_interval or (math.nan, math.nan)
    above = fairness.exceeding(threshold)
    message = (
        f"{'subgroup' if beyond else 'worst subgroup'} {judged.label} (n={judged.n}): SMD "
        f"{judged.smd:+.3f}, {INTERVAL_LEVEL:.0%} bootstrap interval "
        f"{_format_interval(low, high, signed=True)}; of {len(fairness.gated)} subgroups with "
        f">= {min_n} essays, {len(beyond)} lie wholly beyond ±{threshold:g} ({gate} fails on "
        f"those) and {len(above) - len(beyond)} more exceed it on the point estimate only"
    )
    named = beyond or above
    if named:
        message += ": " + ", ".join(f"{row.label} (n={row.n}, {row.smd:+.3f})" for row in named)
    return GateResult(
        gate,
        not beyond,
        judged.smd,
        threshold,
        _SIZE_WITHIN,
        message,
        low=low,
        high=high,
        interval_level=INTERVAL_LEVEL,
    )


# --------------------------------------------------------------------------- anti-gaming


def gaming_gate(gaming: GamingReport | None, thresholds: GateThresholds) -> GateResult:
    """`max_gaming_share`: for every judged perturbation, the share of gamed copies whose score
    rose beyond the tolerance and that no validity advisory sent to review is at most the
    threshold; the worst judged perturbation is the value.

    Perturbations in `gaming_warn_only` (`HULEEDU_GAMING_WARN_ONLY`) are reported and named in
    the message when they exceed the threshold, but do not fail the gate; with
    `gaming_gate_blocks` false (`HULEEDU_GAMING_GATE_BLOCKS`) the whole gate only warns.
    """
    gate, threshold = _GAMING[0], thresholds.max_gaming_share
    blocking = thresholds.gaming_gate_blocks
    if gaming is None or not gaming.effects:
        return GateResult(
            gate,
            False,
            None,
            threshold,
            "<=",
            f"the anti-gaming check did not run; {gate} requires every perturbation's share of "
            f"risen scores <= {threshold:g}",
            blocking=blocking,
        )
    warned = thresholds.gaming_warned
    judged = [e for e in gaming.effects if e.perturbation not in warned] or list(gaming.effects)
    worst = max(judged, key=lambda effect: effect.share_risen)
    failing = [effect for effect in judged if effect.share_risen > threshold]
    passed = not failing
    message = (
        f"worst perturbation {worst.perturbation}: {worst.share_risen:.1%} of {worst.n} gamed "
        f"essays scored more than {gaming.tolerance:.3f} ({gaming.tolerance_sd:g} SD) above "
        f"their original and were not sent to review, {'<=' if passed else '>'} "
        f"{threshold:.0%} ({gate})"
    )
    if failing:
        message += "; failing: " + ", ".join(
            f"{effect.perturbation} {effect.share_risen:.1%}" for effect in failing
        )
    over = [
        effect
        for effect in gaming.effects
        if effect not in judged and effect.share_risen > threshold
    ]
    if over:
        message += "; warning, not judged (HULEEDU_GAMING_WARN_ONLY): " + ", ".join(
            f"{effect.perturbation} {effect.share_risen:.1%}" for effect in over
        )
    return GateResult(gate, passed, worst.share_risen, threshold, "<=", message, blocking=blocking)


# --------------------------------------------------------------------------- human–human


def rater_agreement_gate(
    agreement: RaterAgreement | None, thresholds: GateThresholds
) -> GateResult:
    """`max_qwk_degradation`: human–human QWK minus human–machine QWK on the double-scored
    holdout essays at most the threshold (point estimate; paired bootstrap interval beside it).

    Without double-scored essays (`agreement` None or n = 0) it passes as not applicable; with
    fewer than `min_n_per_group` it passes and says the figures are reported, not gated. With
    enough essays but no machine score on the raters' scale it fails as not measured."""
    gate, threshold = _RATER[0], thresholds.max_qwk_degradation
    if agreement is None or agreement.n == 0:
        return GateResult(
            gate,
            True,
            None,
            threshold,
            "<=",
            f"no double-scored essays: not applicable ({gate} passes)",
        )
    n = agreement.n
    if not agreement.gated:
        value = None if math.isnan(agreement.degradation) else agreement.degradation
        shown = "n/a" if value is None else f"{value:+.3f}"
        low, high = agreement.degradation_interval or (None, None)
        return GateResult(
            gate,
            True,
            value,
            threshold,
            "<=",
            f"only {n} holdout essays were scored twice, fewer than the {agreement.min_n} "
            f"(HULEEDU_MIN_N_PER_GROUP) the gate needs: the QWK degradation ({shown}) is "
            f"reported, not gated ({gate} passes)",
            low=low,
            high=high,
            interval_level=None if low is None else INTERVAL_LEVEL,
        )
    human_human, human_machine = agreement.human_human, agreement.human_machine
    if human_human is None or human_machine is None:
        why = f": {agreement.note}" if agreement.note else ""
        return GateResult(
            gate,
            False,
            None,
            threshold,
            "<=",
            f"{n} holdout essays were scored twice, but the model's agreement with the first "
            f"rater was not measured on the raters' scale{why}; {gate} requires QWK "
            f"degradation <= {threshold:g}",
        )
    return _compare(
        gate,
        f"QWK degradation on {n} double-scored essays (human–human {human_human.qwk:.3f} − "
        f"human–machine {human_machine.qwk:.3f})",
        agreement.degradation,
        threshold,
        "<=",
        interval=agreement.degradation_interval,
    )


def validity_gates(
    thresholds: GateThresholds,
    rater_agreement: RaterAgreement | None,
    fairness: FairnessReport | None,
    gaming: GamingReport | None,
) -> list[GateResult]:
    """What every family is held to beside its own floors: no worse than a second human by
    more than the allowed degradation, fair across subgroups, not raised by gaming."""
    return [
        rater_agreement_gate(rater_agreement, thresholds),
        *fairness_gates(fairness, thresholds),
        gaming_gate(gaming, thresholds),
    ]


# --------------------------------------------------------------------------- per model


def grade_gates(
    report: GradeReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    latency: LatencyReport | None,
    champion: ChampionComparison | None,
    baselines: BaselineComparison | None,
    fairness: FairnessReport | None,
    gaming: GamingReport | None,
    rater_agreement: RaterAgreement | None = None,
) -> list[GateResult]:
    met, intervals = report.metrics, report.intervals
    return [
        _compare(
            "min_qwk", "QWK", met["qwk"], thresholds.min_qwk, ">=", interval=intervals.get("qwk")
        ),
        _compare(
            "min_adjacent_agreement",
            "adjacent agreement",
            met["adjacent_agreement"],
            thresholds.min_adjacent_agreement,
            ">=",
            interval=intervals.get("adjacent_agreement"),
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
        *validity_gates(thresholds, rater_agreement, fairness, gaming),
        *baseline_gates(baselines),
        *parity_gates(parity, thresholds),
        *latency_gates(latency, thresholds),
        non_inferiority_gate(champion, thresholds, expected_metric="qwk"),
    ]


def cefr_gates(
    report: CefrReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    latency: LatencyReport | None,
    champion: ChampionComparison | None,
    baselines: BaselineComparison | None,
    fairness: FairnessReport | None,
    gaming: GamingReport | None,
    rater_agreement: RaterAgreement | None = None,
) -> list[GateResult]:
    """CEFR QWK floor, baselines on QWK, parity, latency, non-inferiority on CEFR QWK;
    macro-F1 is reported, not gated."""
    return [
        _compare(
            "min_cefr_qwk",
            "CEFR QWK",
            report.metrics["qwk"],
            thresholds.min_cefr_qwk,
            ">=",
            interval=report.intervals.get("qwk"),
        ),
        *validity_gates(thresholds, rater_agreement, fairness, gaming),
        *baseline_gates(baselines),
        *parity_gates(parity, thresholds),
        *latency_gates(latency, thresholds),
        non_inferiority_gate(champion, thresholds, expected_metric="qwk"),
    ]


def band_gates(
    report: BandReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    latency: LatencyReport | None,
    champion: ChampionComparison | None,
    baselines: BaselineComparison | None,
    fairness: FairnessReport | None,
    gaming: GamingReport | None,
    rater_agreement: RaterAgreement | None = None,
) -> list[GateResult]:
    """IELTS band MAE ceiling, baselines on MAE, parity, latency, non-inferiority on QWK over
    half bands; RMSE and half-band agreement are reported, not gated."""
    return [
        _compare(
            "max_band_mae",
            "band MAE",
            report.metrics["mae"],
            thresholds.max_band_mae,
            "<=",
            " bands",
            interval=report.intervals.get("mae"),
        ),
        *validity_gates(thresholds, rater_agreement, fairness, gaming),
        *baseline_gates(baselines),
        *parity_gates(parity, thresholds),
        *latency_gates(latency, thresholds),
        non_inferiority_gate(champion, thresholds, expected_metric="qwk_half_band"),
    ]


def skill_gates(
    report: SkillReport,
    thresholds: GateThresholds,
    *,
    parity: Mapping[str, Any] | None,
    champion: ChampionComparison | None,
    baselines: BaselineComparison | None,
    fairness: FairnessReport | None,
    gaming: GamingReport | None,
    rater_agreement: RaterAgreement | None = None,
    latency: LatencyReport | None = None,
) -> list[GateResult]:
    """Pearson r with the teachers, ROC AUC, baselines on ROC AUC, parity, non-inferiority.
    ``latency`` is accepted so every family's gates are called alike, and ignored: it is
    gated with the per-request models."""
    del latency
    met, intervals = report.metrics, report.intervals
    return [
        _compare(
            "min_skill_pearson_r",
            f"{report.skill}: Pearson r with mean teacher rating",
            met["pearson_r"],
            thresholds.min_skill_pearson_r,
            ">=",
            interval=intervals.get("pearson_r"),
        ),
        _compare(
            "min_skill_roc_auc",
            f"{report.skill}: ROC AUC of the high-skill label",
            met["roc_auc"],
            thresholds.min_skill_roc_auc,
            ">=",
            interval=intervals.get("roc_auc"),
        ),
        *validity_gates(thresholds, rater_agreement, fairness, gaming),
        *baseline_gates(baselines),
        *parity_gates(parity, thresholds),
        non_inferiority_gate(champion, thresholds),
    ]


def summarize(results: Sequence[GateResult]) -> tuple[bool, str]:
    """(every blocking gate passed?, one-line verdict naming every failed gate with its value
    and threshold; failed warning gates are named after them and do not fail the verdict).

    No results is not a pass: nothing was checked.
    """
    if not results:
        return False, "no gates were evaluated, so nothing supports promotion"
    failed = [r for r in results if not r.passed and r.blocking]
    warned = [r for r in results if not r.passed and not r.blocking]
    warning = f"; warning, not blocking: {'; '.join(r.message for r in warned)}" if warned else ""
    if not failed and not warned:
        return True, f"all {len(results)} gates passed"
    if not failed:
        blocking = sum(r.blocking for r in results)
        return True, f"all {blocking} blocking gates passed{warning}"
    details = "; ".join(r.message for r in failed)
    return False, f"{len(failed)} of {len(results)} gates failed: {details}{warning}"


__all__ = [
    "BAND_GATE_NAMES",
    "BASELINE_GATES",
    "CEFR_GATE_NAMES",
    "FAIRNESS_GATE_NAMES",
    "GRADE_GATE_NAMES",
    "RATER_GATE_NAMES",
    "SKILL_GATE_NAMES",
    "GateResult",
    "GateThresholds",
    "band_gates",
    "baseline_gates",
    "cefr_gates",
    "fairness_gates",
    "gaming_gate",
    "grade_gates",
    "latency_gates",
    "non_inferiority_gate",
    "parity_gates",
    "rater_agreement_gate",
    "skill_gates",
    "summarize",
]
