"""`huleedu-pipelines serve`: the scoring API under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from huleedu_pipelines.cli.output import usage_error

if TYPE_CHECKING:
    from fastapi import FastAPI

    from huleedu_pipelines.settings import Settings


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind (default: HULEEDU_SERVE_HOST)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Port to listen on (default: HULEEDU_SERVE_PORT)."
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help=f"Log level: {', '.join(LOG_LEVELS)}.")
    ] = "info",
) -> None:
    """Serve the champion models over HTTP: POST /v1/score and /v1/score/batch, GET
    /v1/models, /healthz, /readyz and /metrics. The champions are reloaded in the background
    when their alias moves (checked every HULEEDU_SERVE_RELOAD_SECONDS)."""
    import logging.config
    import os

    if log_level.lower() not in LOG_LEVELS:
        usage_error(f"unknown log level {log_level!r}; choose one of {', '.join(LOG_LEVELS)}")
    import uvicorn

    # Every line on stderr is a JSON log line: no progress bars when the embedder loads.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from huleedu_pipelines.serving.app import create_app
    from huleedu_pipelines.serving.logs import log_config
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    config = log_config(log_level.upper())
    logging.config.dictConfig(config)
    app = create_app(settings)
    add_dagster_run_figures(app, settings)
    uvicorn.run(
        app,
        host=host or settings.serve_host,
        port=settings.serve_port if port is None else port,
        log_config=config,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def add_dagster_run_figures(app: FastAPI, settings: Settings) -> None:
    """Put the nightly run's Dagster-side figures (last success, duration, PSI) beside the
    warehouse ones on /metrics. Wired here because the `serving` package never imports Dagster;
    a home without a Dagster instance reports the source as failed, and the API serves on."""
    from huleedu_pipelines.jobs.run_figures import nightly_run_figures_reader
    from huleedu_pipelines.serving.batch_metrics import run_gauges

    read = nightly_run_figures_reader(settings)
    app.state.service.nightly.add_source("dagster", lambda: run_gauges(read()))
