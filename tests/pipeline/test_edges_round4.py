"""The data path at its edges, round 4 (issue 27), each met through the CLI as a user would meet it.

- finding 1: one bad record alone in its ingest hour (a late record; the bad records of an export
  ingested twice under two names) does not stop the line, and a fresh run and `--all` over the
  same Bronze give the same verdict;
- finding 2: a key left nullable is still required; a column made non-nullable goes through `--all`;
- finding 3: a date or time no store downstream can hold (year 10000) is quarantined, not a crash;
- finding 6: the same file again within the hour leaves its Bronze object as it was;
- finding 7: the Silver fingerprint covers every contract field that shapes Silver;
- smaller: text holding U+0000 (no SQL text type takes it) is quarantined, in the key too.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from mdp.core.contract import CONTRACTS_DIR, Contract
from mdp.core.settings import Settings
from tests.helpers import clean_events, write_messages
from tests.pipeline.test_edges import _csv, _customers, _published, _subscribers
from tests.reliability.harness import cli_env, run_cli

pytestmark = pytest.mark.integration
STAGES = ["-s", "bronze_to_silver", "-s", "validate_silver"]


def _contract(tmp_path: Path, edit, base: str = "customers") -> Path:
    data = yaml.safe_load((CONTRACTS_DIR / f"{base}.yaml").read_text())
    edit(data)
    path = tmp_path / f"contract-{len(list(tmp_path.glob('contract-*')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _quarantine_reasons(home: Path, entity: str = "customers") -> list[str]:
    return sorted(r["reason"] for r in _published(home, entity, "quarantine"))


def _verdicts_agree(home: Path, tmp_path: Path, env_extra: dict | None = None) -> None:
    """A fresh run on a copy of the Bronze and `--all` on the lake itself both publish."""
    fresh = tmp_path / "fresh"
    shutil.copytree(home / ".mdp" / "lake" / "bronze", fresh / ".mdp" / "lake" / "bronze")
    f = run_cli(["run", *STAGES], {**cli_env(fresh), **(env_extra or {})}, timeout=600)
    assert f.returncode == 0, "fresh run: " + f.text[-3000:]
    a = run_cli(["run", "--all", *STAGES], {**cli_env(home), **(env_extra or {})}, timeout=600)
    assert a.returncode == 0, "--all: " + a.text[-3000:]


def test_a_late_bad_record_alone_in_its_hour_does_not_stop_the_line(tmp_path):
    """Finding 1, first way: hour 00 is published, then one malformed record lands late into it,
    with nothing else new. Judged as a share of its one-row hour (and batch), it was 100% bad and
    failed every run (the rejected object is read again, the hour never grows)."""
    home = tmp_path / "lake"
    env = cli_env(home, MDP_EVENTS="300", MDP_DIRTY_FRACTION="0")
    assert run_cli(["generate", "--since", "2026-01-05T00"], env).returncode == 0
    first = run_cli(["run", *STAGES], env, timeout=600)
    assert first.returncode == 0, first.text[-3000:]

    hour = datetime(2026, 1, 5, 0, 40, tzinfo=UTC)
    late = clean_events(99, hour, 1)[0] | {"email": "not-an-email"}
    write_messages(Settings(home=home), hour, [json.dumps(late).encode()], source="late")
    for attempt in ("run", "rerun"):
        r = run_cli(["run", *STAGES], env, timeout=600)
        assert r.returncode == 0, f"{attempt}: " + r.text[-3000:]
    assert _quarantine_reasons(home) == ["bad_format:email"]
    _verdicts_agree(home, tmp_path, {"MDP_EVENTS": "300"})


def test_an_export_ingested_twice_under_two_names_does_not_leave_an_hour_of_bad_records(tmp_path):
    """Finding 1, second way: the same 600 events (48 with a bad email, 8%, under every share)
    land under two source names in two hours, and one run reads both. The resend's good events
    are copies of the first hour's; its bad records, distinct only by position, used to stay alone
    in the second hour: 48 of 48 bad, and the gate failed every run. They are copies too."""
    home = tmp_path / "lake"
    hours = [datetime(2026, 1, 5, h, tzinfo=UTC) for h in (10, 11)]
    events = clean_events(5, hours[0], 600)
    for e in events[:48]:
        e["email"] = "not-an-email"
    messages = [json.dumps(e).encode() for e in events]
    settings = Settings(home=home)
    write_messages(settings, hours[0], messages, source="export-a")
    write_messages(settings, hours[1], messages, source="export-b")
    r = run_cli(["run", *STAGES], cli_env(home), timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    # Nothing lost: the quarantine keeps each delivery's bad records, with their positions.
    assert _quarantine_reasons(home) == ["bad_format:email"] * 96
    _verdicts_agree(home, tmp_path)


def test_a_key_left_nullable_is_still_required(tmp_path):
    """Finding 2: a contract that leaves out `nullable: false` on the key loads; a record with no
    key is quarantined (missing:customer_id), not accepted into a Silver whose rows then never
    equal its keys. A key stated nullable is refused, naming the setting."""
    def drop(data):
        next(c for c in data["columns"] if c["name"] == "customer_id").pop("nullable", None)

    left_out = _contract(tmp_path, drop)
    assert run_cli(["contract", "check", str(left_out)], cli_env(tmp_path)).returncode == 0
    events = _customers(21, 40, 0)
    events[0]["customer_id"] = None
    r = run_cli(["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES],
                cli_env(tmp_path, MDP_CONTRACT=str(left_out)), timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    assert _quarantine_reasons(tmp_path) == ["missing:customer_id"]
    assert None not in {row["customer_id"] for row in _published(tmp_path, "customers")}

    stated = _contract(tmp_path, lambda d: next(c for c in d["columns"] if c["name"] == "customer_id").update(nullable=True))
    r = run_cli(["contract", "check", str(stated)], cli_env(tmp_path))
    assert r.returncode == 2 and "columns.customer_id.nullable" in r.text, r.text[-2000:]


def test_a_column_made_non_nullable_is_refused_by_a_merge_and_rebuilt_by_all(tmp_path):
    """Finding 2, the way out: making a column non-nullable is refused for a merge (published rows
    may hold nulls), and the message names `--all`, which rebuilds from Bronze and reads no
    published row, so it goes through; the null is then quarantined."""
    events = _customers(22, 40, 0)
    events[3]["phone"] = None
    home = tmp_path / "lake"
    r = run_cli(["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES],
                cli_env(home), timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    strict = _contract(tmp_path, lambda d: next(c for c in d["columns"] if c["name"] == "phone").update(nullable=False))
    env = cli_env(home, MDP_CONTRACT=str(strict))
    merge = run_cli(["run", *STAGES], env, timeout=600)
    assert merge.returncode == 2 and "became non-nullable" in merge.text and "--all" in merge.text, merge.text[-3000:]
    rebuilt = run_cli(["run", "--all", *STAGES], env, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.text[-3000:]
    assert _quarantine_reasons(home) == ["missing:phone"]


def test_dates_and_times_no_store_can_hold_are_quarantined_not_a_crash(tmp_path):
    """Finding 3: Spark parses years of up to 7 digits; pandas, Python and most stores cannot hold
    a year past 9999, and the gate died converting the batch (exit 1, on every run). Such a value
    does not cast: bad_type:<column>, quarantined with its bytes; the run and its rerun exit 0."""
    events = _customers(23, 40, 0)
    events[0]["signup_date"] = "10000-01-01"
    events[1]["event_ts"] = "+10000-01-01T00:00:00Z"
    events[2]["last_login_date"] = "-0001-06-01"
    for attempt in ("run", "rerun"):
        r = run_cli(["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES, "-s", "silver_to_gold"],
                    cli_env(tmp_path), timeout=600)
        assert r.returncode == 0, f"{attempt}: " + r.text[-3000:]
    assert _quarantine_reasons(tmp_path) == ["bad_type:event_ts", "bad_type:last_login_date", "bad_type:signup_date"]


def test_text_holding_nul_is_quarantined_in_the_key_too(tmp_path):
    """Smaller finding: U+0000 is legal JSON, but no SQL text type holds it: a key carrying it
    reached Gold and the Postgres scores sync failed on every run. It does not cast to text."""
    no_regex = _contract(tmp_path, lambda d: next(c for c in d["columns"] if c["name"] == "customer_id").pop("regex", None))
    events = _customers(24, 40, 0)
    events[0]["customer_id"] = "C\x001234"
    events[1]["full_name"] = "Ada\x00Lovelace"
    r = run_cli(["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES, "-s", "silver_to_gold"],
                cli_env(tmp_path, MDP_CONTRACT=str(no_regex)), timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    assert _quarantine_reasons(tmp_path) == ["bad_type:customer_id", "bad_type:full_name"]
    assert not any("\x00" in (row["customer_id"] or "") for row in _published(tmp_path, "customers"))


def test_the_same_file_again_within_the_hour_leaves_its_bronze_object(tmp_path):
    """Finding 6: without an event time the ingest time orders the states. File A, then an edited
    B, then A again under the same name within the hour: the rewrite of A's object with a new ingest
    time put A's values back over B's at the next `--all`. Bronze objects are immutable: A's stays."""
    contract = _contract(tmp_path, lambda d: None, base="subscribers")
    env = cli_env(tmp_path, MDP_CONTRACT=str(contract))
    a = _subscribers(0, 30)
    b = [{**r, "tenure_months": r["tenure_months"] + 1} for r in a]
    path_a = _csv(tmp_path / "a.csv", a)
    for name, path in (("a", path_a), ("b", _csv(tmp_path / "b.csv", b))):
        r = run_cli(["run", "--input", str(path), "-s", "land_bronze", *STAGES], env, timeout=600)
        assert r.returncode == 0, f"{name}: " + r.text[-3000:]
    objects = {p: p.read_bytes() for p in (tmp_path / ".mdp" / "lake" / "bronze").rglob("*.parquet")}
    again = run_cli(["ingest", str(path_a)], env, timeout=600)
    assert again.returncode == 0, again.text[-3000:]
    # (Each earlier object as it was; across an hour boundary the re-ingest is a new object of copies.)
    assert {p: p.read_bytes() for p in objects} == objects
    r = run_cli(["run", "--all", *STAGES], env, timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    state = {row["account_no"]: row["tenure_months"] for row in _published(tmp_path, "subscribers")}
    assert state == {row["account_no"]: row["tenure_months"] for row in b}


def test_the_silver_fingerprint_covers_every_field_that_shapes_silver():
    """Finding 7: adding a tombstone (or an event type) changes what parsing accepts and the merge
    keeps, so a backfill under it must rebuild. The fingerprint takes every contract field but the
    named ones that do not shape Silver: a field added later is in it unless someone says otherwise."""
    data = yaml.safe_load((CONTRACTS_DIR / "customers.yaml").read_text())
    base = Contract.model_validate(data)
    for edit in (lambda d: d.pop("tombstone"), lambda d: d.update(tombstone={"column": "event_type", "value": "gone"}),
                 lambda d: (d.pop("tombstone"), d.pop("event_type"))):
        changed = json.loads(json.dumps(data, default=str))
        edit(changed)
        assert Contract.model_validate(changed).silver_fingerprint != base.silver_fingerprint
    for edit in (lambda d: d["quality"].update(max_per_rule=0.2), lambda d: d.update(version=d["version"] + 1)):
        same = json.loads(json.dumps(data, default=str))
        edit(same)
        assert Contract.model_validate(same).silver_fingerprint == base.silver_fingerprint
    assert Contract.NOT_SILVER < set(Contract.model_fields), "a field named as not shaping Silver must exist"


def test_a_reingest_of_the_same_file_under_the_same_name_lands_nothing_new(tmp_path):
    """Finding 6, the Bronze side alone: no second object, no rewrite (the figures say so)."""
    contract = _contract(tmp_path, lambda d: None, base="subscribers")
    env = cli_env(tmp_path, MDP_CONTRACT=str(contract))
    path = _csv(tmp_path / "a.csv", _subscribers(0, 10))
    assert run_cli(["ingest", str(path)], env).returncode == 0
    first = sorted((tmp_path / ".mdp" / "lake" / "bronze").rglob("*.parquet"))
    ts = pq.read_table(first[0]).column("ingest_ts").to_pylist()
    assert run_cli(["ingest", str(path)], env).returncode == 0
    assert pq.read_table(first[0]).column("ingest_ts").to_pylist() == ts
    if first[0].parent.name == f"ingest_hour={datetime.now(UTC):%H}":  # not across an hour boundary
        assert sorted((tmp_path / ".mdp" / "lake" / "bronze").rglob("*.parquet")) == first


def test_a_gate_stopped_by_one_record_names_it_and_says_how_to_go_on(tmp_path):
    """Under a strict threshold (max_per_rule 0) one bad email stops the run: the message names the
    record (event id, key, reason, ingest hour) and says how to go on, not only the share."""
    strict = _contract(tmp_path, lambda d: d["quality"].update(max_per_rule=0))
    events = _customers(25, 40, 1)
    r = run_cli(["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES],
                cli_env(tmp_path, MDP_CONTRACT=str(strict)), timeout=600)
    assert r.returncode == 3, r.text[-3000:]
    text = " ".join(r.text.split())
    assert f"event_id={events[0]['event_id']!r} customer_id={events[0]['customer_id']!r} reason=bad_format:email" in text, text[-3000:]
    assert "ingest hour " in text and "To go on:" in text and "quality.max_per_rule" in text
