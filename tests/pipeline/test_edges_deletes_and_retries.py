"""The data path at its edges, round 4 (issue 27), met through the CLI as a user would meet it.

- finding 8: a bulk delete of minimal deletes (key, event id, type, time) is not drift: a delete
  carries no values, so its nulls and missing distinct values are not the batch's; and Silver's
  profile, the drift baseline, is taken over live customers, so kept tombstones do not hide a real
  drift later;
- finding 9: a stage SIGKILLed after it moved a pointer, before its bookkeeping (test hook
  MDP_TEST_CRASH_AFTER_POINTER=<layer> in mdp/core/tables.py), succeeds when it is run again for the
  same run: validate_silver finds its version published (it used to exit 1, "the published version
  moved from X to Y; Y was not published"), silver_to_gold finds its snapshot current.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import clean_events
from tests.pipeline.test_edges import SILVER, _csv, _published
from tests.reliability.harness import cli_env, run_cli, run_cli_in_process

pytestmark = pytest.mark.integration


def _distinct_customers(n: int) -> list[dict]:
    """n creates of n customers (the generator gives a few events per customer): a Silver of n rows."""
    events = clean_events(17, datetime(2026, 3, 2, 9, tzinfo=UTC), n)
    return [
        {**e, "event_type": "customer_created", "customer_id": f"C{1000000 + i:07d}", "email": f"c{i}@example.com"}
        for i, e in enumerate(events)
    ]


def _silver_manifest(home: Path) -> dict:
    from mdp.core.settings import get_settings
    from mdp.core.tables import silver_dataset

    return silver_dataset(get_settings(home=home)).current()


def test_a_bulk_delete_of_minimal_deletes_is_not_drift(tmp_path):
    """1,500 customers published; then 500 minimal deletes and 1,000 updates (a third deletes, over
    the drift's min_rows). The deletes' empty optional columns (phone, full_name, last_login_date)
    would raise the batch's null share by 33 % > max_null_share_increase (0.3). Then a batch in which
    half of the live customers lose their phone is drift: judged against live customers (no null
    phone), not against a Silver whose 500 tombstones are a third null phones (that allows 63 %)."""
    env = cli_env(tmp_path)
    first = _distinct_customers(1500)
    r = run_cli_in_process(["run", "--input", str(_csv(tmp_path / "first.csv", first)), *SILVER], env, timeout=600)
    assert r.returncode == 0, r.text[-3000:]

    later = "2026-03-02T11:00:00.000000Z"
    deletes = [
        {k: None for k in e}
        | {
            "event_id": f"00000000-0000-4000-8000-{i:012d}",
            "event_type": "customer_deleted",
            "event_ts": later,
            "customer_id": e["customer_id"],
        }
        for i, e in enumerate(first[:500])
    ]
    updates = [
        {
            **e,
            "event_id": f"00000000-0000-4000-9000-{i:012d}",
            "event_type": "customer_updated",
            "event_ts": later,
            "support_tickets": 3,
        }
        for i, e in enumerate(first[500:])
    ]
    r = run_cli_in_process(
        ["run", "--input", str(_csv(tmp_path / "deletes.csv", deletes + updates)), *SILVER], env, timeout=600
    )
    assert r.returncode == 0, r.text[-3000:]
    state = {row["customer_id"]: row for row in _published(tmp_path, "customers")}
    assert sum(row["event_type"] == "customer_deleted" for row in state.values()) == 500

    profile = _silver_manifest(tmp_path)["profile"]
    assert (profile["rows"], profile["keys"], profile["live_rows"]) == (1500, 1500, 1000), profile
    assert profile["columns"]["phone"]["nulls"] == 0, "the profile counts live customers, not tombstones"

    even_later = "2026-03-02T12:00:00.000000Z"
    no_phone = [
        {
            **e,
            "event_id": f"00000000-0000-4000-a000-{i:012d}",
            "event_ts": even_later,
            "phone": None if i % 2 else e["phone"],
        }
        for i, e in enumerate(updates)
    ]
    r = run_cli_in_process(
        ["run", "--input", str(_csv(tmp_path / "no_phone.csv", no_phone)), *SILVER], env, timeout=600
    )
    assert r.returncode == 3, r.text[-3000:]
    assert (
        "expect_column_values_to_not_be_null(phone)" in r.text and "quality.drift.max_null_share_increase" in r.text
    ), r.text[-3000:]


def test_a_retry_after_a_crash_past_the_pointer_succeeds(tmp_path):
    env = cli_env(tmp_path, MDP_EVENTS="60", MDP_DIRTY_FRACTION="0")
    assert run_cli_in_process(["generate", "--since", "2026-01-05T00"], env).returncode == 0
    r = run_cli_in_process(["run", "-s", "bronze_to_silver", "-s", "validate_silver"], env, timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    before = _silver_manifest(tmp_path)["version"]

    assert run_cli_in_process(["generate", "--since", "2026-01-05T01"], env).returncode == 0
    r = run_cli_in_process(["stage", "bronze_to_silver", "--run-id", "r2"], env, timeout=600)
    assert r.returncode == 0, r.text[-3000:]
    staged_uri = tmp_path / ".mdp" / "lake" / "silver" / "customers" / "_staged" / "r2.json"
    write_id = json.loads(staged_uri.read_text())["write"]["write_id"]
    staged = before + 1  # the Delta version its commit makes

    crashed = run_cli(
        ["stage", "validate_silver", "--run-id", "r2"], {**env, "MDP_TEST_CRASH_AFTER_POINTER": "silver"}, timeout=600
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.text[-3000:]
    manifest = _silver_manifest(tmp_path)
    assert (manifest["version"], manifest["write_id"]) == (staged, write_id)  # the commit is in the log ...
    assert json.loads(staged_uri.read_text())["status"] == "staged"  # ... and the entry was not marked

    retry = run_cli_in_process(["stage", "validate_silver", "--run-id", "r2"], env, timeout=600)
    assert retry.returncode == 0, retry.text[-3000:]
    assert json.loads(retry.stdout.strip().splitlines()[-1])["validated_version"] == staged, retry.text[-3000:]
    manifest = _silver_manifest(tmp_path)
    assert (manifest["version"], manifest["write_id"]) == (staged, write_id)  # committed once (its txn), not twice
    assert json.loads(staged_uri.read_text())["status"] == "published"

    from mdp.core.settings import get_settings
    from mdp.core.tables import gold_dataset

    gold_features = gold_dataset(get_settings(home=tmp_path))
    crashed = run_cli(
        ["stage", "silver_to_gold", "--run-id", "r2"], {**env, "MDP_TEST_CRASH_AFTER_POINTER": "gold"}, timeout=600
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.text[-3000:]
    gold = gold_features.current()  # the Delta commit is made, the run's bookkeeping is not
    assert gold["silver_version"] == staged
    retry = run_cli_in_process(["stage", "silver_to_gold", "--run-id", "r2"], env, timeout=600)
    assert retry.returncode == 0, retry.text[-3000:]
    assert gold_features.current()["version"] == gold["version"]  # the snapshot it wrote, once
