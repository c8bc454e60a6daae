"""`--json` through a model's life from the command line: `demo`, a second `train`, then
`registry list`, `compare`, `promote` and `rollback` on a small generated home. Each prints one
JSON object on stdout (the run's logs go to stderr) with the values the store then holds."""

import json
import math
from pathlib import Path

import pytest
from support import RELAXED_GATES, isolate_environment
from typer.testing import CliRunner

from huleedu_pipelines.cli import app
from huleedu_pipelines.modeling.names import ALL_MODELS, CHAMPION, GRADE_MODEL
from huleedu_pipelines.registry import build_registry
from huleedu_pipelines.settings import get_settings

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, shared_feature_cache: Path):
    """`demo --json` (versions 1, promoted, every essay scored), then `train --json`
    (versions 2) on the essays `seed_small_trainable_home` generates, so the feature cache is
    shared with the other training tests."""
    root = tmp_path_factory.mktemp("json_lifecycle")
    with pytest.MonkeyPatch.context() as patch:
        isolate_environment(patch, root / "home", shared_feature_cache)
        for name, value in RELAXED_GATES.items():
            patch.setenv(name, value)
        args = ["--essays", "420", "--seed", "5", "--as-of", "2026-11-01", "--bad-rows", "0"]
        demo = runner.invoke(app, ["demo", *args, "--json"])
        assert demo.exit_code == 0, demo.stderr[-3000:]
        second = runner.invoke(app, ["train", "--json"])
        assert second.exit_code == 0, second.stderr[-3000:]
        yield json.loads(demo.stdout), json.loads(second.stdout)


def invoke_json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)


def test_demo_json_has_seeding_training_and_scoring(lifecycle) -> None:
    demo, second = lifecycle
    assert demo["seeded"]["inserted"]["essays"] == 420
    assert demo["training"]["success"] and demo["training"]["failures"] == []
    assert demo["training"]["rows_by_asset"]["raw_essays"] == 420
    assert demo["training"]["checks"] and all(demo["training"]["checks"].values())
    scoring = demo["scoring"]
    assert scoring["success"]
    scored = scoring["scoring"]["essays_scored"]
    assert scored > 0 and scoring["rows_by_asset"]["essay_grade_predictions"] == scored
    assert second["success"] and not second["blocked_by_gates"]
    assert second["rows_by_asset"]["grade_model"] == 1  # one model card
    assert second["rows_by_asset"]["skill_models"] == 7


def test_registry_list_json_and_table(lifecycle) -> None:
    listing = {model["name"]: model["versions"] for model in invoke_json(["registry", "list"])}
    assert set(listing) == set(ALL_MODELS)
    for name, versions in listing.items():
        assert sorted(v["version"] for v in versions) == ["1", "2"], name
        assert sum(CHAMPION in v["aliases"] for v in versions) == 1, name
        assert all(v["gate_verdict"] == "passed" for v in versions), name
    grade = {v["version"]: v for v in listing[GRADE_MODEL]}
    assert 0.5 <= grade["2"]["metrics"]["qwk"] <= 1

    table = runner.invoke(app, ["registry", "list"])
    assert table.exit_code == 0 and "\x1b[" not in table.stdout  # no colour when piped
    lines = table.stdout.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["model"])
    assert header[:5] == ["model", "version", "aliases", "gates", "qwk"]
    first = next(i for i, line in enumerate(lines) if line.split()[:1] == [GRADE_MODEL])
    rows = [lines[first].split()[1:], lines[first + 1].split()]  # the model named once
    assert sorted(row[0] for row in rows) == ["v1", "v2"]
    champion = next(v["version"] for v in listing[GRADE_MODEL] if CHAMPION in v["aliases"])
    aliases = next(row[1].split(",") for row in rows if row[0] == f"v{champion}")
    assert CHAMPION in aliases
    assert all(row[2] == "passed" for row in rows)


def test_compare_json_puts_both_versions_side_by_side(lifecycle) -> None:
    compared = invoke_json(["registry", "compare", GRADE_MODEL, "1", "2"])
    assert compared["model"] == GRADE_MODEL
    assert [v["version"] for v in compared["versions"]] == ["1", "2"]
    assert all(v["passed"] and Path(v["report"]).is_file() for v in compared["versions"])
    assert Path(compared["comparison"]).is_file()
    qwk = compared["metrics"]["qwk"]
    assert math.isclose(qwk["delta"], qwk["second"] - qwk["first"])
    assert 0.5 <= qwk["first"] <= 1

    table = runner.invoke(app, ["registry", "compare", GRADE_MODEL, "1", "2"])
    assert table.exit_code == 0, table.output[-2000:]
    row = next(line.split() for line in table.stdout.splitlines() if line.split()[:1] == ["qwk"])
    assert [float(cell) for cell in row[1:3]] == pytest.approx(
        [qwk["first"], qwk["second"]], abs=1e-4
    )


def test_promote_then_rollback_json(lifecycle) -> None:
    registry = build_registry(get_settings())
    champion = registry.get_version(GRADE_MODEL, CHAMPION).version
    other = "1" if champion == "2" else "2"

    promoted = invoke_json(["registry", "promote", GRADE_MODEL, other])
    assert promoted["promoted"] and promoted["action"] == "promoted"
    assert (promoted["champion_version"], promoted["previous_version"]) == (other, champion)
    assert promoted["validation"]["passed"] and promoted["validation"]["gates"]
    assert registry.get_version(GRADE_MODEL, CHAMPION).version == other

    again = invoke_json(["registry", "promote", GRADE_MODEL, other])
    assert not again["promoted"] and again["champion_version"] == other

    rolled = invoke_json(["registry", "rollback", GRADE_MODEL])
    assert (rolled["champion_version"], rolled["previous_version"]) == (champion, other)
    assert rolled["reason"].startswith("rollback")
    assert registry.get_version(GRADE_MODEL, CHAMPION).version == champion


def test_an_unregistered_version_is_one_line(lifecycle) -> None:
    result = runner.invoke(app, ["registry", "promote", GRADE_MODEL, "9", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {GRADE_MODEL} version 9 is not registered")
