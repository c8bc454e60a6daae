"""The validation report as Markdown: provenance, verdict and gates first, then the evidence,
and a sign-off block at the end.

Rendering only: the figures come from ``modeling.figures`` and the verdict from
``modeling.gates``; the provenance (`ReportProvenance`) and the human–machine agreement table
(`HumanMachineAgreement`, from ``metrics.agreement_summary``) are built by
``services.promotion``; nothing here computes a statistic beyond the difference of two shown
ones. The conventions behind the figures (integer class codes, full-scale QWK, SMD, ECE bins,
"n/a" for undefined metrics) are documented in ``modeling.figures``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from huleedu_pipelines.domain import CEFR_LEVELS
from huleedu_pipelines.modeling.fairness import AGREEMENT_NAMES, FairnessReport, SubgroupFairness
from huleedu_pipelines.modeling.figures import (
    INTERVAL_LEVEL,
    BandReport,
    BaselineComparison,
    CefrReport,
    ChampionComparison,
    GradeReport,
    Interval,
    LatencyReport,
    SkillReport,
)
from huleedu_pipelines.modeling.gates import BASELINE_GATES, GateResult, summarize
from huleedu_pipelines.modeling.metrics import AgreementSummary
from huleedu_pipelines.modeling.ordinal import describe_cutpoint_objective
from huleedu_pipelines.modeling.rater_agreement import PairAgreement, RaterAgreement

if TYPE_CHECKING:
    from huleedu_pipelines.services.gaming import GamingReport


@dataclass(frozen=True)
class ReportProvenance:
    """Where a report's numbers come from and who made it, stated under its title.

    Built by `services.promotion` for each report it writes; `dataset_hash` is the sha256 of
    the holdout rows the figures were computed on, described in words by `dataset_hash_of`."""

    purpose: str
    """validation (training's report), compare or promote: what the report was written for."""
    generated_at: dt.datetime
    """When the report was written (UTC)."""
    generated_by: str
    """The operator (`HULEEDU_OPERATOR`, else the OS user)."""
    package_version: str
    git_commit: str
    """The commit of the checkout the code ran from, "unknown" outside a git checkout."""
    dataset_hash: str
    dataset_hash_of: str
    n_rows: int
    """Holdout essays the figures are computed on."""
    feature_version: str
    """The feature version the model was trained on (its bundle's)."""
    holdout_feature_versions: tuple[str, ...] = ()
    """The feature versions of the holdout rows (one, unless the features were rebuilt)."""
    label_watermark: dt.datetime | None = None
    """The latest label time among the holdout rows (None: the labels carry no time)."""
    essay_watermark: dt.datetime | None = None
    """The latest submission or update time among the holdout essays."""
    run_label_watermark: dt.datetime | None = None
    """The latest label time among this model's labelled essays in every split of the training
    run the holdout comes from (training, validation and holdout)."""
    mlflow_run_id: str | None = None
    """The MLflow run of the registered version the report describes."""
    dagster_run_id: str | None = None
    """The Dagster run that wrote the report, when one did."""


@dataclass(frozen=True)
class HumanMachineAgreement:
    """RSMTool's human–machine statistics on the whole holdout and, where essays were scored
    twice, human–human beside human–machine on those essays (computed in `services.promotion`
    with `metrics.agreement_summary`; rendered here)."""

    scores: str
    """The human and machine scores compared, in words."""
    scale: str
    """The integer scale QWK, exact and adjacent agreement are computed on, in words."""
    step: str
    """One step of that scale: what adjacent agreement allows."""
    whole: AgreementSummary | None
    """Human vs machine on every holdout essay; None when the model gives no score on the
    human scale (`note` says why)."""
    human_human: AgreementSummary | None = None
    """Second human vs first human on the double-scored essays."""
    human_machine_double_scored: AgreementSummary | None = None
    """Machine vs first human on the same double-scored essays."""
    note: str | None = None


_METRIC_NAMES = {
    "qwk": "Quadratic weighted kappa",
    "exact_agreement": "Exact agreement",
    "adjacent_agreement": "Adjacent agreement (within one step)",
    "accuracy": "Accuracy",
    "mae": "Mean absolute error",
    "rmse": "Root mean squared error",
    "macro_f1": "Macro F1",
    "brier": "Brier score",
    "ece": "Expected calibration error",
    "ece_sampling_floor": "ECE of a perfectly calibrated model on this sample",
    "ece_beyond_sampling": "ECE beyond sampling noise (gated)",
    "rps": "Ranked probability score",
    "smd": "Standardized mean difference",
    "n": "Rows",
    "qwk_half_band": "QWK on half bands",
    "exact_half_band": "Exact half-band agreement",
    "within_half_band": "Within half a band",
    "cefr_from_band_macro_f1": "CEFR via predicted band, macro F1",
    "cefr_from_band_qwk": "CEFR via predicted band, QWK",
    "band_route_exact_agreement": "Agreement with CEFR via predicted band",
    "band_route_qwk": "QWK with CEFR via predicted band",
    "roc_auc": "ROC AUC",
    "pearson_r": "Pearson r with mean teacher rating",
    "positive_share": "Share of high-skill essays",
}


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _short(value: float | None) -> str:
    """Four significant digits, for gate values and thresholds of any magnitude."""
    if value is None:
        return "not measured"
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def _metric_rows(
    metrics: Mapping[str, float], intervals: Mapping[str, Interval], keys: Sequence[str]
) -> list[list[str]]:
    rows = []
    for key in keys:
        if key not in metrics:
            continue
        interval = intervals.get(key)
        ci = f"[{_num(interval[0])}, {_num(interval[1])}]" if interval else ""
        shown = str(int(metrics[key])) if key == "n" else _num(metrics[key])
        rows.append([f"{_METRIC_NAMES.get(key, key)} (`{key}`)", shown, ci])
    return rows


def _confusion_lines(confusion: np.ndarray, labels: Sequence[str], who: str) -> list[str]:
    header = [f"{who} ↓ / model →", *labels, "total"]
    rows = [
        [f"**{label}**", *(int(c) for c in confusion[i]), int(confusion[i].sum())]
        for i, label in enumerate(labels)
    ]
    rows.append(["**total**", *(int(c) for c in confusion.sum(axis=0)), int(confusion.sum())])
    return _table(header, rows)


def _calibration_lines(rows: Sequence[Mapping[str, float | int]]) -> list[str]:
    filled = [row for row in rows if row["count"]]
    return _table(
        ["confidence bin", "rows", "mean confidence", "observed rate", "gap"],
        [
            [
                f"({row['bin_low']:.2f}, {row['bin_high']:.2f}]",
                int(row["count"]),
                _num(row["mean_confidence"]),
                _num(row["observed_rate"]),
                _num(float(row["observed_rate"]) - float(row["mean_confidence"])),
            ]
            for row in filled
        ],
    )


def _per_class_lines(rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return _table(
        [key, "support", "predicted", "precision", "recall", "F1"],
        [
            [
                row[key],
                row["support"],
                row["predicted"],
                _num(row["precision"]),
                _num(row["recall"]),
                _num(row["f1"]),
            ]
            for row in rows
        ],
    )


def _gate_interval(gate: GateResult) -> str:
    if gate.low is None or gate.high is None:
        return "—"
    level = f" ({gate.interval_level:.0%})" if gate.interval_level is not None else ""
    return f"[{_short(gate.low)}, {_short(gate.high)}]{level}"


def _gate_lines(gates: Sequence[GateResult]) -> list[str]:
    rows = [
        [
            f"`{g.gate}`",
            _short(g.value) if g.value is not None or not g.passed else "—",
            _gate_interval(g),
            f"{g.comparison} {_short(g.threshold)}",
            "PASS" if g.passed else "**FAIL**" if g.blocking else "WARN (not blocking)",
            g.message,
        ]
        for g in gates
    ]
    return _table(["gate", "value", "interval", "threshold", "result", "detail"], rows)


def _decision_rule_lines(gates: Sequence[GateResult]) -> list[str]:
    """How a gated value near its threshold is decided, stated where the gates are."""
    baseline_levels = {
        g.interval_level for g in gates if g.gate in BASELINE_GATES and g.interval_level is not None
    }
    level = f"{baseline_levels.pop():.0%} " if len(baseline_levels) == 1 else ""
    return [
        "How a value near its threshold is decided: a floor (`min_*`, `max_*`) judges the "
        "point estimate against the threshold. The interval beside it is the "
        f"{INTERVAL_LEVEL:.0%} percentile bootstrap interval over holdout essays, shown so the "
        "reader sees how sure the decision is; a value whose interval includes the threshold "
        "is still decided by the point estimate. The baseline gates judge the "
        f"{level}paired bootstrap interval of the model's margin over a baseline fitted on the "
        "training split: `beats_trivial` passes only when its lower end is above zero (the "
        "holdout shows the model learned something), `not_worse_than_ridge` fails only when "
        "the whole interval is below zero (the holdout shows the model is worse than ridge; a "
        "lead over ridge is measured by `bench quality`'s cross-validation, which one holdout "
        "cannot resolve). Non-inferiority judges the point estimate of the drop against the "
        "champion; its interval is the drop's.",
        "",
    ]


def _cutpoint_lines(cutpoints: Mapping[str, Any] | None) -> list[str]:
    """What the ordinal cut points were chosen to maximise, as the bundle records it."""
    if not cutpoints:
        return [
            "This version's bundle does not record what its cut points optimise (it was "
            "trained before the objective was recorded).",
            "",
        ]
    gap = cutpoints.get("max_share_gap")
    sentence = describe_cutpoint_objective(
        str(cutpoints["objective"]), None if gap is None else float(gap)
    )
    fitted_on = cutpoints.get("fitted_on")
    where = f", chosen on {fitted_on}" if fitted_on else ""
    return [f"How classes are decided: the {sentence}{where}.", ""]


_BASELINE_METRIC_NAMES = {"qwk": "QWK", "mae": "MAE", "roc_auc": "ROC AUC"}


def _baseline_section(baselines: BaselineComparison) -> list[str]:
    metric = _BASELINE_METRIC_NAMES.get(baselines.metric, baselines.metric)
    lines = ["## Baselines", ""]
    if baselines.unavailable is not None:
        return [
            *lines,
            f"No baseline was compared: {baselines.unavailable}. The baseline gates fail.",
            "",
        ]
    level = f"{baselines.confidence:.0%}"
    margin_rule = "model − baseline" if baselines.higher_is_better else "baseline − model"
    lines += [
        f"The trivial predictor and ridge on all features were fitted on the "
        f"{baselines.n_train} essays of the training split and scored on the same "
        f"{baselines.n} holdout essays as the model. The margin is how much better the model "
        f"is on {metric} ({margin_rule}), with a {level} paired bootstrap interval; "
        "`beats_<baseline>` passes when the interval's lower end is above zero.",
        "",
    ]
    rows = [["model", _num(baselines.model_value), "", ""]]
    for name, margin in baselines.margins.items():
        interval = (
            "n/a"
            if math.isnan(margin.low) or math.isnan(margin.high)
            else f"[{margin.low:+.3f}, {margin.high:+.3f}]"
        )
        rows.append([name, _num(margin.value), f"{margin.margin:+.3f}", interval])
    for name, reason in baselines.unfitted.items():
        rows.append([name, "not fitted", reason, ""])
    lines += _table(["contender", metric, "model better by", f"{level} interval"], rows)
    return [*lines, ""]


def _grade_section(
    report: GradeReport, oracle_qwk: float | None, cutpoints: Mapping[str, Any] | None
) -> list[str]:
    met = report.metrics
    lines = ["## Grade model: human–machine agreement", ""]
    qwk_line = (
        f"On {int(met['n'])} holdout essays the model's QWK with the teachers' grades is "
        f"**{_num(met['qwk'])}** (95% bootstrap interval {_num(met['qwk_ci_low'])}–"
        f"{_num(met['qwk_ci_high'])})"
    )
    if oracle_qwk is not None:
        qwk_line += f"; the best achievable (oracle) QWK on these rows is **{_num(oracle_qwk)}**"
    lines += [qwk_line + ".", ""]
    lines += _cutpoint_lines(cutpoints)
    keys = [
        "qwk",
        "exact_agreement",
        "adjacent_agreement",
        "accuracy",
        "mae",
        "macro_f1",
        "smd",
        "n",
    ]
    rows = _metric_rows(met, report.intervals, keys)
    header = ["statistic", "human–machine", "95% CI"]
    if oracle_qwk is not None:
        rows.insert(1, ["Best achievable (oracle) QWK", _num(oracle_qwk), ""])
    lines += _table(header, rows)
    lines += [
        "",
        "Adjacent agreement counts a prediction within one grade step as agreeing; SMD is "
        "(mean machine − mean teacher) / pooled SD; it is gated, overall and per subgroup, "
        "under *Fairness across subgroups*.",
        "",
        "### Confusion matrix (rows: teacher grade, columns: model grade)",
        "",
        *_confusion_lines(report.confusion, report.class_labels, "teacher"),
        "",
        "### Precision and recall per grade",
        "",
        *_per_class_lines(report.per_grade, "grade"),
        "",
        "### Grade distribution",
        "",
        "Reference share is the training labels; the gate compares it with the predicted "
        f"share. Largest difference: **{_pct(report.max_share_difference)}** "
        f"(grade {report.max_share_difference_label}).",
        "",
    ]
    lines += _table(
        ["grade", "reference (training)", "holdout teachers", "predicted", "difference"],
        [
            [
                label,
                _pct(report.reference_share[i]),
                _pct(report.holdout_share[i]),
                _pct(report.predicted_share[i]),
                f"{100 * (report.predicted_share[i] - report.reference_share[i]):+.1f} pts",
            ]
            for i, label in enumerate(report.class_labels)
        ],
    )
    lines += [
        "",
        "### Probabilities and calibration",
        "",
        *_table(
            ["statistic", "value", ""],
            _metric_rows(
                met, {}, ["brier", "rps", "ece", "ece_sampling_floor", "ece_beyond_sampling"]
            ),
        ),
        "",
        "ECE bins the probability the model gave to the grade it predicted (15 equal-width "
        "bins; empty bins omitted):",
        "",
        *_calibration_lines(report.calibration),
        "",
    ]
    return lines


def _band_section(report: BandReport) -> list[str]:
    keys = [
        "mae",
        "rmse",
        "qwk_half_band",
        "exact_half_band",
        "within_half_band",
        "smd",
        "cefr_from_band_macro_f1",
        "cefr_from_band_qwk",
        "n",
    ]
    return [
        "## IELTS band model",
        "",
        "MAE and RMSE are in bands on the raw predictions; kappa and agreement round "
        "predictions to the nearest half band. CEFR rows map both bands through "
        "`cefr_from_band`.",
        "",
        *_table(
            ["statistic", "value", "95% CI"], _metric_rows(report.metrics, report.intervals, keys)
        ),
        "",
        "### CEFR via band (rows: from true band, columns: from predicted band)",
        "",
        *_confusion_lines(report.cefr_confusion, CEFR_LEVELS, "true band"),
        "",
    ]


def _cefr_section(report: CefrReport, cutpoints: Mapping[str, Any] | None) -> list[str]:
    keys = [
        "qwk",
        "macro_f1",
        "accuracy",
        "adjacent_agreement",
        "ece",
        "brier",
        "band_route_exact_agreement",
        "band_route_qwk",
        "n",
    ]
    return [
        "## CEFR model",
        "",
        *_cutpoint_lines(cutpoints),
        *_table(
            ["statistic", "value", "95% CI"], _metric_rows(report.metrics, report.intervals, keys)
        ),
        "",
        "### Confusion matrix (rows: reference level, columns: model level)",
        "",
        *_confusion_lines(report.confusion, report.class_labels, "reference"),
        "",
        "### Precision and recall per level",
        "",
        *_per_class_lines(report.per_level, "level"),
        "",
        "### Calibration",
        "",
        *_calibration_lines(report.calibration),
        "",
    ]


def _skill_section(reports: Sequence[SkillReport]) -> list[str]:
    rows = []
    for report in reports:
        met, ci = report.metrics, report.intervals
        rows.append(
            [
                report.skill,
                int(met["n"]),
                _pct(met["positive_share"]),
                f"{_num(met['roc_auc'])} [{_num(ci['roc_auc'][0])}, {_num(ci['roc_auc'][1])}]",
                f"{_num(met['pearson_r'])} "
                f"[{_num(ci['pearson_r'][0])}, {_num(ci['pearson_r'][1])}]",
                _num(met["brier"]),
                _num(met["ece"]),
            ]
        )
    return [
        "## Skill models",
        "",
        "Each model predicts P(high skill); the label is a mean teacher rating at or above "
        "the threshold. Pearson r is between that probability and the mean rating. "
        "Brackets are 95% bootstrap intervals.",
        "",
        *_table(
            [
                "skill",
                "n",
                "high share (`positive_share`)",
                "ROC AUC (`roc_auc`)",
                "Pearson r (`pearson_r`)",
                "Brier (`brier`)",
                "ECE (`ece`)",
            ],
            rows,
        ),
        "",
    ]


def _gate_named(gates: Sequence[GateResult], name: str) -> GateResult | None:
    return next((gate for gate in gates if gate.gate == name), None)


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _signed_interval(interval: Interval | None) -> str:
    if interval is None or math.isnan(interval[0]) or math.isnan(interval[1]):
        return "—"
    return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def _fairness_overview(fairness: FairnessReport, gates: Sequence[GateResult]) -> list[str]:
    """What is compared, the pooled SD and the overall SMD with its gate."""
    overall = _gate_named(gates, "max_abs_smd")
    verdict = "—"
    if overall is not None:
        verdict = f"|SMD| ≤ {_short(overall.threshold)}: {'PASS' if overall.passed else '**FAIL**'}"
    lines = [
        "## Fairness across subgroups",
        "",
        f"Scores compared: {fairness.scale}.",
        "",
    ]
    if fairness.note:
        lines += [f"Note: {fairness.note}.", ""]
    lines += [
        "SMD = (mean model − mean human) / pooled SD, with pooled SD = sqrt((s_h² + s_m²) / 2) "
        "and s_h, s_m the sample SDs (ddof = 1) of the human and model scores on the whole "
        f"holdout: s_h = {_num(fairness.human_sd)}, s_m = {_num(fairness.machine_sd)}, "
        f"**pooled SD = {_num(fairness.pooled_sd)}** (n = {fairness.n}). A subgroup's SMD divides "
        "its own mean difference by this same pooled SD, so subgroups are on one scale "
        "(Williamson et al. 2012; RSMTool's subgroup SMD up to v6). Intervals are 95% "
        "bootstrap intervals over essays.",
        "",
        *_table(
            ["", "n", "human mean", "model mean", "SMD", "95% interval", "gate `max_abs_smd`"],
            [
                [
                    "whole holdout",
                    fairness.n,
                    _num(fairness.human_mean),
                    _num(fairness.machine_mean),
                    _signed(fairness.smd),
                    _signed_interval(fairness.smd_interval),
                    verdict,
                ]
            ],
        ),
        "",
    ]
    return lines


def _failing_subgroup_lines(fairness: FairnessReport, threshold: float | None) -> list[str]:
    min_n = fairness.min_n_per_group
    if threshold is None:
        return []
    if not fairness.gated:
        return [
            f"No subgroup smaller than the whole holdout has at least {min_n} essays, so none "
            "is gated.",
            "",
        ]
    failing = fairness.shown_beyond(threshold)
    watched = [row for row in fairness.exceeding(threshold) if row not in failing]
    if not failing and not watched:
        return [
            f"All {len(fairness.gated)} subgroups with at least {min_n} essays have "
            f"|SMD| ≤ {_short(threshold)}.",
            "",
        ]
    lines = []
    if failing:
        named = "; ".join(f"{row.label} (n={row.n}, SMD {_signed(row.smd)})" for row in failing)
        lines += [
            f"**Subgroups whose whole interval lies beyond ±{_short(threshold)} (✗, fails "
            f"the gate):** {named}.",
            "",
        ]
    if watched:
        named = "; ".join(f"{row.label} (n={row.n}, SMD {_signed(row.smd)})" for row in watched)
        lines += [
            f"Subgroups with |SMD| > {_short(threshold)} whose interval includes the threshold "
            f"(⚠, watch, not failing): {named}.",
            "",
        ]
    return lines


def _subgroup_cells(row: SubgroupFairness, threshold: float | None) -> list[object]:
    if not row.gated and not row.whole_holdout:
        return [row.value, row.n, "too few essays", "", "", "", "", "not gated"]
    flag = "✓"
    if row.whole_holdout:
        flag = "whole holdout: `max_abs_smd` judges it"
    elif threshold is not None and row.shown_beyond(threshold):
        flag = "✗"
    elif threshold is not None and abs(row.smd) > threshold:
        flag = "⚠"
    return [
        row.value,
        row.n,
        _num(row.agreement),
        _num(row.human_mean),
        _num(row.machine_mean),
        _signed(row.smd),
        _signed_interval(row.smd_interval),
        flag,
    ]


def _subgroup_tables(fairness: FairnessReport, threshold: float | None) -> list[str]:
    agreement = AGREEMENT_NAMES.get(fairness.agreement, fairness.agreement)
    lines = []
    for group, with_value in fairness.essays_with_value.items():
        rows = [row for row in fairness.subgroups if row.group == group]
        header = [group, "n", agreement, "human mean", "model mean", "SMD", "95% interval", ""]
        lines += [
            f"### By {group} ({with_value} of {fairness.n} holdout essays have a value)",
            "",
            *_table(header, [_subgroup_cells(row, threshold) for row in rows]),
            "",
        ]
    return lines


def _fairness_section(fairness: FairnessReport, gates: Sequence[GateResult]) -> list[str]:
    subgroup_gate = _gate_named(gates, "max_abs_subgroup_smd")
    threshold = subgroup_gate.threshold if subgroup_gate is not None else None
    limit = _short(threshold) if threshold is not None else "the threshold"
    return [
        *_fairness_overview(fairness, gates),
        f"Subgroups with at least {fairness.min_n_per_group} essays are gated "
        f"(`max_abs_subgroup_smd`): ✗ marks a subgroup whose whole 95% interval lies beyond "
        f"±{limit}, which fails the gate; ⚠ marks |SMD| > {limit} on "
        "the point estimate with an interval that includes the threshold (too few essays to "
        "tell; watch it). Smaller subgroups are listed as too few essays and not gated. "
        "Agreement is "
        f"{AGREEMENT_NAMES.get(fairness.agreement, fairness.agreement)}, n/a where a group's "
        "scores do not vary.",
        "",
        *_failing_subgroup_lines(fairness, threshold),
        *_subgroup_tables(fairness, threshold),
        *_length_lines(fairness),
    ]


def _length_lines(fairness: FairnessReport) -> list[str]:
    if fairness.length_n == 0:
        return [
            "### Essay length",
            "",
            "No word counts were available: length was not checked.",
            "",
        ]
    return [
        "### Essay length",
        "",
        "Partial correlation of the model's score with the word count, controlling for the "
        f"human score: **r = {_signed(fairness.length_partial_r)}** (n = {fairness.length_n}). "
        "Near zero, the model rewards length no more than the raters do; clearly positive, "
        "longer essays score higher than their human score explains. Rater error in the human "
        "score gives even an accurate model some positive r where longer essays are better "
        "essays, so compare versions rather than reading it against zero.",
        "",
    ]


def _gaming_mark(over: bool, unjudged: bool) -> str:
    if unjudged:
        return "⚠ not judged" if over else "✓ not judged"
    return "✗" if over else "✓"


def _gaming_section(
    gaming: GamingReport, gates: Sequence[GateResult], unjudged: frozenset[str] = frozenset()
) -> list[str]:
    """Per perturbation: the share of copies scored above the tolerance and the distribution
    of the score change; `unjudged` perturbations are reported, not gated."""
    from huleedu_pipelines.services.gaming import QUANTILES

    gate = _gate_named(gates, "max_gaming_share")
    limit = gate.threshold if gate is not None else math.nan
    rows = [
        [
            f"`{effect.perturbation}`",
            effect.n,
            f"{effect.share_risen_before_review:.1%}",
            f"{effect.share_sent_to_review:.1%}",
            f"{effect.share_risen:.1%}",
            _gaming_mark(effect.share_risen > limit, effect.perturbation in unjudged),
            _signed(effect.mean_change),
            *(_signed(value) for value in effect.quantiles),
        ]
        for effect in gaming.effects
    ]
    header = ["perturbation", "n", "risen", "sent to review", "risen, served", "gate"]
    header += ["mean change"]
    header += [f"p{round(q * 100)}" for q in QUANTILES]
    return [
        "## Resistance to gaming",
        "",
        "Held-out essays perturbed and re-scored through the full feature path (text features "
        "and embeddings; a copy keeps its original's CJ features): a paragraph repeated to "
        "double the length, another prompt's essay appended, sentences shuffled, the prompt's "
        "words stuffed in, every word replaced by gibberish of the same shape. A score *rises* "
        f"when the copy scores more than **{gaming.tolerance:.3f}** above its original "
        f"({gaming.tolerance_sd:g} SD of the model's scores on the originals); "
        "A copy is *sent to review* when a validity advisory finds it beyond the range of the "
        "training essays (nonsense words, repeated sentences, a keyword paragraph, the prompt "
        "copied): a teacher grades it, so a risen score gains nothing. "
        f"`max_gaming_share` allows at most {limit:.0%} per perturbation of copies that rose "
        "and would be served without review. Score change is copy minus original, in the "
        "served score's units.",
        "",
        *_table(header, rows),
        "",
        f"Cost: the copies' features took {gaming.feature_seconds:.1f} s, shared by every model "
        "of the run.",
        "",
    ]


def _latency_section(report: LatencyReport) -> list[str]:
    return [
        "## Latency (ONNX, all models together)",
        "",
        f"{report.repeats} timed calls each after three warm-up calls, {report.n_models} "
        "model(s) per call.",
        "",
        *_table(
            ["call", "p50 (ms)", "p95 (ms)"],
            [
                ["one essay", _short(report.p50_single_ms), _short(report.p95_single_ms)],
                [
                    f"batch of {report.batch_size}",
                    _short(report.p50_batch50_ms),
                    _short(report.p95_batch50_ms),
                ],
            ],
        ),
        "",
    ]


def _champion_section(
    comparisons: ChampionComparison | Mapping[str, ChampionComparison],
) -> list[str]:
    items = {"": comparisons} if isinstance(comparisons, ChampionComparison) else dict(comparisons)
    lines = [
        "## Challenger vs champion",
        "",
        "Both models scored the same holdout rows; deltas are challenger − champion with "
        "95% paired bootstrap intervals (a negative QWK delta means the challenger is worse).",
        "",
    ]
    rows = []
    for label, comparison in items.items():
        for name, (delta, low, high) in comparison.deltas.items():
            rows.append(
                [
                    label or "—",
                    f"v{comparison.champion_version}",
                    f"{_METRIC_NAMES.get(name, name)} (`{name}`)",
                    f"{delta:+.4f}",
                    f"[{low:+.4f}, {high:+.4f}]",
                    "gated" if name == comparison.metric else "",
                ]
            )
    lines += _table(["model", "champion", "metric", "delta", "95% CI", ""], rows)
    return [*lines, ""]


def _agreement_cell(pair: PairAgreement | None, key: str) -> str:
    if pair is None:
        return "not measured"
    if key == "qwk":
        low, high = pair.qwk_interval
        return f"{_num(pair.qwk)} [{_num(low)}, {_num(high)}]"
    if key == "smd":
        return _signed(pair.smd)
    return _num(getattr(pair, key))


def _rater_agreement_section(agreement: RaterAgreement, gates: Sequence[GateResult]) -> list[str]:
    """Human–human beside human–machine on the double-scored essays (RSMTool's section)."""
    lines = [
        "## Human–human agreement",
        "",
        f"{agreement.n} of the {agreement.n_holdout} holdout essays were scored by a second "
        "human rater. On those same essays the second rater's agreement with the first "
        "(human–human) stands beside the model's agreement with the first (human–machine); "
        "the first rater is the label the model learns from. Scale: "
        f"{agreement.scale}. Adjacent agreement allows one {agreement.step}; Pearson r and "
        "SMD ((mean − mean of the first rater) / pooled SD) use the unrounded scores. "
        "Brackets are 95% bootstrap intervals over the double-scored essays.",
        "",
    ]
    if agreement.note:
        lines += [f"Note: {agreement.note}.", ""]
    pairs = (agreement.human_human, agreement.human_machine)
    rows = [
        [label, *(_agreement_cell(pair, key) for pair in pairs)]
        for label, key in (
            ("QWK", "qwk"),
            ("Exact agreement", "exact_agreement"),
            (f"Adjacent agreement (within one {agreement.step})", "adjacent_agreement"),
            ("Pearson r", "pearson_r"),
            ("SMD against the first rater", "smd"),
        )
    ]
    lines += _table(
        ["statistic", f"human–human (n={agreement.n})", f"human–machine (n={agreement.n})"], rows
    )
    lines.append("")
    gate = _gate_named(gates, "max_qwk_degradation")
    verdict = ""
    if gate is not None:
        verdict = (
            f"; gate `max_qwk_degradation` ≤ {_short(gate.threshold)}: "
            f"{'PASS' if gate.passed else '**FAIL**'}"
        )
    if agreement.human_machine is not None:
        low, high = agreement.degradation_interval or (math.nan, math.nan)
        lines += [
            "**QWK degradation** (human–human − human–machine, positive when the model agrees "
            f"with the first rater less than a second rater does): "
            f"**{_signed(agreement.degradation)}** (95% paired bootstrap interval "
            f"{_signed_interval((low, high))}){verdict}.",
            "",
        ]
    if not agreement.gated:
        lines += [
            f"Fewer than {agreement.min_n} essays were scored twice, so the degradation is "
            "reported, not gated.",
            "",
        ]
    return lines


_PURPOSES = {
    "validation": "validation of a newly trained challenger (the report its promotion is "
    "decided on)",
    "compare": "comparison with another version (`registry compare`); no alias moves",
    "promote": "validation before a promotion by hand (`registry promote`)",
}


def _utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return "not recorded"
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _provenance_lines(
    provenance: ReportProvenance, model_name: str, model_version: str
) -> list[str]:
    """The report's provenance, right under its title: what was measured, on which data, by
    which code, when and by whom."""
    p = provenance
    run = f"MLflow run `{p.mlflow_run_id}`" if p.mlflow_run_id else "MLflow run not recorded"
    holdout_versions = [v for v in p.holdout_feature_versions if v]
    if not holdout_versions or holdout_versions == [p.feature_version]:
        features = f"`{p.feature_version or 'not recorded'}` (model and holdout rows)"
    else:
        shown = ", ".join(f"`{v}`" for v in holdout_versions)
        features = (
            f"`{p.feature_version or 'not recorded'}` (model); holdout rows: {shown} "
            "(**differs** from the model's)"
        )
    times = (p.label_watermark, p.essay_watermark, p.run_label_watermark)
    if all(moment is None for moment in times):
        watermark = "not recorded: the holdout's labels and essays carry no times"
    else:
        watermark = (
            f"labels up to {_utc(p.label_watermark)}, essays submitted or updated up to "
            f"{_utc(p.essay_watermark)} (the {p.n_rows} holdout essays); every split of the "
            f"training run the holdout comes from: labels up to {_utc(p.run_label_watermark)}"
        )
    who = p.generated_by + (f", Dagster run `{p.dagster_run_id}`" if p.dagster_run_id else "")
    rows = [
        ["Model", f"`{model_name}` version `{model_version}` ({run})"],
        ["Purpose", f"`{p.purpose}`: {_PURPOSES.get(p.purpose, p.purpose)}"],
        ["Data watermark", watermark],
        ["Dataset hash", f"`{p.dataset_hash}`: {p.dataset_hash_of}"],
        ["Feature version", features],
        ["Code", f"huleedu-pipelines {p.package_version}, git commit `{p.git_commit}`"],
        ["Generated", f"{_utc(p.generated_at)} by {who}"],
    ]
    return [*_table(["provenance", ""], rows), ""]


_AGREEMENT_ROWS = (
    ("Pearson r", "pearson_r"),
    ("R² (1 − SS_res / SS_tot)", "r2"),
    ("QWK", "qwk"),
    ("Exact agreement", "exact_agreement"),
    ("Adjacent agreement (within one {step})", "adjacent_agreement"),
    ("SMD (mean machine − mean human) / pooled SD", "smd"),
    ("Human mean", "human_mean"),
    ("{other} mean", "machine_mean"),
    ("Human SD (s_h)", "human_sd"),
    ("{other} SD (s_m)", "machine_sd"),
    ("Pooled SD sqrt((s_h² + s_m²) / 2)", "pooled_sd"),
)
_DIFFERENCE_ROWS = frozenset({"pearson_r", "r2", "qwk", "exact_agreement", "adjacent_agreement"})


def _summary_cell(summary: AgreementSummary, key: str) -> str:
    value = float(getattr(summary, key))
    return _signed(value) if key == "smd" else _num(value)


def _difference_cell(human_human: AgreementSummary, machine: AgreementSummary, key: str) -> str:
    """Human–human minus human–machine on the same essays; the QWK one is the degradation."""
    if key not in _DIFFERENCE_ROWS:
        return ""
    delta = _signed(float(getattr(human_human, key)) - float(getattr(machine, key)))
    return f"**{delta}** (degradation)" if key == "qwk" else delta


def _human_machine_section(hm: HumanMachineAgreement) -> list[str]:
    """RSMTool's agreement table for every family, with human–human beside it where essays
    were scored twice and the degradation (human–human − human–machine)."""
    lines = ["## Agreement with the human scores", ""]
    whole = hm.whole
    if whole is None:
        return [*lines, f"Not measured on the human scale: {hm.note or 'no machine score'}.", ""]
    lines += [
        f"Scores compared: {hm.scores}. Pearson r, R², the means, SDs and SMD use the scores as "
        f"given; QWK, exact and adjacent agreement use {hm.scale}. R² is the coefficient of "
        "determination of the machine score for the human score (RSMTool's R²: a shifted or "
        "rescaled score lowers it; negative when worse than the human mean), not r². SMD = "
        "(mean machine − mean human) / pooled SD with pooled SD = sqrt((s_h² + s_m²) / 2) from "
        f"the sample SDs (ddof = 1): on the whole holdout s_h = {_num(whole.human_sd)}, "
        f"s_m = {_num(whole.machine_sd)}, **pooled SD = {_num(whole.pooled_sd)}**.",
        "",
    ]
    if hm.note:
        lines += [f"Note: {hm.note}.", ""]
    columns = [(f"human–machine, all holdout (n={whole.n})", whole)]
    double, human_human = hm.human_machine_double_scored, hm.human_human
    if double is not None:
        columns.append((f"human–machine, double-scored (n={double.n})", double))
    if human_human is not None:
        columns.append((f"human–human (n={human_human.n})", human_human))
    other = "Machine (or second human)" if double and human_human else "Machine"
    header = [
        "statistic",
        *(label for label, _ in columns),
        *(["human–human − human–machine"] if double and human_human else []),
    ]
    rows = [
        [
            label.format(step=hm.step, other=other),
            *(_summary_cell(summary, key) for _, summary in columns),
            *([_difference_cell(human_human, double, key)] if double and human_human else []),
        ]
        for label, key in _AGREEMENT_ROWS
    ]
    lines += [*_table(header, rows), ""]
    if double and human_human:
        lines += [
            "On the double-scored essays the first human is the label the model learns from; "
            "the second human and the machine are each compared with it. The QWK degradation "
            "(human–human − human–machine) is positive when the model agrees with the first "
            "human less than a second human does; its paired interval and the gate "
            "`max_qwk_degradation` are in the human–human section below.",
            "",
        ]
    return lines


def _signoff_consequence(
    passed: bool,
    purpose: str | None,
    champion: ChampionComparison | Mapping[str, ChampionComparison] | None,
) -> str:
    stays = "`champion` does not move"
    if isinstance(champion, ChampionComparison):
        stays = f"`champion` stays on v{champion.champion_version}"
    if purpose == "compare":
        return "no alias moves: this report was written for a comparison (`registry compare`); " + (
            "the version may be promoted" if passed else "the version would be blocked"
        )
    if purpose == "promote":
        if passed:
            return "promoted: `registry promote` moves `champion` to this version"
        return (
            f"blocked: {stays}; `registry promote` refuses unless an operator forces it with "
            "`--force --reason` (recorded in `model_promotions`)"
        )
    if passed:
        return (
            "promoted: `promoted_models` moves `champion` to this version, unless another "
            "model of the same run fails a gate (a failed blocking check stops every "
            "promotion of the run)"
        )
    return f"blocked: {stays}; the version stays registered as `challenger`"


def _signoff_lines(
    gates: Sequence[GateResult],
    provenance: ReportProvenance | None,
    champion: ChampionComparison | Mapping[str, ChampionComparison] | None,
) -> list[str]:
    """The decision, the gates behind it, who generated the report and blanks for a reviewer."""
    passed, _ = summarize(list(gates))

    def named(results: Sequence[GateResult]) -> str:
        return ", ".join(f"`{g.gate}`" for g in results) or "none"

    failed = [g for g in gates if not g.passed and g.blocking]
    warned = [g for g in gates if not g.passed and not g.blocking]
    purpose = provenance.purpose if provenance is not None else None
    consequence = _signoff_consequence(passed, purpose, champion)
    rows = [
        ["Decision", f"**{'PASS' if passed else 'FAIL'}** — {consequence}"],
        [
            f"Gates passed ({sum(g.passed for g in gates)} of {len(gates)})",
            named([g for g in gates if g.passed]),
        ],
        [f"Gates failed ({len(failed)}, blocking)", named(failed)],
    ]
    if warned:
        rows.append([f"Gates failed ({len(warned)}, warning only)", named(warned)])
    if provenance is not None:
        who = provenance.generated_by
        if provenance.dagster_run_id:
            who += f" (Dagster run `{provenance.dagster_run_id}`)"
        rows += [
            ["Generated by", f"{who}, huleedu-pipelines {provenance.package_version}"],
            ["Generated at", _utc(provenance.generated_at)],
        ]
    return [
        "## Sign-off",
        "",
        *_table(["sign-off", ""], rows),
        "",
        "Review (completed by the reviewer, by hand or in a copy of this report):",
        "",
        *_table(
            ["reviewer", ""],
            [[field, ""] for field in ("Name", "Role", "Date", "Signature", "Comments")],
        ),
        "",
    ]


def render_markdown(
    title: str,
    *,
    model_name: str,
    model_version: str,
    gates: Sequence[GateResult],
    grade: GradeReport | None = None,
    band: BandReport | None = None,
    cefr: CefrReport | None = None,
    skills: SkillReport | Sequence[SkillReport] = (),
    latency: LatencyReport | None = None,
    champion: ChampionComparison | Mapping[str, ChampionComparison] | None = None,
    baselines: BaselineComparison | None = None,
    fairness: FairnessReport | None = None,
    gaming: GamingReport | None = None,
    gaming_unjudged: frozenset[str] = frozenset(),
    rater_agreement: RaterAgreement | None = None,
    cutpoints: Mapping[str, Any] | None = None,
    plots: Mapping[str, Path | str] | None = None,
    relative_to: Path | str | None = None,
    oracle_qwk: float | None = None,
    provenance: ReportProvenance | None = None,
    human_machine: HumanMachineAgreement | None = None,
) -> str:
    """The validation report as Markdown: verdict and gates first, then the evidence.

    ``cutpoints`` is what the bundle records about its ordinal cut points (the
    ``cutpoints`` entry of its info: objective, share gap), stated in the grade and CEFR
    sections. Plot links are written relative to ``relative_to`` (the folder the Markdown
    will be saved in) when given, otherwise as the paths passed. The human–human section is
    shown only when ``rater_agreement`` has double-scored essays. ``provenance`` is stated
    under the title; ``human_machine`` is the agreement table every family gets. The report
    ends with a sign-off block: the decision, the gates behind it and blanks for a reviewer.
    """
    passed, verdict = summarize(list(gates))
    lines = [f"# {title}", ""]
    if provenance is not None:
        lines += _provenance_lines(provenance, model_name, model_version)
    lines += [
        f"Model `{model_name}`, version `{model_version}`.",
        "",
        f"**Verdict: {'PASS' if passed else 'FAIL'}** — {verdict}",
        "",
        "## Gates",
        "",
        *_gate_lines(gates),
        "",
        *_decision_rule_lines(gates),
    ]
    if grade is not None:
        lines += _grade_section(grade, oracle_qwk, cutpoints)
    if band is not None:
        lines += _band_section(band)
    if cefr is not None:
        lines += _cefr_section(cefr, cutpoints)
    if skills:
        lines += _skill_section([skills] if isinstance(skills, SkillReport) else skills)
    if human_machine is not None:
        lines += _human_machine_section(human_machine)
    if rater_agreement is not None and rater_agreement.n > 0:
        lines += _rater_agreement_section(rater_agreement, gates)
    if fairness is not None:
        lines += _fairness_section(fairness, gates)
    if gaming is not None:
        lines += _gaming_section(gaming, gates, gaming_unjudged)
    if baselines is not None:
        lines += _baseline_section(baselines)
    if latency is not None:
        lines += _latency_section(latency)
    if champion is not None:
        lines += _champion_section(champion)
    else:
        lines += ["## Challenger vs champion", "", "No champion is registered yet.", ""]
    if plots:
        lines += ["## Plots", ""]
        base = Path(relative_to) if relative_to is not None else None
        for name, path in plots.items():
            link = Path(path)
            if base is not None:
                link = Path(_relative(link, base))
            lines += [f"![{name}]({link.as_posix()})", ""]
    lines += _signoff_lines(gates, provenance, champion)
    return "\n".join(lines).rstrip() + "\n"


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


__all__ = ["HumanMachineAgreement", "ReportProvenance", "render_markdown"]
