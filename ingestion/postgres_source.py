"""Postgres source (optional in every profile): the contract's table, a seeding command, and a
publisher that sends changed and deleted rows to Kafka in commit order.

The table follows the data contract (`settings.data_contract`): its name is
`contract.source_table`, its columns are the contract's state columns (types, NOT NULL, the primary
key of any type), plus the watermark column (`contract.postgres.watermark_column`, default
`updated_at`) and `mdp_xid`. Triggers keep them, whatever a writer sets:
- `<table>_touch` sets the watermark column to clock_timestamp(): the row version's time, which
  the published event carries as its event time;
- `<table>_xid` sets `mdp_xid` to pg_current_xact_id(): the writing (top-level) transaction;
- `<table>_delete` (when the contract has a tombstone) copies a deleted row's last state, with the
  delete's time and transaction, into `mdp_deleted_<table>`; `<table>_rekey` does the same for the
  old key of an UPDATE that changes the primary key (without a tombstone it refuses that UPDATE).

Commit order, not timestamps. A timestamp watermark skips a transaction that commits after a
later one was published: its timestamps are older than the watermark by the time it is visible.
So the publisher stores a snapshot (pg_current_snapshot()), not a time. Each poll, in one
REPEATABLE READ transaction, it
  1. takes the current snapshot S, the one its reads see;
  2. reads every row and every tombstone whose transaction is visible in S and was not visible in
     the stored snapshot P: `NOT pg_visible_in_snapshot(mdp_xid, P)` (plus
     `mdp_xid >= pg_snapshot_xmin(P)`, which the index serves);
  3. publishes them in event-time order and waits for Kafka's acks (acks=all);
  4. only then stores S as the new P (table `mdp_publisher_snapshots`).
A transaction is visible in a snapshot taken after it committed, and in none taken before; so each
committed transaction falls in exactly one window (P, S], however its start, its timestamps and
its commit are ordered against other transactions. One still in progress at S is in the next
window. A crash between 3 and 4 republishes the window: a republished row carries the same
event id (derived from its key and its watermark value), so Silver drops the copy. A second
publisher of the same name is refused while one polls (an advisory lock).

Deletes reach Kafka as tombstones: the last state of the row, its event time the delete's time,
and the contract's tombstone column set to its value (customers: event_type = customer_deleted),
so the event passes the contract like any other and is the entity's latest state.

Limits: rows changed between two polls publish only their last version (the latest state is what
Silver keeps); TRUNCATE, and writes made with the triggers disabled, are not seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mdp.core.contract import Contract, load_contract
from mdp.core.errors import Busy, ConfigError, Unavailable
from mdp.core.settings import Settings, connect_failure

if TYPE_CHECKING:
    import psycopg
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

SNAPSHOTS = "mdp_publisher_snapshots"
XID = "mdp_xid"
PG_TYPES = {
    "string": "text",
    "int": "integer",
    "double": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
}


def q(name: str) -> str:
    """A quoted SQL identifier (contract names are data, not SQL)."""
    return '"' + name.replace('"', '""') + '"'


def state_columns(contract: Contract) -> list:
    """The contract columns a row holds: everything but the event envelope."""
    return contract.state_columns


def deleted_table(contract: Contract) -> str:
    return f"mdp_deleted_{contract.source_table}"


def watermark_column(contract: Contract) -> str:
    """The row-version time column; a state column of that name must be a timestamp."""
    wm = contract.postgres.watermark_column
    for column in state_columns(contract):
        if column.name == wm and column.type != "timestamp":
            raise ConfigError(
                f"contract {contract.entity}: postgres.watermark_column {wm!r} is a {column.type} column; "
                "it must be a timestamp (or a name the contract does not use)"
            )
    return wm


def table_ddl(contract: Contract | None = None) -> str:
    """DDL derived from the contract: the table, its triggers, the tombstone table, the snapshot table."""
    contract = contract or load_contract()
    t, pk, wm = contract.source_table, contract.primary_key, watermark_column(contract)
    names = [column.name for column in state_columns(contract)]
    cols = [
        f"    {q(column.name)} {PG_TYPES[column.type]}{'' if column.nullable else ' NOT NULL'}"
        for column in state_columns(contract)
    ]
    if wm not in names:
        cols.append(f"    {q(wm)} timestamptz NOT NULL DEFAULT clock_timestamp()")
    cols.append(f"    {XID} xid8")  # set by the trigger; NULL only on rows older than the triggers
    cols.append(f"    PRIMARY KEY ({q(pk)})")
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {q(t)} (\n" + ",\n".join(cols) + "\n);",
        # An existing table gets the column without a rewrite; its old rows go out with the first poll.
        f"ALTER TABLE {q(t)} ADD COLUMN IF NOT EXISTS {XID} xid8;",
        f"CREATE INDEX IF NOT EXISTS {q(t + '_mdp_xid_idx')} ON {q(t)} ({XID});",
        # Every insert or update moves the watermark column and records its transaction.
        f"CREATE OR REPLACE FUNCTION {q('mdp_touch_' + t)}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN NEW.{q(wm)} := clock_timestamp(); RETURN NEW; END $$;",
        f"CREATE OR REPLACE TRIGGER {q(t + '_touch')} BEFORE INSERT OR UPDATE ON {q(t)}\n"
        f"    FOR EACH ROW EXECUTE FUNCTION {q('mdp_touch_' + t)}();",
        "CREATE OR REPLACE FUNCTION mdp_set_xid() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN NEW.{XID} := pg_current_xact_id(); RETURN NEW; END $$;",
        f"CREATE OR REPLACE TRIGGER {q(t + '_xid')} BEFORE INSERT OR UPDATE ON {q(t)}\n"
        "    FOR EACH ROW EXECUTE FUNCTION mdp_set_xid();",
        f"CREATE TABLE IF NOT EXISTS {SNAPSHOTS} (\n"
        "    publisher text PRIMARY KEY,\n"
        "    source_table text NOT NULL,\n"
        "    snapshot pg_snapshot NOT NULL,\n"
        "    published bigint NOT NULL DEFAULT 0,\n"
        "    saved_at timestamptz NOT NULL DEFAULT now()\n"
        ");",
    ]
    if contract.tombstone:
        d = deleted_table(contract)
        dcols = [f"    {q(column.name)} {PG_TYPES[column.type]}" for column in state_columns(contract)]
        if wm not in names:
            dcols.append(f"    {q(wm)} timestamptz NOT NULL")
        kept = [n for n in names if n != wm]  # the last state; the watermark column gets the delete's time
        listed = ", ".join(q(n) for n in kept + [wm])
        old = ", ".join(f"OLD.{q(n)}" for n in kept)
        stmts += [
            f"CREATE TABLE IF NOT EXISTS {q(d)} (\n    mdp_seq bigserial PRIMARY KEY,\n"
            + ",\n".join(dcols)
            + f",\n    {XID} xid8 NOT NULL\n);",
            f"CREATE INDEX IF NOT EXISTS {q(d + '_mdp_xid_idx')} ON {q(d)} ({XID});",
            # The last state, stamped with the delete's time and transaction.
            f"CREATE OR REPLACE FUNCTION {q('mdp_delete_' + t)}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN INSERT INTO {q(d)} ({listed}, {XID})\n"
            f"    VALUES ({old}{', ' if old else ''}clock_timestamp(), pg_current_xact_id()); RETURN OLD; END $$;",
            f"CREATE OR REPLACE TRIGGER {q(t + '_delete')} AFTER DELETE ON {q(t)}\n"
            f"    FOR EACH ROW EXECUTE FUNCTION {q('mdp_delete_' + t)}();",
            # An UPDATE of the key moves the entity: the old key is deleted (a tombstone), or it would
            # stay in Silver and Gold for ever.
            f"CREATE OR REPLACE TRIGGER {q(t + '_rekey')} AFTER UPDATE OF {q(pk)} ON {q(t)}\n"
            f"    FOR EACH ROW WHEN (OLD.{q(pk)} IS DISTINCT FROM NEW.{q(pk)}) EXECUTE FUNCTION {q('mdp_delete_' + t)}();",
        ]
    else:
        # No tombstone in the contract: an old key could never leave Silver, so a key UPDATE is refused.
        stmts += [
            f"CREATE OR REPLACE FUNCTION {q('mdp_rekey_' + t)}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN RAISE EXCEPTION 'mdp: %.% cannot change (% to %): contract {contract.entity} has no tombstone, so the old key "
            f"would never leave Silver; insert a new row instead', TG_TABLE_NAME, {_lit(pk)}, OLD.{q(pk)}, NEW.{q(pk)}; END $$;",
            f"CREATE OR REPLACE TRIGGER {q(t + '_rekey')} BEFORE UPDATE OF {q(pk)} ON {q(t)}\n"
            f"    FOR EACH ROW WHEN (OLD.{q(pk)} IS DISTINCT FROM NEW.{q(pk)}) EXECUTE FUNCTION {q('mdp_rekey_' + t)}();",
        ]
    return "\n".join(stmts)


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _redact(dsn: str) -> str:
    from urllib.parse import urlparse

    p = urlparse(dsn)
    return dsn.replace(f":{p.password}@", ":***@") if p.password else dsn


def connect(settings: Settings, autocommit: bool = False) -> psycopg.Connection:
    """A connection; a refused or timed-out connect is Unavailable, rejected credentials a ConfigError."""
    import psycopg

    if not settings.postgres_dsn:
        raise ConfigError("postgres_dsn (MDP_POSTGRES_DSN): required for the Postgres source")
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    try:
        return psycopg.connect(
            settings.postgres_dsn,
            password=password,
            autocommit=autocommit,
            connect_timeout=max(1, int(settings.connect_timeout_s)),
        )
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        where = f"Postgres at {_redact(settings.postgres_dsn)}"
        # The server answered and said no (bad password or role, no such database): a setting to fix.
        if (exc.sqlstate or "").startswith(("28", "3D")) or "authentication failed" in text or "does not exist" in text:
            raise ConfigError(f"cannot connect to {where} (postgres_dsn, PGPASSWORD): refused: {first}") from None
        raise Unavailable(
            f"cannot connect to {where} (postgres_dsn, MDP_POSTGRES_DSN): {connect_failure(first)}"
        ) from None


def ensure_schema(settings: Settings) -> None:
    with connect(settings, autocommit=True) as conn:
        conn.execute(table_ddl(settings.data_contract))


# ---- seeding and changes -------------------------------------------------------------------------
def _upsert_sql(contract: Contract) -> str:
    names = [column.name for column in state_columns(contract)]
    pk = contract.primary_key
    updates = ", ".join(f"{q(n)} = EXCLUDED.{q(n)}" for n in names if n != pk)
    return (
        f"INSERT INTO {q(contract.source_table)} ({', '.join(q(n) for n in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT ({q(pk)}) DO UPDATE SET {updates}"
    )


def seed(settings: Settings, customers: int, seed_value: int | None = None, hour: datetime | None = None) -> int:
    """Fill the table from the generator: the latest clean state of about `customers` entities.

    The generator makes customers events; a contract whose columns it does not make is refused
    (insert such rows with your own tools: the publisher follows any contract)."""
    from ingestion.generator import CustomerEventGenerator

    contract = settings.data_contract
    hour = hour or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    gen = CustomerEventGenerator(settings.seed if seed_value is None else seed_value, hour, n_customers=customers)
    names = [column.name for column in state_columns(contract)]
    latest: dict = {}
    for e in gen.events(customers * 3, dirty_fraction=0.0):
        body = json.loads(e.message)
        missing = [n for n in names if n not in body]
        if missing:
            raise ConfigError(
                f"mdp postgres seed: the generator makes customers rows, not {contract.entity!r} rows "
                f"(no {missing[:5]}); insert rows into {contract.source_table!r} yourself"
            )
        latest[body[contract.primary_key]] = body
    rows = [tuple(body[n] for n in names) for body in latest.values()]
    ensure_schema(settings)
    with connect(settings) as conn, conn.cursor() as cur:
        cur.executemany(_upsert_sql(contract), rows)
    return len(rows)


def _changed_value(column, value, rng: random.Random):
    """A plausible new value for an application update; None when the column is not one to change."""
    if column.allowed:
        return rng.choice(column.allowed)
    if column.type in ("int", "double") and value is not None:
        lo = float(column.min) if column.min is not None else float("-inf")
        hi = float(column.max) if column.max is not None else float("inf")
        if column.type == "int":
            return int(min(max(value + rng.randint(0, 3), lo), hi))
        return min(max(round(value * rng.uniform(0.8, 1.25) + rng.uniform(0, 5), 2), lo), hi)
    return None


def simulate_changes(settings: Settings, n: int, seed_value: int = 0) -> list:
    """Update `n` random rows like an application would (a few columns each). Returns their keys."""
    from psycopg.rows import dict_row

    contract = settings.data_contract
    rng = random.Random(seed_value)
    skip = {contract.primary_key, contract.label.column, contract.postgres.watermark_column}
    cols = [column for column in state_columns(contract) if column.name not in skip]
    t, pk = q(contract.source_table), q(contract.primary_key)
    changed = []
    with connect(settings) as conn, conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(f"SELECT * FROM {t} ORDER BY random() LIMIT %s", (n,)).fetchall():
            updates = {}
            for column in rng.sample(cols, k=len(cols)):
                value = _changed_value(column, row[column.name], rng)
                if value is not None:
                    updates[column.name] = value
                if len(updates) == 3:
                    break
            sets = ", ".join(f"{q(k)} = %s" for k in updates) or f"{pk} = {pk}"  # no such column: still a new version
            cur.execute(f"UPDATE {t} SET {sets} WHERE {pk} = %s", [*updates.values(), row[contract.primary_key]])
            changed.append(row[contract.primary_key])
    return changed


def delete_rows(settings: Settings, n: int) -> list:
    """Delete `n` random rows, as an application would. Returns their keys."""
    contract = settings.data_contract
    t, pk = q(contract.source_table), q(contract.primary_key)
    with connect(settings) as conn:
        return [
            r[0]
            for r in conn.execute(
                f"DELETE FROM {t} WHERE {pk} IN (SELECT {pk} FROM {t} ORDER BY random() LIMIT %s) RETURNING {pk}", (n,)
            )
        ]


def _value(cursor: psycopg.Cursor) -> Any:
    """The one value of a query that returns one row (a SELECT of a function)."""
    row = cursor.fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    return row[0]


# ---- the publisher --------------------------------------------------------------------------------
def event_id_for(key: object, version: datetime, deleted: bool = False) -> str:
    """A UUID (version 4 layout) derived from the row version: a republished row keeps its id."""
    digest = hashlib.sha256(f"{key}|{version.isoformat()}{'|deleted' if deleted else ''}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _json_value(v):
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, date):
        return v.isoformat()
    return v


def upsert_event_type(contract: Contract) -> str | None:
    """The event type of a changed row: the allowed value that names an update, else the first that is
    not the tombstone's (customers: customer_updated)."""
    if not contract.event_type:
        return None
    allowed = contract.column(contract.event_type).allowed or []
    tomb = contract.tombstone.value if contract.tombstone and contract.tombstone.column == contract.event_type else None
    for v in allowed:
        if v.endswith("updated") and v != tomb:
            return v
    return next((v for v in allowed if v != tomb), "updated")


def row_event(row: dict, contract: Contract, deleted: bool = False) -> dict:
    """A table row -> the flat message: the contract's fields (envelope and state), in contract order."""
    version = row[contract.postgres.watermark_column]
    event = {column.name: _json_value(row[column.name]) for column in state_columns(contract)}
    event[contract.event_id] = event_id_for(row[contract.primary_key], version, deleted)
    if contract.event_time:
        event[contract.event_time] = _json_value(version)
    if contract.event_type:
        event[contract.event_type] = upsert_event_type(contract)
    if deleted:
        if not contract.tombstone:
            raise ConfigError(f"contract {contract.entity}: a deleted row needs `tombstone` to be published")
        event[contract.tombstone.column] = contract.tombstone.value
    return {name: event[name] for name in contract.names if name in event}


class WatermarkPublisher:
    """Publishes changed and deleted rows by commit order; the stored watermark is a snapshot."""

    def __init__(
        self, settings: Settings, name: str | None = None, producer: KafkaProducer | None = None, batch_rows: int = 5000
    ) -> None:
        self.settings = settings
        self.contract = settings.data_contract
        self.name = name or f"{self.contract.source_table}-to-kafka"
        self.batch_rows = batch_rows
        self._producer = producer
        ensure_schema(settings)

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            from ingestion.producer import make_producer

            self._producer = make_producer(self.settings)
        return self._producer

    def watermark(self) -> str | None:
        """The stored snapshot (xmin:xmax:in-progress ids), or None before the first publish."""
        with connect(self.settings) as conn:
            row = conn.execute(f"SELECT snapshot::text FROM {SNAPSHOTS} WHERE publisher = %s", (self.name,)).fetchone()
        return row[0] if row else None

    def _changes_sql(self, since: str | None) -> tuple[str, dict | None]:
        contract = self.contract
        wm = contract.postgres.watermark_column
        names = [col.name for col in state_columns(contract)]
        cols = ", ".join(q(n) for n in names + ([] if wm in names else [wm]))
        where = (
            f"{XID} >= pg_snapshot_xmin(%(since)s::pg_snapshot) AND NOT pg_visible_in_snapshot({XID}, %(since)s::pg_snapshot)"
            if since
            else "TRUE"
        )
        parts = [f"SELECT {cols}, false AS mdp_deleted FROM {q(contract.source_table)} WHERE {where}"]
        if contract.tombstone:
            parts.append(f"SELECT {cols}, true FROM {q(deleted_table(contract))} WHERE {where}")
        return " UNION ALL ".join(parts) + f" ORDER BY {q(wm)}, {q(contract.primary_key)}", (
            {"since": since} if since else None
        )

    def _save(self, conn, snapshot: str, n: int) -> None:
        conn.execute(
            f"INSERT INTO {SNAPSHOTS} (publisher, source_table, snapshot, published, saved_at) "
            "VALUES (%s, %s, %s::pg_snapshot, %s, now()) ON CONFLICT (publisher) DO UPDATE SET "
            f"snapshot = EXCLUDED.snapshot, source_table = EXCLUDED.source_table, "
            f"published = {SNAPSHOTS}.published + EXCLUDED.published, saved_at = now()",
            (self.name, self.contract.source_table, snapshot, n),
        )
        conn.commit()

    def poll_once(self) -> int:
        """Publish every row and tombstone committed since the stored snapshot; returns how many."""
        from psycopg import IsolationLevel
        from psycopg.rows import dict_row

        from ingestion.producer import publish

        contract = self.contract
        total = 0
        with connect(self.settings) as conn:
            lock = f"mdp-publisher:{self.name}"
            if not _value(conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,))):
                raise Busy(
                    f"another publisher named {self.name!r} is polling {contract.source_table!r} now; retry later"
                )
            conn.commit()
            since = self.watermark()
            conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
            # The snapshot of this transaction: every read below sees exactly what it shows.
            snapshot = _value(conn.execute("SELECT pg_current_snapshot()::text"))
            sql, params = self._changes_sql(since)
            with conn.cursor(name="mdp_changes", row_factory=dict_row) as cur:
                cur.itersize = self.batch_rows
                cur.execute(sql, params)
                while rows := cur.fetchmany(self.batch_rows):
                    messages = [
                        (
                            str(r[contract.primary_key]).encode(),
                            json.dumps(row_event(r, contract, r["mdp_deleted"]), separators=(",", ":")).encode(),
                        )
                        for r in rows
                    ]
                    publish(self.producer, self.settings.topic, messages)  # raises unless every send is acked
                    total += len(rows)
            conn.commit()
            conn.isolation_level, conn.read_only = None, False
            self._save(conn, snapshot, total)  # only after Kafka acknowledged every row of the window
            # Released here, not by closing: a closed session's backend may still hold the lock when
            # the next poll connects, and that poll would be refused as a second publisher.
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
            conn.commit()
        return total

    def run(self, interval_s: float = 5.0, max_polls: int | None = None) -> int:
        total, polls = 0, 0
        while max_polls is None or polls < max_polls:
            n = self.poll_once()
            total += n
            polls += 1
            if n:
                log.info("published %d changed rows", n)
            time.sleep(interval_s)
        return total

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
