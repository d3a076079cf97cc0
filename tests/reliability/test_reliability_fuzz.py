"""Issue 7.1 - nothing lost on bad input.

15,000 fuzzed messages (tests/reliability/fuzz.py: 10,333 damaged in 66 ways, the rest clean)
go through Bronze -> Silver. Every input record is accounted for exactly, by its source position:
bronze = accepted (merged into Silver) + quarantined + duplicates dropped. Every quarantined
record keeps its raw bytes and carries a valid reason code; every case with a known outcome gets
it; the stage, the gate and Gold never crash on it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from ingestion.bronze import RawRecord, write_bronze
from ingestion.generator import ingest_time
from mdp.core.context import GateFailed, RunContext
from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, load_contract
from mdp.core.lake import Interval, bronze_table_uri, read_parquet
from mdp.core.stages import get_stage
from mdp.core.storage import store_for
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_stage
from tests.reliability.fuzz import MUTATIONS, fuzz, variety
from tests.reliability.harness import make_lake

pytestmark = pytest.mark.integration

HOUR = datetime(2026, 3, 1, 10, tzinfo=UTC)
N = 15_000
PARTITIONS = 3
SEED = 20260301


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, spark):
    settings = make_lake(tmp_path_factory.mktemp("fuzz"))
    cases = fuzz(SEED, HOUR, N, clean_share=0.25)
    records = [RawRecord(c.value, None, i % PARTITIONS, i, ingest_time(HOUR, i, N)) for i, c in enumerate(cases)]
    write_bronze(settings, store_for(settings), records, source="fuzz", topic="customers")
    ctx = RunContext(settings, Interval.hour_of(HOUR), run_id="fuzz")
    figures = run_stage(get_stage("bronze_to_silver"), ctx).figures  # must not raise
    silver = silver_dataset(settings)
    quarantine = silver.read_staged("fuzz", "quarantine").to_pydict()
    customers = silver.read_staged("fuzz", "state").to_pydict()
    q = {}
    for p, o, value, reason, reasons in zip(
        quarantine["partition"],
        quarantine["offset"],
        quarantine["value"],
        quarantine["reason"],
        quarantine["reasons"],
        strict=False,
    ):
        assert (p, o) not in q, f"record {(p, o)} quarantined twice"
        q[(p, o)] = {"value": value, "reason": reason, "reasons": list(reasons)}
    return {"settings": settings, "ctx": ctx, "cases": cases, "figures": figures, "q": q, "customers": customers}


def position(i: int) -> tuple[int, int]:
    return (i % PARTITIONS, i)


def test_the_fuzzer_is_varied(fuzzed):
    v = variety(fuzzed["cases"])
    assert v["messages"] == N and v["mutated"] >= 10_000, v
    assert set(v["kinds"]) == set(MUTATIONS) | {"clean"}, "every mutation kind was generated"
    assert min(v["kinds"].values()) >= 4, v["kinds"]
    assert v["distinct_messages"] >= 0.9 * N
    assert v["max_bytes"] >= 1024 * 1024  # 1 MB strings
    assert any(c.value is None for c in fuzzed["cases"]) and any(c.value == b"" for c in fuzzed["cases"])
    reasons = Counter(r for rec in fuzzed["q"].values() for r in rec["reasons"])
    assert len(reasons) >= 30, f"the input broke only {len(reasons)} distinct rules: {reasons}"


def test_bronze_holds_every_message_byte_for_byte(fuzzed):
    table = read_parquet(fuzzed["settings"], bronze_table_uri(fuzzed["settings"])).to_pydict()
    assert len(table["value"]) == N
    got = {(p, o): v for p, o, v in zip(table["partition"], table["offset"], table["value"], strict=False)}
    assert len(got) == N
    assert all(got[position(i)] == c.value for i, c in enumerate(fuzzed["cases"]))


def test_every_record_is_accounted_for_exactly(fuzzed, record_property):
    f, q, cases = fuzzed["figures"], fuzzed["q"], fuzzed["cases"]
    for k in ("bronze_in", "accepted", "quarantined", "duplicates", "silver_rows"):
        record_property(k, f[k])
    record_property("distinct_reasons", len(f["quarantine_reasons"]))
    assert f["bronze_in"] == N
    assert f["accepted"] + f["quarantined"] + f["duplicates"] == N, f
    assert len(q) == f["quarantined"] == sum(f["quarantine_reasons"].values())
    assert set(q) <= {position(i) for i in range(N)}

    # Independently of the stage's own counts: what is not quarantined is a valid event; its first
    # arrival is accepted, every later exact copy (same id, same content) is a duplicate.
    first: dict[tuple, int] = {}
    duplicates = 0
    for i, c in enumerate(cases):
        if position(i) in q:
            continue
        event = json.loads(c.value)
        identity = (event["event_id"], json.dumps(event, sort_keys=True))
        if identity in first:
            duplicates += 1
        else:
            first[identity] = i
    assert (len(first), duplicates) == (f["accepted"], f["duplicates"])

    # Silver: one row per customer among the accepted events; its row is the first arrival of one of
    # the customer's events with the latest event time (ties between contents go by content).
    by_customer: dict[str, list] = {}
    for (_, text), i in first.items():
        e = json.loads(text)
        by_customer.setdefault(e["customer_id"], []).append((datetime.fromisoformat(e["event_ts"]), i))
    silver = fuzzed["customers"]
    assert len(silver["customer_id"]) == f["silver_rows"] == len(by_customer)
    winners = dict(zip(silver["customer_id"], silver["_offset"], strict=False))
    for cid, events in by_customer.items():
        latest = max(t for t, _ in events)
        assert winners[cid] in {i for t, i in events if t == latest}, (cid, winners[cid], events)


def test_every_quarantined_record_keeps_its_bytes_and_a_valid_reason(fuzzed):
    contract = load_contract()
    codes = {r.code for r in contract.rules()} | {UNPARSEABLE, UNKNOWN_FIELD}
    cases = fuzzed["cases"]
    for (_p, o), rec in fuzzed["q"].items():
        assert rec["reasons"] and rec["reason"] == rec["reasons"][0]
        assert set(rec["reasons"]) <= codes, rec["reasons"]
        assert rec["value"] == cases[o].value  # the raw message, replayable


def test_each_case_gets_the_outcome_the_contract_demands(fuzzed):
    q, wrong = fuzzed["q"], defaultdict(Counter)
    valid_ids: set[str] = set()
    for i, c in enumerate(fuzzed["cases"]):
        rec = q.get(position(i))
        if c.expect == "quarantine":
            if rec is None:
                wrong[c.kind]["not quarantined"] += 1
            elif c.code and c.code not in rec["reasons"]:
                wrong[c.kind][f"reasons {rec['reasons']} lack {c.code}"] += 1
        elif c.expect in ("accept", "duplicate", "conflict"):
            if rec is not None:
                wrong[c.kind][f"quarantined as {rec['reasons']}"] += 1
            elif (c.event_id in valid_ids) != (c.expect in ("duplicate", "conflict")):
                wrong[c.kind]["duplicate status"] += 1
        if rec is None and c.value is not None:
            valid_ids.add(json.loads(c.value)["event_id"])
    assert not wrong, dict(wrong)


def test_the_gate_stops_the_fuzzed_batch_and_says_why(fuzzed):
    """Two thirds of the hour is damaged, far over the contract's quality thresholds: the gate must
    stop it (before issue 11 it published Silver with 60% quarantined), naming the thresholds."""
    ctx = fuzzed["ctx"]
    with pytest.raises(GateFailed) as err:
        run_stage(get_stage("validate_silver"), ctx)
    assert "Failed expectations" in str(err.value) and "quality.max_quarantined" in str(err.value)
    assert silver_dataset(ctx.settings).current() is None
    assert silver_dataset(ctx.settings).staged("fuzz")["status"] == "rejected"
