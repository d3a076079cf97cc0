"""The gate's two rules of issue 20 (items 9 and 7), on frames shaped like the run's batch and changes.

- "future" is later than the row's own ingest time + max_future_skew_hours, whatever the wall clock;
- a batch of several ingest hours is judged per hour too, by the same share rule (counts below
  quality.min_batch_rows); only the hours that could fail are handed to GX, and the bound that
  picks them holds for a rule over a column that is mostly null.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mdp.core.contract import load_contract
from tests.helpers import clean_events
from validation.gate import validate_frames
from validation.suite import batch_suite, changes_suite, hour_suites, with_future_limit

pytestmark = pytest.mark.unit
FIRST = datetime(2026, 3, 2, tzinfo=UTC)


def _frame(events: list[dict], ingest: datetime, column: str = "_ingest_ts") -> pd.DataFrame:
    c = load_contract()
    df = pd.DataFrame(events)[c.names]
    for col in c.columns:  # the batch holds values as Spark normalised them
        for step in col.normalise:
            df[col.name] = getattr(df[col.name].str, {"trim": "strip"}.get(step, step))()
    df["event_ts"] = pd.to_datetime(df["event_ts"], utc=True)
    for name in ("signup_date", "last_login_date"):
        df[name] = pd.to_datetime(df[name]).dt.date
    df[column] = pd.Timestamp(ingest)
    return df


def _failures(frames, quick=frozenset()):
    import tempfile

    with tempfile.TemporaryDirectory() as docs:
        return validate_frames(frames, docs, quick=quick)


def _changes(events: list[dict], ingest: datetime) -> pd.DataFrame:
    return with_future_limit(_frame(events, ingest).drop_duplicates("customer_id"), load_contract())


def test_future_is_judged_against_the_rows_ingest_time_not_the_wall_clock():
    c = load_contract()
    ahead = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=10)
    # Landed by a host ten days ahead, dated an hour after its ingest: not future.
    ok, failures = _failures({"changes": (_changes(clean_events(1, ahead, 20), ahead), changes_suite(c))})
    assert ok, failures
    # Long past now, but dated two days after its own ingest time: future, as Spark judges it.
    past = datetime(2025, 1, 1, tzinfo=UTC)
    ok, failures = _failures(
        {"changes": (_changes(clean_events(1, past + timedelta(days=2), 20), past), changes_suite(c))}
    )
    assert not ok
    assert {(f["expectation"], f["column"]) for f in failures} >= {
        ("expect_column_pair_values_a_to_be_greater_than_b", "event_ts")
    }


def _batch(hours: int, per_hour: int = 30, broken: dict[int, dict] | None = None) -> pd.DataFrame:
    """A batch of `hours` ingest hours; `broken[h]` changes fields of every row of hour h (those rows
    quarantined, as Spark would flag them) or, with `rows`, of that many rows only."""
    parts = []
    for h in range(hours):
        hour = FIRST + timedelta(hours=h)
        events = clean_events(100 + h, hour, per_hour)
        change = dict((broken or {}).get(h, {}))
        n = change.pop("rows", per_hour) if change else 0
        events = [{**e, **change} if i < n else e for i, e in enumerate(events)]
        df = _frame(events, hour)
        df["_ingest_date"], df["_ingest_hour"] = f"{hour:%Y-%m-%d}", f"{hour:%H}"
        for flag in ("_quarantined", "_unparseable", "_unknown_field", "_bad_type", "_conflict"):
            df[flag] = False
        df.loc[: n - 1, "_quarantined"] = n > 0
        parts.append(df)
    return with_future_limit(pd.concat(parts, ignore_index=True), load_contract())


def test_one_broken_hour_of_a_catch_up_is_judged_on_its_own_and_named():
    c = load_contract()
    batch = _batch(13, broken={12: {"email": "not-an-email"}})
    hours = hour_suites(c, batch)
    assert list(hours) == ["customers_batch, ingest hour 2026-03-02T12"]  # the clean hours cannot fail
    parsed, accepted = int((~batch["_unparseable"]).sum()), int((~batch["_quarantined"]).sum())

    def whole():
        return batch_suite(c, None, accepted, rows=len(batch), parsed_rows=parsed)

    assert _failures({"customers_batch": (batch, whole())})[0]  # 30 of 390: under every share
    ok, failures = _failures({"customers_batch": (batch, whole()), **hours}, quick=frozenset(hours))
    assert not ok
    failed = {(f["table"], f["threshold"]) for f in failures}
    assert ("customers_batch, ingest hour 2026-03-02T12", "quality.max_per_rule") in failed
    assert ("customers_batch, ingest hour 2026-03-02T12", "quality.max_quarantined") in failed
    assert all("30 rows < quality.min_batch_rows = 200" in f["small_batch"] for f in failures)


def test_a_batch_of_one_hour_is_its_hour_and_a_clean_catch_up_is_not_judged_again():
    c = load_contract()
    assert hour_suites(c, _batch(1, broken={0: {"email": "x"}})) == {}
    assert hour_suites(c, _batch(12, broken={3: {"email": "x", "rows": 1}})) == {}


def test_the_bound_holds_for_a_rule_over_a_mostly_null_column():
    """25 bad phones among 220 phones of a 300-row hour: 8% of the rows, but 11% of the values the
    rule reads (GX leaves nulls out). The hour is judged, and fails on the phone rule alone."""
    c = load_contract()
    batch = _batch(2, per_hour=300)
    rows = batch.index[batch["_ingest_hour"] == "01"]
    batch.loc[rows, "phone"] = None
    batch.loc[rows[:220], "phone"] = "+1 555 0100"
    batch.loc[rows[:25], "phone"] = "bad"
    batch.loc[rows[:25], "_quarantined"] = True
    hours = hour_suites(c, batch)
    assert list(hours) == ["customers_batch, ingest hour 2026-03-02T01"]
    ok, failures = _failures(hours, quick=frozenset(hours))
    assert not ok and {(f["column"], f["threshold"]) for f in failures} == {("phone", "quality.max_per_rule")}


def test_a_rule_over_few_values_is_judged_by_counts_in_a_large_batch():
    """One bad phone among three phones of a 300-row batch: a third of the values the rule reads,
    but one value. A rule reading fewer values than quality.min_batch_rows is judged by counts, as
    a small batch is (it used to stop a batch of any size)."""
    from validation.suite import rule_values

    c = load_contract()
    batch = _batch(1, per_hour=300)
    batch["phone"] = None
    batch.loc[:2, "phone"] = ["bad", "+1 555 0100", "+1 555 0101"]
    batch.loc[0, "_quarantined"] = True
    parsed, accepted = int((~batch["_unparseable"]).sum()), int((~batch["_quarantined"]).sum())
    suite = batch_suite(c, None, accepted, rows=len(batch), parsed_rows=parsed, values=rule_values(c, batch))
    ok, failures = _failures({"customers_batch": (batch, suite)})
    assert ok, failures
    assert rule_values(c, batch)["bad_format:phone"] == 3
