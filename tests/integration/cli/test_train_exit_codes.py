"""`train` tells a blocked promotion (exit 3, each failed gate with model, value and
threshold) from a crash (exit 1).

The summary is read from real runs: a small job whose gate check fails the way
`validation_reports`' gates do, one whose step raises, and (slow) the real training job on a
generated home with a QWK floor no model reaches.
"""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from huleedu_pipelines.cli.commands import (
    EXIT_FAILED,
    EXIT_GATES_BLOCKED,
    _exit_on_failed_training,
    app,
)
from huleedu_pipelines.cli.runs import dagster_instance, run_job
from huleedu_pipelines.modeling.names import CHAMPION, GRADE_MODEL
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import cached_engine, migrate


class Outcome(dg.Config):
    crash: bool = False
    qwk: float = 0.9


@dg.asset
def reports(config: Outcome) -> pl.DataFrame:
    """Stands for validation_reports: one model's QWK."""
    if config.crash:
        raise RuntimeError("disk full")
    return pl.DataFrame({"model": ["huleedu-grade-sv v4"], "qwk": [config.qwk]})


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("gate_min_qwk", asset=reports, blocking=True),
        dg.AssetCheckSpec("gate_max_ece", asset=reports, blocking=True),
    ],
    can_subset=False,
)
def gates(reports: pl.DataFrame):
    """Gate checks shaped like assets/validation_checks.py (description names model/value)."""
    qwk = reports["qwk"][0]
    yield dg.AssetCheckResult(
        check_name="gate_min_qwk",
        passed=bool(qwk >= 0.7),
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if qwk >= 0.7 else f"huleedu-grade-sv v4: QWK {qwk} < 0.7 (min_qwk)",
    )
    yield dg.AssetCheckResult(
        check_name="gate_max_ece", passed=True, severity=dg.AssetCheckSeverity.ERROR
    )


@dg.asset(deps=[reports])
def promoted() -> None:
    """Stands for promoted_models."""


def tiny_run(home: Path, **config):
    settings = get_settings()
    migrate(cached_engine(settings.resolved_warehouse_url))
    defs = dg.Definitions(
        assets=[reports, promoted],
        asset_checks=[gates],
        jobs=[dg.define_asset_job("tiny_training", selection=[reports, promoted])],
        resources={"io_manager": dg.InMemoryIOManager()},
    )
    return run_job(
        defs,
        "tiny_training",
        dagster_instance(settings),
        settings,
        op_config={"reports": config},
    )


def exit_code(summary) -> int:
    try:
        _exit_on_failed_training(summary)
    except typer.Exit as stop:
        return stop.exit_code
    return 0


def test_failed_gates_block_promotion_with_exit_3(home: Path) -> None:
    summary = tiny_run(home, qwk=0.41)
    assert not summary.success and summary.blocked_by_gates
    assert "promoted" not in summary.rows_by_asset
    assert summary.gate_failures == ["gate min_qwk: huleedu-grade-sv v4: QWK 0.41 < 0.7 (min_qwk)"]
    assert "promotion blocked by gates" in summary.render()
    assert exit_code(summary) == EXIT_GATES_BLOCKED


def test_a_crash_is_exit_1(home: Path) -> None:
    summary = tiny_run(home, crash=True)
    assert not summary.success and not summary.blocked_by_gates
    assert any("disk full" in failure for failure in summary.failures)
    assert exit_code(summary) == EXIT_FAILED


def test_passing_gates_exit_0(home: Path) -> None:
    summary = tiny_run(home)
    assert summary.success and not summary.gate_failures
    assert exit_code(summary) == 0


@pytest.mark.slow
def test_train_exits_3_when_no_model_reaches_the_qwk_floor(
    tmp_path: Path, shared_feature_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import seed_small_trainable_home

    from huleedu_pipelines.registry import build_registry

    seed_small_trainable_home(monkeypatch, tmp_path, shared_feature_cache)
    monkeypatch.setenv("HULEEDU_GATE_MIN_QWK", "0.999")
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == EXIT_GATES_BLOCKED, result.output
    blocked = [line for line in result.output.splitlines() if line.startswith("promotion blocked:")]
    assert len(blocked) == 1, result.output
    assert blocked[0].startswith(f"promotion blocked: gate min_qwk: {GRADE_MODEL} v1: QWK ")
    assert "0.999" in blocked[0]
    registry = build_registry(get_settings())
    assert registry.get_version(GRADE_MODEL, CHAMPION) is None
