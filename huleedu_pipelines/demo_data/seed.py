"""Write a generated demo warehouse into a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from huleedu_pipelines.demo_data.generator import generate_demo_warehouse, write_latent_truth
from huleedu_pipelines.warehouse.attributes import load_attributes
from huleedu_pipelines.warehouse.engine import migrate
from huleedu_pipelines.warehouse.loading import LoadResult, load_tables

LOAD_ORDER = (
    "prompts",
    "essays",
    "teacher_grades",
    "ielts_scores",
    "skill_ratings",
    "cj_processed_essays",
    "cj_comparison_pairs",
    "second_ratings",
)


@dataclass(frozen=True)
class SeedSummary:
    results: dict[str, LoadResult]
    latent_truth_path: Path
    bad_rows_injected: int

    @property
    def inserted(self) -> dict[str, int]:
        return {name: result.inserted for name, result in self.results.items()}

    @property
    def quarantined_at_load(self) -> int:
        return sum(len(result.quarantined) for result in self.results.values())


def seed_demo_warehouse(
    engine: sa.Engine,
    *,
    n_essays: int,
    seed: int,
    as_of: dt.date,
    bad_rows: int,
    latent_truth_path: Path,
) -> SeedSummary:
    """Generate the demo warehouse and load it in one transaction; seeding twice adds nothing.

    The latent truth (abilities the text and labels were drawn from) goes to a side file so
    tests and reports can compute the best agreement any model could reach.
    """
    demo = generate_demo_warehouse(n_essays=n_essays, seed=seed, as_of=as_of, bad_rows=bad_rows)
    migrate(engine)
    detected_at = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as connection:
        results = load_tables(
            connection,
            {name: getattr(demo, name) for name in LOAD_ORDER},
            run_id=None,
            detected_at=detected_at,
        )
        results["essay_attributes"] = load_attributes(
            connection, demo.essay_attributes, detected_at=detected_at
        )
    latent_truth_path.parent.mkdir(parents=True, exist_ok=True)
    write_latent_truth(demo, latent_truth_path)
    return SeedSummary(results, latent_truth_path, len(demo.bad_rows))
