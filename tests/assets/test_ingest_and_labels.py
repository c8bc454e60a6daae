"""Layer 3: the ingest and label groups materialized over a generated warehouse with bad rows."""

import polars as pl
import pytest
import sqlalchemy as sa

from huleedu_pipelines.demo_data.generator import generate_demo_warehouse
from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.domain import SWEDISH_GRADES, cefr_from_band
from huleedu_pipelines.warehouse.tables import quarantine

N_ESSAYS = 300
BAD_ROWS = 22


@pytest.fixture
def seeded(warehouse: sa.Engine, home, as_of) -> sa.Engine:
    seed_demo_warehouse(
        warehouse,
        n_essays=N_ESSAYS,
        seed=7,
        as_of=as_of,
        bad_rows=BAD_ROWS,
        latent_truth_path=home / "truth.parquet",
    )
    return warehouse


def load_output(result, name: str) -> pl.DataFrame:
    return result.output_for_node(name)


def test_bad_rows_are_quarantined_and_good_rows_flow_on(
    seeded: sa.Engine, warehouse_url: str, materialize_groups, as_of
) -> None:
    demo = generate_demo_warehouse(N_ESSAYS, seed=7, as_of=as_of, bad_rows=BAD_ROWS)
    result = materialize_groups(warehouse_url, "ingest", "labels")
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 5 and all(check.passed for check in checks)

    with seeded.connect() as connection:
        quarantined = {
            (row.source_table, row.source_key): row.reason
            for row in connection.execute(sa.select(quarantine))
        }
    assert len(demo.bad_rows) == BAD_ROWS
    assert len({bad.kind for bad in demo.bad_rows}) >= 10
    for bad in demo.bad_rows:
        assert (bad.table, bad.source_key) in quarantined, f"{bad.kind} not quarantined"
    assert len(quarantined) == BAD_ROWS  # nothing good was quarantined

    bad_keys = {(bad.table, bad.source_key) for bad in demo.bad_rows}
    raw_essays = load_output(result, "raw_essays")
    # A duplicate id shares its key with the good essay it copies; the first one is kept.
    bad_essay_ids = {
        bad.source_key
        for bad in demo.bad_rows
        if bad.table == "essays" and bad.kind != "duplicate_essay_id"
    }
    good_essay_ids = {e["essay_id"] for e in demo.essays} - bad_essay_ids
    assert set(raw_essays["essay_id"]) == good_essay_ids

    grades = load_output(result, "swedish_grade_labels")
    expected_grades = {
        g["essay_id"]: g["grade"]
        for g in demo.teacher_grades
        if ("teacher_grades", f"{g['essay_id']}|{g['teacher_id']}") not in bad_keys
    }
    assert dict(zip(grades["essay_id"], grades["grade"], strict=True)) == expected_grades
    assert (
        grades["grade_ordinal"]
        == grades["grade"].replace_strict({g: i for i, g in enumerate(SWEDISH_GRADES)})
    ).all()

    cefr = load_output(result, "cefr_labels")
    expected_bands = {
        s["essay_id"]: float(s["band"])
        for s in demo.ielts_scores
        if ("ielts_scores", s["essay_id"]) not in bad_keys
    }
    assert dict(zip(cefr["essay_id"], cefr["ielts_band"], strict=True)) == expected_bands
    assert cefr["cefr"].to_list() == [cefr_from_band(b) for b in cefr["ielts_band"]]

    skills = load_output(result, "skill_labels")
    good_ratings = [
        r
        for r in demo.skill_ratings
        if ("skill_ratings", f"{r['essay_id']}|{r['skill']}|{r['rater_id']}") not in bad_keys
    ]
    assert skills.height == len({r["essay_id"] for r in good_ratings})
    first = good_ratings[0]
    row = skills.filter(pl.col("essay_id") == first["essay_id"])
    assert row[f"rating_{first['skill']}"][0] == first["rating"]

    comparisons = load_output(result, "cj_comparisons")
    good_pairs = [
        c
        for c in demo.cj_comparison_pairs
        if ("cj_comparison_pairs", c["comparison_id"]) not in bad_keys
    ]
    assert comparisons.height == len(good_pairs)


def test_rematerializing_quarantines_nothing_twice(
    seeded: sa.Engine, warehouse_url: str, materialize_groups
) -> None:
    materialize_groups(warehouse_url, "ingest")
    with seeded.connect() as connection:
        first = connection.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar()
    materialize_groups(warehouse_url, "ingest")
    with seeded.connect() as connection:
        second = connection.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar()
    assert first == second == BAD_ROWS


def test_a_bad_label_check_fails_and_names_the_values(
    warehouse: sa.Engine, warehouse_url: str, materialize_groups
) -> None:
    """The GX check is real: feed a label that slipped past the rules and watch it fail."""
    from huleedu_pipelines.assets.ingest_checks import check_raw_labels

    labels = pl.DataFrame(
        {
            "essay_id": ["e1", "e2"],
            "label_kind": ["ielts_band", "teacher_grade"],
            "skill": [None, None],
            "grade": [None, "G"],
            "value": [6.25, None],
            "rater_id": ["ielts", "t1"],
        },
        schema_overrides={"skill": pl.String},
    )
    result = check_raw_labels(labels)
    assert not result.passed
    assert "G" in result.metadata["failures"].value
    assert "6.25" in result.metadata["failures"].value
