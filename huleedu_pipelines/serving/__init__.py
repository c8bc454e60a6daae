"""The online scoring API (`huleedu-pipelines serve`): FastAPI app, hot reload of the champion
models, Prometheus metrics and JSON logs.

The work is done by `services.online_scoring` (features and rows through the nightly job's
code) and `services.scoring.load_serving_models` (verified loading); this package adds HTTP,
the reload thread and the observability. Nothing here is imported by the Dagster definitions:
`create_app` is in `serving.app`, imported only by the `serve` command.
"""
