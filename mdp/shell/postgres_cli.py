"""`mdp postgres ...`: the optional Postgres source of customers (the CDC-like transport).

    mdp postgres seed --customers 5000      the contract's table, filled from the generator
    mdp postgres change --rows 100          simulate app updates (and --deletes)
    mdp postgres publish [--follow]         changed and deleted rows -> topic, in commit order

Exit codes: mdp/core/errors.py.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mdp.core.settings import redact
from mdp.shell.cli_common import Profile, guard, settings_or_exit

postgres_app = typer.Typer(no_args_is_help=True, help="The optional Postgres source of customers.")


@postgres_app.command("seed")
def seed_cmd(
    profile: Profile = None,
    customers: Annotated[int, typer.Option()] = 5000,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create the contract's table (DDL from the contract) and fill it from the generator (upsert)."""
    from ingestion.postgres_source import seed as seed_rows

    s = settings_or_exit(profile)
    n = guard(seed_rows, s, customers, seed)
    typer.echo(f"seeded {n} rows into {s.data_contract.source_table!r} at {redact(s.postgres_dsn or '')}")


@postgres_app.command("change")
def change_cmd(
    profile: Profile = None,
    rows: Annotated[int, typer.Option(help="rows to update")] = 100,
    deletes: Annotated[int, typer.Option(help="rows to delete (published as tombstones)")] = 0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Update (and delete) some random rows, as an application would."""
    from ingestion.postgres_source import delete_rows, simulate_changes

    s = settings_or_exit(profile)
    changed = guard(simulate_changes, s, rows, seed)
    deleted = guard(delete_rows, s, deletes) if deletes else []
    typer.echo(f"changed {len(changed)} and deleted {len(deleted)} rows of {s.data_contract.source_table!r}")


@postgres_app.command("publish")
def publish_cmd(
    profile: Profile = None,
    follow: Annotated[bool, typer.Option(help="keep polling every --interval seconds")] = False,
    interval: Annotated[float, typer.Option()] = 5.0,
) -> None:
    """Publish the rows changed or deleted since the stored snapshot (commit order), then store the new one."""
    from ingestion.postgres_source import WatermarkPublisher
    from ingestion.producer import ensure_topic

    s = settings_or_exit(profile)
    guard(ensure_topic, s.kafka_bootstrap, s.topic)
    pub = guard(WatermarkPublisher, s)
    try:
        n = guard(pub.run, interval, None) if follow else guard(pub.poll_once)
        mark = guard(pub.watermark)
    finally:
        pub.close()
    typer.echo(f"published {n} changed rows to {s.topic!r}; snapshot {mark or 'none yet'}")
