"""In-process runs (the CLI) are recorded under the code location the workspaces load, so the
UI lists them under their job."""

from __future__ import annotations

from pathlib import Path

import yaml

from huleedu_pipelines.cli.runs import CODE_LOCATION_NAME, repository_origin

ROOT = Path(__file__).parents[2]


def test_in_process_runs_name_the_location_every_workspace_loads() -> None:
    for path, kind in (
        ("workspace.yaml", "python_module"),
        ("deploy/workspace.yaml", "grpc_server"),
    ):
        (entry,) = yaml.safe_load((ROOT / path).read_text())["load_from"]
        assert entry[kind]["location_name"] == CODE_LOCATION_NAME, path
    assert repository_origin().get_label() == f"__repository__@{CODE_LOCATION_NAME}"
