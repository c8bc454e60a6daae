"""The command line as a user runs it (Typer's runner, in-process, on an empty home)."""

import csv
import datetime as dt
import json

import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from huleedu_pipelines.cli import app
from huleedu_pipelines.demo_data.generator import generate_demo_warehouse
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.tables import INPUT_TABLES

runner = CliRunner()


def dump(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    with engine.connect() as connection:
        return {
            table.name: sorted(
                connection.execute(sa.select(table)).all(), key=lambda row: tuple(map(str, row))
            )
            for table in INPUT_TABLES
        }


def test_seed_demo_is_deterministic_for_a_seed_and_date(home, tmp_path, monkeypatch) -> None:
    urls = []
    for attempt in ("a", "b"):
        url = f"sqlite:///{tmp_path / attempt / 'warehouse.db'}"
        monkeypatch.setenv("HULEEDU_WAREHOUSE_URL", url)
        args = ["seed-demo", "--essays", "500", "--seed", "7", "--as-of", "2026-10-01"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "essays 500" in result.output
        urls.append(url)
    first, second = dump(urls[0]), dump(urls[1])
    assert first == second
    assert len(first["essays"]) == 500
    again = runner.invoke(app, args)  # seeding the same home twice adds nothing
    assert "essays 0" in again.output
    assert dump(urls[1]) == second


@pytest.mark.slow
def test_ielts_csv_into_an_empty_home_then_train(home, tmp_path, monkeypatch) -> None:
    """Band and CEFR models train from an IELTS import; grade and skill models are skipped."""
    demo = generate_demo_warehouse(500, seed=9, as_of=dt.date(2026, 11, 1))
    prompts = {p["prompt_id"]: p["text"] for p in demo.prompts}
    bands = {row["essay_id"]: row["band"] for row in demo.ielts_scores}
    path = tmp_path / "ielts_task2.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "essay", "evaluation", "band"])
        for essay in demo.essays:
            if essay["essay_id"] in bands:
                band = bands[essay["essay_id"]]
                text = "<4" if band < 4 else f"{band:g}\n"
                writer.writerow(
                    [prompts[essay["prompt_id"]], essay["text"], "Examiner note.", text]
                )
    imported = runner.invoke(app, ["import-csv", str(path), "--source", "ielts"])
    assert imported.exit_code == 0, imported.output
    assert f"{len(bands)} essays" in imported.output

    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 0, trained.output
    assert "skipped huleedu-grade-sv: 0 essays carry `grade_ordinal`" in trained.output
    assert "skipped huleedu-skill-grammar" in trained.output

    from huleedu_pipelines.registry import build_registry

    settings = get_settings()
    registry = build_registry(settings)
    names = {model["name"] for model in registry.list_models()}
    assert names == {"huleedu-cefr", "huleedu-ielts-band"}
    cards = pl.read_parquet(settings.storage_dir / "ielts_band_model.parquet")
    assert cards["status"].to_list() == ["registered"]

    # --json: one object on stdout, whatever the logs say on stderr.
    listing = runner.invoke(app, ["registry", "list", "--json"])
    assert listing.exit_code == 0, listing.output
    models = {model["name"]: model["versions"] for model in json.loads(listing.stdout)}
    assert set(models) == {"huleedu-cefr", "huleedu-ielts-band"}
    band = models["huleedu-ielts-band"][0]
    assert band["version"] == "1" and "champion" in band["aliases"]
    assert band["gate_verdict"] == "passed" and 0 < band["metrics"]["mae"] < 3
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    scored = runner.invoke(app, ["score", "--backfill", "--date", day, "--json"])
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["success"] and summary["scoring"]["essays_scored"] == len(bands)
    assert summary["rows_by_asset"]["essay_grade_predictions"] == len(bands)
