"""`mdp land`, `mdp kafka ...` and `mdp postgres ...`: the real transports of the local/compose/kind profiles.

    mdp land                                topic -> Bronze up to the end offsets found at the start (= mdp kafka land)
    mdp land --follow                       land continuously (a long-running sink); SIGTERM drains and commits
    mdp kafka produce --events 100000       generated events (dirty ones included) -> topic
    mdp postgres seed --customers 5000      the contract's table, filled from the generator
    mdp postgres change --rows 100          simulate app updates (and --deletes)
    mdp postgres publish [--follow]         changed and deleted rows -> topic, in commit order

Exit codes: 0 ok, 1 failed, 2 bad setting, 5 a dependency is unreachable (retry later).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated

import typer

from mdp.core.errors import ConfigError, Unavailable, exit_code_for
from mdp.core.settings import redact
from mdp.shell.cli_common import Profile, settings_or_exit

kafka_app = typer.Typer(no_args_is_help=True, help="Produce to and land from the Kafka topic.")
postgres_app = typer.Typer(no_args_is_help=True, help="The optional Postgres source of customers.")
_settings = settings_or_exit


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        typer.echo(f"configuration error: {redact(str(exc))}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    except Unavailable as exc:
        typer.echo(f"unavailable (retry later): {redact(str(exc))}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    except Exception as exc:
        typer.echo(f"failed: {type(exc).__name__}: {redact(str(exc))}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None


@kafka_app.command("produce")
def produce_cmd(
    profile: Profile = None,
    events: Annotated[int | None, typer.Option(help="events per hour")] = None,
    hours: Annotated[int, typer.Option(help="how many generated hours (ending with the current one)")] = 1,
    dirty_fraction: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
):
    """Publish generated customer events to the topic (key customer_id, acks=all)."""
    from datetime import timedelta

    from ingestion.producer import current_hour, ensure_topic, produce_generated

    s = _settings(profile, events=events, dirty_fraction=dirty_fraction, seed=seed)
    _guard(ensure_topic, s.kafka_bootstrap, s.topic)
    now = current_hour()
    figures = _guard(produce_generated, s, [now - timedelta(hours=h) for h in reversed(range(hours))])
    typer.echo(json.dumps(figures))


def land_cmd(
    profile: Profile = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="land continuously until SIGTERM/SIGINT (a long-running sink)")
    ] = False,
    flush_records: Annotated[
        int | None, typer.Option(help="write and commit a batch every N records (default 50,000)")
    ] = None,
    flush_seconds: Annotated[
        float | None, typer.Option(help="... or every T seconds (default 2; following: 30)")
    ] = None,
    max_wait_s: Annotated[float | None, typer.Option(help="a run stops after this long without a record")] = None,
    max_records: Annotated[int | None, typer.Option(help="a run stops after this many records")] = None,
    group: Annotated[str | None, typer.Option(help="consumer group (default mdp-landing-<topic>)")] = None,
    status_file: Annotated[
        str | None, typer.Option(help="a JSON status file rewritten every second (probes read its age)")
    ] = None,
):
    """Land the topic into Bronze, committing offsets after each durable write; print figures as JSON.

    A run lands up to the end offsets it found when it started, then ends, even while producers keep sending.

    --follow runs until SIGTERM/SIGINT, logs one line per flush, and on the signal writes and commits what it polled.
    """
    from ingestion.landing import LandingOptions, land
    from ingestion.landing import follow as follow_topic
    from mdp.core.storage import check_s3, store_for

    s = _settings(profile)
    opts = _guard(
        LandingOptions.from_env,
        follow=follow,
        batch_records=flush_records,
        batch_wait_s=flush_seconds,
        max_wait_s=max_wait_s,
        max_records=max_records,
        group=group,
        status_file=status_file,
    )
    _guard(check_s3, s)
    if not follow:
        figures = _guard(land, s, store_for(s), opts)
        typer.echo(json.dumps(figures))
        return

    stop = threading.Event()
    log = logging.getLogger("ingestion.landing")
    log.setLevel(logging.INFO)  # one line per flush

    def _on_signal(signum, _frame):
        if not stop.is_set():
            log.warning("%s: writing and committing what was polled, then exiting", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info(
            "following %r into %s (group %s; flush every %d records or %.0fs)",
            s.topic,
            s.layer_uri("bronze"),
            opts.group_id(s.topic),
            opts.batch_records,
            opts.batch_wait_s,
        )
        figures = _guard(follow_topic, s, store_for(s), opts, stop.is_set)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo(json.dumps(figures))


kafka_app.command("land")(land_cmd)


@postgres_app.command("seed")
def seed_cmd(
    profile: Profile = None,
    customers: Annotated[int, typer.Option()] = 5000,
    seed: Annotated[int | None, typer.Option()] = None,
):
    """Create the contract's table (DDL from the contract) and fill it from the generator (upsert)."""
    from ingestion.postgres_source import seed as seed_rows

    s = _settings(profile)
    n = _guard(seed_rows, s, customers, seed)
    typer.echo(f"seeded {n} rows into {s.data_contract.source_table!r} at {redact(s.postgres_dsn or '')}")


@postgres_app.command("change")
def change_cmd(
    profile: Profile = None,
    rows: Annotated[int, typer.Option(help="rows to update")] = 100,
    deletes: Annotated[int, typer.Option(help="rows to delete (published as tombstones)")] = 0,
    seed: Annotated[int, typer.Option()] = 0,
):
    """Update (and delete) some random rows, as an application would."""
    from ingestion.postgres_source import delete_rows, simulate_changes

    s = _settings(profile)
    changed = _guard(simulate_changes, s, rows, seed)
    deleted = _guard(delete_rows, s, deletes) if deletes else []
    typer.echo(f"changed {len(changed)} and deleted {len(deleted)} rows of {s.data_contract.source_table!r}")


@postgres_app.command("publish")
def publish_cmd(
    profile: Profile = None,
    follow: Annotated[bool, typer.Option(help="keep polling every --interval seconds")] = False,
    interval: Annotated[float, typer.Option()] = 5.0,
):
    """Publish the rows changed or deleted since the stored snapshot (commit order), then store the new one."""
    from ingestion.postgres_source import WatermarkPublisher
    from ingestion.producer import ensure_topic

    s = _settings(profile)
    _guard(ensure_topic, s.kafka_bootstrap, s.topic)
    pub = _guard(WatermarkPublisher, s)
    try:
        n = _guard(pub.run, interval, None) if follow else _guard(pub.poll_once)
        mark = _guard(pub.watermark)
    finally:
        pub.close()
    typer.echo(f"published {n} changed rows to {s.topic!r}; snapshot {mark or 'none yet'}")
