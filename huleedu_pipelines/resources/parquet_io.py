"""Parquet IO manager for intermediate tables (features, labels, splits) under HULEEDU_HOME."""

from pathlib import Path

import dagster as dg
import polars as pl


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    """Stores each asset's polars DataFrame as `<base_dir>/<asset key path>.parquet`.

    Partitioned assets get one file per partition in a folder named after the asset. Writes go
    to a temporary file that is renamed into place, so a killed run never leaves half a file.
    """

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext, partition: str | None) -> Path:
        parts = list(context.asset_key.path)
        base = Path(self.base_dir).joinpath(*parts[:-1])
        if partition is None:
            return base / f"{parts[-1]}.parquet"
        return base / parts[-1] / f"{partition}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; this IO "
                "manager stores polars DataFrames"
            )
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._path(context, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".parquet.tmp")
        obj.write_parquet(temporary)
        temporary.replace(path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._path(context, partition)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: materialize {context.asset_key.to_user_string()} first"
            )
        return pl.read_parquet(path)
