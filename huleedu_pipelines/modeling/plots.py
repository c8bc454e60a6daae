"""PNG figures for the validation report.

Each function draws one small figure (100 dpi), writes it to ``path`` and returns the path.
Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, never
through ``pyplot``: no GUI backend, no global figure registry to leak into (so nothing to
close), and safe when Dagster runs steps in threads. matplotlib is imported inside the
functions so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from huleedu_pipelines.modeling.report_html import write_report_html

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from huleedu_pipelines.modeling.fairness import FairnessReport
    from huleedu_pipelines.modeling.figures import CefrReport, GradeReport, SkillReport

DPI = 100
REPORT_FILENAME = "report.md"


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path | str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png", dpi=DPI)
    return target


def confusion_matrix_plot(
    confusion: ArrayLike, labels: Sequence[str], path: Path | str, *, title: str | None = None
) -> Path:
    """Heat map of row-normalised counts (share of each true class), annotated with counts."""
    counts = np.asarray(confusion, dtype=np.int64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion has shape {counts.shape}, expected ({k}, {k}) for the labels")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    figure = _figure(5.0, 4.4)
    ax = figure.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("model")
    ax.set_ylabel("reference")
    ax.set_title(title or "Confusion matrix (colour: share of reference row)", fontsize=10)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _save(figure, path)


def _calibration_points(
    calibration: Sequence[Mapping[str, Any]] | tuple[ArrayLike, ArrayLike],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(calibration, tuple):
        from huleedu_pipelines.modeling.metrics import calibration_table

        y, probs = calibration
        rows: Sequence[Mapping[str, Any]] = calibration_table(y, probs)
    else:
        rows = calibration
    filled = [row for row in rows if row["count"]]
    return (
        np.array([row["mean_confidence"] for row in filled], dtype=np.float64),
        np.array([row["observed_rate"] for row in filled], dtype=np.float64),
        np.array([row["count"] for row in filled], dtype=np.float64),
    )


def calibration_plot(
    calibration: Sequence[Mapping[str, Any]] | tuple[ArrayLike, ArrayLike],
    path: Path | str,
    *,
    title: str | None = None,
) -> Path:
    """Reliability diagram from ``metrics.calibration_table`` rows, or from ``(y, probs)``.

    Marker area is proportional to the rows in the bin; the diagonal is perfect calibration.
    """
    confidence, observed, counts = _calibration_points(calibration)
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    if counts.size:
        sizes = 20 + 200 * counts / counts.max()
        ax.plot(confidence, observed, color="tab:blue", linewidth=1)
        ax.scatter(confidence, observed, s=sizes, color="tab:blue", alpha=0.7, label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title or "Calibration (marker size: rows in bin)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def distribution_plot(
    labels: Sequence[str],
    predicted_share: ArrayLike,
    reference_share: ArrayLike,
    path: Path | str,
    *,
    holdout_share: ArrayLike | None = None,
    title: str | None = None,
) -> Path:
    """Grouped bars: reference (training) share beside predicted share per class."""
    k = len(labels)
    series = [("reference (training)", np.asarray(reference_share, dtype=np.float64))]
    if holdout_share is not None:
        series.append(("holdout teachers", np.asarray(holdout_share, dtype=np.float64)))
    series.append(("predicted", np.asarray(predicted_share, dtype=np.float64)))
    for name, values in series:
        if values.shape != (k,):
            raise ValueError(f"{name} share has shape {values.shape}, expected ({k},)")
    figure = _figure(5.5, 3.6)
    ax = figure.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(k)
    for i, (name, values) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, 100 * values, width, label=name)
    ax.set_xticks(x, labels)
    ax.set_ylabel("share of essays (%)")
    ax.set_title(title or "Grade distribution", fontsize=10)
    ax.legend(fontsize=8)
    return _save(figure, path)


def fairness_plot(
    fairness: FairnessReport, path: Path | str, *, threshold: float, title: str | None = None
) -> Path:
    """Horizontal bars of SMD per gated subgroup (n in the label) with their 95% intervals,
    the overall SMD dashed and the subgroup threshold as grey lines either side of zero; bars
    beyond it are red."""
    rows = fairness.gated
    if not rows:
        raise ValueError("no subgroup has enough essays to plot")
    values = np.array([row.smd for row in rows], dtype=np.float64)
    shown = np.nan_to_num(values, nan=0.0)
    intervals = np.array([row.smd_interval or (v, v) for row, v in zip(rows, shown, strict=True)])
    errors = np.abs(np.nan_to_num(intervals - shown[:, None], nan=0.0)).T
    figure = _figure(8.0, max(2.2, 0.4 * len(rows) + 1.4))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    colours = ["tab:red" if abs(v) > threshold else "tab:blue" for v in shown]
    ax.barh(y, shown, color=colours, xerr=errors, ecolor="dimgrey", capsize=3)
    for i, value in enumerate(values):
        if math.isnan(value):
            ax.text(0.0, i, " n/a", va="center", fontsize=8)
    for edge in (-threshold, threshold):
        ax.axvline(edge, color="grey", linewidth=1)
    if not math.isnan(fairness.smd):
        ax.axvline(fairness.smd, color="black", linestyle="--", linewidth=1, label="overall")
        ax.legend(fontsize=8, loc="lower right")
    ax.axvline(0.0, color="black", linewidth=0.5)
    ax.set_yticks(y, [f"{row.label} (n={row.n})" for row in rows], fontsize=8)
    ax.invert_yaxis()
    reach = max(2 * threshold, float(np.nanmax(np.abs(intervals), initial=0.0)) * 1.1)
    ax.set_xlim(-reach, reach)
    ax.set_xlabel("SMD: (model − human) / pooled SD of the holdout")
    ax.set_title(title or "SMD by subgroup (95% intervals)", fontsize=10)
    return _save(figure, path)


def band_scatter_plot(
    true: ArrayLike, predicted: ArrayLike, path: Path | str, *, seed: int = 0
) -> Path:
    """Predicted vs true IELTS band (true jittered so half bands do not overplot)."""
    x = np.asarray(true, dtype=np.float64)
    y = np.asarray(predicted, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"true and predicted must be 1-D of one length, got {x.shape}, {y.shape}")
    jitter = np.random.default_rng(seed).uniform(-0.12, 0.12, size=x.size)
    figure = _figure(4.6, 4.4)
    ax = figure.add_subplot()
    line = np.array([0.0, 9.0])
    ax.fill_between(line, line - 0.5, line + 0.5, color="tab:green", alpha=0.15, label="±0.5")
    ax.plot(line, line, color="grey", linestyle="--", linewidth=1)
    ax.scatter(x + jitter, y, s=8, alpha=0.5, color="tab:blue")
    ax.set_xlim(-0.25, 9.25)
    ax.set_ylim(-0.25, 9.25)
    ax.set_xlabel("true band")
    ax.set_ylabel("predicted band")
    ax.set_title("IELTS band: predicted vs true", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _save(figure, path)


def skill_calibration_plot(
    calibration: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[SkillReport],
    path: Path | str,
) -> Path:
    """One reliability curve per skill: skill name -> calibration rows, or ``SkillReport``s."""
    if isinstance(calibration, Mapping):
        curves = dict(calibration)
    else:
        curves = {report.skill: report.calibration for report in calibration}
    if not curves:
        raise ValueError("no skills to plot")
    figure = _figure(5.2, 4.4)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    for skill, rows in curves.items():
        confidence, observed, _ = _calibration_points(rows)
        ax.plot(confidence, observed, marker="o", markersize=3, linewidth=1, label=skill)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(high skill)")
    ax.set_ylabel("observed share high")
    ax.set_title("Skill models: calibration", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return _save(figure, path)


# --------------------------------------------------------------------------- bundles


def grade_plots(report: GradeReport, directory: Path | str) -> dict[str, Path]:
    """Every figure for a ``GradeReport``, written into ``directory``; name -> path."""
    folder = Path(directory)
    plots = {
        "Confusion matrix": confusion_matrix_plot(
            report.confusion, report.class_labels, folder / "grade_confusion.png"
        ),
        "Calibration": calibration_plot(report.calibration, folder / "grade_calibration.png"),
        "Grade distribution": distribution_plot(
            report.class_labels,
            report.predicted_share,
            report.reference_share,
            folder / "grade_distribution.png",
            holdout_share=report.holdout_share,
        ),
    }
    return plots


def cefr_plots(report: CefrReport, directory: Path | str) -> dict[str, Path]:
    folder = Path(directory)
    return {
        "CEFR confusion matrix": confusion_matrix_plot(
            report.confusion, report.class_labels, folder / "cefr_confusion.png"
        ),
        "CEFR calibration": calibration_plot(report.calibration, folder / "cefr_calibration.png"),
    }


def band_plots(
    true_bands: ArrayLike, predicted_bands: ArrayLike, directory: Path | str
) -> dict[str, Path]:
    """Every figure for the IELTS band model (drawn from the bands, not a report)."""
    path = Path(directory) / "band_scatter.png"
    return {"Predicted vs true band": band_scatter_plot(true_bands, predicted_bands, path)}


def fairness_plots(
    fairness: FairnessReport, directory: Path | str, *, threshold: float
) -> dict[str, Path]:
    """The SMD-by-subgroup figure, when any subgroup has enough essays to be gated."""
    if not fairness.gated:
        return {}
    path = Path(directory) / "fairness_smd.png"
    return {"SMD by subgroup": fairness_plot(fairness, path, threshold=threshold)}


def skill_plots(report: SkillReport, directory: Path | str) -> dict[str, Path]:
    """Every figure for one skill model's report."""
    path = Path(directory) / "skill_calibration.png"
    return {"Calibration": skill_calibration_plot([report], path)}


def write_report_bundle(
    directory: Path | str, markdown: str, plots: Mapping[str, Path | str] | None = None
) -> Path:
    """Write ``report.md`` into ``directory`` beside its plots and return its path.

    Every plot must already exist inside ``directory`` (render the Markdown with
    ``relative_to=directory``), so the folder can be logged or copied as one artifact and
    its links still resolve. ``report.html`` beside it is the same report with the plots
    inlined (``modeling.report_html``): one self-contained file, which MLflow's artifact
    viewer renders.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    for name, plot in (plots or {}).items():
        resolved = Path(plot).resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"plot {name!r} at {plot} does not exist; draw it first")
        if not resolved.is_relative_to(root):
            raise ValueError(
                f"plot {name!r} at {plot} is outside {folder}; write plots into the report "
                "folder so the Markdown's relative links resolve"
            )
    target = folder / REPORT_FILENAME
    target.write_text(markdown, encoding="utf-8")
    write_report_html(target)
    return target


__all__ = [
    "band_plots",
    "band_scatter_plot",
    "calibration_plot",
    "cefr_plots",
    "confusion_matrix_plot",
    "distribution_plot",
    "fairness_plot",
    "fairness_plots",
    "grade_plots",
    "skill_calibration_plot",
    "skill_plots",
    "write_report_bundle",
]
