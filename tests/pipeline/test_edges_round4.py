"""The data path at its edges, round 4 (issue 27): what a user meets at the CLI itself.

The findings' data paths run in-process, where a run costs no JVM start: the oracle story
(tests/oracle, steps `late_bad_record_alone`, `export_twice_in_one_run` and the subscribers'
same-name re-ingest), the found histories (tests/properties/test_found_regressions.py: findings 1,
2, 3, 6, 7, 9) and the poison cases (tests/reliability/fuzz.py: years past 9999, U+0000 in the key
and in text). Here: the contract check's refusal of a nullable key, the fingerprint, a re-ingest
under the same name, and the gate's message when one record stops it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from mdp.core.contract import CONTRACTS_DIR, Contract
from tests.pipeline.test_edges import _csv, _customers, _subscribers
from tests.reliability.harness import cli_env, run_cli_in_process

pytestmark = pytest.mark.integration
STAGES = ["-s", "bronze_to_silver", "-s", "validate_silver"]


def _contract(tmp_path: Path, edit, base: str = "customers") -> Path:
    data = yaml.safe_load((CONTRACTS_DIR / f"{base}.yaml").read_text())
    edit(data)
    path = tmp_path / f"contract-{len(list(tmp_path.glob('contract-*')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_key_left_nullable_is_still_required(tmp_path):
    """Finding 2: a contract that leaves out `nullable: false` on the key loads (a record with no key
    is then quarantined: tests/properties test_finding_2_*); a key stated nullable is refused,
    naming the setting."""

    def drop(data):
        next(c for c in data["columns"] if c["name"] == "customer_id").pop("nullable", None)

    left_out = _contract(tmp_path, drop)
    assert run_cli_in_process(["contract", "check", str(left_out)], cli_env(tmp_path)).returncode == 0
    stated = _contract(
        tmp_path, lambda d: next(c for c in d["columns"] if c["name"] == "customer_id").update(nullable=True)
    )
    r = run_cli_in_process(["contract", "check", str(stated)], cli_env(tmp_path))
    assert r.returncode == 2 and "columns.customer_id.nullable" in r.text, r.text[-2000:]


def test_the_silver_fingerprint_covers_every_field_that_shapes_silver():
    """Finding 7: adding a tombstone (or an event type) changes what parsing accepts and the merge
    keeps, so a backfill under it must rebuild. The fingerprint takes every contract field but the
    named ones that do not shape Silver: a field added later is in it unless someone says otherwise."""
    data = yaml.safe_load((CONTRACTS_DIR / "customers.yaml").read_text())
    base = Contract.model_validate(data)
    for edit in (
        lambda d: d.pop("tombstone"),
        lambda d: d.update(tombstone={"column": "event_type", "value": "gone"}),
        lambda d: (d.pop("tombstone"), d.pop("event_type")),
    ):
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
    assert run_cli_in_process(["ingest", str(path)], env).returncode == 0
    first = sorted((tmp_path / ".mdp" / "lake" / "bronze").rglob("*.parquet"))
    ts = pq.read_table(first[0]).column("ingest_ts").to_pylist()
    assert run_cli_in_process(["ingest", str(path)], env).returncode == 0
    assert pq.read_table(first[0]).column("ingest_ts").to_pylist() == ts
    if first[0].parent.name == f"ingest_hour={datetime.now(UTC):%H}":  # not across an hour boundary
        assert sorted((tmp_path / ".mdp" / "lake" / "bronze").rglob("*.parquet")) == first


def test_a_gate_stopped_by_one_record_names_it_and_says_how_to_go_on(tmp_path):
    """Under a strict threshold (max_per_rule 0) one bad email stops the run: the message names the
    record (event id, key, reason, ingest hour) and says how to go on, not only the share."""
    strict = _contract(tmp_path, lambda d: d["quality"].update(max_per_rule=0))
    events = _customers(25, 40, 1)
    r = run_cli_in_process(
        ["run", "--input", str(_csv(tmp_path / "e.csv", events)), "-s", "land_bronze", *STAGES],
        cli_env(tmp_path, MDP_CONTRACT=str(strict)),
        timeout=600,
    )
    assert r.returncode == 3, r.text[-3000:]
    text = " ".join(r.text.split())
    assert (
        f"event_id={events[0]['event_id']!r} customer_id={events[0]['customer_id']!r} reason=bad_format:email" in text
    ), text[-3000:]
    assert "ingest hour " in text and "To go on:" in text and "quality.max_per_rule" in text
