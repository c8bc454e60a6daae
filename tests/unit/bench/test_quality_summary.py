"""The quality benchmark's arithmetic: margins are product minus the best baseline, paired by
fold, signed so that positive is better, and a baseline without a figure is not "best"."""

import json
import math

import pytest

from benchmarks.quality import PRODUCT, print_quality, summarise


def _scores() -> dict[str, dict[str, list[float]]]:
    return {
        PRODUCT: {
            "mae": [0.90, 0.92, 0.88, 0.91, 0.89],
            "qwk_half_band": [0.50, 0.52, 0.49, 0.51, 0.53],
        },
        "trivial": {"mae": [1.15] * 5, "qwk_half_band": [math.nan] * 5},
        "ridge": {"mae": [1.00, 1.01, 0.99, 1.02, 0.98], "qwk_half_band": [0.41] * 5},
        "lightgbm_default": {"mae": [0.94, 0.95, 0.93, 0.94, 0.94], "qwk_half_band": [0.50] * 5},
    }


def test_margins_compare_with_the_best_baseline_and_lower_mae_counts_as_better():
    summary = summarise(_scores(), n_folds=5)
    mae = summary["margin_over_best_baseline"]["mae"]
    assert mae["best_baseline"] == "lightgbm_default"
    assert mae["margin"] == pytest.approx(0.94 - 0.90, abs=1e-4)  # positive: the product errs less
    qwk = summary["margin_over_best_baseline"]["qwk_half_band"]
    assert qwk["best_baseline"] == "lightgbm_default"  # the trivial predictor's nan is passed over
    assert qwk["margin"] == pytest.approx(0.51 - 0.50, abs=1e-4)
    assert qwk["margin_in_se"] == pytest.approx(qwk["margin"] / qwk["standard_error"], abs=0.01)
    assert summary[PRODUCT]["mae"][0] == pytest.approx(0.90)


def test_the_printout_ends_with_one_json_line(capsys):
    figures = {
        "benchmark": "quality",
        "repeats": 1,
        "folds": 5,
        "models": {"huleedu-ielts-band": {"essays": 488} | summarise(_scores(), n_folds=5)},
        "skipped": {"huleedu-grade-sv": "the file has no `grade_ordinal` labels"},
    }
    print_quality(figures)
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1])["models"]["huleedu-ielts-band"]["essays"] == 488
    assert any(line.strip().startswith("margin (+ better)") for line in lines)
    assert "skipped huleedu-grade-sv: the file has no `grade_ordinal` labels" in lines
