"""The published scores, mirrored into Postgres for the apps that read them there.

The table's name and key come from the contract (`Contract.scores_table`, `primary_key` with its
type). One transaction per sync: the lake's rows are copied into a temporary table, upserted with
ON CONFLICT on the key (a row changes only when its values do), and the rows of entities that left
Gold (or were scored from another snapshot) are deleted. Readers see the old table or the new one,
and a rerun leaves exactly one row per entity. Syncs run outside the scores' lease (Postgres may be
slow), so they order themselves: see `sync`.
"""

from __future__ import annotations

from ingestion.postgres_source import PG_TYPES, connect, q
from mdp.core.contract import Contract
from mdp.core.tables import Dataset
from scoring.champion import META, SCORE

BATCH_ROWS = 50_000


def columns(contract: Contract) -> list[str]:
    return [contract.primary_key, SCORE, *META]


def table_ddl(contract: Contract) -> str:
    key = contract.primary_key
    return (
        f"CREATE TABLE IF NOT EXISTS {q(contract.scores_table)} (\n"
        f"    {q(key)} {PG_TYPES[contract.column(key).type]} PRIMARY KEY,\n"
        f"    {SCORE} double precision NOT NULL,\n"
        + "".join(f"    {m} text NOT NULL,\n" for m in META)
        + "    scored_at timestamptz NOT NULL DEFAULT now()\n);"
    )


def upsert_sql(contract: Contract, staging: str) -> str:
    cols = columns(contract)
    key = contract.primary_key
    values = [c for c in cols if c != key]
    return (
        f"INSERT INTO {q(contract.scores_table)} AS t ({', '.join(q(c) for c in cols)}) "
        f"SELECT {', '.join(q(c) for c in cols)} FROM {q(staging)} "
        f"ON CONFLICT ({q(key)}) DO UPDATE SET {', '.join(f'{q(c)} = EXCLUDED.{q(c)}' for c in values)}, scored_at = now() "
        f"WHERE ({', '.join(f't.{q(c)}' for c in values)}) IS DISTINCT FROM ({', '.join(f'EXCLUDED.{q(c)}' for c in values)})"
    )


def sync(settings, dataset: Dataset, version: int) -> dict:
    """Make the Postgres table hold exactly the scores of `version`. Skipped when it already does,
    and when `version` is no longer the published one: syncs of one table take turns (an advisory
    lock held by the transaction), and each copies only what is published when its turn comes, so
    a slow sync of an older version cannot overwrite a newer one."""
    contract = settings.data_contract
    table, cols = contract.scores_table, columns(contract)
    with connect(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mdp-scores-sync:{table}",))
        doc = dataset.current()
        if doc is None or doc.version != version:
            conn.rollback()
            return {
                "postgres_table": table,
                "postgres_upserted": 0,
                "postgres_deleted": 0,
                "postgres_skipped": f"scores {version} were superseded by {doc and doc.version}",
            }
        conn.execute(table_ddl(contract))
        held = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE model_version = %s AND gold_snapshot = %s) FROM {q(table)}",
            (doc.model_version, str(doc.gold_snapshot)),
        ).fetchone()
        if held == (doc.rows, doc.rows):
            conn.rollback()
            return {"postgres_table": table, "postgres_upserted": 0, "postgres_deleted": 0}
        staging = f"mdp_staging_{table}"
        key_type = PG_TYPES[contract.column(contract.primary_key).type]
        conn.execute(
            f"CREATE TEMP TABLE {q(staging)} ({q(contract.primary_key)} {key_type}, {SCORE} double precision, "
            + ", ".join(f"{m} text" for m in META)
            + ") ON COMMIT DROP"
        )
        files = dataset.primary.dataset(version)
        with conn.cursor().copy(f"COPY {q(staging)} ({', '.join(q(c) for c in cols)}) FROM STDIN") as copy:
            for batch in files.to_batches(columns=cols, batch_size=BATCH_ROWS):
                for row in zip(*(batch.column(c).to_pylist() for c in cols), strict=True):
                    copy.write_row(row)
        upserted = conn.execute(upsert_sql(contract, staging)).rowcount
        deleted = conn.execute(
            f"DELETE FROM {q(table)} t WHERE NOT EXISTS (SELECT 1 FROM {q(staging)} s "
            f"WHERE s.{q(contract.primary_key)} = t.{q(contract.primary_key)})"
        ).rowcount
        conn.commit()
    return {"postgres_table": table, "postgres_upserted": upserted, "postgres_deleted": deleted}
