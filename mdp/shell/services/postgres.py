"""The PostgreSQL server: initdb once, pg_ctl start/stop, role `mdp` and its databases."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdp.shell.services.binaries import find_binary
from mdp.shell.services.config import PG_DATABASES, PG_ROLE
from mdp.shell.services.host import ServiceError, ServiceHost, tail, wait_until

if TYPE_CHECKING:
    from psycopg import Connection


class PostgresServer(ServiceHost):
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
        owner = self._hand_to_postgres_user(d, run, data)
        if not (data / "PG_VERSION").exists():
            self._initdb(bindir, d, data, owner)
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
                f"postgres: pg_ctl start failed: {res.stderr.strip() or res.stdout.strip()}; log: {tail(d / 'log')}"
            )
        wait_until(self.postgres_healthy_superuser, "postgres", 30, log=d / "log")
        self.bootstrap_postgres()

    def _hand_to_postgres_user(self, d: Path, run: Path, data: Path) -> tuple[int, int] | None:
        """As root: give the server's folders to the `postgres` system user; its (uid, gid), else None."""
        if os.geteuid() != 0:
            return None
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("postgres: no `postgres` system user (install the Debian postgresql package)") from None
        for p in (d, run, *([data] if data.exists() else [])):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        probe = subprocess.run(self._as_pg_user(["test", "-w", str(d)]), capture_output=True)
        if probe.returncode != 0:
            raise ServiceError(
                f"postgres: the postgres user cannot write {d}; every parent folder must be searchable (chmod o+x)"
            )
        return pw.pw_uid, pw.pw_gid

    def _initdb(self, bindir: str, d: Path, data: Path, owner: tuple[int, int] | None) -> None:
        pwfile = d / "pwfile"
        pwfile.write_text(self.config.pg_password + "\n")
        if owner is not None:
            os.chown(pwfile, *owner)
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

    def _pg_super(self, dbname: str = "postgres") -> Connection[Any]:
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
            row = conn.execute("select 1").fetchone()
            return row is not None and row[0] == 1

    def postgres_healthy(self) -> bool:
        import psycopg

        with psycopg.connect(self.postgres_dsn(), password=self.config.pg_password, connect_timeout=3) as conn:
            row = conn.execute("select 1").fetchone()
            return row is not None and row[0] == 1

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

    def create_database(self, db: str, conn: Connection[Any] | None = None) -> None:
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
