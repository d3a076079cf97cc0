"""Histories that the random-history machine (tests/properties/histories.py) found on fa7485a, each
written out as a fixed sequence of its steps, shrunk, and run through the same checks.

Each test is a finding of issue 27 that the machine found (see docs/TESTING.md for how many examples it
took); it fails on fa7485a and passes once the finding is fixed. A test passes when every check after
every run holds (History.run raises `Failed`, naming the broken promise, otherwise).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ingestion.generator import generate_hour
from tests.properties.histories import H, Delivery, History, customer_rows, eid

pytestmark = pytest.mark.integration


def land_hour(h: History, hour: int, n: int = 300, seed: int = 0, edit=None, minute: int = 0, partition: int = 0) -> Delivery:
    """A generated hour of clean events; `edit(events)` may break some, returning the indexes broken."""
    events = [json.loads(e.message) for e in generate_hour(seed * 1000 + n, H[hour], n, 0.0)]
    broken = edit(events) if edit else []
    bad = [1 if i in broken else 0 for i in range(n)]
    d = Delivery(n, [json.dumps(e).encode() for e in events], bad, hour, "kafka", partition, h.next_offsets("kafka", partition, n))
    h.deliver(d, H[hour] + timedelta(minutes=minute), f"land hour {hour}: {n} events, {len(broken)} broken")
    return d


def late_record(h: History, hour: int, change: dict) -> None:
    e = json.loads(generate_hour(7001, H[hour], 1, 0.0)[0].message)
    e.update(event_id=eid(next(h.ids)), **change)
    d = Delivery(1, [json.dumps(e).encode()], [1], hour, "kafka", 9, h.next_offsets("kafka", 9, 1))
    h.deliver(d, H[hour] + timedelta(minutes=59), f"a late malformed record into hour {hour}: {change}")


def ingest(h: History, rows: list[dict], name: str, hour: int, minute: int, folder: str) -> Delivery:
    import csv

    path = h.replay / "inputs" / folder / f"{name}.csv"
    path.parent.mkdir(exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(rows[0]))
        w.writerows([["" if v is None else v for v in r.values()] for r in rows])
    d = Delivery(len(rows), [], [0] * len(rows), hour, name, 0, [], file=path)
    h.deliver(d, H[hour] + timedelta(minutes=minute), f"ingest {path.name} in hour {hour}")
    return d


@pytest.mark.xfail(strict=True, reason="issue 27 finding 1: fails on fa7485a; fixed on main")
def test_finding_1_a_late_bad_record_alone_in_its_hour_does_not_stop_the_line(spark, tmp_path):
    h = History(tmp_path / "h", "customers")
    land_hour(h, 2)
    h.run("the first run")
    late_record(h, 2, {"email": "not-an-email"})  # one bad record among 301 of hour 2: within every threshold
    land_hour(h, 3)
    h.run("the next hour, with the late record")  # hour 2 in this batch: one row, 100 % bad


@pytest.mark.xfail(strict=True, reason="issue 27 finding 3: fails on fa7485a; fixed on main")
def test_finding_3_a_five_digit_year_ends_in_the_quarantine(spark, tmp_path):
    h = History(tmp_path / "h", "customers")

    def five_digit_year(events):
        events[7]["signup_date"] = "10000-01-01"
        return [7]

    land_hour(h, 1, edit=five_digit_year)
    h.run("the first run")


@pytest.mark.xfail(strict=True, reason="issue 27 finding 6: fails on fa7485a; fixed on main")
def test_finding_6_a_same_name_reingest_within_the_hour_changes_nothing(spark, tmp_path):
    h = History(tmp_path / "h", "subscribers")
    a = customer_rows(1, 10, 0)
    ingest(h, a, "subscribers", 0, 0, "a")
    h.run("file A")
    ingest(h, a, "subscribers", 0, 30, "a")  # the same file, the same name, later in the same hour
    h.run("the same file again")


@pytest.mark.xfail(strict=True, reason="issue 27 finding 9: fails on fa7485a; fixed on main")
def test_finding_9_the_gate_retried_after_its_pointer_moved_succeeds(spark, tmp_path):
    h = History(tmp_path / "h", "customers")
    land_hour(h, 0, n=20)
    h.run("a run that crashes", crash="validate_silver dies after the Silver pointer moved")


@pytest.mark.xfail(strict=True, reason="issue 27 finding 2: fails on fa7485a; fixed on main")
def test_finding_2_a_null_key_is_quarantined_under_a_contract_that_leaves_nullable_out(spark, tmp_path):
    h = History(tmp_path / "h", "customers-nullable-key")

    def null_key(events):
        events[3]["customer_id"] = None
        return [3]

    land_hour(h, 0, edit=null_key)
    h.run("the first run")


@pytest.mark.xfail(strict=True, reason="issue 27 finding 7: fails on fa7485a; fixed on main")
def test_finding_7_adding_a_tombstone_then_a_backfill_gives_the_from_scratch_silver(spark, tmp_path):
    h = History(tmp_path / "h", "customers-without-tombstone")
    land_hour(h, 0)
    h.run("the first run")

    def minimal_deletes(events):
        for i in range(3):
            events[i] = {k: events[i][k] for k in ("event_id", "event_ts", "customer_id")} | {"event_type": "customer_deleted"}
        return [0, 1, 2]

    land_hour(h, 1, edit=minimal_deletes)  # without a tombstone: quarantined as missing:<column>
    h.run("three minimal deletes in an hour")
    h.change_contract("tombstone toggled")
    h.run("a backfill of hour 1 under the contract with a tombstone", backfill=(1, 1), contract_step=True)
