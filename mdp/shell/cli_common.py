"""What every `mdp` sub-command shares: the --profile option, settings that fail with exit 2, and
the mapping of an error to its message and exit code (the codes: mdp/core/errors.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mdp.core.errors import EXIT_CONFIG, ConfigError, GateFailed, MdpError, Unavailable, exit_code_for
from mdp.core.settings import Settings, get_settings, redact

err = Console(stderr=True)
T = TypeVar("T")

Profile = Annotated[
    str | None, typer.Option("--profile", "-p", help="embedded | local | compose | kind (env MDP_PROFILE)")
]


def settings_or_exit(profile: str | None, **overrides: Any) -> Settings:
    """Settings for a command; a bad setting prints its name and exits 2 (no traceback)."""
    if profile:
        os.environ["MDP_PROFILE"] = profile
    try:
        settings = get_settings(**{k: v for k, v in overrides.items() if v is not None})
        _ = settings.data_contract  # a bad contract fails here, naming its key, before any work
        return settings
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]: {redact(str(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


def fail(exc: BaseException) -> typer.Exit:
    """Print what went wrong (no traceback, no password) and return the exit that carries its code."""
    text = redact(str(exc))  # an error may quote a DSN or URL with a password in it
    if isinstance(exc, GateFailed):
        err.print(f"[bold red]quality gate failed[/]\n{text}")
    elif isinstance(exc, ConfigError):
        err.print(f"[bold red]configuration error[/]: {text}")
    elif isinstance(exc, MdpError) and exc.retryable:
        err.print(f"[bold red]unavailable[/] (retry later): {text}")
    elif isinstance(exc, MdpError):
        err.print(f"[bold red]{type(exc).__name__}[/]: {text}")
    else:
        err.print(f"[bold red]stage failed[/]: {type(exc).__name__}: {text}")
    return typer.Exit(exit_code_for(exc))


def guard(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs); an error becomes one plain line on stderr and its exit code (the transports' commands)."""
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
