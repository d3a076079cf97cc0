"""Bring your own data: `mdp contract infer|check`, `mdp ingest FILE`, `mdp example NAME`.

    mdp example subscribers --rows 20000 --out subscribers.csv
    mdp contract infer subscribers.csv --entity subscribers --key account_no --label churn > subscribers.yaml
    mdp contract check subscribers.yaml
    MDP_CONTRACT=subscribers.yaml mdp ingest subscribers.csv      # Bronze (embedded) or the topic (Kafka source)
    MDP_CONTRACT=subscribers.yaml mdp run --input subscribers.csv # the whole pipeline from the file

The tutorial is docs/BRING_YOUR_OWN_DATA.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mdp.core.errors import EXIT_CONFIG, ConfigError, exit_code_for
from mdp.core.settings import Settings, redact
from mdp.shell.cli_common import Profile, fail, settings_or_exit

if TYPE_CHECKING:
    from mdp.shell.runner import RunReport

contract_app = typer.Typer(no_args_is_help=True, help="Data contracts: draft one from a file, check one.")
console = Console()
err = Console(stderr=True)

Format = Annotated[str | None, typer.Option("--format", help="csv | parquet (default: from the suffix)")]


@contract_app.command("infer")
def infer_cmd(
    file: Annotated[Path, typer.Argument(help="a CSV or Parquet sample of the table")],
    entity: Annotated[str, typer.Option(help="the entity: names the lake tables, the topic and the model")],
    key: Annotated[str, typer.Option(help="the primary key column (one row per key in Silver)")],
    label: Annotated[str, typer.Option(help="the column the model predicts")],
    positive: Annotated[
        str | None, typer.Option(help="the label's positive value (default: true, 1, or Yes-like)")
    ] = None,
    event_time: Annotated[
        str | None, typer.Option(help="a date/timestamp column that orders changes (default: arrival)")
    ] = None,
    sample: Annotated[int, typer.Option(help="infer from the first N rows", min=1)] = 100_000,
    out: Annotated[Path | None, typer.Option(help="write the YAML here instead of printing it")] = None,
    fmt: Format = None,
) -> None:
    """Draft a contract from a sample and print it as YAML, for you to review, edit and commit."""
    from ingestion.file_source import read_file
    from mdp.core.contract import parse_contract
    from mdp.core.contract_infer import infer_contract, render_yaml

    try:
        data = read_file(file, fmt)
        columns: dict[str, Sequence[Any]] = {c: v[:sample] for c, v in data.column_values().items()}
        draft = infer_contract(columns, entity, key, label, positive, event_time, source=data.path.name)
        parse_contract(draft.contract, "draft")  # the draft must load; a failure here is a bug, not bad input
    except ConfigError as exc:
        raise fail(exc) from None
    if data.bad_lines:
        draft.warnings.append(
            f"{len(data.bad_lines)} lines have the wrong number of fields; they were left out of the sample"
        )
    text = render_yaml(draft)
    for w in draft.warnings:
        err.print(f"[yellow]note[/]: {w}")
    if out:
        out.write_text(text)
        err.print(f"draft contract written to {out}; review it, then `mdp contract check {out}`")
    else:
        sys.stdout.write(text)


@contract_app.command("check")
def check_cmd(
    contract: Annotated[str, typer.Argument(help="a YAML path or a bundled name (default: MDP_CONTRACT)")] = "",
) -> None:
    """Load a contract and show what the platform derives from it (exit 2 naming the bad key)."""
    from mdp.core.contract import load_contract

    name = contract or settings_or_exit(None).contract  # MDP_CONTRACT, or a settings file's `contract`
    try:
        c = load_contract(name)
    except ConfigError as exc:
        raise fail(exc) from None
    table = Table(title=f"contract {c.entity} ({name})", show_header=False)
    table.add_row(
        "key / event id / event time", f"{c.primary_key} / {c.event_id} / {c.event_time or '(arrival order)'}"
    )
    table.add_row("label", f"{c.label.column} (positive: {c.label.positive!r})")
    table.add_row("entity (tables, topic) / model", f"{c.entity} / {c.registered_model}")
    for role in ("numeric", "categorical", "boolean"):
        table.add_row(f"{role} features", ", ".join(c.features_by_role(role)) or "-")
    excluded = [
        x.name for x in c.columns if c.feature_role(x) in ("excluded", "identifier") and x.name not in (c.label.column,)
    ]
    table.add_row("not features", ", ".join(excluded) or "-")
    table.add_row("quarantine rules", str(len(c.rules())))
    console.print(table)


def ingest_cmd(
    file: Annotated[Path, typer.Argument(help="a CSV or Parquet file, one event per row")],
    profile: Profile = None,
    fmt: Format = None,
) -> None:
    """Send a file's rows as events: to Bronze (embedded) or to the Kafka topic (a Kafka source)."""
    from ingestion.file_source import ingest_file
    from mdp.core.storage import store_for

    settings = settings_or_exit(profile)
    try:
        figures = ingest_file(settings, store_for(settings), file, fmt)
    except ConfigError as exc:
        raise fail(exc) from None
    except Exception as exc:
        err.print(f"[bold red]ingest failed[/]: {type(exc).__name__}: {redact(str(exc))}")
        raise typer.Exit(exit_code_for(exc)) from None
    print_ingest(figures, settings)


def print_ingest(f: dict[str, Any], settings: Settings) -> None:
    from mdp.core.lake import bronze_table_uri

    where = f["destination"] if f["destination"] != "bronze" else bronze_table_uri(settings)
    console.print(
        f"{f['events']} events from {f['file']} ({f['format']}, sha256 {f['sha256'][:12]}) -> {where}; "
        f"contract {settings.data_contract.entity}"
    )
    if f["blanks"]:
        console.print("blank cells sent as null: " + ", ".join(f"{k}={v}" for k, v in f["blanks"].items()))
    console.print(
        f"event time: {f['event_time'] or 'none in the file: Silver orders states by arrival'}; "
        f"event ids filled: {f['event_ids_filled']}"
    )
    for key, what in (
        ("unknown_columns", "not in the contract: Silver quarantines these rows as unknown_field"),
        ("missing_required", "required by the contract, absent from the file: rows quarantined as missing:<column>"),
        ("missing_optional", "absent from the file, nullable: null"),
    ):
        if f[key]:
            err.print(f"[yellow]columns {f[key]}[/]: {what}")
    if f["bad_lines"]:
        err.print(
            f"[yellow]{f['bad_lines']} lines[/] with the wrong number of fields, sent as raw text (quarantined, kept)"
        )


def example_cmd(
    name: Annotated[str, typer.Argument(help="subscribers")],
    out: Annotated[Path, typer.Option(help="the CSV file to write")],
    rows: Annotated[int, typer.Option(help="rows (accounts)", min=1)] = 20_000,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Write a bundled example file (a different shape from customers) for the BYOD tutorial."""
    from ingestion.examples import EXAMPLES, write_example

    if name not in EXAMPLES:
        err.print(f"[bold red]no example {name!r}[/]; examples: {', '.join(EXAMPLES)}")
        raise typer.Exit(EXIT_CONFIG)
    path = write_example(name, out, rows, seed)
    console.print(
        f"wrote {rows} rows of {name} to {path}; its curated contract is the bundled `{name}` (MDP_CONTRACT={name})"
    )


def run_settings(profile: str | None, input_file: Path | None, **overrides: Any) -> Settings:
    """Settings for `mdp run`; with --input the file replaces the generator as the run's source:
    written to Bronze by land_bronze (source file), or produced to the topic first (a Kafka source)."""
    settings = settings_or_exit(profile, **overrides)
    if input_file is None:
        return settings
    if not input_file.is_file():
        err.print(f"[bold red]configuration error[/]: --input: no such file {str(input_file)!r}")
        raise typer.Exit(EXIT_CONFIG)
    if settings.runner != "inline":
        err.print(
            "[bold red]configuration error[/]: --input needs the inline runner (MDP_RUNNER): stages that run in pods "
            "cannot read a local file; `mdp ingest FILE` produces it to the topic, then trigger the DAG"
        )
        raise typer.Exit(EXIT_CONFIG)
    source = "kafka" if settings.source == "kafka" else "file"
    return settings_or_exit(profile, **overrides, source=source, input_file=str(input_file.resolve()))


def print_input(report: RunReport) -> None:
    """After `mdp run --input`: what the file brought (the summary table shows only scalars)."""
    f = report.figures("land_bronze")
    if "input_file" not in f:
        return
    blanks = ", ".join(f"{k}={v}" for k, v in f["input_blanks"].items()) or "none"
    console.print(f"input {f['input_file']}: {f['input_rows']} rows, blank cells sent as null: {blanks}")
    if f["input_unknown_columns"] or f["input_missing_required"]:
        err.print(
            f"[yellow]header[/]: not in the contract {f['input_unknown_columns']}, "
            f"required but absent {f['input_missing_required']} (those rows are quarantined)"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(contract_app, name="contract")
    app.command("ingest")(ingest_cmd)
    app.command("example")(example_cmd)
