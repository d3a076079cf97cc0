"""`mdp`: run the pipeline or one stage, generate data, open the MLflow UI.

Exit codes: mdp/core/errors.py.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mdp.core.context import RunContext
from mdp.core.errors import EXIT_CONFIG
from mdp.core.lake import Interval, all_bronze_hours
from mdp.core.settings import Settings, install_secret_mask
from mdp.core.stages import STAGE_NAMES, STAGES, Stage, get_stage
from mdp.shell.airflow_cli import airflow_app
from mdp.shell.byod_cli import print_input, run_settings
from mdp.shell.byod_cli import register as register_byod
from mdp.shell.cli_common import Profile, fail, settings_or_exit
from mdp.shell.kafka_cli import kafka_app, land_cmd
from mdp.shell.lake_cli import lake_app
from mdp.shell.logs import configure
from mdp.shell.postgres_cli import postgres_app
from mdp.shell.services.cli import services_app
from mdp.shell.sql_cli import sql as sql_cmd

if TYPE_CHECKING:
    from mdp.shell.runner import RunReport, StageResult

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Mini Data Platform: the customers pipeline.")
console = Console(stderr=False)
err = Console(stderr=True)

Since = Annotated[str | None, typer.Option(help="backfill from this ingest hour, ISO (generator: the hours to land)")]
Until = Annotated[str | None, typer.Option(help="backfill until this ingest hour, exclusive (default: since + 1h)")]
RunId = Annotated[
    str | None,
    typer.Option("--run-id", help="ties a run's stages together (default: new for `run`, 'manual' for `stage`)"),
]


def _interval(
    settings: Settings, since: str | None, until: str | None, all_hours: bool = False
) -> tuple[Interval, bool]:
    """(interval, backfill): the hours a generator lands, and whether Silver reprocesses them."""
    try:
        if all_hours:
            hours = all_bronze_hours(settings)
            if not hours:
                raise ValueError("--all: Bronze is empty")
            return Interval(hours[0], Interval.hour_of(hours[-1]).end), True
        return Interval.parse(since, until), bool(since or until)
    except ValueError as exc:
        err.print(f"[bold red]bad interval[/]: {exc}")
        raise typer.Exit(EXIT_CONFIG) from None


SHOWN = (
    "landed",
    "bronze_in",
    "quarantined",
    "duplicates",
    "changed",
    "silver_rows",
    "published",
    "gold_snapshot",
    "gold_rows",
    "model_version",
    "roc_auc",
    "promoted",
    "scored",
    "new_scores",
    "skipped",
    "postgres_upserted",
)


def summary_table(report: RunReport) -> Table:
    table = Table(title="Run summary", show_lines=False)
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("figures")
    for r in report.results:
        shown = {k: v for k, v in r.figures.items() if not isinstance(v, (dict, list)) and k in SHOWN}
        text = ", ".join(f"{k}={v}" for k, v in shown.items())
        if r.figures.get("nothing_new"):  # a quiet hour: the stage found nothing to do, and did nothing
            text = "nothing new" + (f" ({text})" if text else "")
        table.add_row(r.stage, f"{r.seconds:.1f}", text)
    table.add_row("total", f"{report.total_seconds:.1f}", "")
    return table


def rows_table(report: RunReport) -> Table:
    b2s, gold = report.figures("bronze_to_silver"), report.figures("silver_to_gold")
    table = Table(title="Rows per layer")
    for col in ("bronze in", "accepted", "quarantined", "duplicates", "silver", "gold"):
        table.add_column(col, justify="right")
    table.add_row(
        *[str(b2s.get(k, "-")) for k in ("bronze_in", "accepted", "quarantined", "duplicates", "silver_rows")],
        str(gold.get("gold_rows", "-")),
    )
    return table


def execute(
    settings: Settings,
    interval: Interval,
    stages: list[Stage],
    quiet: bool = False,
    backfill: bool = False,
    run_id: str | None = None,
    all_bronze: bool = False,
) -> RunReport:
    ctx = RunContext(
        settings=settings,
        interval=interval,
        run_id=run_id or uuid.uuid4().hex[:12],
        backfill=backfill,
        all_bronze=all_bronze,
    )
    from mdp.shell.runner import run_pipeline

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, disable=quiet
    ) as progress:
        ids = {s.name: progress.add_task(f"[dim]{s.name}: {s.summary}", total=1) for s in stages}

        def start(stage: Stage) -> None:
            progress.update(ids[stage.name], description=f"[bold]{stage.name}[/]: {stage.summary}")

        def done(result: StageResult) -> None:
            progress.update(
                ids[result.stage], completed=1, description=f"[green]✓ {result.stage}[/] ({result.seconds:.1f}s)"
            )

        try:
            report = run_pipeline(ctx, stages, start, done)
        except Exception as exc:
            partial = getattr(ctx, "report", None)
            if partial and partial.results and not quiet:
                console.print(summary_table(partial))
            raise fail(exc) from None
    return report


@app.command()
def run(
    profile: Profile = None,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", "-s", help=f"only these stages: {', '.join(STAGE_NAMES)}")
    ] = None,
    since: Since = None,
    until: Until = None,
    all_hours: Annotated[bool, typer.Option("--all", help="backfill: reprocess every Bronze hour present")] = False,
    events: Annotated[int | None, typer.Option(help="events per hour for the generator")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    run_id: RunId = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="a CSV or Parquet file as the source, instead of the generator")
    ] = None,
) -> None:
    """Run the pipeline (every stage, or the --stage ones) and print the summary.

    Bronze -> Silver takes every Bronze object not yet in Silver; --since/--until (or --all) also
    reprocess those hours. The generator lands the current hour, or the --since/--until hours."""
    settings = run_settings(profile, input_file, events=events, seed=seed)
    try:
        chosen = [get_stage(s) for s in stage] if stage else [s for s in STAGES if s.enabled(settings)]
    except KeyError as exc:
        err.print(f"[bold red]{exc.args[0]}[/]")
        raise typer.Exit(EXIT_CONFIG) from None
    interval, backfill = _interval(settings, since, until, all_hours)
    scope = f"backfill {interval}" if backfill else "new Bronze objects"
    console.print(
        f"profile [bold]{settings.profile}[/], contract {settings.data_contract.entity}, {scope}, lake {settings.lake_base}"
    )
    report = execute(settings, interval, chosen, backfill=backfill, run_id=run_id, all_bronze=all_hours)
    console.print(summary_table(report))
    console.print(rows_table(report))
    print_input(report)
    for line in report.conservation():
        console.print(f"row conservation [green]OK[/]: {line}")
    train = report.figures("train_model")
    if train and not train.get("model_version"):  # tiny Gold: nothing trained, and the run goes on
        console.print(f"model [bold]{settings.model_name}[/] not trained: {train['reason']}")
    elif train:
        console.print(
            f"model [bold]{settings.model_name}[/] v{train['model_version']} roc_auc={train['roc_auc']}, "
            f"champion={'v' + str(train['champion']) if train['champion'] else 'none'} "
            f"({train.get('decision', '')}: {train.get('reason', '')}); MLflow: {settings.mlflow_uri}"
        )
    scores = report.figures("score_customers")
    if scores:
        console.print(
            scores["skipped"]
            if scores.get("skipped")
            else f"scores: {scores['scored']} {settings.data_contract.entity} by v{scores['model_version']} "
            f"({'new' if scores['new_scores'] else 'already scored'}) in {settings.data_contract.scores_name}"
            + (f", Postgres table {scores['postgres_table']}" if scores.get("postgres_table") else "")
        )


@app.command("stage")
def stage_cmd(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(STAGE_NAMES)}")],
    profile: Profile = None,
    since: Since = None,
    until: Until = None,
    run_id: RunId = None,
) -> None:
    """Run one stage (what an Airflow task or a pod runs). Prints its figures as JSON."""
    import json

    settings = settings_or_exit(profile)
    try:
        stage = get_stage(name)
    except KeyError as exc:
        err.print(f"[bold red]{exc.args[0]}[/]")
        raise typer.Exit(EXIT_CONFIG) from None
    interval, backfill = _interval(settings, since, until)
    report = execute(settings, interval, [stage], quiet=True, backfill=backfill, run_id=run_id or "manual")
    print(json.dumps(report.results[0].figures, default=str))


@app.command()
def generate(
    profile: Profile = None,
    since: Since = None,
    until: Until = None,
    events: Annotated[int | None, typer.Option(help="events per hour")] = None,
    dirty_fraction: Annotated[float | None, typer.Option(help="share of deliberately bad events")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Generate synthetic customer events straight into Bronze (the embedded source)."""
    from ingestion.land import land_from_generator

    settings = settings_or_exit(profile, events=events, dirty_fraction=dirty_fraction, seed=seed)
    ctx = RunContext(settings=settings, interval=_interval(settings, since, until)[0])
    with console.status(f"generating {settings.events} events per hour for {ctx.interval}"):
        figures = land_from_generator(ctx)
    already = (
        f"; {figures['already_landed']} already there (same hours and parameters)"
        if figures.get("already_landed")
        else ""
    )
    console.print(
        f"landed {figures['landed']} events ({figures['dirty_generated']} deliberately dirty){already} in {settings.layer_uri('bronze')}"
    )


@app.command()
def score(
    profile: Profile = None,
    customer: Annotated[
        list[str] | None,
        typer.Option(
            "--customer", "--id", help="an entity's key (the contract's primary_key), from the current Gold; repeatable"
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="a CSV or Parquet file of feature rows (the contract's features; its key column optional)"
        ),
    ] = None,
) -> None:
    """Score entities with the champion, here and now: --customer ID (from the current Gold) or --file FILE."""
    if bool(customer) == bool(file):
        err.print("[bold red]give either --customer ID (repeatable) or --file FILE[/]")
        raise typer.Exit(EXIT_CONFIG)
    from scoring import adhoc

    settings = settings_or_exit(profile)
    key = settings.data_contract.primary_key
    try:
        if customer:
            snapshot, rows = adhoc.gold_rows(settings, customer)
            source = f"Gold snapshot {snapshot}"
        elif file is not None:  # exactly one of the two (checked above)
            rows, source = adhoc.read_rows(file, settings.data_contract), str(file)
        ref, scores = adhoc.score_rows(settings, rows)
        batch = adhoc.batch_scores(settings, customer) if customer else None
    except Exception as exc:
        raise fail(exc) from None
    table = Table(title=f"{ref.name} v{ref.version} (champion) on {source}")
    columns = [c for c in (key, "score") if c in scores.columns]
    for c in columns:
        table.add_column(c, justify="right" if c == "score" else "left")
    if batch is not None:
        table.add_column("batch score (model version, snapshot)", justify="right")
        published = {
            r[key]: f"{r['score']:.6f} (v{r['model_version']}, {r['gold_snapshot']})" for r in batch.to_dict("records")
        }
    for r in scores.to_dict("records"):
        cells = [f"{r[c]:.6f}" if c == "score" else str(r[c]) for c in columns]
        if batch is not None:
            cells.append(published.get(r[key], "-"))
        table.add_row(*cells)
    console.print(table)


@app.command()
def serve(
    profile: Profile = None,
    host: Annotated[str, typer.Option(help="the model server's address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="the model server's port")] = 5002,
    poll: Annotated[float, typer.Option(help="seconds between checks of the champion alias")] = 30.0,
    status_file: Annotated[
        Path | None, typer.Option(help="rewritten after every check (a liveness probe reads its age)")
    ] = None,
) -> None:
    """Serve the champion with `mlflow models serve` (POST /invocations, GET /ping) and follow the alias."""
    from mdp.shell.serve import follow

    settings = settings_or_exit(profile)
    console.print(
        f"serving {settings.model_name}@champion on http://{host}:{port} (MLflow {settings.mlflow_uri}; alias checked every {poll:g}s)"
    )
    follow(settings, host, port, poll, status_file=status_file)


@app.command("mlflow-ui")
def mlflow_ui(profile: Profile = None, port: int = 5001) -> None:
    """Open the MLflow UI on the profile's tracking store (embedded: the local sqlite store)."""
    settings = settings_or_exit(profile)
    bin_dir = Path(sys.executable).parent
    args = [
        str(bin_dir / "mlflow"),
        "ui",
        "--backend-store-uri",
        settings.mlflow_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    console.print(f"MLflow UI on http://127.0.0.1:{port}  (store {settings.mlflow_uri})")
    os.execv(args[0], args)


app.command("land")(land_cmd)  # `mdp land [--follow]`: Kafka -> Bronze (the same command as `mdp kafka land`)

app.add_typer(services_app, name="services")
app.add_typer(kafka_app, name="kafka")
app.add_typer(postgres_app, name="postgres")


app.add_typer(airflow_app, name="airflow")


app.command("sql")(sql_cmd)  # mdp sql 'select ...' | --tables

app.add_typer(lake_app, name="lake")  # mdp lake vacuum | convert


register_byod(app)  # mdp contract infer|check, mdp ingest FILE, mdp example NAME


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="also show the libraries' logs (Spark, GX, MLflow); MDP_LOG_LEVEL=INFO"),
    ] = False,
) -> None:
    if verbose:
        configure("INFO")


def main() -> None:
    configure()
    install_secret_mask()  # no credential in any log line, at any level
    app()


if __name__ == "__main__":
    main()
