"""Benchmarks that print figures, never pass/fail: `huleedu-pipelines bench ...` from a checkout
(or `python -m benchmarks ...` from the repository root). Each prints a readable table and ends
with one line of JSON."""

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Benchmarks that print figures (never pass/fail).", no_args_is_help=True)


@app.command("features")
def bench_features_command(
    essays: Annotated[int, typer.Option(help="Generated essays for text features.")] = 1000,
    embed: Annotated[int, typer.Option(help="Essays to embed (both ways).")] = 64,
) -> None:
    """Essays/s for text features and embeddings, each beside a naive baseline; the int8
    embedding runtime beside the exact one (rate ratio, min/mean cosine)."""
    from benchmarks.figures import bench_features, print_figures

    print_figures(bench_features(essays, embed))


@app.command("training")
def bench_training_command(
    essays: Annotated[int, typer.Option(help="Generated essays to train on.")] = 2000,
) -> None:
    """Wall time per model and for the training job on demo data (temporary home)."""
    from benchmarks.figures import bench_training, print_figures

    print_figures(bench_training(essays))


@app.command("inference")
def bench_inference_command(
    essays: Annotated[int, typer.Option(help="Feature rows to score.")] = 100_000,
    naive_essays: Annotated[int, typer.Option(help="Essays for the naive baseline.")] = 300,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL server to write to (a temporary database is created and dropped); "
            "default HULEEDU_TEST_POSTGRES_URL or a PostgreSQL HULEEDU_WAREHOUSE_URL."
        ),
    ] = None,
    compiled: Annotated[
        bool | None,
        typer.Option(
            "--compiled/--no-compiled",
            help="Also score with lleaves-compiled trees (the `compiled` extra); default: "
            "when lleaves is installed.",
        ),
    ] = None,
) -> None:
    """End-to-end scoring essays/s into PostgreSQL beside raw ONNX and a naive baseline;
    what explanations cost (HULEEDU_EXPLAIN_METHOD, Saabas vs TreeSHAP) and single-essay
    latency for all models."""
    from benchmarks.figures import bench_inference, print_figures

    url = _postgres_server(postgres_url)
    print_figures(bench_inference(essays, url, naive_essays=naive_essays, compiled=compiled))


def _postgres_server(postgres_url: str | None) -> str:
    """The PostgreSQL server a benchmark creates its temporary database on."""
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    url = postgres_url or settings.test_postgres_url
    if url is None and (settings.warehouse_url or "").startswith("postgresql"):
        url = settings.warehouse_url
    if url is None:
        typer.echo("error: give --postgres-url (the benchmark writes to PostgreSQL)", err=True)
        raise typer.Exit(2)
    return url


POSTGRES_OPTION_HELP = (
    "PostgreSQL server to write to (a temporary database is created and dropped); "
    "default HULEEDU_TEST_POSTGRES_URL or a PostgreSQL HULEEDU_WAREHOUSE_URL."
)


@app.command("nightly")
def bench_nightly_command(
    essays: Annotated[int, typer.Option(help="Essays in the warehouse.")] = 100_000,
    new_share: Annotated[
        float, typer.Option(min=0.0001, max=1.0, help="Share of new essays on the night.")
    ] = 0.01,
    postgres_url: Annotated[str | None, typer.Option(help=POSTGRES_OPTION_HELP)] = None,
) -> None:
    """A night's selection and scoring beside a full backfill of the same warehouse
    (wall time and essay text read), excluding embedding."""
    from benchmarks.nightly import bench_nightly, print_nightly

    print_nightly(bench_nightly(essays, _postgres_server(postgres_url), new_share=new_share))


@app.command("quality")
def bench_quality_command(
    csv: Annotated[Path, typer.Argument(help="CSV in the import-csv layout.")],
    source: Annotated[str, typer.Option(help="Source name stored with each essay.")] = "bench",
    repeats: Annotated[int, typer.Option(help="Repeats of the K-fold split.")] = 3,
    folds: Annotated[int, typer.Option(help="Folds per repeat (K).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the models.")] = 42,
) -> None:
    """Every model the CSV's labels support, by repeated grouped CV, beside baselines."""
    from benchmarks.quality import bench_quality, print_quality

    if not csv.is_file():
        typer.echo(f"error: {csv} is not a file", err=True)
        raise typer.Exit(2)
    print_quality(bench_quality(csv, source=source, repeats=repeats, n_folds=folds, seed=seed))


@app.command("serving")
def bench_serving_command(
    duration: Annotated[
        float, typer.Option(min=1, help="Seconds of load per phase (four phases).")
    ] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Client threads sending at once.")] = 2,
    essays: Annotated[
        int,
        typer.Option(
            min=2 * 50 + 1, help="Generated essays: the cold phases' supply of new texts."
        ),
    ] = 1500,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the generated texts (default: from the clock).")
    ] = None,
) -> None:
    """Latency and throughput of the scoring API on localhost: single essays and batches of 50,
    cold and cached, against a server it starts on the current home's champions."""
    from benchmarks.serving import BenchError, bench_serving, print_serving

    try:
        figures = bench_serving(duration, concurrency, essays, seed=seed)
    except BenchError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    print_serving(figures)
