"""Shared pieces of the reliability tests (issue 7): CLI runs, fake credentials, lakes.

- `run_cli` runs `mdp` as a subprocess (a JVM start, about a minute), `run_cli_in_process` runs the
  same `main()` in this process on the shared SparkSession. Every CLI run has FAKE_SECRETS in its
  environment and its output is kept in CLI_OUTPUTS, so the secrets test can scan everything the
  CLI printed in this session.
- `reference` is one clean, in-order embedded run over three hours (land, Silver, gate, Gold),
  with content checksums after each hour. The crash, rerun/backfill and gate tests compare with it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
MDP = str(Path(sys.executable).parent / "mdp")

H1 = datetime(2026, 3, 2, 9, tzinfo=UTC)
HOURS = [H1, H1 + timedelta(hours=1), H1 + timedelta(hours=2)]
EVENTS = 300  # per hour: small, the figures are about correctness, not volume
SEED = 5
REDELIVERED = 8  # CRM events of H2 delivered again in H3 (half of them with conflicting content)

# Fake credentials, unique per session: present in every environment the tests build, so any leak
# into output, logs, the lake or MLflow is found by plain substring search.
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAREL7" + secrets.token_hex(6).upper(),
    "AWS_SECRET_ACCESS_KEY": "rel7-secret-" + secrets.token_hex(12),
    "PGPASSWORD": "rel7-pg-" + secrets.token_hex(8),
}
CLI_OUTPUTS: list[tuple[str, str]] = []  # (what ran, stdout + stderr)


def free_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(home: Path | str | None = None, secrets_in_env: bool = True, **extra: str) -> dict[str, str]:
    drop = ("MDP_", "AWS_", "PGPASSWORD", "MLFLOW_TRACKING_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "MDP_SPARK_DRIVER_MEMORY": "1g",
            "GX_ANALYTICS_ENABLED": "false",
            "COLUMNS": "200",  # rich wraps at the terminal width; keep messages on one line
        }
    )
    if home is not None:
        env["MDP_HOME"] = str(home)
    if secrets_in_env:
        env.update(FAKE_SECRETS)
    env.update(extra)
    return env


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return " ".join((self.stdout + "\n" + self.stderr).split())  # rich's wrapping undone


def run_cli(args: list[str], env: dict, timeout: float = 240, cwd: Path | str | None = None) -> CliResult:
    t0 = time.monotonic()
    proc = subprocess.run([MDP, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
    result = CliResult(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
    CLI_OUTPUTS.append((" ".join(args), proc.stdout + proc.stderr))
    return result


def run_cli_in_process(args: list[str], env: dict, timeout: float = 600, cwd: Path | str | None = None) -> CliResult:
    """`mdp ARGS` as `run_cli` runs it, in this process: the CLI's `main()` (logging, secret mask,
    typer, the exit code of its SystemExit) with `env` as the whole environment, on the shared
    SparkSession (the CLI never stops it). What the run changes in the process (environment, cwd,
    argv, root logging, warning filters, excepthook) is put back afterwards.

    It sees only what Python writes to sys.stdout and sys.stderr, not the JVM's own output nor a
    signal's effect: the tests of those (crashes, signals, the secrets scan, exit codes as a pod
    sees them) use `run_cli`. A run longer than `timeout` ends the test process, with every
    thread's traceback (faulthandler), as a hung subprocess would end in a timeout."""
    from mdp.shell import cli
    from tests.helpers import shared_spark

    shared_spark()
    out, err = io.StringIO(), io.StringIO()
    # The CLI's rich consoles took their width when first imported (COLUMNS then, or none); a new
    # process would take the run's COLUMNS, so they do here, and get their own width back after.
    consoles = _cli_consoles()
    widths = [(c, c._width) for c in consoles]
    saved_env, saved_cwd, saved_argv, saved_hook = dict(os.environ), os.getcwd(), sys.argv, sys.excepthook
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    code = 0
    t0 = time.monotonic()
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        os.environ.clear()
        os.environ.update(env)
        for console in consoles:
            console._width = int(env["COLUMNS"]) if env.get("COLUMNS", "").isdigit() else None
        os.chdir(cwd or ROOT)
        sys.argv = ["mdp", *args]
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Exception:  # what a process would print as it dies
                traceback.print_exc()
                code = 1
    finally:
        faulthandler.cancel_dump_traceback_later()
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv, sys.excepthook = saved_argv, saved_hook
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for console, width in widths:
            console._width = width
    result = CliResult(list(args), code, out.getvalue(), err.getvalue(), time.monotonic() - t0)
    CLI_OUTPUTS.append((" ".join(args), result.stdout + result.stderr))
    return result


def _cli_consoles() -> list:
    """Every rich Console that a module of mdp holds (the CLI prints through them)."""
    from rich.console import Console

    modules = [m for name, m in list(sys.modules.items()) if name.startswith("mdp.") and m is not None]
    return [v for m in modules for v in vars(m).values() if isinstance(v, Console)]


# ---- lakes ---------------------------------------------------------------------------------------
def make_lake(home: Path):
    """Embedded settings for a lake under `home`, built with the fake credentials in the environment
    (unused by an embedded lake, but configured, so a leak of them would show)."""
    from mdp.core.settings import get_settings

    with mock.patch.dict(os.environ, FAKE_SECRETS):
        # About 80 customers, so about 20 test rows: below the default min_test_rows, which would
        # keep the first model from becoming champion (the gate tests need one).
        return get_settings(home=home, events=EVENTS, seed=SEED, min_test_rows=10)


def land_hour(settings, i: int) -> None:
    """Land hour HOURS[i] into Bronze: the generator's events (3% dirty), plus customers that only a
    CRM feed knows, whose events arrive in H2 and are delivered again in H3 (a producer retry or a
    replay from the source), half as exact copies and half with conflicting content under the same
    event id. Their latest state is that event, so which copy Silver keeps is visible."""
    from ingestion.land import land_from_generator
    from mdp.core.context import RunContext
    from mdp.core.lake import Interval
    from tests.helpers import clean_events, write_messages

    land_from_generator(RunContext(settings, Interval.hour_of(HOURS[i])))
    crm = [{**e, "customer_id": f"C99{j:05d}"} for j, e in enumerate(clean_events(SEED + 1, HOURS[1], REDELIVERED))]
    if i == 1:
        write_messages(settings, HOURS[1], [json.dumps(e).encode() for e in crm], source="crm")
    if i == 2:
        again = [{**e, "monthly_spend": round(e["monthly_spend"] + 99.0, 2)} if j % 2 else e for j, e in enumerate(crm)]
        write_messages(settings, HOURS[2], [json.dumps(e).encode() for e in again], source="crm-redelivery")


SILVER_STAGES = ("bronze_to_silver", "validate_silver", "silver_to_gold")


def cycle(settings, hour: datetime, stages=SILVER_STAGES, run_id: str | None = None, backfill: bool = False):
    """One run of the given stages, in process (the shared Spark session): every new Bronze object,
    or, with backfill, also the hour's objects again."""
    from mdp.core.context import RunContext
    from mdp.core.lake import Interval
    from mdp.core.stages import get_stage
    from mdp.shell.runner import run_pipeline

    ctx = RunContext(
        settings, Interval.hour_of(hour), run_id=run_id or f"cycle-{time.monotonic_ns()}", backfill=backfill
    )
    return run_pipeline(ctx, [get_stage(s) for s in stages])


def checksums(spark, settings) -> dict:
    """Content checksums of what readers see: the tables the pointers name."""
    from mdp.core import catalog
    from mdp.core.lake import spark_uri
    from spark_apps.transforms import content_checksum

    out = {}
    for name in (
        "silver.state",
        "silver.quarantine",
        "gold.features",
    ):  # gold: as_of and features; a version is not content
        if catalog.current_version(settings, name) is not None:
            uris = [spark_uri(u) for u in catalog.files(settings, name)]
            out[name.replace(".", "/")] = content_checksum(spark.read.parquet(*uris))
    return out


def staged_dirs(settings, table: str) -> set[str]:
    """The staging folders in a Silver table's folder (`staged-<write>`)."""
    from mdp.core.tables import silver_dataset

    return set(silver_dataset(settings).staged_writes(table))
