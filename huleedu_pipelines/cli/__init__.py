"""The `huleedu-pipelines` console script: argument parsing and printing; the work is done by
services and by Dagster jobs run through `cli.runs`."""

from huleedu_pipelines.cli.commands import app

__all__ = ["app"]
