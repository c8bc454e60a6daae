"""Parquet IO manager for intermediate tables (features, labels, splits) under HULEEDU_HOME."""

import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl

RUNS_FOLDER = "runs"


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    """Stores each asset's polars DataFrame as Parquet under `base_dir`.

    An unpartitioned asset is written to `<base_dir>/runs/<run_id>/<asset key path>.parquet`
    (the run's own copy) and then becomes `<base_dir>/<asset key path>.parquet` (the latest,
    which commands such as `registry promote` read). A step reads an input from the copy of the
    run that produced it when that run materialized it (this run, or the parent of a
    re-execution), else from the latest file. So two overlapping runs never read each other's
    outputs: a training run validates only the models it trained.

    Partitioned assets get one file per partition in a folder named after the asset; the
    partition is their scope. A run over a range of partitions (a single-run backfill) writes
    and reads one file for the range, `<first key>...<last key>.parquet`. Every write goes to
    a temporary file that is renamed into place, so a killed run never leaves half a file. The
    run folders of the newest `keep_runs` runs are kept; older ones are deleted when a run
    writes its first output.
    """

    base_dir: str
    keep_runs: int = 20

    def _latest_path(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        parts = list(asset_key.path)
        base = Path(self.base_dir).joinpath(*parts[:-1])
        if partition is None:
            return base / f"{parts[-1]}.parquet"
        return base / parts[-1] / f"{partition}.parquet"

    def _run_path(self, asset_key: dg.AssetKey, run_id: str) -> Path:
        return Path(self.base_dir, RUNS_FOLDER, run_id).joinpath(*asset_key.path[:-1]) / (
            f"{asset_key.path[-1]}.parquet"
        )

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; this IO "
                "manager stores polars DataFrames"
            )
        if context.has_asset_partitions:
            path = self._latest_path(context.asset_key, _partition_name(context))
            _write_atomically(obj, path)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
            return
        run_path = self._run_path(context.asset_key, context.run_id)
        if not Path(self.base_dir, RUNS_FOLDER, context.run_id).exists():
            self._prune_runs(keep=context.run_id)
        _write_atomically(obj, run_path)
        latest = self._latest_path(context.asset_key, None)
        _publish(run_path, latest, context.run_id)
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(run_path)),
                "latest_path": dg.MetadataValue.path(str(latest)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        if context.has_asset_partitions:
            path = self._latest_path(context.asset_key, _partition_name(context))
        else:
            producer = _producing_run_id(context)
            run_path = self._run_path(context.asset_key, producer) if producer else None
            if run_path is not None and run_path.exists():
                path = run_path
            else:
                path = self._latest_path(context.asset_key, None)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: materialize {context.asset_key.to_user_string()} first"
            )
        return pl.read_parquet(path)

    def _prune_runs(self, keep: str) -> None:
        """Delete all but the newest `keep_runs` run folders (never the folder of `keep`)."""
        root = Path(self.base_dir, RUNS_FOLDER)
        if not root.is_dir():
            return
        folders = sorted(
            (folder for folder in root.iterdir() if folder.is_dir() and folder.name != keep),
            key=lambda folder: folder.stat().st_mtime,
            reverse=True,
        )
        for folder in folders[max(self.keep_runs - 1, 0) :]:
            shutil.rmtree(folder, ignore_errors=True)


def _partition_name(context: dg.OutputContext | dg.InputContext) -> str:
    """The partition key, or `<first>...<last>` when the step covers a range of partitions."""
    keys = context.asset_partition_keys
    if len(keys) == 1:
        return keys[0]
    covered = context.asset_partition_key_range
    return f"{covered.start}...{covered.end}"


def _producing_run_id(context: dg.InputContext) -> str | None:
    """The run that materialized the upstream output in this execution plan, if any.

    Dagster gives the parent run's id for a step skipped in a re-execution. An upstream asset
    outside the job's selection has no producing run here (None).
    """
    upstream = context.upstream_output
    if upstream is None:
        return None
    try:
        return upstream.run_id
    except dg.DagsterInvariantViolationError:
        return None


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    frame.write_parquet(temporary)
    temporary.replace(path)


def _publish(source: Path, latest: Path, run_id: str) -> None:
    """Make `source` the latest file atomically: a hard link (no second copy on disk), or a
    copy where the file system has no hard links."""
    latest.parent.mkdir(parents=True, exist_ok=True)
    temporary = latest.with_name(f"{latest.name}.tmp-{run_id}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    temporary.replace(latest)
