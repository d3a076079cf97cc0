"""`mdp land` and `mdp kafka ...`: the Kafka transport of the local/compose/kind profiles (Postgres: postgres_cli.py).

    mdp land                                topic -> Bronze up to the end offsets found at the start (= mdp kafka land)
    mdp land --follow                       land continuously (a long-running sink); SIGTERM drains and commits
    mdp kafka produce --events 100000       generated events (dirty ones included) -> topic

Exit codes: mdp/core/errors.py.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from mdp.shell.cli_common import Profile, guard, settings_or_exit

kafka_app = typer.Typer(no_args_is_help=True, help="Produce to and land from the Kafka topic.")


@kafka_app.command("produce")
def produce_cmd(
    profile: Profile = None,
    events: Annotated[int | None, typer.Option(help="events per hour")] = None,
    hours: Annotated[int, typer.Option(help="how many generated hours (ending with the current one)")] = 1,
    dirty_fraction: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Publish generated customer events to the topic (key customer_id, acks=all)."""
    from datetime import timedelta

    from ingestion.producer import current_hour, ensure_topic, produce_generated

    s = settings_or_exit(profile, events=events, dirty_fraction=dirty_fraction, seed=seed)
    guard(ensure_topic, s.kafka_bootstrap, s.topic)
    now = current_hour()
    figures = guard(produce_generated, s, [now - timedelta(hours=h) for h in reversed(range(hours))])
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
) -> None:
    """Land the topic into Bronze, committing offsets after each durable write; print figures as JSON.

    A run lands up to the end offsets it found when it started, then ends, even while producers keep sending.

    --follow runs until SIGTERM/SIGINT, logs one line per flush, and on the signal writes and commits what it polled.
    """
    from ingestion.landing import LandingOptions, land
    from ingestion.landing import follow as follow_topic
    from mdp.core.storage import check_s3, store_for

    s = settings_or_exit(profile)
    opts = guard(
        LandingOptions.from_env,
        follow=follow,
        batch_records=flush_records,
        batch_wait_s=flush_seconds,
        max_wait_s=max_wait_s,
        max_records=max_records,
        group=group,
        status_file=status_file,
    )
    guard(check_s3, s)
    if not follow:
        figures = guard(land, s, store_for(s), opts)
        typer.echo(json.dumps(figures))
        return

    stop = threading.Event()
    log = logging.getLogger("ingestion.landing")
    log.setLevel(logging.INFO)  # one line per flush

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
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
        figures = guard(follow_topic, s, store_for(s), opts, stop.is_set)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo(json.dumps(figures))


kafka_app.command("land")(land_cmd)
