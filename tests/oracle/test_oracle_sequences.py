"""Silver, quarantine and Gold after each run of a sequence equal the oracle computed from scratch.

One small embedded lake (a few hundred events an hour) goes through a story of deliveries, each step
landing Bronze objects as a landing would and then running bronze_to_silver -> validate_silver ->
silver_to_gold through the Spark path. After every step, what Spark published (Silver state,
quarantine, the gate's batch, Gold) and the run's figures must equal the DuckDB oracle
(tests/oracle/oracle.py) computed from scratch over every Bronze object landed so far.

The events are generated so that neither arrival order nor offsets agree with event time: late
records carry old event times and high offsets, hours land out of order, copies land in later
hours. A Silver that orders by offset, keeps the wrong copy, drops the quarantine, or stops taking
new events after its first run differs from the oracle at some step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.generator import generate_hour
from mdp.core.context import RunContext
from mdp.core.errors import MdpError
from mdp.core.lake import Interval
from mdp.core.settings import get_settings
from mdp.core.stages import get_stage
from mdp.shell.runner import run_pipeline
from tests.helpers import changed_contract
from tests.oracle.oracle import as_json, bronze_objects, compare, expected, land, published

pytestmark = pytest.mark.integration
H = [datetime(2026, 5, 4, h, tzinfo=UTC) for h in range(9)]
N = 300  # events an hour: about 75 customers, most with several events
SEED = 17
STAGES = ("bronze_to_silver", "validate_silver", "silver_to_gold")


def generated(hour: datetime, n: int = N, seed: int = SEED, dirty: float = 0.03) -> list[bytes]:
    return [e.message for e in generate_hour(seed, hour, n, dirty)]


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def eid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@dataclass
class Step:
    name: str
    why: str
    figures: dict | None = None
    comparison: object = None
    state: dict | None = None
    reasons: list | None = None
    conflicts: int | None = None
    error: str | None = None


class Story:
    """Lands, runs, and compares after each run; keeps which objects Silver has read."""

    def __init__(self, settings, work):
        self.settings, self.work = settings, work
        self.seen: list[str] = []
        self.steps: dict[str, Step] = {}
        self.offset = 0

    def offsets(self, n: int) -> list[int]:
        self.offset += n
        return list(range(self.offset - n, self.offset))

    def run(
        self, name: str, why: str, backfill: Interval | None = None, rebuild: bool = False, all_bronze: bool = False
    ) -> Step:
        """`rebuild`: the run rebuilds Silver from all of Bronze (a backfill under a changed
        contract), so its figures are those of a from-scratch run. `all_bronze`: `--all`."""
        if all_bronze:
            backfill, rebuild = Interval(H[0], H[-1] + timedelta(hours=2)), True
        step = Step(name, why)
        now = bronze_objects(self.settings)
        reread = [
            f
            for f in now
            if backfill and any(f"ingest_date={h:%Y-%m-%d}/ingest_hour={h:%H}/" in f for h in backfill.hours())
        ]
        new = sorted(set(now) - set(self.seen))
        run_files = now if rebuild else sorted(set(new) | set(reread))
        ctx = RunContext(
            self.settings,
            backfill or Interval.hour_of(H[0]),
            run_id=f"story-{name}",
            backfill=backfill is not None,
            all_bronze=all_bronze,
        )
        try:
            report = run_pipeline(ctx, [get_stage(s) for s in STAGES])
            step.figures = report.figures("bronze_to_silver")
        except MdpError as exc:
            step.error = f"{type(exc).__name__}: {exc}"
        else:
            exp = expected(self.settings, [] if rebuild else self.seen, run_files, self.work / name)
            actual = published(self.settings)
            staged = step.figures.get("staged") is not None
            if not staged:  # nothing new: no version, no batch; the tables must still equal the oracle's
                actual.pop("batch")
                exp.tables.pop("batch")
            step.comparison = compare(exp, actual, step.figures if staged else None, self.settings.data_contract)
            step.state = {r[self.settings.data_contract.primary_key]: r for r in actual["state"].to_pylist()}
            step.conflicts = sum(actual["batch"].column("_conflict").to_pylist()) if "batch" in actual else 0
            step.reasons = [
                (r["reason"], r["reasons"]) for r in actual["quarantine"].select(["reason", "reasons"]).to_pylist()
            ]
            self.seen = now
        self.steps[name] = step
        return step


@pytest.fixture(scope="module")
def story(tmp_path_factory, spark) -> Story:
    home = tmp_path_factory.mktemp("oracle-story")
    s = Story(get_settings(home=home, seed=SEED), home / "oracle")
    st = s.settings

    # 1. Two hours in order, each on its own partition (offsets restart per partition, as in Kafka).
    for p, h in enumerate(H[:2]):
        land(st, generated(h), list(range(N)), h, partition=p)
    # A few records that break three rules each: the primary reason is the first in contract order.
    broken = [
        {**e, "email": "not-an-email", "age": 150, "plan": "gold"}
        for e in (json.loads(m) for m in generated(H[0], n=5, dirty=0.0))
    ]
    land(st, as_json(broken), list(range(len(broken))), H[0] + timedelta(minutes=59), partition=5)
    s.run("in_order", "two hours landed in order")

    # 2. Hours out of order: H3 lands and runs before H2, whose events are older.
    land(st, generated(H[3]), s.offsets(N), H[3])
    s.run("out_of_order_later_hour_first", "H3 before H2")
    land(st, generated(H[2]), s.offsets(N), H[2], partition=2)
    s.run("out_of_order_earlier_hour_after", "H2 after H3: its older events must not replace H3's")

    # 3. Redelivered records: a landing crashed before its commit; the same Kafka records (same
    #    partition and offsets, dirty ones included) land again an hour later, in objects with
    #    other bounds.
    again = generated(H[1])
    land(st, again[:150], list(range(150)), H[4], partition=1)
    land(st, again[150:], list(range(150, N)), H[4] + timedelta(minutes=5), partition=1)
    s.run("redelivered_records", "H1 landed again: same offsets, other objects")

    # 4. A producer resend: the same events (same bytes) under new offsets, in a later hour.
    resend = generated(H[2])[100:220]
    land(st, resend, s.offsets(len(resend)), H[4] + timedelta(minutes=30))
    s.run("producer_resend", "H2's events sent again with new offsets")

    # 5. Late records: Kafka timestamps in H1 (already processed), landed now into H1's partition,
    #    with old event times (H0) and the highest offsets yet. For existing customers they must
    #    lose to the newer state; new customers appear.
    late = [json.loads(m) for m in generated(H[0], n=120, seed=SEED + 1, dirty=0.0)]
    for i, e in enumerate(late[:20]):
        e["customer_id"] = f"C9{i:06d}"
    land(st, as_json(late), s.offsets(len(late)), H[1] + timedelta(minutes=50), partition=7)
    s.run("late_records", "old events with high offsets, landed late into a processed hour")

    # 6. Conflicting copies: the same event ids as H3's events with other content (spend up for
    #    half, down for the rest). Both copies are candidates; content decides, not arrival. Those
    #    whose event is its key's state are conflicts with Silver: landed with an ordinary hour, so
    #    that they stay under the gate's max_conflicting_duplicates.
    h3 = [json.loads(m) for m in generated(H[3], dirty=0.0)]
    conflicting = [
        {**e, "monthly_spend": round(e["monthly_spend"] + (1 if i % 2 else -1), 2)} for i, e in enumerate(h3[200:260])
    ]
    hour5 = generated(H[5], seed=SEED + 2)
    land(st, [*hour5, *as_json(conflicting)], s.offsets(len(hour5) + len(conflicting)), H[5])
    s.run("conflicting_copies", "same event id, other content")

    # 7. Tombstones: deletes newer than the state (win), older than the state (lose), and a delete
    #    followed by a newer update in the same batch (the update wins).
    state = {e["customer_id"]: e for e in h3}
    cids = sorted(state)
    deletes = []
    for i, cid in enumerate(cids[:12]):
        when = H[6] if i < 8 else H[0]  # the last 4 are older than the customer's state
        deletes.append(
            {
                **state[cid],
                "event_id": eid(1000 + i),
                "event_type": "customer_deleted",
                "event_ts": ts(when + timedelta(seconds=i)),
            }
        )
    revived = {
        **state[cids[0]],
        "event_id": eid(2000),
        "event_type": "customer_updated",
        "event_ts": ts(H[6] + timedelta(minutes=5)),
    }
    land(st, as_json([*deletes, revived]), s.offsets(len(deletes) + 1), H[6])
    s.run("tombstones", "deletes stay in Silver and leave Gold; the latest event still wins")

    # 8. Ties in event time: two events of one customer at the same instant, other content, landed
    #    (in reverse order) with an ordinary hour, so that the one conflicting event id stays under
    #    the gate's max_conflicting_duplicates. The ties are later than any event of that hour.
    tie_t = ts(H[8] + timedelta(minutes=30))
    ties = [
        {**state[cids[20]], "event_id": eid(3000 + i), "event_ts": tie_t, "support_tickets": t}
        for i, t in enumerate((3, 9))
    ]
    # Same id too
    ties += [{**state[cids[21]], "event_id": eid(3100), "event_ts": tie_t, "plan": p} for p in ("basic", "pro")]
    hour = generated(H[7])
    s.tie_customers = [cids[20], cids[21]]
    land(st, [*hour, *as_json(ties[::-1])], s.offsets(len(hour) + len(ties)), H[7])
    s.run("event_time_ties", "same event time: content decides, field by field in contract order")

    # 8b. A late bad record alone: one malformed record lands late into H1 (processed long ago), and
    #     nothing else is new. 100% of its hour and of its batch, one record: it must not stop the line.
    lone = {**json.loads(generated(H[1], n=1, seed=SEED + 3, dirty=0.0)[0]), "email": "not-an-email"}
    land(st, as_json([lone]), s.offsets(1), H[1] + timedelta(minutes=55), partition=8)
    s.run("late_bad_record_alone", "one malformed record, late into a processed hour, alone")

    # 8c. An export sent twice under two names in two hours, read in one run: the second hour's good
    #     events are copies of the first's, and so are its bad records (by event id and bytes).
    export = [json.loads(m) for m in generated(H[8], n=N, seed=SEED + 4, dirty=0.0)]
    for e in export[:24]:
        e["email"] = "not-an-email"
    land(st, as_json(export), list(range(N)), H[8], source="export-a")
    land(st, as_json(export), list(range(N)), H[8] + timedelta(hours=1), source="export-b")
    s.run("export_twice_in_one_run", "the same export under two names in two hours, one run")

    # 9. A backfill of H1 (read again on purpose), with nothing else new.
    s.run("backfill", "H1's objects read again", backfill=Interval.hour_of(H[1]))

    # 10. Nothing new at all.
    s.run("nothing_new", "a rerun with nothing new")

    # 11. A backfill of one hour under a changed contract (a tightened range, a new normaliser):
    #     Silver is rebuilt, and equals the oracle from scratch under the new contract.
    s.settings = get_settings(home=home, seed=SEED, contract=str(changed_contract(home)))
    s.run(
        "backfill_changed_contract",
        "age max 82 and full_name upper, backfill of H1",
        backfill=Interval.hour_of(H[1]),
        rebuild=True,
    )
    return s


STEPS = [
    "in_order",
    "out_of_order_later_hour_first",
    "out_of_order_earlier_hour_after",
    "redelivered_records",
    "producer_resend",
    "late_records",
    "conflicting_copies",
    "tombstones",
    "event_time_ties",
    "late_bad_record_alone",
    "export_twice_in_one_run",
    "backfill",
    "nothing_new",
    "backfill_changed_contract",
]


@pytest.mark.parametrize("step", STEPS)
def test_each_run_publishes_what_the_oracle_computes_from_all_bronze(story, step):
    s = story.steps[step]
    assert s.error is None, f"{step} ({s.why}) failed: {s.error}"
    assert s.comparison.equal, f"{step} ({s.why}) differs from the oracle:\n{s.comparison}"


def test_the_story_exercises_what_it_claims(story):
    """Guards against a vacuous story: each step did what its name says."""
    f = {name: step.figures or {} for name, step in story.steps.items()}
    assert f["in_order"]["quarantined"] > 0 and f["in_order"]["new_keys"] > 0
    multi = [r for r in story.steps["in_order"].reasons if len(r[1]) > 1]
    assert ("bad_format:email", ["bad_format:email", "out_of_range:age", "bad_value:plan"]) in multi, multi[:3]
    assert f["out_of_order_earlier_hour_after"]["accepted"] > 250  # H2 was read; its older events lose (mostly)
    # Every record a copy: nothing changes, no quarantine row is added (copies of accepted events in
    # another run count as accepted deliveries of this run; the merge drops them).
    assert f["redelivered_records"]["bronze_in"] == N and f["redelivered_records"]["duplicates"] > 0
    assert f["redelivered_records"]["changed"] == 0 and f["redelivered_records"]["quarantined"] == 0
    assert f["producer_resend"]["changed"] == 0
    late = f["late_records"]
    assert late["new_keys"] == 20 and late["changed"] == 20  # only the new customers: old events lose
    assert story.steps["conflicting_copies"].conflicts > 0  # copies of events that are Silver's state
    assert f["tombstones"]["changed"] == 8  # 8 newer deletes (one then revived); the 4 older ones lose
    # Ties: the later event id wins (event_id is the first content column), then the larger plan.
    tied = story.steps["event_time_ties"].state
    assert [tied[c]["event_id"] for c in story.tie_customers] == [eid(3001), eid(3100)]
    assert tied[story.tie_customers[0]]["support_tickets"] == 9 and tied[story.tie_customers[1]]["plan"] == "pro"
    assert f["late_bad_record_alone"]["bronze_in"] == 1 and f["late_bad_record_alone"]["quarantined"] == 1
    twice = f["export_twice_in_one_run"]
    assert twice["bronze_in"] == 2 * N and twice["quarantined"] == 48 and twice["duplicates"] == N - 24
    assert f["backfill"]["bronze_in"] > 0 and f["backfill"]["changed"] == 0
    assert f["nothing_new"]["bronze_in"] == 0
    rebuilt = story.steps["backfill_changed_contract"]
    assert f["backfill_changed_contract"]["bronze_objects"] == len(bronze_objects(story.settings))
    assert max(r["age"] for r in rebuilt.state.values()) <= 82
    assert all(r["full_name"] is None or r["full_name"].isupper() for r in rebuilt.state.values())
    assert sum(r == "out_of_range:age" for r, _ in rebuilt.reasons) > sum(
        r == "out_of_range:age" for r, _ in story.steps["nothing_new"].reasons
    )


# ---- A contract without an event time: the state is the latest first arrival per key -------------
def subscriber_rows(first: int, n: int, tenure_shift: int = 0) -> list[dict]:
    regions, plans = ["Central", "East", "North", "South", "West"], ["Month-to-month", "One year", "Two year"]
    return [
        {
            "account_no": first + i,
            "region": regions[i % 5],
            "contract_type": plans[i % 3],
            "internet_service": "DSL",
            "tenure_months": 1 + (i * 7) % 72 + tenure_shift,
            "monthly_charges": 20.0 + i,
            "total_charges": None if i % 9 == 0 else 20.0 * i,
            "support_calls": i % 4,
            "paperless_billing": i % 2,
            "email": f"a{first + i}@example.com",
            "churn": "Yes" if i % 3 == 0 else "No",
        }
        for i in range(n)
    ]


def file_events(rows: list[dict]) -> list[bytes]:
    """A file's rows as `mdp ingest` sends them: the event id names the file's content and the row."""
    import hashlib
    import uuid

    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return as_json(
        [{"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{digest}:{i}")), **r} for i, r in enumerate(rows)]
    )


@pytest.fixture(scope="module")
def subscribers_story(tmp_path_factory, spark) -> Story:
    home = tmp_path_factory.mktemp("oracle-subscribers")
    s = Story(get_settings(home=home, seed=SEED, contract="subscribers"), home / "oracle")
    st = s.settings
    a, b = subscriber_rows(1, 40), subscriber_rows(1, 40, tenure_shift=1)
    a[5]["region"] = "Atlantis"  # one bad record: quarantined, and quarantined once when A comes again

    def ingest(source: str, rows: list[dict], at: datetime) -> None:
        land(st, file_events(rows), list(range(len(rows))), at, source=source)

    ingest("file-a", a, H[0])
    s.run("file_a", "file A")
    ingest("file-b", b, H[1])
    s.run("edited_file_b", "file B: every account's tenure one more")
    ingest("file-a-again", a, H[2])
    s.run("file_a_again", "file A again under another name, in a later run: copies of seen events")
    ingest("file-a-again", a, H[2])  # the very same object again: nothing new
    s.run("nothing_new", "the same object landed again")
    s.run("backfill", "H0 read again", backfill=Interval.hour_of(H[0]))

    # The real file source: file C, then an edited D, then C again under its own name within the
    # same hour (its Bronze object stays as it was), then `--all`: D's edit stays.
    from ingestion.file_source import ingest_file
    from mdp.core.storage import store_for

    c, d = subscriber_rows(100, 20), subscriber_rows(100, 20, tenure_shift=2)
    for name, rows, minute in (("c", c, 0), ("d", d, 10), ("c", c, 20)):
        path = home / f"{name}.csv"
        path.write_text(
            "account_no,region,contract_type,internet_service,tenure_months,monthly_charges,total_charges,"
            "support_calls,paperless_billing,email,churn\n"
            + "".join(
                ",".join(
                    "" if r[k] is None else str(r[k])
                    for k in (
                        "account_no",
                        "region",
                        "contract_type",
                        "internet_service",
                        "tenure_months",
                        "monthly_charges",
                        "total_charges",
                        "support_calls",
                        "paperless_billing",
                        "email",
                        "churn",
                    )
                )
                + "\n"
                for r in rows
            )
        )
        ingest_file(st, store_for(st), path, at=H[3] + timedelta(minutes=minute))
        s.run(f"file_{name}_{minute}", f"file {name} at minute {minute} of one hour")
    s.run("all_after_same_name_reingest", "--all after C, D and C again within the hour", all_bronze=True)
    s.d_rows = d
    return s


SUBSCRIBER_STEPS = [
    "file_a",
    "edited_file_b",
    "file_a_again",
    "nothing_new",
    "backfill",
    "file_c_0",
    "file_d_10",
    "file_c_20",
    "all_after_same_name_reingest",
]


@pytest.mark.parametrize("step", SUBSCRIBER_STEPS)
def test_without_an_event_time_each_run_publishes_what_the_oracle_computes(subscribers_story, step):
    s = subscribers_story.steps[step]
    assert s.error is None, f"{step} ({s.why}) failed: {s.error}"
    assert s.comparison.equal, f"{step} ({s.why}) differs from the oracle:\n{s.comparison}"


def test_without_an_event_time_a_reingest_keeps_the_edit(subscribers_story):
    steps = subscribers_story.steps

    def tenure(step):
        return {k: r["tenure_months"] for k, r in steps[step].state.items()}

    assert tenure("file_a_again") == tenure("edited_file_b") != tenure("file_a")
    assert steps["file_a_again"].figures["changed"] == 0 and steps["file_a_again"].figures["bronze_in"] == 40
    # The quarantine is per source position: the second file's bad row is another delivery.
    assert len(steps["file_a"].reasons) == 1 and len(steps["file_a_again"].reasons) == 2
    # File C again within the hour, under its own name: nothing new in Bronze, and `--all` keeps D.
    assert steps["file_c_20"].figures["bronze_in"] == 0
    d = {r["account_no"]: r["tenure_months"] for r in subscribers_story.d_rows}
    assert {k: r["tenure_months"] for k, r in steps["all_after_same_name_reingest"].state.items() if k in d} == d
