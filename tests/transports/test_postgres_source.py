"""The Postgres source against a real PostgreSQL and broker: contract-derived DDL, seeding, and the
watermark publisher (changes published on the next poll and not before; restarts resume)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from _transport_helpers import read_topic
from ingestion.postgres_source import WatermarkPublisher, connect, seed, simulate_changes, state_columns
from mdp.core.contract import load_contract

pytestmark = pytest.mark.integration

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def pg_settings(local_settings, pg_database, topic):
    return local_settings(postgres_dsn=pg_database, kafka_topic=topic)


def published(settings) -> list[dict]:
    return [json.loads(r.value) | {"_key": r.key.decode()} for r in read_topic(settings.kafka_bootstrap, settings.topic)]


def newer(msgs: list[dict], seen: list[dict]) -> list[dict]:
    ids = {m["event_id"] for m in seen}
    return [m for m in msgs if m["event_id"] not in ids]


def test_table_follows_the_contract(pg_settings):
    seed(pg_settings, customers=50)
    contract = load_contract()
    with connect(pg_settings) as conn:
        cols = conn.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_name = 'customers' order by ordinal_position"
        ).fetchall()
        pk = conn.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
            "where i.indrelid = 'customers'::regclass and i.indisprimary"
        ).fetchall()
    expected_types = {"string": "text", "int": "integer", "double": "double precision", "boolean": "boolean", "date": "date"}
    assert [c[0] for c in cols] == [c.name for c in state_columns(contract)] + ["updated_at"]
    for (name, dtype, nullable), c in zip(cols, state_columns(contract)):
        assert dtype == expected_types[c.type], name
        assert (nullable == "YES") == c.nullable, name
    assert [p[0] for p in pk] == [contract.primary_key]
    with connect(pg_settings) as conn:  # the contract's NOT NULL holds in the database too
        with pytest.raises(Exception, match="null value"):
            conn.execute("update customers set email = null where customer_id = (select min(customer_id) from customers)")


def test_changes_are_published_on_the_next_poll_and_restart_resumes(pg_settings):
    contract = load_contract()
    n = seed(pg_settings, customers=300)
    assert 250 <= n <= 300

    pub = WatermarkPublisher(pg_settings, batch_rows=128)  # several batches per poll
    try:
        assert pub.poll_once() == n
        msgs = published(pg_settings)
        assert len(msgs) == n and len({m["customer_id"] for m in msgs}) == n
        for m in msgs[:20]:
            assert list(m)[:-1] == contract.names  # flat contract fields, nothing else
            assert m["event_type"] == "customer_updated" and UUID.match(m["event_id"])
            assert m["_key"] == m["customer_id"]
            assert datetime.fromisoformat(m["event_ts"].replace("Z", "+00:00")) <= datetime.now(UTC)
        assert pub.poll_once() == 0  # nothing changed: nothing published
        assert len(published(pg_settings)) == n

        changed = simulate_changes(pg_settings, 20, seed_value=1)
        assert len(published(pg_settings)) == n  # not before the poll
        assert pub.poll_once() == 20
        after = published(pg_settings)
        assert len(after) == n + 20
        assert sorted(m["customer_id"] for m in newer(after, msgs)) == sorted(changed)
        mark = pub.watermark()
    finally:
        pub.close()

    # Restart: a new publisher (same name) resumes from the stored watermark.
    restarted = WatermarkPublisher(pg_settings)
    try:
        assert restarted.watermark() == mark
        assert restarted.poll_once() == 0
        again = simulate_changes(pg_settings, 5, seed_value=2)
        assert restarted.poll_once() == 5
        final = published(pg_settings)
        assert len(final) == n + 25
        assert sorted(m["customer_id"] for m in newer(final, after)) == sorted(again)
    finally:
        restarted.close()


def test_equal_timestamps_are_not_skipped(pg_settings):
    """Rows sharing one updated_at straddle a batch boundary: every one is published exactly once."""
    seed(pg_settings, customers=40)
    pub = WatermarkPublisher(pg_settings, batch_rows=4)
    try:
        pub.poll_once()
        before = published(pg_settings)
        with connect(pg_settings) as conn:
            conn.execute("alter table customers disable trigger customers_touch")
            ids = [r[0] for r in conn.execute("select customer_id from customers order by customer_id limit 10")]
            conn.execute("update customers set updated_at = clock_timestamp(), support_tickets = support_tickets + 1 "
                         "where customer_id = any(%s)", (ids,))  # one statement: ... but clock_timestamp differs per row
            conn.execute("update customers set updated_at = (select max(updated_at) from customers) where customer_id = any(%s)", (ids,))
            conn.execute("alter table customers enable trigger customers_touch")
        assert pub.poll_once() == 10
        new = newer(published(pg_settings), before)
        assert sorted(m["customer_id"] for m in new) == sorted(ids)
        assert len({m["event_ts"] for m in new}) == 1  # they really tie
        assert pub.poll_once() == 0
    finally:
        pub.close()


def test_republished_row_keeps_its_event_id(pg_settings):
    """A crash between Kafka's ack and the watermark save republishes; the copy has the same event_id."""
    seed(pg_settings, customers=30)
    pub = WatermarkPublisher(pg_settings, name="p1")
    other = WatermarkPublisher(pg_settings, name="p2")  # as if p1's watermark had never been saved
    try:
        pub.poll_once()
        other.poll_once()
    finally:
        pub.close()
        other.close()
    msgs = published(pg_settings)
    ids = [m["event_id"] for m in msgs]
    assert len(ids) > 0 and len(ids) == 2 * len(set(ids))  # every row twice, with one event_id per row version


def test_wrong_password_is_a_clear_config_error(local_settings, pg_database):
    from mdp.core.settings import ConfigError

    s = local_settings(postgres_dsn=pg_database, PGPASSWORD="wrong")
    with pytest.raises(ConfigError, match=r"cannot connect to Postgres at postgresql://mdp@127\.0\.0\.1:\d+/"):
        seed(s, customers=5)
