"""Postgres source (optional in every profile): a `customers` table that follows the data contract,
a seeding command, and a watermark publisher that sends changed rows to Kafka.

The publisher polls rows by the watermark (updated_at, customer_id), strictly after the stored
one and in that order, so rows with equal timestamps are neither skipped nor repeated. It stores
the watermark in the same database only after Kafka acknowledged the batch (acks=all): a crash in
between republishes the batch, never loses it. A republished row carries the same event_id
(derived from customer_id and updated_at), so Silver drops the copy.

Known limit, as with every timestamp-watermark CDC: a transaction that commits long after it set
updated_at could be passed by the watermark. `min_age_s` (poll only rows at least that old)
closes the gap for transactions shorter than it; the trigger uses clock_timestamp().
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from datetime import UTC, date, datetime

from mdp.core.contract import Contract, load_contract
from mdp.core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

TABLE = "customers"
WATERMARKS = "mdp_source_watermarks"
PG_TYPES = {"string": "text", "int": "integer", "double": "double precision", "boolean": "boolean",
            "date": "date", "timestamp": "timestamptz"}


def state_columns(contract: Contract) -> list:
    """The contract columns a row holds: everything but the event envelope."""
    return contract.state_columns


def table_ddl(contract: Contract | None = None) -> str:
    """DDL derived from the contract: types, NOT NULL and the primary key; plus updated_at."""
    contract = contract or load_contract()
    cols = [f"    {c.name} {PG_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in state_columns(contract)]
    cols.append("    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()")
    cols.append(f"    PRIMARY KEY ({contract.primary_key})")
    return "\n".join([
        f"CREATE TABLE IF NOT EXISTS {TABLE} (",
        ",\n".join(cols),
        ");",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_watermark_idx ON {TABLE} (updated_at, {contract.primary_key});",
        # Every insert or update moves updated_at, whatever the writer sets.
        "CREATE OR REPLACE FUNCTION mdp_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$",
        "BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;",
        f"CREATE OR REPLACE TRIGGER {TABLE}_touch BEFORE INSERT OR UPDATE ON {TABLE}",
        "    FOR EACH ROW EXECUTE FUNCTION mdp_touch_updated_at();",
        f"CREATE TABLE IF NOT EXISTS {WATERMARKS} (",
        "    publisher text PRIMARY KEY,",
        "    updated_at timestamptz NOT NULL,",
        "    customer_id text NOT NULL,",
        "    published bigint NOT NULL DEFAULT 0,",
        "    saved_at timestamptz NOT NULL DEFAULT now()",
        ");",
    ])


def connect(settings: Settings, autocommit: bool = False):
    import psycopg

    if not settings.postgres_dsn:
        raise ConfigError("postgres_dsn (MDP_POSTGRES_DSN): required for the Postgres source")
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    try:
        return psycopg.connect(settings.postgres_dsn, password=password, autocommit=autocommit,
                               connect_timeout=max(1, int(settings.connect_timeout_s)))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to Postgres at {_redact(settings.postgres_dsn)} (postgres_dsn, PGPASSWORD): {first}") from None


def _redact(dsn: str) -> str:
    from urllib.parse import urlparse

    p = urlparse(dsn)
    return dsn.replace(f":{p.password}@", ":***@") if p.password else dsn


def ensure_schema(settings: Settings) -> None:
    with connect(settings, autocommit=True) as conn:
        conn.execute(table_ddl())


# ---- seeding and changes -------------------------------------------------------------------------
def _upsert_sql(contract: Contract) -> str:
    names = [c.name for c in state_columns(contract)]
    pk = contract.primary_key
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != pk)
    return (f"INSERT INTO {TABLE} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT ({pk}) DO UPDATE SET {updates}")


def seed(settings: Settings, customers: int, seed_value: int | None = None, hour: datetime | None = None) -> int:
    """Fill the table from the generator: the latest clean state of about `customers` customers."""
    from ingestion.generator import CustomerEventGenerator

    contract = load_contract()
    hour = hour or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    gen = CustomerEventGenerator(settings.seed if seed_value is None else seed_value, hour, n_customers=customers)
    latest: dict[str, dict] = {}
    for e in gen.events(customers * 3, dirty_fraction=0.0):
        body = json.loads(e.message)
        latest[body[contract.primary_key]] = body
    names = [c.name for c in state_columns(contract)]
    rows = [tuple(body[n] for n in names) for body in latest.values()]
    ensure_schema(settings)
    with connect(settings) as conn, conn.cursor() as cur:
        cur.executemany(_upsert_sql(contract), rows)
    return len(rows)


def simulate_changes(settings: Settings, n: int, seed_value: int = 0) -> list[str]:
    """Change `n` random customers (plan, spend, tickets, last login) like an app would. Returns their ids."""
    import random

    rng = random.Random(seed_value)
    plans = load_contract().column("plan").allowed
    with connect(settings) as conn:
        ids = [r[0] for r in conn.execute(f"SELECT customer_id FROM {TABLE} ORDER BY random() LIMIT %s", (n,))]
        for cid in ids:
            conn.execute(
                f"UPDATE {TABLE} SET plan = %s, monthly_spend = %s, support_tickets = support_tickets + %s, "
                "last_login_date = current_date WHERE customer_id = %s",
                (rng.choice(plans), round(rng.uniform(0, 300), 2), rng.randint(0, 2), cid),
            )
    return ids


# ---- the publisher --------------------------------------------------------------------------------
def event_id_for(customer_id: str, updated_at: datetime) -> str:
    """A UUID (version 4 layout) derived from the row version: a republished row keeps its id."""
    digest = hashlib.sha256(f"{customer_id}|{updated_at.isoformat()}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _json_value(v):
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, date):
        return v.isoformat()
    return v


def row_event(row: dict, contract: Contract) -> dict:
    """A table row -> the generator's message shape: the flat contract fields plus the envelope."""
    updated_at = row["updated_at"]
    event = {
        contract.event_id: event_id_for(row[contract.primary_key], updated_at),
        "event_type": "customer_updated",
        contract.event_time: _json_value(updated_at),
    }
    for c in state_columns(contract):
        event[c.name] = _json_value(row[c.name])
    return {c.name: event[c.name] for c in contract.columns}  # contract order


class WatermarkPublisher:
    def __init__(self, settings: Settings, name: str = "customers-to-kafka", producer=None,
                 batch_rows: int = 5000, min_age_s: float = 0.0):
        self.settings, self.name = settings, name
        self.contract = load_contract()
        self.batch_rows, self.min_age_s = batch_rows, min_age_s
        self._producer = producer
        ensure_schema(settings)

    @property
    def producer(self):
        if self._producer is None:
            from ingestion.producer import make_producer

            self._producer = make_producer(self.settings)
        return self._producer

    def watermark(self) -> tuple[datetime, str] | None:
        with connect(self.settings) as conn:
            row = conn.execute(f"SELECT updated_at, customer_id FROM {WATERMARKS} WHERE publisher = %s", (self.name,)).fetchone()
        return (row[0], row[1]) if row else None

    def _changed(self, conn, mark: tuple[datetime, str] | None) -> list[dict]:
        from psycopg.rows import dict_row

        names = [c.name for c in state_columns(self.contract)] + ["updated_at"]
        pk = self.contract.primary_key
        where, params = [], []
        if mark:
            where.append(f"(updated_at, {pk}) > (%s, %s)")
            params += [mark[0], mark[1]]
        if self.min_age_s:
            where.append("updated_at <= clock_timestamp() - make_interval(secs => %s)")
            params.append(self.min_age_s)
        sql = (f"SELECT {', '.join(names)} FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY updated_at, {pk} LIMIT %s")
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, [*params, self.batch_rows]).fetchall()

    def _save(self, conn, mark: tuple[datetime, str], n: int) -> None:
        conn.execute(
            f"INSERT INTO {WATERMARKS} (publisher, updated_at, customer_id, published, saved_at) VALUES (%s, %s, %s, %s, now()) "
            "ON CONFLICT (publisher) DO UPDATE SET updated_at = EXCLUDED.updated_at, customer_id = EXCLUDED.customer_id, "
            f"published = {WATERMARKS}.published + EXCLUDED.published, saved_at = now()",
            (self.name, mark[0], mark[1], n),
        )
        conn.commit()

    def poll_once(self) -> int:
        """Publish every row changed after the stored watermark; returns how many were published."""
        from ingestion.producer import publish

        total = 0
        with connect(self.settings) as conn:
            mark = self.watermark()
            while True:
                rows = self._changed(conn, mark)
                conn.commit()  # end the read transaction: the next query sees newer commits
                if not rows:
                    break
                pk = self.contract.primary_key
                messages = ((r[pk].encode(), json.dumps(row_event(r, self.contract), separators=(",", ":")).encode()) for r in rows)
                publish(self.producer, self.settings.topic, messages)  # raises unless every send is acked
                mark = (rows[-1]["updated_at"], rows[-1][pk])
                self._save(conn, mark, len(rows))  # only after Kafka acknowledged the batch
                total += len(rows)
                if len(rows) < self.batch_rows:
                    break
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
