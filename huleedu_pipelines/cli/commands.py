"""The `huleedu-pipelines` command line."""

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


EssaysOption = Annotated[
    int | None,
    typer.Option("--essays", help="Number of essays to generate [default: HULEEDU_DEMO_ESSAYS]."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed of the generator.")]
AsOfOption = Annotated[
    dt.datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Last day of the 90 generated days."),
]
BadRowsOption = Annotated[int, typer.Option("--bad-rows", help="Malformed rows to inject.")]


def _seed(n_essays: int | None, seed: int, as_of: dt.date, bad_rows: int) -> None:
    from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
    from huleedu_pipelines.settings import get_settings
    from huleedu_pipelines.warehouse.engine import cached_engine

    settings = get_settings()
    summary = seed_demo_warehouse(
        cached_engine(settings.resolved_warehouse_url),
        n_essays=settings.demo_essays if n_essays is None else n_essays,
        seed=seed,
        as_of=as_of,
        bad_rows=bad_rows,
        latent_truth_path=settings.demo_latent_truth_path,
    )
    inserted = ", ".join(f"{name} {count}" for name, count in summary.inserted.items())
    typer.echo(f"seeded {settings.resolved_warehouse_url}: {inserted}")
    typer.echo(
        f"bad rows injected: {summary.bad_rows_injected} "
        f"({summary.quarantined_at_load} refused at load, the rest are caught by ingest)"
    )


@app.command("seed-demo")
def seed_demo(
    essays: EssaysOption = None,
    seed: SeedOption = 7,
    as_of: AsOfOption = None,
    bad_rows: BadRowsOption = 0,
) -> None:
    """Fill the warehouse with a deterministic synthetic school (essays, labels, CJ batches)."""
    _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows)


@app.command("import-csv")
def import_csv_command(
    path: Annotated[Path, typer.Argument(help="CSV file.")],  # unreadable: one error line
    source: Annotated[str, typer.Option("--source", help="Source name stored with each essay.")],
) -> None:
    """Import essays and labels from a CSV (required column `essay`; IELTS layout accepted;
    `group_<name>` columns become essay attributes for fairness analysis; `<label>_rater2`
    columns, e.g. `grade_rater2`, are second ratings for human–human agreement)."""
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


EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATES_BLOCKED = 3
EXIT_TRAINING_IN_PROGRESS = 4

TRAINING_EXIT_CODES = (
    "Exit codes: 0 trained and promoted (or nothing to promote); 1 a step failed or crashed; "
    "3 promotion gates blocked the new models (each failed gate is printed with model, value "
    "and threshold; no champion moved); 4 another training run holds this home and --no-wait "
    "was given."
)
"""The exit codes of `train` and `demo`, shown in their --help."""

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result as one JSON object on stdout (logs: stderr)."),
]


def _print(summary, as_json: bool) -> None:
    typer.echo(summary.to_json() if as_json else summary.render())


NoWaitOption = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="If another training run is in progress on this home, exit with code 4 instead "
        "of waiting for it to finish.",
    ),
]


def _train(settings, no_wait: bool):
    """One in-process training_job run; waits for (or refuses on) a training in progress."""
    from huleedu_pipelines.cli.runs import RunInProgressError, dagster_instance, run_job
    from huleedu_pipelines.definitions import build_definitions

    try:
        return run_job(
            build_definitions(settings),
            "training_job",
            dagster_instance(settings),
            settings,
            wait=not no_wait,
            on_wait=lambda message: typer.echo(message, err=True),
        )
    except RunInProgressError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_TRAINING_IN_PROGRESS) from error


def _exit_on_failed_training(summary) -> None:
    """Exit 3 when only promotion gates failed (one line per gate on stderr), 1 otherwise."""
    if summary.success:
        return
    if summary.blocked_by_gates:
        for line in summary.gate_failures:
            typer.echo(f"promotion blocked: {line}", err=True)
        raise typer.Exit(EXIT_GATES_BLOCKED)
    raise typer.Exit(EXIT_FAILED)


@app.command(epilog=TRAINING_EXIT_CODES)
def demo(
    essays: EssaysOption = None,
    seed: SeedOption = 7,
    as_of: AsOfOption = None,
    bad_rows: BadRowsOption = 20,
    no_wait: NoWaitOption = False,
) -> None:
    """Seed the demo warehouse, train, validate and promote, then backfill the scoring of
    every essay with the champions, all in-process (no servers needed)."""
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows)
    summary = _train(settings, no_wait)
    typer.echo(summary.render())
    _exit_on_failed_training(summary)
    typer.echo("\nscoring every essay with the champion models (backfill):")
    summary = _score(settings, _yesterday(), backfill=True)
    typer.echo(summary.render())
    typer.echo(
        f"\nDagster UI: DAGSTER_HOME={settings.resolved_dagster_home} "
        ".venv/bin/dagster dev -w workspace.yaml"
    )
    if not summary.success:
        raise typer.Exit(EXIT_FAILED)


@app.command(epilog=TRAINING_EXIT_CODES)
def train(no_wait: NoWaitOption = False, as_json: JsonOption = False) -> None:
    """Run the training job in-process on the configured instance (no UI needed).

    One training runs at a time per home: a second `train` waits for the first to finish
    (or, with --no-wait, exits with code 4)."""
    from huleedu_pipelines.settings import get_settings

    summary = _train(get_settings(), no_wait)
    _print(summary, as_json)
    _exit_on_failed_training(summary)


def _yesterday() -> dt.date:
    return _today() - dt.timedelta(days=1)


def _score(settings, day: dt.date, backfill: bool):
    """Every shard of `day`, one run each (partition `<day>|<shard>`), merged into one summary."""
    from huleedu_pipelines.assets.partitions import nightly_partition_keys
    from huleedu_pipelines.cli.runs import dagster_instance, run_partitions
    from huleedu_pipelines.definitions import build_definitions

    return run_partitions(
        build_definitions(settings),
        "nightly_inference_job",
        dagster_instance(settings),
        settings,
        [str(key) for key in nightly_partition_keys(day)],
        op_config={"inference_features": {"backfill": backfill}},
    )


@app.command()
def score(
    date: Annotated[
        dt.datetime | None,
        typer.Option(
            "--date", formats=["%Y-%m-%d"], help="Partition day (UTC) to score; default yesterday."
        ),
    ] = None,
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="Score every essay that lacks a current score from the champions, whatever "
            "day it arrived (recorded on the --date partition).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run nightly_inference_job for one day in-process, one run per shard
    (HULEEDU_SCORING_SHARDS): score new or changed essays with the champion models (challenger
    shadow rows beside them) and monitor the predictions."""
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    day = date.date() if date else _yesterday()
    if day >= _today():
        typer.echo(f"error: {day} has not ended yet; score a day before {_today()}", err=True)
        raise typer.Exit(2)
    summary = _score(settings, day, backfill)
    _print(summary, as_json)
    if not summary.success:
        raise typer.Exit(1)


registry_app = typer.Typer(help="Model registry operations: list, compare, promote, roll back.")
app.add_typer(registry_app, name="registry")

HEADLINE_METRICS = ("test_qwk", "test_adjacent_agreement", "test_mae", "test_roc_auc")


def _registry():
    """Settings and the registry, after checking that an embedded store exists: opening a
    missing SQLite store would create an empty one (and the home) instead of saying so."""
    from huleedu_pipelines.registry import build_registry
    from huleedu_pipelines.registry.mlflow import sqlite_database
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    database = sqlite_database(settings.resolved_mlflow_tracking_uri)
    if database is not None and not database.is_file():
        where = (
            f"{settings.home} does not exist"
            if not settings.home.exists()
            else f"{database} does not exist"
        )
        typer.echo(
            f"error: no model registry here: {where}; run `make demo` or "
            "`huleedu-pipelines train` first (or set HULEEDU_HOME / MLFLOW_TRACKING_URI)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    return settings, build_registry(settings)


@registry_app.command("list")
def registry_list(as_json: JsonOption = False) -> None:
    """Registered models, their versions, aliases and headline test metrics."""
    import json

    _, registry = _registry()
    listing = []
    for model in registry.list_models():
        versions = []
        for version in model["versions"]:
            metrics = registry.run_metrics(version["run_id"])
            versions.append(
                {
                    "version": version["version"],
                    "aliases": list(version["aliases"]),
                    "gate_verdict": version["tags"].get("gate_verdict", "not validated"),
                    "metrics": {n[5:]: metrics[n] for n in HEADLINE_METRICS if n in metrics},
                }
            )
        listing.append({"name": model["name"], "versions": versions})
    if as_json:
        typer.echo(json.dumps(listing, sort_keys=True))
        return
    for model in listing:
        typer.echo(model["name"])
        for version in model["versions"]:
            figures = "  ".join(f"{n}={value:.3f}" for n, value in version["metrics"].items())
            aliases = ",".join(version["aliases"]) or "-"
            typer.echo(
                f"  v{version['version']:<4} {aliases:<20} {version['gate_verdict']:<14} {figures}"
            )


def _known_model(name: str) -> str:
    """`name` if it is a HuleEdu model; else one line on stderr and exit 2 (before any
    registry call, so a mistyped name never reaches the store)."""
    from huleedu_pipelines.modeling.names import ALL_MODELS

    if name not in ALL_MODELS:
        typer.echo(
            f"error: {name!r} is not a HuleEdu model; the models are {', '.join(ALL_MODELS)}",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    return name


def _known_version(registry, name: str, version: str) -> str:
    """`version` if `name` has it registered; else one line on stderr and exit 2."""
    from huleedu_pipelines.registry import ModelVersionNotFoundError

    if not version.isascii() or not version.isdigit():
        typer.echo(f"error: version must be a number such as 3, not {version!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        registry.get_version_by_number(name, version)
    except ModelVersionNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from error
    return version


def _holdout_or_exit(settings):
    from huleedu_pipelines.services.promotion import Holdout

    try:
        return Holdout.from_storage(settings.storage_dir)
    except FileNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from error


def _validate(name: str, version: str, registry, settings, holdout, purpose: str):
    """Gates for one version on the last training run's holdout, against today's champion,
    in a new report named after `purpose` (a written report is never changed)."""
    from huleedu_pipelines.services.promotion import ValidationPolicy, validate_registered

    policy = ValidationPolicy(
        thresholds=settings.gate_thresholds(),
        seed=settings.seed,
        high_skill_threshold=settings.high_skill_threshold,
        reports_dir=settings.reports_dir,
        gaming=settings.gaming_check(),
    )
    return validate_registered(registry, holdout, policy, name, version, purpose)


@registry_app.command("compare")
def registry_compare(name: str, first: str, second: str) -> None:
    """Two versions' metrics side by side on the same holdout essays."""
    _known_model(name)
    settings, registry = _registry()
    versions = [_known_version(registry, name, version) for version in (first, second)]
    holdout = _holdout_or_exit(settings)
    from huleedu_pipelines.services.promotion import write_comparison

    results = [
        _validate(name, version, registry, settings, holdout, "compare") for version in versions
    ]
    typer.echo(f"{'metric':<28} {'v' + first:>12} {'v' + second:>12} {'delta':>10}")
    for metric in results[0].metrics:
        a, b = results[0].metrics[metric], results[1].metrics.get(metric, float("nan"))
        typer.echo(f"{metric:<28} {a:>12.4f} {b:>12.4f} {b - a:>+10.4f}")
    for result in results:
        typer.echo(f"v{result.version}: {result.verdict}  ({result.report_path})")
    typer.echo(f"comparison: {write_comparison(settings.reports_dir, *results)}")


@registry_app.command("promote")
def registry_promote(
    name: str,
    version: str,
    force: Annotated[bool, typer.Option(help="Promote even if gates fail.")] = False,
    reason: Annotated[str, typer.Option(help="Why (required with --force).")] = "",
) -> None:
    """Run the gates on VERSION and make it champion if they pass (or with --force).

    Exit codes: 0 promoted (or already champion); 2 unknown model or version; 3 a gate
    failed and --force was not given."""
    from huleedu_pipelines.services.promotion import promote
    from huleedu_pipelines.warehouse.engine import cached_engine, migrate

    if force and not reason.strip():
        typer.echo("error: --force needs --reason TEXT, which is recorded", err=True)
        raise typer.Exit(EXIT_USAGE)
    _known_model(name)
    settings, registry = _registry()
    _known_version(registry, name, version)
    result = _validate(name, version, registry, settings, _holdout_or_exit(settings), "promote")
    typer.echo(result.verdict)
    engine = cached_engine(settings.resolved_warehouse_url)
    migrate(engine)
    decision = promote(
        engine,
        registry,
        result.report_row(run_id=None),
        by_operator=True,
        force_reason=reason.strip() if force else None,
    )
    if decision.blocked:
        typer.echo(f"not promoted; report: {result.report_path}", err=True)
        raise typer.Exit(EXIT_GATES_BLOCKED)
    if decision.move is None:
        typer.echo(f"{name} v{version} is already champion")
    else:
        _record_champion_move(settings, decision.move)
        typer.echo(f"{name}: champion v{decision.previous_version} -> v{version}")


@registry_app.command("rollback")
def registry_rollback(name: str) -> None:
    """Move champion back to the version it replaced (from model_promotions), recorded."""
    from huleedu_pipelines.services.promotion import PromotionError, rollback_champion
    from huleedu_pipelines.warehouse.engine import cached_engine, migrate

    _known_model(name)
    settings, registry = _registry()
    engine = cached_engine(settings.resolved_warehouse_url)
    migrate(engine)
    try:
        row = rollback_champion(engine, registry, name)
    except PromotionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    _record_champion_move(settings, row)
    typer.echo(
        f"{name}: champion v{row['previous_version']} -> v{row['version']} ({row['reason']})"
    )


def _record_champion_move(settings, move: dict) -> None:
    """A materialization of `promoted_models` on the instance, so the UI shows the scores that
    depend on it as stale after a champion moved from the command line, as after training."""
    import dagster as dg

    from huleedu_pipelines.cli.runs import dagster_instance

    dagster_instance(settings).report_runless_asset_event(
        dg.AssetMaterialization(
            "promoted_models",
            description=f"{move['model_name']}: champion v{move['version']} ({move['reason']})",
            metadata={
                "model_name": move["model_name"],
                "version": move["version"],
                "previous_version": move["previous_version"] or "",
                "reason": move["reason"],
            },
        )
    )


def _add_benchmarks(parent: typer.Typer) -> None:
    """`bench ...` runs the repository's `benchmarks/` (they live beside the package, not in it).

    In a checkout (the editable install) the repository root is found from the package's path;
    elsewhere the group says where to run it from."""
    import sys

    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "benchmarks" / "cli.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        from benchmarks.cli import app as benchmarks_app
    except ImportError:
        benchmarks_app = typer.Typer(help="Benchmarks (run from a checkout of the repository).")

        @benchmarks_app.callback(invoke_without_command=True)
        def _missing() -> None:
            typer.echo("error: the benchmarks run from a checkout of the repository", err=True)
            raise typer.Exit(EXIT_USAGE)

    parent.add_typer(benchmarks_app, name="bench")


_add_benchmarks(app)

from huleedu_pipelines.cli.serve import serve  # noqa: E402  (the scoring API)

app.command("serve")(serve)

if __name__ == "__main__":
    app()
