"""What every `mdp` sub-command shares: the --profile option and settings that fail with exit 2."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from mdp.core.errors import EXIT_CONFIG, EXIT_CONSERVATION, EXIT_GATE, EXIT_STAGE  # noqa: F401 - the exit codes, written once
from mdp.core.settings import ConfigError, get_settings, redact

err = Console(stderr=True)

Profile = Annotated[
    str | None, typer.Option("--profile", "-p", help="embedded | local | compose | kind (env MDP_PROFILE)")
]


def settings_or_exit(profile: str | None, **overrides):
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
