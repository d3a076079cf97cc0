"""`mdp airflow ...`: run Airflow for this repo's DAGs on a developer machine.

`mdp airflow standalone` starts `airflow standalone` (API server + UI, scheduler, DAG processor,
triggerer) on http://127.0.0.1:8088 with:
- AIRFLOW_HOME = <MDP_HOME>/.mdp/airflow (its own sqlite DB, logs and generated admin password),
- the DAGs folder of this repo, no example DAGs, low parallelism (2 cores are plenty),
- the embedded profile by default, with MDP_HOME made absolute so every task process finds the
  same lake and MLflow store as `mdp run`.
Stop it with Ctrl-C (SIGINT): that shuts down cleanly; SIGTERM leaves worker processes behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

airflow_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run Airflow locally for this repo's DAGs.")


def standalone_env(
    home: Path,
    airflow_home: Path | None = None,
    profile: str = "embedded",
    port: int = 8088,
    parallelism: int = 2,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment `airflow standalone` runs with (pure: returns a new dict)."""
    env = dict(os.environ if base is None else base)
    home = home.resolve()
    airflow_home = (airflow_home or home / ".mdp" / "airflow").resolve()
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            # Task processes report to the API server; its default URL assumes port 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
            "AIRFLOW__API__WORKERS": "1",
            "MDP_HOME": str(home),
            "MDP_PROFILE": profile,
            # Airflow spawns `airflow` sub-commands by name: the venv's bin must come first.
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        }
    )
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return env


@airflow_app.command()
def standalone(
    profile: Annotated[str, typer.Option("--profile", "-p", help="MDP profile the tasks use")] = "embedded",
    port: Annotated[int, typer.Option(help="API server / UI port")] = 8088,
    airflow_home: Annotated[Path | None, typer.Option(help="default: <MDP_HOME>/.mdp/airflow")] = None,
    parallelism: Annotated[int, typer.Option(help="max task processes at once")] = 2,
) -> None:
    """Start Airflow (standalone) on 127.0.0.1:PORT for this repo's DAGs; Ctrl-C stops it."""
    home = Path(os.environ.get("MDP_HOME") or ".")
    env = standalone_env(home, airflow_home, profile=profile, port=port, parallelism=parallelism)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    pw = Path(
        env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or Path(env["AIRFLOW_HOME"]) / PASSWORDS_FILE
    )
    typer.echo(
        f"Airflow on http://127.0.0.1:{port}  (AIRFLOW_HOME {env['AIRFLOW_HOME']}, profile {profile}, "
        f"MDP_HOME {env['MDP_HOME']})\nLog in as admin; the password is in {pw}\nStop with Ctrl-C."
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    os.execve(airflow, [airflow, "standalone"], env)
