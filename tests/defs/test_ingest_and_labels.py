"""Layer 3: the ingest and label groups materialized over a generated warehouse with bad rows."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from huleedu_pipelines.demo_data.generator import generate_demo_warehouse
from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.domain import SWEDISH_GRADES, cefr_from_band
from huleedu_pipelines.warehouse.tables import essay_attributes, essays, ielts_scores, quarantine

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


def materialization_metadata(result, name: str) -> dict:
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(name)
    )


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

    attributes = load_output(result, "essay_attributes")
    assert attributes.columns == ["essay_id", "name", "value"]
    assert attributes.rows() == sorted(
        (row["essay_id"], row["name"], row["value"]) for row in demo.essay_attributes
    )
    metadata = materialization_metadata(result, "essay_attributes")
    assert metadata["dagster/row_count"].value == len(demo.essay_attributes)
    assert metadata["attribute_names"].value == ["school"]
    assert metadata["essays_by_attribute"].value == {"school": len(demo.essay_attributes)}


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


def test_ingest_normalises_student_ids_and_quarantines_what_cannot_be_graded(
    warehouse: sa.Engine, warehouse_url: str, materialize_groups, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows the platform wrote directly: ids as they came, one label dated 2099."""
    monkeypatch.setenv("HULEEDU_MAX_ESSAY_CHARS", "200")
    now = dt.datetime.now(dt.UTC)
    past = now - dt.timedelta(days=3)
    future = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)

    def essay(essay_id: str, student_id: str | None, text: str, at: dt.datetime = past) -> dict:
        return {
            "essay_id": essay_id,
            "student_id": student_id,
            "source": "platform",
            "text": text,
            "submitted_at": at,
            "updated_at": at,
        }

    with warehouse.begin() as connection:
        connection.execute(
            sa.insert(essays),
            [
                essay("e1", "s0032", "An essay about the sea."),
                essay("e2", "s0032 ", "An essay about rivers."),
                essay("e3", "S0032", "An essay about lakes."),
                essay("e4", "S0033", "An essay about hills."),
                essay("long", "s1", "word " * 41),
                essay("emoji", "s1", "\U0001f600\U0001f600\u200b"),
                essay("later", "s1", "An essay from the future.", future),
            ],
        )
        connection.execute(
            sa.insert(ielts_scores),
            [
                {"essay_id": "e1", "band": 6.0, "scored_at": past},
                {"essay_id": "e2", "band": 7.0, "scored_at": past + dt.timedelta(hours=1)},
                {"essay_id": "e3", "band": 5.0, "scored_at": future},
                {"essay_id": "e4", "band": 5.5, "scored_at": now + dt.timedelta(seconds=30)},
            ],
        )
    result = materialize_groups(warehouse_url, "ingest")
    assert result.success

    raw = load_output(result, "raw_essays")
    assert dict(zip(raw["essay_id"], raw["student_id"], strict=True)) == {
        "e1": "s0032",
        "e2": "s0032",
        "e3": "s0032",
        "e4": "s0033",
    }
    labels = load_output(result, "raw_labels")
    assert sorted(labels["essay_id"]) == ["e1", "e2", "e4"]
    watermark = next(
        event.materialization.metadata["label_watermark"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("raw_labels")
    )
    assert dt.datetime.fromisoformat(watermark) < now + dt.timedelta(minutes=5)
    with warehouse.connect() as connection:
        rules = {
            (row.source_table, row.source_key): row.reason.split(":", 1)[0]
            for row in connection.execute(sa.select(quarantine))
        }
    assert rules == {
        ("essays", "long"): "text_too_long",
        ("essays", "emoji"): "no_letters",
        ("essays", "later"): "timestamp_in_future",
        ("ielts_scores", "e3"): "timestamp_in_future",
    }


def test_essay_attributes_snapshot_quarantines_rows_that_break_the_import_rules(
    warehouse: sa.Engine, warehouse_url: str, materialize_groups
) -> None:
    """Rows a service wrote directly are judged by the rules `import-csv` applies."""
    with warehouse.begin() as connection:
        connection.execute(
            sa.insert(essay_attributes),
            [
                {"essay_id": "e1", "name": "gender", "value": "Female"},
                {"essay_id": "e1", "name": "school", "value": "Ekskolan"},
                {"essay_id": "e2", "name": "gender", "value": "Male"},
                {"essay_id": "e2", "name": "Home Language", "value": "sv"},
                {"essay_id": "e3", "name": "source", "value": "school"},
                {"essay_id": "e3", "name": "gender", "value": "  "},
            ],
        )
    result = materialize_groups(warehouse_url, "ingest")
    assert result.success
    assert load_output(result, "essay_attributes").rows() == [
        ("e1", "gender", "Female"),
        ("e1", "school", "Ekskolan"),
        ("e2", "gender", "Male"),
    ]
    metadata = materialization_metadata(result, "essay_attributes")
    assert metadata["attribute_names"].value == ["gender", "school"]
    assert metadata["essays_by_attribute"].value == {"gender": 2, "school": 1}
    assert metadata["quarantined_by_rule"].value == {
        "bad_attribute_name": 2,
        "attribute_value_empty": 1,
    }
    with warehouse.connect() as connection:
        keys = connection.execute(
            sa.select(quarantine.c.source_key).where(
                quarantine.c.source_table == "essay_attributes"
            )
        ).scalars()
        assert sorted(keys) == ["e2|Home Language", "e3|gender", "e3|source"]
