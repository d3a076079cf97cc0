"""The data path at its edges (issue 20), each met through the CLI as a user would meet it.

- item 10: a regex one engine accepts and the other refuses fails `mdp contract check`, naming the
  column and the setting, instead of failing the gate on every run;
- item 11: a lake folder with a space and a non-ASCII letter is one lake, not two;
- item 7: a batch smaller than `quality.min_batch_rows` is judged by counts: one bad record does
  not stop it, more bad records than a batch of min_batch_rows may hold still do;
- item 8: a batch of new accounts, all with the same tenure, is not refused as distinct-count drift.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mdp.core.contract import CONTRACTS_DIR
from tests.helpers import changed_contract, clean_events
from tests.reliability.harness import cli_env, run_cli_in_process

pytestmark = pytest.mark.integration


SILVER = ["--stage", "land_bronze", "--stage", "bronze_to_silver", "--stage", "validate_silver"]


def _contract_with(
    tmp_path: Path, column: str | None = None, base: str = "customers", quality: dict | None = None, **changes
) -> Path:
    data = yaml.safe_load((CONTRACTS_DIR / f"{base}.yaml").read_text())
    for c in data["columns"]:
        if c["name"] == column:
            c.update(changes)
    for key, value in (quality or {}).items():
        data.setdefault("quality", {})[key] = value
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "regex, engine",
    [
        (r"^\p{Lu}[a-z]+$", "Python"),  # Java's Unicode classes: Spark accepts it, Python's re does not
        (r"^(?P<first>[a-z]+)$", "Java"),  # Python's named group: GX accepts it, Spark's Java regex does not
        (r"^[a-z+$", "Python"),  # refused everywhere
    ],
)
def test_a_regex_one_engine_refuses_fails_the_contract_check(tmp_path, regex, engine):
    path = _contract_with(tmp_path, "country", regex=regex)
    r = run_cli_in_process(["contract", "check", str(path)], cli_env(tmp_path))
    assert r.returncode == 2, r.text[-2000:]
    assert "columns.country.regex" in r.text and engine in r.text, r.text[-2000:]


def test_the_bundled_regexes_compile_in_both_engines(tmp_path):
    r = run_cli_in_process(["contract", "check", "customers"], cli_env(tmp_path))
    assert r.returncode == 0, r.text[-2000:]


def test_a_lake_folder_with_a_space_and_an_accent_is_one_lake(tmp_path):
    root = tmp_path / "my lake é"
    env = cli_env(tmp_path, MDP_LAKE_ROOT=str(root), MDP_EVENTS="60")
    r = run_cli_in_process(
        ["run", "--stage", "land_bronze", "--stage", "bronze_to_silver", "--stage", "validate_silver"], env, timeout=600
    )
    assert r.returncode == 0, r.text[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("my")) == ["my lake é"]
    assert (root / "bronze" / "customers").is_dir() and (
        root / "silver" / "customers" / "state" / "_delta_log"
    ).is_dir()


def _csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(
            [{k: "" if v is None else str(v).lower() if isinstance(v, bool) else v for k, v in r.items()} for r in rows]
        )
    return path


def _customers(seed: int, n: int, bad_emails: int) -> list[dict]:
    events = clean_events(seed, datetime(2026, 3, 2, 9, tzinfo=UTC), n)
    for e in events[:bad_emails]:
        e["email"] = "not-an-email"
    return events


@pytest.mark.parametrize(
    "n, bad, code",
    [
        (5, 1, 0),  # a quiet hour with one bad email: 20% of 5, but under the cap of 20 rows (10% of 200)
        (3, 2, 0),  # two bad of three: two records, not a broken producer (the half-batch cap stopped it)
        (30, 21, 3),  # more bad emails than a batch of min_batch_rows may hold still stop the line
    ],
)
def test_a_small_batch_is_judged_by_counts_not_shares(tmp_path, n, bad, code):
    events = _csv(tmp_path / "events.csv", _customers(7, n, bad))
    r = run_cli_in_process(["run", "--input", str(events), *SILVER], cli_env(tmp_path), timeout=600)
    assert r.returncode == code, r.text[-3000:]
    if code == 3:
        assert "quality.max_per_rule" in r.text and "quality.min_batch_rows" in r.text, r.text[-3000:]


def test_min_batch_rows_is_validated(tmp_path):
    path = _contract_with(tmp_path, quality={"min_batch_rows": 0})
    r = run_cli_in_process(["contract", "check", str(path)], cli_env(tmp_path))
    assert r.returncode == 2 and "quality.min_batch_rows" in r.text, r.text[-2000:]


def test_a_batch_of_new_accounts_with_one_tenure_is_not_drift(tmp_path):
    """Drift against a published Silver of 40 accounts with varied tenure: 40 new accounts, all at
    tenure 0, are legitimate (min_rows lowered so that tiny files reach the drift check)."""
    contract = _contract_with(tmp_path, base="subscribers", quality={"drift": {"min_rows": 20}})
    first = _subscribers(0, 40)
    new = [{**r, "tenure_months": 0, "total_charges": r["monthly_charges"]} for r in _subscribers(1000, 40)]
    env = cli_env(tmp_path, MDP_CONTRACT=str(contract))
    for name, rows in (("first", first), ("new", new)):
        r = run_cli_in_process(["run", "--input", str(_csv(tmp_path / f"{name}.csv", rows)), *SILVER], env, timeout=600)
        assert r.returncode == 0, f"{name}: " + r.text[-3000:]


def _subscribers(first_account: int, n: int) -> list[dict]:
    regions, contracts, internet = (
        ["Central", "East", "North", "South", "West"],
        ["Month-to-month", "One year", "Two year"],
        ["DSL", "Fiber optic", "No internet"],
    )
    return [
        {
            "account_no": first_account + i + 1,
            "region": regions[i % 5],
            "contract_type": contracts[i % 3],
            "internet_service": internet[i % 3],
            "tenure_months": 1 + (i * 7) % 72,
            "monthly_charges": 20.0 + i,
            "total_charges": (20.0 + i) * (1 + (i * 7) % 72),
            "support_calls": i % 4,
            "paperless_billing": i % 2,
            "email": f"a{first_account + i}@example.com",
            "churn": "Yes" if i % 3 == 0 else "No",
        }
        for i in range(n)
    ]


def test_a_catch_up_with_many_events_per_customer_is_not_drift(tmp_path):
    """Three hours of events for the same 1,000 customers in one run (a paused DAG catching up):
    12 events per customer in the batch. Distinct emails per event would be 1/12 of Silver's one
    per customer and look like drift; per customer, the batch is like Silver."""
    env = cli_env(tmp_path, MDP_EVENTS="4000", MDP_DIRTY_FRACTION="0")
    stages = ["-s", "bronze_to_silver", "-s", "validate_silver"]
    assert run_cli_in_process(["generate", "--since", "2026-01-05T00"], env).returncode == 0
    first = run_cli_in_process(["run", *stages], env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert run_cli_in_process(["generate", "--since", "2026-01-05T01", "--until", "2026-01-05T04"], env).returncode == 0
    catch_up = run_cli_in_process(["run", *stages], env, timeout=600)
    assert catch_up.returncode == 0, catch_up.stdout + catch_up.stderr


def test_a_renamed_column_is_refused_before_silver_changes(tmp_path):
    """Item 5: a rename (drop one, add one of the same type) would read NULL for all history, and
    Gold's derived feature would silently move to the new column. The run stops naming it, and the
    published Silver stays as it was."""
    events = _csv(tmp_path / "events.csv", _customers(3, 40, 0))
    assert run_cli_in_process(["run", "--input", str(events), *SILVER], cli_env(tmp_path), timeout=600).returncode == 0
    current = _silver_version(tmp_path)

    data = yaml.safe_load((CONTRACTS_DIR / "customers.yaml").read_text())
    next(c for c in data["columns"] if c["name"] == "last_login_date")["name"] = "last_seen_date"
    next(d for d in data["derived"] if d["column"] == "last_login_date")["column"] = "last_seen_date"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(data, sort_keys=False))
    later = _csv(
        tmp_path / "later.csv",
        [
            {**{k: v for k, v in r.items() if k != "last_login_date"}, "last_seen_date": r["last_login_date"]}
            for r in _customers(4, 40, 0)
        ],
    )
    r = run_cli_in_process(
        ["run", "--input", str(later), *SILVER], cli_env(tmp_path, MDP_CONTRACT=str(renamed)), timeout=600
    )
    assert r.returncode == 2, r.text[-3000:]
    assert (
        "columns.last_login_date: dropped while last_seen_date (date) was added: a rename is not compatible" in r.text
    )
    assert _silver_version(tmp_path) == current


def _published(home: Path, entity: str, table: str = "state") -> list[dict]:
    """A Silver table's latest version, read by delta-rs straight from its folder."""
    from deltalake import DeltaTable

    return DeltaTable(str(home / ".mdp" / "lake" / "silver" / entity / table)).to_pyarrow_table().to_pylist()


def _silver_version(home: Path, entity: str = "customers") -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(home / ".mdp" / "lake" / "silver" / entity / "state")).version()


def test_a_reingest_in_a_later_run_is_dropped_as_exact_copies_without_an_event_time(tmp_path):
    """Item 2: with no event time the state is the latest *first* arrival per key. File A, then an
    edited file B, then A again under another name (the same export saved twice), each in its own
    run: A's rows are copies of events Silver has seen, so B stays."""
    contract = _contract_with(tmp_path, base="subscribers")
    env = cli_env(tmp_path, MDP_CONTRACT=str(contract))
    a = _subscribers(0, 30)
    b = [{**r, "tenure_months": r["tenure_months"] + 1} for r in a]
    for name, rows in (("a", a), ("b", b), ("a_again", a)):
        r = run_cli_in_process(["run", "--input", str(_csv(tmp_path / f"{name}.csv", rows)), *SILVER], env, timeout=600)
        assert r.returncode == 0, f"{name}: " + r.text[-3000:]
    state = {r["account_no"]: r["tenure_months"] for r in _published(tmp_path, "subscribers")}
    assert state == {r["account_no"]: r["tenure_months"] for r in b}


def test_all_under_a_changed_contract_gives_the_silver_of_a_fresh_run(tmp_path):
    """Item 1: a tightened range and a new normaliser, then `--all`. Silver and the quarantine equal
    a from-scratch run under the new contract on the same Bronze: no customer aged 83-85 stays,
    none of their events is both kept and quarantined, every name is upper case. (A backfill of
    some hours under a changed contract is checked against the oracle in tests/oracle.)"""
    import shutil

    env = cli_env(tmp_path / "lake", MDP_EVENTS="300", MDP_DIRTY_FRACTION="0")
    stages = ["-s", "bronze_to_silver", "-s", "validate_silver"]
    assert run_cli_in_process(["generate", "--since", "2026-01-05T00"], env).returncode == 0
    first = run_cli_in_process(["run", *stages], env, timeout=600)
    assert first.returncode == 0, first.text[-3000:]
    assert any(r["age"] > 82 for r in _published(tmp_path / "lake", "customers")), "the story needs old customers"

    changed = changed_contract(tmp_path)
    r = run_cli_in_process(["run", "--all", *stages], {**env, "MDP_CONTRACT": str(changed)}, timeout=600)
    assert r.returncode == 0, r.text[-3000:]

    fresh = tmp_path / "fresh"
    shutil.copytree(tmp_path / "lake" / ".mdp" / "lake" / "bronze", fresh / ".mdp" / "lake" / "bronze")
    f = run_cli_in_process(["run", *stages], {**cli_env(fresh), "MDP_CONTRACT": str(changed)}, timeout=600)
    assert f.returncode == 0, f.text[-3000:]

    def rows(home, table):
        drop = {"value", "reasons"}  # bytes and lists: compared through reason and position
        return sorted(
            (
                tuple(sorted((k, v) for k, v in r.items() if k not in drop))
                for r in _published(home, "customers", table)
            ),
            key=repr,
        )

    state = _published(tmp_path / "lake", "customers")
    assert max(r["age"] for r in state) <= 82
    assert all(r["full_name"] is None or r["full_name"] == r["full_name"].upper() for r in state)
    assert rows(tmp_path / "lake", "state") == rows(fresh, "state")
    assert rows(tmp_path / "lake", "quarantine") == rows(fresh, "quarantine")
    kept = {(r["_source"], r["_partition"], r["_offset"]) for r in state}
    quarantined = {
        (r["source"], r["partition"], r["offset"]) for r in _published(tmp_path / "lake", "customers", "quarantine")
    }
    assert not kept & quarantined, "a record both accepted and quarantined"


def test_a_minimal_tombstone_deletes_the_customer(tmp_path):
    """A delete that carries only what a delete needs (event id, type, time, key) is a delete, not a
    record quarantined as missing:<column>; an ordinary event with a blank required cell still is."""
    events = _customers(5, 40, 0)
    assert (
        run_cli_in_process(
            ["run", "--input", str(_csv(tmp_path / "first.csv", events)), *SILVER, "-s", "silver_to_gold"],
            cli_env(tmp_path),
            timeout=600,
        ).returncode
        == 0
    )
    gone, later = events[0]["customer_id"], "2026-03-02T11:00:00.000000Z"
    tombstone = {k: None for k in events[0]} | {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_type": "customer_deleted",
        "event_ts": later,
        "customer_id": gone,
    }
    blank_email = {**events[1], "event_id": "00000000-0000-4000-8000-000000000002", "event_ts": later, "email": None}
    updates = [
        {**e, "event_id": f"00000000-0000-4000-8000-00000000001{i}", "event_ts": later, "support_tickets": 7}
        for i, e in enumerate(events[2:5])
    ]
    r = run_cli_in_process(
        [
            "run",
            "--input",
            str(_csv(tmp_path / "deletes.csv", [tombstone, blank_email, *updates])),
            *SILVER,
            "-s",
            "silver_to_gold",
        ],
        cli_env(tmp_path),
        timeout=600,
    )
    assert r.returncode == 0, r.text[-3000:]
    state = {row["customer_id"]: row for row in _published(tmp_path, "customers")}
    assert state[gone]["event_type"] == "customer_deleted" and state[gone]["email"] is None
    reasons = [row["reason"] for row in _published(tmp_path, "customers", "quarantine")]
    assert reasons == ["missing:email"], reasons
    from mdp.core import catalog
    from mdp.core.settings import get_settings

    ids = catalog.read(get_settings(home=tmp_path), "gold.features").column("customer_id").to_pylist()
    assert gone not in ids and events[1]["customer_id"] in ids and len(ids) == len(state) - 1


def test_a_conflicting_copy_in_a_later_run_counts_against_max_conflicting_duplicates(tmp_path):
    """Smaller finding: an event id already in Silver, sent again with other content in a later run,
    is a conflict like two contents within one batch. Fifteen of them in a batch of 35 stop the gate
    (under min_batch_rows, max_conflicting_duplicates (5%) allows 10 rows)."""
    first = _customers(11, 300, 0)
    assert (
        run_cli_in_process(
            ["run", "--input", str(_csv(tmp_path / "first.csv", first)), *SILVER], cli_env(tmp_path), timeout=600
        ).returncode
        == 0
    )
    states = sorted(_published(tmp_path, "customers"), key=lambda r: r["customer_id"])[:15]
    by_id = {e["event_id"]: e for e in first}
    conflicting = [{**by_id[s["event_id"]], "monthly_spend": by_id[s["event_id"]]["monthly_spend"] + 1} for s in states]
    later = _csv(tmp_path / "later.csv", [*conflicting, *_customers(12, 20, 0)])
    r = run_cli_in_process(["run", "--input", str(later), *SILVER], cli_env(tmp_path), timeout=600)
    assert r.returncode == 3, r.text[-3000:]
    assert "quality.max_conflicting_duplicates" in r.text and "_conflict" in r.text, r.text[-3000:]
