"""Deterministic synthetic warehouse for demos and tests (pure Python, no database I/O)."""

from huleedu_pipelines.demo_data.generator import (
    BAD_ROW_KINDS,
    BadRow,
    DemoWarehouse,
    generate_demo_warehouse,
    oracle_grade_qwk,
    write_latent_truth,
)

__all__ = [
    "BAD_ROW_KINDS",
    "BadRow",
    "DemoWarehouse",
    "generate_demo_warehouse",
    "oracle_grade_qwk",
    "write_latent_truth",
]
