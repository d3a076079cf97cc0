"""Drift leaves deletes out (issue 27, finding 8): the batch's deletes and Silver's tombstones carry
no values, so neither side's null shares or distinct counts take them in. The CLI story is
tests/pipeline/test_edges_deletes_and_retries.py; these pin the suite's arithmetic."""

from __future__ import annotations

import pandas as pd
import pytest

from mdp.core.contract import load_contract
from validation.suite import batch_suite, live_condition, live_counts

pytestmark = pytest.mark.unit


def _drift(c, profile, **kw):
    return {
        (type(e).__name__, e.column): e
        for e in batch_suite(c, profile, **kw).expectations
        if (e.meta or {}).get("threshold", "").startswith("quality.drift")
    }


def test_drift_is_judged_over_live_rows_on_both_sides():
    c = load_contract()
    # 1,500 keys of which 300 are tombstones: the null share and distinct ratio are the live rows'.
    profile = {
        "rows": 1500,
        "keys": 1500,
        "live_rows": 1200,
        "columns": {n: {"nulls": 120, "distinct": 1200} for n in c.names},
    }
    drift = _drift(c, profile, accepted_rows=3000, live_rows=2000, accepted_keys=1000)
    phone = drift[("ExpectColumnValuesToNotBeNull", "phone")]
    assert phone.meta["silver_null_share"] == 0.1 and phone.mostly == pytest.approx(
        1 - (0.1 + c.quality.drift.max_null_share_increase)
    )
    assert live_condition(c) in str(phone.row_condition) and c.tombstone.value in live_condition(c)
    email = drift[("ExpectColumnUniqueValueCountToBeBetween", "email")]
    assert email.meta["silver_distinct_per_key"] == 1.0 and email.min_value == int(
        c.quality.drift.min_distinct_ratio * 1000
    )
    # Fewer live rows than drift.min_rows in the batch (a bulk delete of most of it): no drift check.
    assert _drift(c, profile, accepted_rows=3000, live_rows=999, accepted_keys=999) == {}


def test_a_profile_written_before_live_rows_were_counted_is_read_over_all_rows():
    c = load_contract()
    old = {"rows": 1500, "keys": 1500, "columns": {n: {"nulls": 150, "distinct": 1500} for n in c.names}}
    assert (
        _drift(c, old, accepted_rows=2000)[("ExpectColumnValuesToNotBeNull", "phone")].meta["silver_null_share"] == 0.1
    )


def test_live_counts_leave_out_deletes_and_quarantined_rows():
    c = load_contract()
    t = c.tombstone
    batch = pd.DataFrame(
        {
            c.primary_key: ["C1", "C1", "C2", "C3", "C4"],
            t.column: ["customer_updated", "customer_updated", t.value, "customer_created", "customer_created"],
            "_quarantined": [False, False, False, False, True],
        }
    )
    assert live_counts(c, batch) == (3, 2)
    assert live_counts(c, batch.iloc[0:0]) == (0, 0)
