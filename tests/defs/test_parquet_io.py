"""The Parquet IO manager keeps each run's outputs to itself (layer 3: real runs, real files).

Two runs of the same assets that overlap must each read what they wrote: before, both wrote
`<storage>/<asset>.parquet` and the slower run read the faster run's output (a training run
validated the other run's models).
"""

import threading
from pathlib import Path

import dagster as dg
import polars as pl

from huleedu_pipelines.resources.parquet_io import RUNS_FOLDER, PolarsParquetIOManager

PAUSED = threading.Event()
RESUME = threading.Event()


class CardConfig(dg.Config):
    version: str
    pause: bool = False


@dg.asset
def model_card(config: CardConfig) -> pl.DataFrame:
    """The version a run trained."""
    return pl.DataFrame({"version": [config.version]})


@dg.asset(deps=[model_card])
def between(config: CardConfig) -> None:
    """Holds the first run after it wrote its card, until the other run has finished."""
    if config.pause:
        PAUSED.set()
        assert RESUME.wait(timeout=60), "the other run never finished"


@dg.asset(deps=[between])
def validated(model_card: pl.DataFrame) -> pl.DataFrame:
    """What this run validated: the card it loaded."""
    return model_card


ASSETS = [model_card, between, validated]


def materialize(storage: Path, version: str, pause: bool = False, **kwargs):
    config = {"version": version, "pause": pause}
    return dg.materialize(
        ASSETS,
        resources={"io_manager": PolarsParquetIOManager(base_dir=str(storage))},
        run_config={"ops": {"model_card": {"config": config}, "between": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def test_overlapping_runs_each_validate_their_own_card(tmp_path: Path) -> None:
    PAUSED.clear()
    RESUME.clear()
    results = {}
    first = threading.Thread(
        target=lambda: results.setdefault("a", materialize(tmp_path, "A", pause=True))
    )
    first.start()
    assert PAUSED.wait(timeout=60)  # run A wrote its card and waits
    results["b"] = materialize(tmp_path, "B")  # run B overwrites the latest card meanwhile
    RESUME.set()
    first.join(timeout=60)

    a, b = results["a"], results["b"]
    assert a.success and b.success
    assert a.output_for_node("validated")["version"].to_list() == ["A"]
    assert b.output_for_node("validated")["version"].to_list() == ["B"]
    # The latest card is B's (the last written); A's own copy is kept under its run id.
    assert pl.read_parquet(tmp_path / "model_card.parquet")["version"].to_list() == ["B"]
    own = tmp_path / RUNS_FOLDER / a.run_id / "model_card.parquet"
    assert pl.read_parquet(own)["version"].to_list() == ["A"]
    (event,) = [
        e
        for e in a.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("model_card")
    ]
    assert event.materialization.metadata["path"].value == str(own)


def test_an_upstream_outside_the_run_is_read_from_the_latest_file(tmp_path: Path) -> None:
    materialize(tmp_path, "A")
    materialize(tmp_path, "B")
    only_validated = dg.materialize(
        ASSETS,
        selection=[validated],
        resources={"io_manager": PolarsParquetIOManager(base_dir=str(tmp_path))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert only_validated.output_for_node("validated")["version"].to_list() == ["B"]


def test_only_the_newest_run_folders_are_kept(tmp_path: Path) -> None:
    manager = PolarsParquetIOManager(base_dir=str(tmp_path), keep_runs=2)
    run_ids = []
    for version in ("1", "2", "3", "4"):
        result = dg.materialize(
            [model_card],
            resources={"io_manager": manager},
            run_config={"ops": {"model_card": {"config": {"version": version}}}},
            instance=dg.DagsterInstance.ephemeral(),
        )
        run_ids.append(result.run_id)
    kept = {folder.name for folder in (tmp_path / RUNS_FOLDER).iterdir()}
    assert kept == set(run_ids[-2:])
    assert pl.read_parquet(tmp_path / "model_card.parquet")["version"].to_list() == ["4"]
    # The latest file is not a second copy of the run's file: one inode, two names.
    latest = (tmp_path / "model_card.parquet").stat()
    own = (tmp_path / RUNS_FOLDER / run_ids[-1] / "model_card.parquet").stat()
    assert latest.st_ino == own.st_ino
