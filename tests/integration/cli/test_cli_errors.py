"""Mistakes a user can make at the command line get one line and a usage exit code (2),
never a traceback, and read commands never create the home they were pointed at."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from huleedu_pipelines.cli.commands import EXIT_USAGE, app
from huleedu_pipelines.modeling.names import GRADE_MODEL
from huleedu_pipelines.registry import MlflowRegistry, build_registry
from huleedu_pipelines.settings import get_settings

runner = CliRunner()

REGISTRY_COMMANDS = [
    ["registry", "list"],
    ["registry", "compare", GRADE_MODEL, "1", "2"],
    ["registry", "promote", GRADE_MODEL, "1"],
    ["registry", "rollback", GRADE_MODEL],
]


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("command", REGISTRY_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_registry_commands_on_a_missing_home_say_so_and_create_nothing(
    home: Path, command: list[str]
) -> None:
    assert not home.exists()
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_USAGE
    line = one_error_line(result)
    assert f"{home.resolve()} does not exist" in line
    assert "huleedu-pipelines train" in line
    assert not home.exists()


def test_registry_list_in_a_home_without_a_store_creates_no_store(home: Path) -> None:
    home.mkdir()
    (home / "warehouse.db").touch()
    result = runner.invoke(app, ["registry", "list"])
    assert result.exit_code == EXIT_USAGE
    assert "mlflow.db does not exist" in one_error_line(result)
    assert files_under(home) == [home / "warehouse.db"]


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One created, empty MLflow database for the module (creating one takes seconds)."""
    database = tmp_path_factory.mktemp("store") / "mlflow.db"
    assert MlflowRegistry(tracking_uri=f"sqlite:///{database}").list_models() == []
    return database


@pytest.fixture
def empty_store(home: Path, migrated_store: Path) -> MlflowRegistry:
    """A home holding a copy of the empty store."""
    home.mkdir()
    shutil.copyfile(migrated_store, home / "mlflow.db")
    return build_registry(get_settings())


@pytest.mark.parametrize(
    "command",
    [
        ["registry", "promote", "huleedu-grade", "1"],
        ["registry", "compare", "huleedu-grade-sv' OR name LIKE '%", "1", "2"],
        ["registry", "rollback", "grade"],
    ],
    ids=["promote", "compare-quote", "rollback"],
)
def test_an_unknown_model_name_is_one_line(empty_store, command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_USAGE
    line = one_error_line(result)
    assert "is not a HuleEdu model" in line and GRADE_MODEL in line


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["registry", "promote", GRADE_MODEL, "7"], f"{GRADE_MODEL} version 7 is not registered"),
        (["registry", "compare", GRADE_MODEL, "1", "2"], f"{GRADE_MODEL} version 1 is not"),
        (["registry", "promote", GRADE_MODEL, "v3"], "version must be a number such as 3"),
    ],
    ids=["promote-missing", "compare-missing", "promote-not-a-number"],
)
def test_an_unknown_version_is_one_line(empty_store, command: list[str], expected: str) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_USAGE
    assert expected in one_error_line(result)
