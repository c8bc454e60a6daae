"""What the command line prints, without training: `--json` objects, tables that stay plain
text when piped, one-line usage errors with exit code 2, and progress bars drawn only on a
terminal."""

import io
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from huleedu_pipelines import progress
from huleedu_pipelines.cli import app
from huleedu_pipelines.cli.commands import EXIT_USAGE
from huleedu_pipelines.cli.runs import RunSummary
from huleedu_pipelines.modeling.names import ALL_MODELS, GRADE_MODEL
from huleedu_pipelines.registry import MlflowRegistry
from huleedu_pipelines.resources.features import EmbedderResource
from huleedu_pipelines.resources.training import ModelsTrainedBar, TrainingResource

runner = CliRunner()


def error_line(result) -> str:
    """The single line a usage mistake prints: on stderr, nothing on stdout, exit code 2."""
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


# -- --json ---------------------------------------------------------------------------------


def test_seed_demo_json_is_one_object_with_the_counts(home: Path) -> None:
    args = ["seed-demo", "--essays", "60", "--as-of", "2026-10-01", "--bad-rows", "0", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    seeded = json.loads(result.stdout)
    assert seeded["inserted"]["essays"] == 60
    assert seeded["as_of"] == "2026-10-01" and seeded["seed"] == 7
    assert seeded["bad_rows_injected"] == 0 and seeded["quarantined_at_load"] == 0
    assert seeded["warehouse"].endswith("warehouse.db")
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["inserted"]["essays"] == 0  # seeding the same home twice adds nothing


def test_import_csv_json_counts_what_was_imported(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "school.csv"
    path.write_text("essay_id,essay,band\na1,First essay.,6\na2,Second essay.,11\n")
    result = runner.invoke(app, ["import-csv", str(path), "--source", "school", "--json"])
    assert result.exit_code == 0, result.output
    imported = json.loads(result.stdout)
    assert imported["rows_read"] == 2 and imported["essays_imported"] == 2
    assert imported["labels_imported"] == 1  # band 11 is out of range: quarantined
    assert [entry["rule"] for entry in imported["quarantined"]] == ["band_out_of_range"]
    assert imported["source"] == "school" and imported["path"] == str(path)


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("output_store") / "mlflow.db"
    assert MlflowRegistry(tracking_uri=f"sqlite:///{database}").list_models() == []
    return database


@pytest.fixture
def empty_store(home: Path, migrated_store: Path) -> Path:
    home.mkdir()
    shutil.copyfile(migrated_store, home / "mlflow.db")
    return home


def test_registry_list_of_an_empty_store(empty_store: Path) -> None:
    listed = runner.invoke(app, ["registry", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []
    text = runner.invoke(app, ["registry", "list"])
    assert text.stdout.strip() == "no registered models; run `huleedu-pipelines train` first"


# -- one-line errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["seed-demo", "--as-of", "2026-13-01"], "Invalid value for '--as-of'"),
        (["score", "--date", "yesterday"], "Invalid value for '--date'"),
        (["score", "--date", "2999-01-01"], "2999-01-01 has not ended yet"),
        (["trian"], "No such command 'trian'"),
        (["import-csv", "--source", "x"], "Missing argument 'path'"),
        (["registry", "compare", GRADE_MODEL, "1"], "Missing argument 'second'"),
        (["train", "--jsn"], "No such option: --jsn"),
        (["serve", "--log-level", "verbose"], "unknown log level 'verbose'"),
        (["serve", "--port", "70000"], "Invalid value for '--port'"),
    ],
    ids=[
        "as-of",
        "date",
        "future-day",
        "command",
        "argument",
        "compare-arity",
        "option",
        "log-level",
        "port",
    ],
)
def test_usage_mistakes_are_one_line(home: Path, command: list[str], expected: str) -> None:
    assert expected in error_line(runner.invoke(app, command))


def test_a_parse_error_names_the_help_to_read(home: Path) -> None:
    args = ["registry", "compare", GRADE_MODEL, "1"]
    line = error_line(runner.invoke(app, args, prog_name="huleedu-pipelines"))
    assert line.endswith("(see `huleedu-pipelines registry compare --help`)")


def test_a_missing_or_unreadable_csv_is_one_line(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    line = error_line(runner.invoke(app, ["import-csv", str(missing), "--source", "x"]))
    assert f"cannot read {missing}" in line
    line = error_line(runner.invoke(app, ["import-csv", str(tmp_path), "--source", "x"]))
    assert f"cannot read {tmp_path}" in line


def test_rollback_with_nothing_to_roll_back_is_one_line(empty_store: Path) -> None:
    line = error_line(runner.invoke(app, ["registry", "rollback", GRADE_MODEL, "--json"]))
    assert line == f"error: {GRADE_MODEL} has no recorded champion to roll back"


def test_promote_force_without_reason_is_one_line(empty_store: Path) -> None:
    line = error_line(runner.invoke(app, ["registry", "promote", GRADE_MODEL, "1", "--force"]))
    assert "--force needs --reason" in line


# -- tables -----------------------------------------------------------------------------------


def test_run_summary_tables_are_plain_text() -> None:
    summary = RunSummary(
        success=False,
        run_id="r1",
        rows_by_asset={"raw_essays": 1200, "essay_embeddings": 1198},
        checks={"raw_essays:check_ids": True, "raw_essays:check_text": False, "labels:x": True},
        quarantined_by_rule={"band_out_of_range": 3},
        scoring={"essays_scored": 0},
    )
    text = summary.render()
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0] == "run r1: FAILED"
    assert any(line.split() == ["raw_essays", "1200"] for line in lines)
    assert any(line.split() == ["essay_embeddings", "1198"] for line in lines)
    assert "checks: 2 passed, 1 failed" in lines
    assert any(line.split() == ["raw_essays", "1", "1"] for line in lines)  # passed, failed
    assert "  FAILED raw_essays:check_text" in lines
    assert any(line.split() == ["band_out_of_range", "3"] for line in lines)
    assert "scoring: essays_scored 0" in lines


# -- progress bars ----------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_and_nothing_elsewhere() -> None:
    terminal = FakeTerminal()
    with progress.terminal_progress(terminal) as display:
        assert display is progress.active_display()
        bar = progress.progress_bar("embedding essay chunks")
        for done in (32, 64, 70):
            bar(done, 70)
    drawn = terminal.getvalue()
    assert "embedding essay chunks" in drawn and "70/70" in drawn and "━" in drawn
    assert progress.active_display() is None and progress.progress_bar("x") is None

    pipe = io.StringIO()
    with progress.terminal_progress(pipe) as display:
        assert display is None and progress.progress_bar("embedding essay chunks") is None
    assert pipe.getvalue() == ""


def test_the_embedder_draws_its_bar_only_inside_a_terminal_display() -> None:
    resource = EmbedderResource(
        num_threads=1, runtime="torch", min_cosine=0.98, model_cache_dir="unused"
    )
    assert resource.embedder().display is None
    terminal = FakeTerminal()
    with progress.terminal_progress(terminal):
        display = resource.embedder().display
        assert display is not None
        display(10, 10)
    assert "embedding essay chunks" in terminal.getvalue()


def test_the_models_bar_follows_a_real_runs_events() -> None:
    """A small job shaped like the training group: the bar counts each model its step logs as
    registered or skipped, then every model of the family when the asset materializes."""

    @dg.asset(name="grade_model")
    def grade_model(context: dg.AssetExecutionContext, training: TrainingResource) -> int:
        context.log.info(f"training {GRADE_MODEL} on 10 essays")
        context.log.info(f"registered {GRADE_MODEL} version 1 as challenger")
        return 1

    @dg.asset(name="skill_models")
    def skill_models(context: dg.AssetExecutionContext, training: TrainingResource) -> int:
        context.log.info("skipped huleedu-skill-grammar: 3 essays carry `grammar`")
        return 7

    reported: list[tuple[int, int]] = []
    terminal = FakeTerminal()
    resource = TrainingResource(
        seed=1,
        n_jobs=1,
        min_labels_to_train=1,
        high_skill_threshold=3.5,
        models_dir="unused",
        review_target_share=0.1,
    )
    with progress.terminal_progress(terminal) as display:
        assert display is not None
        draw_bar = display.bar

        def recording_bar(description: str) -> progress.ProgressCallback:
            draw = draw_bar(description)

            def report(done: int, total: int) -> None:
                reported.append((done, total))
                draw(done, total)

            return report

        display.bar = recording_bar  # type: ignore[method-assign]
        result = dg.materialize(
            [grade_model, skill_models],
            resources={"training": resource},
            instance=dg.DagsterInstance.ephemeral(),
        )
    assert result.success
    total = len(ALL_MODELS)
    assert reported[0] == (0, total)
    assert (1, total) in reported  # the grade model, from its log line
    assert (2, total) in reported  # one skill model skipped, before its asset materialized
    assert reported[-1] == (8, total)  # grade + the seven skills
    assert "training models" in terminal.getvalue() and f"8/{total}" in terminal.getvalue()


def test_the_models_bar_ignores_other_steps() -> None:
    reported: list[tuple[int, int]] = []
    bar = ModelsTrainedBar(lambda done, total: reported.append((done, total)))
    entry = dg.EventLogEntry(
        error_info=None,
        level=20,
        user_message=f"registered {GRADE_MODEL} version 1 as challenger",
        run_id="r",
        timestamp=0.0,
        step_key="feature_table",
    )
    bar(entry)
    assert reported == []
