"""mdp.core.manifests: the typed documents read and write exactly what the lake held before them
(a version's commitInfo `mdp`, a run's staged entry), and a field read means what it meant."""

from __future__ import annotations

import json

import pytest

from mdp.core.manifests import Manifest, StagedRun, StagedWrite, VersionManifest

pytestmark = pytest.mark.unit

# As bronze_to_silver, the gate and Write.commit wrote them before the types (keys, nulls, figures).
SILVER_COMMIT = {
    "run_id": "hourly-1",
    "checkpoint": "file:///lake/silver/customers/_checkpoint/abc",
    "schema": {"customer_id": "string"},
    "contract": "f00d",
    "backfill": None,
    "rebuilt": None,
    "bronze_in": 12,
    "silver_rows": 10,
    "profile": {"rows": 10, "keys": 10, "columns": {}},
    "conservation": {"parsed": "12 = 10 + 2"},
    "write_id": "abc",
    "tables": {"batch": 3, "changes": 3, "seen": None, "quarantine": 2},
}
STAGED = {
    "run_id": "hourly-1",
    "status": "rejected",
    "staged_at": "2026-12-07T01:00:00+00:00",
    "version": None,
    "write": {"run_id": "hourly-1", "write_id": "abc", "based_on": {"state": 4, "seen": None}},
    "based_on": 4,
    "bronze_in": 12,
    "backfill": None,
    "rejected_at": "2026-12-07T01:01:00+00:00",
    "rejection": {"message": "GX validation failed", "failures": []},
}


def test_a_commit_reads_back_typed_and_writes_back_the_same_keys():
    m = VersionManifest.from_commit_info(5, json.dumps(SILVER_COMMIT))
    assert (m.version, m.run_id, m.write_id, m.silver_rows) == (5, "hourly-1", "abc", 10)
    assert m.table_schema == {"customer_id": "string"} and m.tables["seen"] is None
    # As the dict read: a key present with null is None, an absent key is the default or a KeyError.
    assert m["bronze_in"] == 12 and m.get("backfill", "x") is None and m.get("absent", "x") == "x"
    assert "backfill" in m and "absent" not in m and "schema" in m and "rows" not in m
    with pytest.raises(KeyError):
        m["absent"]
    with pytest.raises(KeyError):
        m["rows"]  # declared, but this manifest has none
    assert json.loads(m.to_commit_info()) == SILVER_COMMIT  # no "version": the commit is the version


def test_a_manifest_without_fields_reads_with_defaults_and_writes_nothing_more():
    m = VersionManifest.from_commit_info(0, None)
    assert (m.version, m.tables, m.checkpoint, m.rows) == (0, {}, None, None)
    assert json.loads(m.to_commit_info()) == {}
    assert json.loads(Manifest.model_validate({"rows": 3}).to_commit_info()) == {"rows": 3}


def test_a_staged_entry_reads_back_typed_and_writes_back_the_same_document():
    doc = StagedRun.from_json(json.dumps(STAGED))
    assert doc.status == "rejected" and doc.write == StagedWrite(
        run_id="hourly-1", write_id="abc", based_on={"state": 4, "seen": None}
    )
    assert doc["bronze_in"] == 12 and doc.rejection == {"message": "GX validation failed", "failures": []}
    assert json.loads(doc.to_json()) == STAGED


def test_what_a_staged_run_publishes_is_its_manifest_without_the_staging():
    doc = StagedRun.new("r", None, None, {"bronze_in": 0, "checkpoint": "c", "backfill": None})
    assert (doc.status, doc.version, doc.write, doc.based_on) == ("staged", None, None, None)
    assert doc.manifest().fields() == {"run_id": "r", "bronze_in": 0, "checkpoint": "c", "backfill": None}
    doc.status, doc.version, doc.published_at = "published", 3, "2026-12-07T02:00:00+00:00"
    written = json.loads(doc.to_json())
    assert (written["status"], written["version"], written["published_at"]) == ("published", 3, doc.published_at)
    assert doc.manifest().fields() == {"run_id": "r", "bronze_in": 0, "checkpoint": "c", "backfill": None}


def test_a_version_converted_from_the_old_layout_keeps_its_text_versions():
    m = VersionManifest.from_commit_info(0, json.dumps({"converted_from": "g1", "silver_version": "old1"}))
    assert (m.converted_from, m.silver_version) == ("g1", "old1")
