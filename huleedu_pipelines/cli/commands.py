"""The `huleedu-pipelines` command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from huleedu_pipelines.cli.output import (
    EXIT_USAGE,
    OneLineErrorsGroup,
    echo_json,
    figure,
    print_table,
    table,
    usage_error,
)

app = typer.Typer(
    cls=OneLineErrorsGroup,
    help="HuleEdu essay-assessment pipelines: demo data, imports, training and scoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RUN_COMMANDS = ("demo", "train", "score")
"""Commands that execute Dagster runs in-process: on a terminal they draw progress bars."""


@app.callback()
def _progress_on_a_terminal(ctx: typer.Context) -> None:
    # The bars (embedding, training) go to stderr and only when it is a terminal.
    if ctx.invoked_subcommand in RUN_COMMANDS:
        from huleedu_pipelines.progress import terminal_progress

        ctx.with_resource(terminal_progress())


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
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result as one JSON object on stdout (logs: stderr)."),
]


def _seed(
    n_essays: int | None, seed: int, as_of: dt.date, bad_rows: int, echo: bool = True
) -> dict:
    """Seed the demo warehouse; what was inserted (printed unless `echo` is false)."""
    import sqlalchemy as sa

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
    url = sa.engine.make_url(settings.resolved_warehouse_url).render_as_string()
    result = {
        "warehouse": url,
        "as_of": as_of.isoformat(),
        "seed": seed,
        "inserted": summary.inserted,
        "bad_rows_injected": summary.bad_rows_injected,
        "quarantined_at_load": summary.quarantined_at_load,
    }
    if echo:
        inserted = ", ".join(f"{name} {count}" for name, count in summary.inserted.items())
        typer.echo(f"seeded {url}: {inserted}")
        typer.echo(
            f"bad rows injected: {summary.bad_rows_injected} "
            f"({summary.quarantined_at_load} refused at load, the rest are caught by ingest)"
        )
    return result


@app.command("seed-demo")
def seed_demo(
    essays: EssaysOption = None,
    seed: SeedOption = 7,
    as_of: AsOfOption = None,
    bad_rows: BadRowsOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Fill the warehouse with a deterministic synthetic school (essays, labels, CJ batches)."""
    result = _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows, echo=not as_json)
    if as_json:
        echo_json(result)


@app.command("import-csv")
def import_csv_command(
    path: Annotated[Path, typer.Argument(help="CSV file.")],  # unreadable: one error line
    source: Annotated[str, typer.Option("--source", help="Source name stored with each essay.")],
    as_json: JsonOption = False,
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
        usage_error(str(error))
    if as_json:
        import dataclasses

        echo_json(dataclasses.asdict(summary) | {"path": str(path), "source": source})
        return
    typer.echo(summary.describe())
    for entry in summary.quarantined[:20]:
        typer.echo(f"  quarantined {entry.source_table} {entry.source_key}: {entry.reason}")


EXIT_FAILED = 1
EXIT_GATES_BLOCKED = 3
EXIT_TRAINING_IN_PROGRESS = 4

TRAINING_EXIT_CODES = (
    "Exit codes: 0 trained and promoted (or nothing to promote); 1 a step failed or crashed; "
    "3 promotion gates blocked the new models (each failed gate is printed with model, value "
    "and threshold; no champion moved); 4 another training run holds this home and --no-wait "
    "was given."
)
"""The exit codes of `train` and `demo`, shown in their --help."""


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
    as_json: JsonOption = False,
) -> None:
    """Seed the demo warehouse, train, validate and promote, then backfill the scoring of
    every essay with the champions, all in-process (no servers needed)."""
    from huleedu_pipelines.settings import get_settings

    settings = get_settings()
    seeded = _seed(essays, seed, as_of.date() if as_of else _today(), bad_rows, not as_json)
    summary = trained = _train(settings, no_wait)
    _demo_print(as_json, seeded, trained, None if summary.success else summary)
    _exit_on_failed_training(summary)
    if not as_json:
        typer.echo("\nscoring every essay with the champion models (backfill):")
    summary = _score(settings, _yesterday(), backfill=True)
    _demo_print(as_json, seeded, trained, summary)
    if not as_json:
        typer.echo(
            f"\nDagster UI: DAGSTER_HOME={settings.resolved_dagster_home} "
            ".venv/bin/dagster dev -w workspace.yaml"
        )
    if not summary.success:
        raise typer.Exit(EXIT_FAILED)


def _demo_print(as_json: bool, seeded: dict, trained, last) -> None:
    """`demo`'s output after a stage: the stage's summary as text; with --json, once, the
    whole demo as one object (`seeded`, `training`, `scoring` - null when training failed)."""
    import json

    if not as_json:
        typer.echo((last or trained).render())
    elif last is not None:
        echo_json(
            {
                "seeded": seeded,
                "training": json.loads(trained.to_json()),
                "scoring": None if last is trained else json.loads(last.to_json()),
            }
        )


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
    """Every shard of `day`, one run each (partition `<day>|<shard>`), merged into one summary.

    A backfill is one run per shard over that shard's partitions from the first day an essay
    was written (not before the partitions start) through `day`, recorded as one backfill on
    the instance: every day it covers is materialized, with its own row counts."""
    from huleedu_pipelines.assets.partitions import (
        DAILY_START_DATE,
        nightly_partition_keys,
        nightly_partition_range,
        shard_partitions,
    )
    from huleedu_pipelines.cli.runs import dagster_instance, run_backfill, run_partitions
    from huleedu_pipelines.definitions import build_definitions
    from huleedu_pipelines.warehouse.engine import cached_engine, migrate
    from huleedu_pipelines.warehouse.partition_rows import first_essay_day

    defs, instance = build_definitions(settings), dagster_instance(settings)
    op_config = {"inference_features": {"backfill": backfill}}
    if not backfill:
        keys = [str(key) for key in nightly_partition_keys(day)]
        return run_partitions(defs, "nightly_inference_job", instance, settings, keys, op_config)
    engine = cached_engine(settings.resolved_warehouse_url)
    migrate(engine)
    with engine.connect() as connection:
        first = first_essay_day(connection) or day
    first = min(max(first, dt.date.fromisoformat(DAILY_START_DATE)), day)
    ranges = [
        nightly_partition_range(first, day, int(shard))
        for shard in shard_partitions.get_partition_keys()
    ]
    return run_backfill(defs, "nightly_inference_job", instance, settings, ranges, op_config)


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
            "day it arrived: one run per shard over the days from the first essay through "
            "--date, recorded as a backfill that materializes each of those day partitions.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run nightly_inference_job for one day in-process, one run per shard
    (HULEEDU_SCORING_SHARDS): score new or changed essays with the champion models (challenger
    shadow rows beside them) and monitor the predictions. With --backfill, one run per shard
    over every day from the first essay through --date, recorded as one backfill."""
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
    """Registered models, their versions, aliases and headline test metrics (a table; with
    --json a list of models, each with its versions)."""
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
        echo_json(listing)
        return
    if not listing:
        typer.echo("no registered models; run `huleedu-pipelines train` first")
        return
    metrics = [name[5:] for name in HEADLINE_METRICS]
    versions = table("model", "version", "aliases", "gates", *metrics, numeric=metrics)
    for model in listing:
        for index, version in enumerate(model["versions"]):
            versions.add_row(
                model["name"] if index == 0 else "",
                f"v{version['version']}",
                ",".join(version["aliases"]) or "-",
                version["gate_verdict"],
                *(figure(version["metrics"].get(name), 3) for name in metrics),
            )
        versions.add_section()
    print_table(versions)


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


def _validation_json(result) -> dict:
    """One version's validation for --json: verdict, report and every gate."""
    import json

    return {
        "version": result.version,
        "passed": result.passed,
        "verdict": result.verdict,
        "report": str(result.report_path),
        "champion_version": result.champion_version,
        "gates": json.loads(result.gates_json()),
    }


@registry_app.command("compare")
def registry_compare(name: str, first: str, second: str, as_json: JsonOption = False) -> None:
    """Two versions' metrics side by side on the same holdout essays (a table of metric, both
    versions and the difference), each version's verdict, and the comparison document."""
    _known_model(name)
    settings, registry = _registry()
    versions = [_known_version(registry, name, version) for version in (first, second)]
    holdout = _holdout_or_exit(settings)
    from huleedu_pipelines.services.promotion import write_comparison

    results = [
        _validate(name, version, registry, settings, holdout, "compare") for version in versions
    ]
    comparison = write_comparison(settings.reports_dir, *results)
    rows = [
        (metric, a, results[1].metrics.get(metric, float("nan")))
        for metric, a in results[0].metrics.items()
    ]
    if as_json:
        echo_json(
            {
                "model": name,
                "versions": [_validation_json(result) for result in results],
                "metrics": {
                    metric: {"first": a, "second": b, "delta": b - a} for metric, a, b in rows
                },
                "comparison": str(comparison),
            }
        )
        return
    columns = ("metric", f"v{first}", f"v{second}", "delta")
    metrics = table(*columns, numeric=columns[1:], title=f"{name}: v{first} against v{second}")
    for metric, a, b in rows:
        metrics.add_row(metric, figure(a), figure(b), "-" if b != b else f"{b - a:+.4f}")
    print_table(metrics)
    for result in results:
        typer.echo(f"v{result.version}: {result.verdict}  ({result.report_path})")
    typer.echo(f"comparison: {comparison}")


@registry_app.command("promote")
def registry_promote(
    name: str,
    version: str,
    force: Annotated[bool, typer.Option(help="Promote even if gates fail.")] = False,
    reason: Annotated[str, typer.Option(help="Why (required with --force).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Run the gates on VERSION and make it champion if they pass (or with --force).

    Exit codes: 0 promoted (or already champion); 2 unknown model or version, or a promotion
    that cannot be made as asked; 3 a gate failed and --force was not given."""
    from huleedu_pipelines.services.promotion import PromotionError, promote
    from huleedu_pipelines.warehouse.engine import cached_engine, migrate

    if force and not reason.strip():
        usage_error("--force needs --reason TEXT, which is recorded")
    _known_model(name)
    settings, registry = _registry()
    _known_version(registry, name, version)
    try:
        holdout = _holdout_or_exit(settings)
        result = _validate(name, version, registry, settings, holdout, "promote")
    except PromotionError as error:
        usage_error(str(error))
    if not as_json:
        typer.echo(result.verdict)
    engine = cached_engine(settings.resolved_warehouse_url)
    migrate(engine)
    try:
        decision = promote(
            engine,
            registry,
            result.report_row(run_id=None),
            by_operator=True,
            force_reason=reason.strip() if force else None,
        )
    except PromotionError as error:
        usage_error(str(error))
    if decision.move is not None:
        _record_champion_move(settings, decision.move)
    if as_json:
        echo_json(
            {
                "model": name,
                "action": decision.action,
                "promoted": decision.move is not None,
                "champion_version": version if not decision.blocked else decision.previous_version,
                "previous_version": decision.previous_version,
                "forced": force,
                "validation": _validation_json(result),
            }
        )
    if decision.blocked:
        typer.echo(f"not promoted; report: {result.report_path}", err=True)
        raise typer.Exit(EXIT_GATES_BLOCKED)
    if as_json:
        return
    if decision.move is None:
        typer.echo(f"{name} v{version} is already champion")
    else:
        typer.echo(f"{name}: champion v{decision.previous_version} -> v{version}")


@registry_app.command("rollback")
def registry_rollback(name: str, as_json: JsonOption = False) -> None:
    """Move champion back to the version it replaced (from model_promotions), recorded.

    Exit codes: 0 rolled back; 2 unknown model, or nothing to roll back to."""
    from huleedu_pipelines.services.promotion import PromotionError, rollback_champion
    from huleedu_pipelines.warehouse.engine import cached_engine, migrate

    _known_model(name)
    settings, registry = _registry()
    engine = cached_engine(settings.resolved_warehouse_url)
    migrate(engine)
    try:
        row = rollback_champion(engine, registry, name)
    except PromotionError as error:
        usage_error(str(error))
    _record_champion_move(settings, row)
    if as_json:
        echo_json(
            {
                "model": name,
                "champion_version": row["version"],
                "previous_version": row["previous_version"],
                "reason": row["reason"],
            }
        )
        return
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
