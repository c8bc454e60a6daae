"""`monitoring_measurements` keeps the history of a partition: every run adds its rows, a step
retried within one run replaces only that run's rows. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa

from huleedu_pipelines.services.monitoring import MONITORING_SCHEMA, record_measurements
from huleedu_pipelines.warehouse.engine import make_engine, migrate
from huleedu_pipelines.warehouse.tables import monitoring_measurements

DAY = dt.date(2026, 11, 21)
T0 = dt.datetime(2026, 11, 22, 1, 5, tzinfo=dt.UTC)


def _frame(psi: float) -> pl.DataFrame:
    return pl.DataFrame(
        [
            ("psi", "predicted_grade", psi, 120, 0.2, "ok" if psi <= 0.2 else "warn"),
            ("pearson_r_teacher_later", "grammar", None, 4, 0.5, "insufficient_data"),
        ],
        schema=MONITORING_SCHEMA,
        orient="row",
    )


def _rows(engine: sa.Engine) -> list[dict]:
    table = monitoring_measurements
    with engine.connect() as connection:
        result = connection.execute(
            sa.select(table).order_by(table.c.measured_at, table.c.metric)
        ).mappings()
        return [dict(row) for row in result]


def test_two_runs_of_a_partition_leave_both_runs_rows(warehouse: sa.Engine) -> None:
    first = record_measurements(
        warehouse, _frame(0.05), day=DAY, shard=1, shards=4, run_id="run-a", measured_at=T0
    )
    later = T0 + dt.timedelta(hours=3)
    second = record_measurements(
        warehouse, _frame(0.31), day=DAY, shard=1, shards=4, run_id="run-b", measured_at=later
    )
    assert first == second == 2
    rows = _rows(warehouse)
    psi = [(r["run_id"], r["value"], r["status"]) for r in rows if r["metric"] == "psi"]
    assert psi == [("run-a", 0.05, "ok"), ("run-b", 0.31, "warn")]
    assert {(r["partition_date"], r["shard"], r["shards"]) for r in rows} == {(DAY, 1, 4)}
    assert [r["measured_at"] for r in rows if r["metric"] == "psi"] == [T0, later]
    agreement = [r for r in rows if r["metric"] == "pearson_r_teacher_later"]
    assert [(r["value"], r["n"], r["threshold"]) for r in agreement] == [(None, 4, 0.5)] * 2


def test_a_retried_step_replaces_only_its_own_runs_rows(warehouse: sa.Engine) -> None:
    record_measurements(warehouse, _frame(0.05), day=DAY, shard=0, shards=4, run_id="run-a")
    record_measurements(warehouse, _frame(0.07), day=DAY, shard=2, shards=4, run_id="run-c")
    record_measurements(warehouse, _frame(0.09), day=DAY, shard=0, shards=4, run_id="run-a")
    psi = {(r["run_id"], r["shard"]): r["value"] for r in _rows(warehouse) if r["metric"] == "psi"}
    assert psi == {("run-a", 0): 0.09, ("run-c", 2): 0.07}


def test_a_home_at_0006_gets_the_history_table(warehouse_url: str) -> None:
    engine = make_engine(warehouse_url)
    migrate(engine, "0006")
    assert "monitoring_measurements" not in sa.inspect(engine).get_table_names()
    migrate(engine)
    assert "monitoring_measurements" in sa.inspect(engine).get_table_names()
    engine.dispose()
