"""The validation report as Markdown: verdict and gates first, then the evidence.

Rendering only: the figures come from ``modeling.figures`` and the verdict from
``modeling.gates``; nothing here computes a statistic. The conventions behind the figures
(integer class codes, full-scale QWK, SMD, ECE bins, "n/a" for undefined metrics) are
documented in ``modeling.figures``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from huleedu_pipelines.domain import CEFR_LEVELS
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
from huleedu_pipelines.modeling.ordinal import describe_cutpoint_objective

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
            "PASS" if g.passed else "**FAIL**",
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
    if report.human_human is not None:
        header.append(f"human–human (n={int(report.human_human.get('n', 0))})")
        for row, key in zip(rows, [k for k in keys if k in met], strict=True):
            hh_key = "exact_agreement" if key == "accuracy" else key
            value = report.human_human.get(hh_key)
            row.append(str(int(value)) if key == "n" and value is not None else _num(value))
    if oracle_qwk is not None:
        rows.insert(
            1,
            ["Best achievable (oracle) QWK", _num(oracle_qwk), ""]
            + ([""] if report.human_human is not None else []),
        )
    lines += _table(header, rows)
    lines += [
        "",
        "Adjacent agreement counts a prediction within one grade step as agreeing; SMD is "
        "(mean machine − mean teacher) / pooled SD, where |SMD| > 0.15 is RSMTool's flag.",
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
    for column, group_rows in report.subgroups.items():
        lines += [f"### Agreement by {column}", ""]
        lines += _table(
            [column, "n", "QWK", "exact", "adjacent", "MAE", "SMD"],
            [
                [
                    row["group"],
                    row["n"],
                    _num(row["qwk"]),
                    _num(row["exact"]),
                    _num(row["adjacent"]),
                    _num(row["mae"]),
                    _num(row["smd"]),
                ]
                for row in group_rows
            ],
        )
        lines.append("")
    if report.subgroups:
        lines += [
            "Subgroup SMD uses the pooled SDs of the whole holdout, so groups are comparable; "
            "QWK is n/a where a group's grades do not vary.",
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
    cutpoints: Mapping[str, Any] | None = None,
    plots: Mapping[str, Path | str] | None = None,
    relative_to: Path | str | None = None,
    oracle_qwk: float | None = None,
) -> str:
    """The validation report as Markdown: verdict and gates first, then the evidence.

    ``cutpoints`` is what the bundle records about its ordinal cut points (the
    ``cutpoints`` entry of its info: objective, share gap), stated in the grade and CEFR
    sections. Plot links are written relative to ``relative_to`` (the folder the Markdown
    will be saved in) when given, otherwise as the paths passed.
    """
    passed, verdict = summarize(list(gates))
    lines = [
        f"# {title}",
        "",
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
    return "\n".join(lines).rstrip() + "\n"


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


__all__ = ["render_markdown"]
