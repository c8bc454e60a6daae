"""The `huleedu-pipelines` command line (DESIGN.md §8)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="HuleEdu essay-assessment pipelines: demo data, imports, training and scoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


EssaysOption = Annotated[int, typer.Option("--essays", help="Number of essays to generate.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed of the generator.")]
AsOfOption = Annotated[
    dt.datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Last day of the 90 generated days."),
]
BadRowsOption = Annotated[int, typer.Option("--bad-rows", help="Malformed rows to inject.")]


def _seed(n_essays: int, seed: int, as_of: dt.date, bad_rows: int) -> None:
    from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.engine import cached_engine

    settings = get_settings()
    summary = seed_demo_warehouse(
        cached_engine(settings.resolved_warehouse_url),
        n_essays=n_essays,
        seed=seed,
        as_of=as_of,
        bad_rows=bad_rows,
        latent_truth_path=settings.home / "demo_latent_truth.parquet",
    )
    inserted = ", ".join(f"{name} {count}" for name, count in summary.inserted.items())
    typer.echo(f"seeded {settings.resolved_warehouse_url}: {inserted}")
    typer.echo(
        f"bad rows injected: {summary.bad_rows_injected} "
        f"({summary.quarantined_at_load} refused at load, the rest are caught by ingest)"
    )


@app.command("seed-demo")
def seed_demo(
    essays: EssaysOption = 2000,
    seed: SeedOption = 7,
    as_of: AsOfOption = None,
    bad_rows: BadRowsOption = 0,
) -> None:
    """Fill the warehouse with a deterministic synthetic school (essays, labels, CJ batches)."""
    _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows)


@app.command("import-csv")
def import_csv_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    source: Annotated[str, typer.Option("--source", help="Source name stored with each essay.")],
) -> None:
    """Import essays and labels from a CSV (required column `essay`; IELTS layout accepted)."""
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.csv_import import CsvLayoutError, import_csv
    from huleedu_pipelines.warehouse.engine import cached_engine

    settings = get_settings()
    try:
        summary = import_csv(cached_engine(settings.resolved_warehouse_url), path, source)
    except CsvLayoutError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(summary.describe())
    for entry in summary.quarantined[:20]:
        typer.echo(f"  quarantined {entry.source_table} {entry.source_key}: {entry.reason}")


@app.command()
def demo(
    essays: EssaysOption = 2000,
    seed: SeedOption = 7,
    as_of: AsOfOption = None,
    bad_rows: BadRowsOption = 20,
) -> None:
    """Seed the demo warehouse and materialize every asset in-process (no servers needed)."""
    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.runner import dagster_instance, run_job
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows)
    summary = run_job(
        build_definitions(settings), "training_job", dagster_instance(settings), settings
    )
    typer.echo(summary.render())
    typer.echo(
        f"\nDagster UI: DAGSTER_HOME={settings.resolved_dagster_home} "
        ".venv/bin/dagster dev -w workspace.yaml"
    )
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def train() -> None:
    """Run the training job in-process on the configured instance (no UI needed)."""
    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.runner import dagster_instance, run_job
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    summary = run_job(
        build_definitions(settings), "training_job", dagster_instance(settings), settings
    )
    typer.echo(summary.render())
    if not summary.success:
        raise typer.Exit(1)


bench_app = typer.Typer(help="Benchmarks that print figures (never pass/fail).")
app.add_typer(bench_app, name="bench")


@bench_app.command("features")
def bench_features_command(
    essays: Annotated[int, typer.Option(help="Generated essays for text features.")] = 1000,
    embed: Annotated[int, typer.Option(help="Essays to embed (both ways).")] = 64,
) -> None:
    """Essays/s for text features and embeddings, each beside a naive baseline."""
    from huleedu_pipelines.bench import bench_features, print_figures

    print_figures(bench_features(essays, embed))


if __name__ == "__main__":
    app()
