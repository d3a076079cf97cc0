"""`mdp sql` through the CLI on the embedded profile: one query per layer, `--as-of`, `--out`, and a
clear exit code for an unknown table, bad SQL and a version that is not there. The lake is made
without Spark (tests/shell/sql_lake.py); tests/shell/test_sql_s3.py runs the same on S3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tests.shell.sql_lake import build_lake

MDP = str(Path(sys.executable).parent / "mdp")
ROOT = Path(__file__).resolve().parents[2]


def mdp_sql(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MDP, "sql", *args],
        env={**env, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_every_layer(env: dict, lake: dict, tmp_path: Path) -> None:
    r = mdp_sql(env, "--tables")
    assert r.returncode == 0, r.stderr
    listed = {tuple(c.strip() for c in line.split("│")[1:3]) for line in r.stdout.splitlines() if line.count("│") >= 3}
    assert {(name, str(version)) for name, version in lake["versions"].items()} <= listed, r.stdout

    for name, rows in lake["rows"].items():  # one query per layer, the row count its writer wrote
        r = mdp_sql(env, f"select count(*) as n from {name}")
        assert r.returncode == 0, r.stderr
        assert f"│ {rows} " in r.stdout, (name, rows, r.stdout)

    # --as-of: Gold's first snapshot, and Silver's first version (its quarantine with it).
    assert f"│ {lake['gold_rows'][0]} " in mdp_sql(env, "select count(*) from gold.features", "--as-of", "0").stdout
    r = mdp_sql(env, "select count(*) from silver.quarantine", "--as-of", "0")
    assert r.returncode == 0 and f"│ {lake['quarantine_rows'][0]} " in r.stdout, r.stdout + r.stderr
    r = mdp_sql(
        env,
        "select count(*) from silver.state s join gold.features f using (customer_id)",
        "--as-of",
        "gold.features=0",
    )
    assert r.returncode == 0, r.stderr

    out = tmp_path / "q.csv"
    r = mdp_sql(env, "select customer_id from silver.state order by 1", "--out", str(out))
    assert r.returncode == 0 and pacsv.read_csv(out).num_rows == lake["rows"]["silver.state"], r.stderr
    out = tmp_path / "q.parquet"
    assert mdp_sql(env, "select * from gold.features", "--out", str(out)).returncode == 0
    assert pq.read_table(out).num_rows == lake["rows"]["gold.features"]

    r = mdp_sql(env, "select * from silver.nope")
    assert r.returncode == 2 and "unknown table 'silver.nope'" in r.stderr and "silver.state" in r.stderr, r.stderr
    r = mdp_sql(env, "selec 1")
    assert r.returncode == 2 and "bad query" in r.stderr, r.stderr
    r = mdp_sql(env, "select * from gold.features", "--as-of", "9")
    assert r.returncode == 6 and "has no version 9" in r.stderr, r.stderr
    r = mdp_sql(env, "select * from gold.features, silver.state", "--as-of", "0")
    assert r.returncode == 2 and "--as-of TABLE=0" in " ".join(r.stderr.split()), r.stderr


def test_mdp_sql_on_the_embedded_profile(tmp_path):
    from mdp.core.settings import get_settings

    settings = get_settings(home=tmp_path)
    lake = build_lake(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDP_")} | {"MDP_HOME": str(tmp_path)}
    check_every_layer(env, lake, tmp_path)


def test_a_plain_deltatable_reads_what_mdp_sql_reads(tmp_path):
    """delta-rs straight from the folders (no mdp code), at each version: the rows mdp's reader gives.
    (The independent reader, DuckDB's delta extension, reads the pipeline's own lake: test_embedded_e2e.py.)"""
    from deltalake import DeltaTable

    from mdp.core import catalog
    from mdp.core.settings import get_settings

    settings = get_settings(home=tmp_path)
    build_lake(settings)
    lake = tmp_path / ".mdp" / "lake"
    for name, folder in (("silver.state", "silver/customers/state"), ("gold.features", "gold/customers/features")):
        for version in range(DeltaTable(str(lake / folder)).version() + 1):
            theirs = DeltaTable(str(lake / folder), version=version).to_pyarrow_table().sort_by("customer_id")
            ours = catalog.read(settings, name, version).sort_by("customer_id")
            assert theirs.equals(ours), (name, version)
