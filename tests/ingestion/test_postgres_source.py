"""The Postgres source against a real PostgreSQL and broker: contract-derived DDL, seeding, and the
publisher (changes published on the next poll and not before; restarts resume; commit order, so
a transaction that commits after a later one is not lost; deletes as tombstones; any contract)."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from datetime import UTC, datetime

import pytest

from ingestion.postgres_source import (
    WatermarkPublisher,
    connect,
    delete_rows,
    ensure_schema,
    seed,
    simulate_changes,
    state_columns,
)
from mdp.core.contract import load_contract
from tests.server_helpers import contract_violations, read_topic

pytestmark = pytest.mark.integration

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def pg_settings(local_settings, pg_database, topic):
    return local_settings(postgres_dsn=pg_database, kafka_topic=topic)


def published(settings) -> list[dict]:
    return [
        json.loads(r.value) | {"_key": r.key.decode()} for r in read_topic(settings.kafka_bootstrap, settings.topic)
    ]


def newer(msgs: list[dict], seen: list[dict], event_id: str = "event_id") -> list[dict]:
    ids = {m[event_id] for m in seen}
    return [m for m in msgs if m[event_id] not in ids]


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
    expected_types = {
        "string": "text",
        "int": "integer",
        "double": "double precision",
        "boolean": "boolean",
        "date": "date",
    }
    # The contract's state columns, then the watermark column and the writing transaction's id.
    assert [c[0] for c in cols] == [c.name for c in state_columns(contract)] + ["updated_at", "mdp_xid"]
    for (name, dtype, nullable), c in zip(cols, state_columns(contract), strict=False):
        assert dtype == expected_types[c.type], name
        assert (nullable == "YES") == c.nullable, name
    assert [p[0] for p in pk] == [contract.primary_key]
    with connect(pg_settings) as conn:  # the contract's NOT NULL holds in the database too
        with pytest.raises(Exception, match="null value"):
            conn.execute(
                "update customers set email = null where customer_id = (select min(customer_id) from customers)"
            )


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
            # One statement: ... but clock_timestamp differs per row
            conn.execute(
                "update customers set updated_at = clock_timestamp(), support_tickets = support_tickets + 1 "
                "where customer_id = any(%s)",
                (ids,),
            )
            conn.execute(
                "update customers set updated_at = (select max(updated_at) from customers) where customer_id = any(%s)",
                (ids,),
            )
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


def body(msg: dict) -> dict:
    """The message as sent (without the test's `_key`)."""
    return {k: v for k, v in msg.items() if k != "_key"}


def _state(msg: dict, contract) -> dict:
    return {c.name: msg[c.name] for c in state_columns(contract)}


def test_overlapping_transactions_the_older_committing_last_are_both_published(pg_settings):
    """T1 writes first and commits last; T2 writes later and commits first, and is published in
    between. A timestamp watermark then passes T1's older row for good; commit order does not."""
    contract = load_contract()
    seed(pg_settings, customers=30)
    pub = WatermarkPublisher(pg_settings)
    try:
        pub.poll_once()
        before = published(pg_settings)
        first, second = sorted({m["customer_id"] for m in before})[:2]
        older, newer_tx = connect(pg_settings), connect(pg_settings)
        try:
            older.execute(
                "update customers set plan = 'enterprise', support_tickets = 777 where customer_id = %s", (first,)
            )
            newer_tx.execute(
                "update customers set plan = 'free', support_tickets = 778 where customer_id = %s", (second,)
            )
            newer_tx.commit()
            assert pub.poll_once() == 1  # only the committed one
            mid = newer(published(pg_settings), before)
            older.commit()  # the older transaction commits last
        finally:
            older.close()
            newer_tx.close()
        assert pub.poll_once() == 1  # ... and is published now
        assert pub.poll_once() == 0
    finally:
        pub.close()
    last = newer(published(pg_settings), before + mid)
    assert [m["customer_id"] for m in mid] == [second] and [m["customer_id"] for m in last] == [first]
    new = mid + last
    by_id = {m["customer_id"]: m for m in new}
    assert by_id[first]["support_tickets"] == 777 and by_id[second]["support_tickets"] == 778
    assert by_id[first]["event_ts"] < by_id[second]["event_ts"]  # the trap: the later-published row is older
    assert all(contract_violations(body(m), contract) == [] for m in new)


def test_concurrent_writers_lose_no_update(pg_settings):
    """Writers in overlapping transactions while the publisher polls: the last published state of
    every customer is its state in the table."""
    contract = load_contract()
    seed(pg_settings, customers=60)
    with connect(pg_settings) as conn:
        ids = [r[0] for r in conn.execute("select customer_id from customers order by customer_id")]
    pub = WatermarkPublisher(pg_settings, batch_rows=50)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        try:
            with connect(pg_settings) as conn:
                for i in range(25):
                    for cid in rng.sample(ids, 2):
                        conn.execute(
                            "update customers set support_tickets = %s where customer_id = %s",
                            (worker * 100 + i % 100, cid),
                        )
                        time.sleep(rng.uniform(0, 0.02))  # transactions overlap and commit out of start order
                    conn.commit()
        except BaseException as exc:
            errors.append(exc)

    def poll() -> None:
        try:
            while not stop.is_set():
                pub.poll_once()
        except BaseException as exc:
            errors.append(exc)

    try:
        poller = threading.Thread(target=poll)
        writers = [threading.Thread(target=write, args=(w,)) for w in range(1, 5)]
        poller.start()
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=120)
        stop.set()
        poller.join(timeout=120)
        assert not errors, errors
        pub.poll_once()
    finally:
        pub.close()
    latest: dict[str, dict] = {}
    for m in published(pg_settings):  # Silver's rule: the latest event time wins
        if m["customer_id"] not in latest or m["event_ts"] >= latest[m["customer_id"]]["event_ts"]:
            latest[m["customer_id"]] = m
    with connect(pg_settings) as conn:
        table = {r[0]: r[1] for r in conn.execute("select customer_id, support_tickets from customers")}
    assert {k: m["support_tickets"] for k, m in latest.items()} == table
    assert len({m["event_id"] for m in latest.values()}) == len(latest)
    assert contract_violations(body(next(iter(latest.values()))), contract) == []


def test_delete_is_published_as_a_tombstone(pg_settings):
    contract = load_contract()
    seed(pg_settings, customers=20)
    pub = WatermarkPublisher(pg_settings)
    try:
        pub.poll_once()
        before = published(pg_settings)
        gone = delete_rows(pg_settings, 2)
        assert len(gone) == 2
        assert pub.poll_once() == 2
        assert pub.poll_once() == 0
    finally:
        pub.close()
    last = {m["customer_id"]: m for m in before}
    tombstones = newer(published(pg_settings), before)
    assert sorted(m["customer_id"] for m in tombstones) == sorted(gone)
    for m in tombstones:
        assert m["event_type"] == contract.tombstone.value == "customer_deleted"
        assert _state(m, contract) == _state(last[m["customer_id"]], contract)  # the full last state
        assert m["event_ts"] > last[m["customer_id"]]["event_ts"]  # the delete is the latest state
        assert m["_key"] == m["customer_id"] and UUID.match(m["event_id"])
        assert contract_violations(body(m), contract) == []
    with connect(pg_settings) as conn:
        assert conn.execute("select count(*) from customers where customer_id = any(%s)", (gone,)).fetchone()[0] == 0


def test_an_update_of_the_key_deletes_the_old_key(pg_settings):
    """Issue 20 item 6: the old key leaves as a tombstone, or it would stay in Silver and Gold."""
    contract = load_contract()
    seed(pg_settings, customers=5)
    pub = WatermarkPublisher(pg_settings)
    try:
        pub.poll_once()
        before = published(pg_settings)
        old = sorted(m["customer_id"] for m in before)[0]
        with connect(pg_settings) as conn:
            conn.execute("update customers set customer_id = 'C9999999' where customer_id = %s", (old,))
        assert pub.poll_once() == 2
    finally:
        pub.close()
    moved = {m["customer_id"]: m for m in newer(published(pg_settings), before)}
    assert sorted(moved) == sorted([old, "C9999999"])
    assert moved[old]["event_type"] == contract.tombstone.value
    assert moved["C9999999"]["event_type"] != contract.tombstone.value
    assert _state(moved[old], contract) | {"customer_id": "C9999999"} == _state(moved["C9999999"], contract)
    for m in moved.values():
        assert contract_violations(body(m), contract) == []


ACCOUNTS = """
entity: accounts
version: 1
primary_key: account_no
event_id: event_uuid
event_time: changed_at
tombstone: {column: status, value: closed}
label: {column: churned, positive: "yes"}
postgres: {table: crm_accounts, watermark_column: modified_at}
columns:
  - {name: event_uuid, type: string,    nullable: false, regex: '^[0-9a-f-]{36}$'}
  - {name: changed_at, type: timestamp, nullable: false}
  - {name: account_no, type: int,       nullable: false, min: 1}
  - {name: holder,     type: string,    nullable: true}
  - {name: balance,    type: double,    nullable: true,  min: 0}
  - {name: opened,     type: date,      nullable: false}
  - {name: status,     type: string,    nullable: false, allowed: [open, frozen, closed]}
  - {name: churned,    type: string,    nullable: false, allowed: ["yes", "no"]}
"""


def test_any_contract_integer_key_and_another_watermark_column(local_settings, pg_database, topic, tmp_path):
    """Table, key type, watermark column and tombstone column all come from the contract."""
    from mdp.core.settings import ConfigError

    path = tmp_path / "accounts.yaml"
    path.write_text(ACCOUNTS)
    s = local_settings(postgres_dsn=pg_database, kafka_topic=topic, contract=str(path))
    contract = s.data_contract
    ensure_schema(s)
    with connect(s) as conn:
        cols = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'crm_accounts' order by ordinal_position"
        ).fetchall()
        pk = conn.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = any(i.indkey) where i.indrelid = 'crm_accounts'::regclass and i.indisprimary"
        ).fetchall()
        conn.cursor().executemany(
            "insert into crm_accounts (account_no, holder, balance, opened, status, churned) values (%s, %s, %s, %s, %s, %s)",
            [(n, f"holder {n}", 10.5 * n, f"2024-01-0{n}", "open", "no") for n in range(1, 6)],
        )
    assert [c[0] for c in cols] == [
        "account_no",
        "holder",
        "balance",
        "opened",
        "status",
        "churned",
        "modified_at",
        "mdp_xid",
    ]
    assert dict(cols)["account_no"] == "integer" and pk == [("account_no",)]
    with pytest.raises(ConfigError, match="the generator makes customers rows"):
        seed(s, customers=5)

    pub = WatermarkPublisher(s)
    try:
        assert pub.name == "crm_accounts-to-kafka"
        assert pub.poll_once() == 5
        first = published(s)
        with connect(s) as conn:
            conn.execute("update crm_accounts set balance = 99.5 where account_no = 2")
            conn.execute("delete from crm_accounts where account_no = 3")
        assert pub.poll_once() == 2
        assert pub.poll_once() == 0
    finally:
        pub.close()
    assert sorted(m["account_no"] for m in first) == [1, 2, 3, 4, 5]
    for m in first:
        assert m["_key"] == str(m["account_no"]) and m["status"] == "open"
        assert list(m)[:-1] == contract.names
        assert contract_violations(body(m), contract) == []
    update, tomb = sorted(newer(published(s), first, "event_uuid"), key=lambda m: m["account_no"])
    assert (update["account_no"], update["balance"], update["status"]) == (2, 99.5, "open")
    assert (tomb["account_no"], tomb["status"], tomb["holder"], tomb["balance"]) == (3, "closed", "holder 3", 31.5)
    assert tomb["changed_at"] > next(m for m in first if m["account_no"] == 3)["changed_at"]
    for m in (update, tomb):
        assert contract_violations(body(m), contract) == []


def test_without_a_tombstone_an_update_of_the_key_is_refused(local_settings, pg_database, topic, tmp_path):
    """Issue 20 item 6: with no tombstone the old key could never leave Silver, so Postgres refuses."""
    import psycopg

    path = tmp_path / "accounts.yaml"
    path.write_text(ACCOUNTS.replace("tombstone: {column: status, value: closed}\n", ""))
    s = local_settings(postgres_dsn=pg_database, kafka_topic=topic, contract=str(path))
    ensure_schema(s)
    with connect(s) as conn:
        conn.execute(
            "insert into crm_accounts (account_no, opened, status, churned) values (1, '2024-01-01', 'open', 'no')"
        )
        conn.execute("update crm_accounts set balance = 5 where account_no = 1")  # other columns still change
    with pytest.raises(
        psycopg.errors.RaiseException, match=r"crm_accounts\.account_no cannot change \(1 to 2\).*no tombstone"
    ):
        with connect(s) as conn:
            conn.execute("update crm_accounts set account_no = 2 where account_no = 1")


def test_unreachable_postgres_is_unavailable(local_settings):
    from mdp.core.errors import Unavailable
    from mdp.shell.services import free_port

    s = local_settings(postgres_dsn=f"postgresql://mdp@127.0.0.1:{free_port()}/customers", connect_timeout_s=2)
    with pytest.raises(
        Unavailable, match=r"cannot connect to Postgres at postgresql://mdp@127\.0\.0\.1:\d+/customers \(postgres_dsn"
    ):
        connect(s)
