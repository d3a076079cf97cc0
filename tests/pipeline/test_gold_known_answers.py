"""Known answers: on a small clean generated run, Gold equals the generator's truth, customer by customer.

The truth is computed here from the generated events alone (plain Python, no project transform):
each customer's latest event by event time, normalised as the contract says (trim; upper country,
lower plan), the day counts to the latest event time of the run, and the label as 0/1.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from ingestion.generator import generate_hour
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.lake import Interval
from mdp.core.settings import get_settings
from mdp.core.stages import get_stage
from mdp.shell.runner import run_pipeline

pytestmark = pytest.mark.integration
HOURS = [datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 2, 10, tzinfo=UTC)]
EVENTS, SEED = 400, 21  # per hour; about 100 customers, most of them with several events
STAGES = ("land_bronze", "bronze_to_silver", "validate_silver", "silver_to_gold")


def truth() -> tuple[dict[str, dict], datetime]:
    events = [json.loads(e.message) for h in HOURS for e in generate_hour(SEED, h, EVENTS, dirty_fraction=0.0)]

    def ts(e):
        return datetime.fromisoformat(e["event_ts"].replace("Z", "+00:00"))

    latest: dict[str, dict] = {}
    for e in events:
        if e["customer_id"] not in latest or ts(e) > ts(latest[e["customer_id"]]):
            latest[e["customer_id"]] = e
    as_of = max(ts(e) for e in events)

    def days(iso):
        return (as_of.date() - date.fromisoformat(iso)).days

    out = {}
    for cid, e in latest.items():
        out[cid] = {
            "churned": int(e["churned"]),
            "plan": e["plan"].strip().lower(),
            "country": e["country"].strip().upper(),
            "age": e["age"],
            "monthly_spend": e["monthly_spend"],
            "support_tickets": e["support_tickets"],
            "tenure_days": days(e["signup_date"]),
            "days_since_last_login": days(e["last_login_date"]) if e["last_login_date"] else days(e["signup_date"]),
            "has_phone": e["phone"] is not None,
        }
    return out, as_of


@pytest.fixture(scope="module")
def gold(tmp_path_factory, spark):
    settings = get_settings(home=tmp_path_factory.mktemp("known"), events=EVENTS, seed=SEED, dirty_fraction=0.0)
    ctx = RunContext(settings, Interval(HOURS[0], HOURS[-1] + timedelta(hours=1)))
    run_pipeline(ctx, [get_stage(s) for s in STAGES])
    table = catalog.read(settings, "gold.features")
    return {r["customer_id"]: r for r in table.to_pylist()}


def test_gold_has_one_row_per_customer_of_the_truth(gold):
    expected, _ = truth()
    assert set(gold) == set(expected)
    assert len(expected) > 80  # enough customers for the comparison to mean something


def test_label_and_features_equal_the_generators_truth(gold):
    expected, as_of = truth()
    wrong = {
        cid: {k: (gold[cid][k], v) for k, v in want.items() if gold[cid][k] != v} for cid, want in expected.items()
    }
    wrong = {cid: diff for cid, diff in wrong.items() if diff}
    assert wrong == {}, f"{len(wrong)} customers differ (gold, truth): {dict(list(wrong.items())[:3])}"
    labels = [w["churned"] for w in expected.values()]
    assert 0 < sum(labels) < len(labels)  # both classes: an inverted label cannot pass
    assert {r["as_of"] for r in gold.values()} == {as_of}
