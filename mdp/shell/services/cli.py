"""`mdp services up|down|status|env|bootstrap`: the local servers from the command line (see __init__.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mdp.core.errors import EXIT_CONFIG, EXIT_STAGE
from mdp.shell.services.config import PG_DATABASES, SERVICE_NAMES
from mdp.shell.services.host import ServiceError
from mdp.shell.services.local import LocalServices

services_app = typer.Typer(
    no_args_is_help=True, help="Local servers for the `local` profile (PostgreSQL, tansu, SeaweedFS, MLflow)."
)
Only = Annotated[list[str] | None, typer.Option("--only", "-o", help=f"only these: {', '.join(SERVICE_NAMES)}")]
Home = Annotated[Path, typer.Option(help="project folder; state goes to HOME/.mdp/services")]


def _services(home: Path) -> LocalServices:
    return LocalServices(home / ".mdp" / "services")


def _names(only: list[str] | None) -> tuple[str, ...]:
    names = tuple(only or SERVICE_NAMES)
    bad = [n for n in names if n not in SERVICE_NAMES]
    if bad:
        typer.echo(f"unknown service(s) {', '.join(bad)}; choose from {', '.join(SERVICE_NAMES)}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    return names


def _exports(svc: LocalServices) -> str:
    return "\n".join(f"export {k}={v}" for k, v in svc.env().items())


@services_app.command("up")
def up_cmd(only: Only = None, home: Home = Path(".")) -> None:
    """Start the services (idempotent), wait until healthy, bootstrap buckets, databases and the topic."""
    svc = _services(home)
    try:
        for name in _names(only):
            t0 = time.monotonic()
            typer.echo(f"starting {name} on 127.0.0.1:{svc.port_of(name)} ...", nl=False)
            svc.up((name,))
            typer.echo(f" ok ({time.monotonic() - t0:.1f}s)")
    except ServiceError as exc:
        typer.echo(f"\nerror: {exc}", err=True)
        raise typer.Exit(EXIT_STAGE) from None
    typer.echo(f'state in {svc.root}\n# local-only dev credentials; run: eval "$(mdp services env)"\n{_exports(svc)}')


@services_app.command("down")
def down_cmd(only: Only = None, home: Home = Path(".")) -> None:
    """Stop the services this folder started (data stays under .mdp/services)."""
    svc = _services(home)
    for name in reversed(_names(only)):
        svc.stop(name)
        typer.echo(f"stopped {name}")


@services_app.command("status")
def status_cmd(home: Home = Path(".")) -> None:
    """Which services run and answer their health check. Exit 1 if any is down."""
    svc = _services(home)
    rows = svc.status()
    for r in rows:
        state = "healthy" if r["healthy"] else ("running, NOT healthy" if r["running"] else "stopped")
        typer.echo(f"{r['service']:<9} 127.0.0.1:{r['port']:<6} pid={r['pid'] or '-':<8} {state}")
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(EXIT_STAGE)


@services_app.command("env")
def env_cmd(home: Home = Path(".")) -> None:
    """Print the shell exports for the local-only dev credentials: eval "$(mdp services env)"."""
    typer.echo(_exports(_services(home)))


@services_app.command("bootstrap")
def bootstrap_cmd(home: Home = Path(".")) -> None:
    """Create missing buckets (bronze, silver, gold, mlflow), databases, role and topic. Idempotent."""
    svc = _services(home)
    try:
        created = svc.bootstrap_s3()
        svc.bootstrap_postgres()
        svc.bootstrap_kafka()
    except Exception as exc:
        typer.echo(f"error: bootstrap failed ({type(exc).__name__}: {exc}); is `mdp services up` running?", err=True)
        raise typer.Exit(EXIT_STAGE) from None
    typer.echo(
        f"buckets created: {', '.join(created) or 'none (all present)'}; databases {', '.join(PG_DATABASES)}; topic {svc.config.kafka_topic}"
    )
