"""`mdp lake`: the lake's upkeep, by command rather than by hand (docs/LAKE.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from mdp.shell.cli_common import Profile, fail, settings_or_exit

lake_app = typer.Typer(no_args_is_help=True, help="The lake's Delta tables: vacuum old versions, convert an old lake.")
console = Console()


@lake_app.command()
def vacuum(
    profile: Profile = None,
    keep: Annotated[
        int, typer.Option(help="versions kept per table besides the champion's and the retention window")
    ] = 3,
    retention_hours: Annotated[int, typer.Option(help="files younger than this stay (a run's staged files too)")] = 7
    * 24,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would go")] = False,
) -> None:
    """Delete the files of old versions: never the last KEEP, the champion's lineage, or young ones."""
    from mdp.core.tables import gold_dataset, scores_dataset, silver_dataset

    settings = settings_or_exit(profile)
    try:
        for dataset in (silver_dataset(settings), gold_dataset(settings), scores_dataset(settings)):
            with dataset.lease("vacuum"):
                for table, files in dataset.vacuum(keep, retention_hours, dry_run).items():
                    console.print(f"{dataset.root}/{table}: {len(files)} files {'would go' if dry_run else 'removed'}")
    except Exception as exc:
        raise fail(exc) from None


@lake_app.command()
def convert(profile: Profile = None) -> None:
    """Convert a lake in the layout before Delta tables (v=<version>/ folders, _CURRENT.json), once."""
    from mdp.core.convert import convert as run

    settings = settings_or_exit(profile)
    try:
        done = run(settings)
    except Exception as exc:
        raise fail(exc) from None
    for line in done or ["nothing to convert: every dataset is a Delta table already (or absent)"]:
        console.print(line)
