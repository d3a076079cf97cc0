"""GX expectation suites, derived from the data contract (nothing restated by hand).

Three suites, each over what one run changed, never over the whole Silver table:
- `<entity>_batch`: the run's distinct deliveries as parsed (exact copies already removed, so
  at-least-once redelivery never counts against a batch), tolerant up to the contract's
  `quality` thresholds: the total quarantined share, unparseable messages, unknown fields, values
  that do not cast, each other rule, conflicting duplicates of an event id (a batch smaller than
  `quality.min_batch_rows` by counts instead of shares); and a drift check of each column's null
  share, and each free-text column's distinct ratio, against the published Silver's profile.
- `<entity>_changes`: the Silver rows this run changed, strict (every rule, unique key).
- `<entity>_table`: whole-table facts that bronze_to_silver computed in Spark when it wrote the
  version (rows, distinct keys), so the gate never loads the table.
Each tolerant expectation carries the contract threshold it enforces in `meta.threshold`.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from mdp.core.contract import Contract, anchored

PARSED = "_unparseable == False"  # rows whose columns could be read at all
ACCEPTED = "_quarantined == False"


def _bounds(contract: Contract, name: str, now: datetime) -> tuple[object, object]:
    c = contract.column(name)
    low, high = c.min, c.max
    if c.type == "timestamp":  # the contract writes dates; pandas compares timestamps with datetimes
        low, high = (datetime.combine(v, datetime.min.time(), UTC) if isinstance(v, date) else v for v in (low, high))
    if c.not_future:
        limit = now + timedelta(hours=contract.max_future_skew_hours)
        limit = limit.date() if c.type == "date" else limit
        high = limit if high is None else min(high, limit)
    return low, high


def _threshold(name: str, value: float) -> dict:
    return {"threshold": f"quality.{name}", "limit": value}


def share_check(contract: Contract, name: str, rows: int | None) -> dict:
    """`mostly` and `meta` for the share threshold quality.<name> over an expectation's `rows` rows.

    From quality.min_batch_rows rows on (or rows unknown), the share itself. Below, a count: the
    rows the share allows in a batch of min_batch_rows, at most half of the batch, at least the share."""
    limit, smallest = getattr(contract.quality, name), contract.quality.min_batch_rows
    meta = _threshold(name, limit)
    if rows is None or rows >= smallest or rows == 0:
        return {"mostly": round(1 - limit, 6), "meta": meta}
    cap = math.floor(limit * smallest)
    allowed = max(limit, min(cap / rows, 0.5))
    meta["small_batch"] = (f"{rows} rows < quality.min_batch_rows = {smallest}: "
                           f"at most {math.floor(allowed * rows + 1e-9)} rows")
    return {"mostly": round(1 - allowed, 6), "meta": meta}


def _but_deletes(contract: Contract, column: str, kw: dict) -> dict:
    """`kw` with rows that delete left out, for a column a delete need not carry (the same rule as
    Spark's, Contract.tombstone_may_omit)."""
    if column not in contract.tombstone_may_omit:
        return kw
    t = contract.tombstone
    cond = f"{t.column} != {t.value!r}"
    return {**kw, "row_condition": f"({kw['row_condition']}) & ({cond})" if kw.get("row_condition") else cond,
            "condition_parser": "pandas"}


def rule_expectations(contract: Contract, mostly: float, now: datetime, **kw) -> list[gxe.Expectation]:
    """One expectation per contract rule (type rules are the Parquet schema's job)."""
    exps: list[gxe.Expectation] = []
    seen_between = set()
    for rule in contract.rules():
        c = contract.column(rule.column)
        if rule.kind == "not_null":
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name, mostly=mostly, **_but_deletes(contract, c.name, kw)))
        elif rule.kind == "regex":
            exps.append(gxe.ExpectColumnValuesToMatchRegex(column=c.name, regex=anchored(c.regex, "python"), mostly=mostly, **kw))
        elif rule.kind == "in_set":
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=c.allowed, mostly=mostly, **kw))
        elif rule.kind in ("between", "not_future") and c.name not in seen_between:
            seen_between.add(c.name)  # one range per column, the tighter of max and "not future"
            low, high = _bounds(contract, c.name, now)
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=low, max_value=high, mostly=mostly, **kw))
    return exps


def batch_suite(contract: Contract, profile: dict | None = None, accepted_rows: int = 0,
                now: datetime | None = None, rows: int | None = None, parsed_rows: int | None = None,
                accepted_keys: int | None = None) -> gx.ExpectationSuite:
    """`rows`, `parsed_rows`, `accepted_rows`: the batch's rows, those whose columns could be read,
    and those accepted; a share threshold over fewer than quality.min_batch_rows becomes a count."""
    now = now or datetime.now(UTC)
    exps: list[gxe.Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    exps += [gxe.ExpectColumnToExist(column=n) for n in contract.names]
    for flag, name in (("_quarantined", "max_quarantined"), ("_unparseable", "max_unparseable"),
                       ("_unknown_field", "max_unknown_fields"), ("_bad_type", "max_bad_type")):
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=flag, value_set=[False], **share_check(contract, name, rows)))
    per_rule = share_check(contract, "max_per_rule", parsed_rows)
    exps += rule_expectations(contract, per_rule["mostly"], now, row_condition=PARSED, condition_parser="pandas",
                              meta=per_rule["meta"])
    exps.append(gxe.ExpectColumnValuesToBeUnique(
        column=contract.event_id, row_condition=ACCEPTED, condition_parser="pandas",
        **share_check(contract, "max_conflicting_duplicates", accepted_rows if rows is not None else None)))
    exps += drift_expectations(contract, profile, accepted_rows, accepted_keys)
    return gx.ExpectationSuite(name=f"{contract.entity}_batch", expectations=exps)


def drift_expectations(contract: Contract, profile: dict | None, accepted_rows: int,
                       accepted_keys: int | None = None) -> list[gxe.Expectation]:
    """Each column's null share in the batch's accepted rows, and each free-text column's distinct
    values per key (the batch's against its own distinct keys, `accepted_keys`), against the
    published Silver's profile (see contract.Drift). Only when both have at least `drift.min_rows` rows."""
    d = contract.quality.drift
    if not profile or profile.get("rows", 0) < d.min_rows or accepted_rows < d.min_rows:
        return []
    exps: list[gxe.Expectation] = []
    rows = profile["rows"]
    for c in contract.columns:
        col = profile["columns"].get(c.name)
        if col is None:  # a column the published Silver did not have yet
            continue
        if c.nullable:
            allowed = min(1.0, col["nulls"] / rows + d.max_null_share_increase)
            exps.append(gxe.ExpectColumnValuesToNotBeNull(
                column=c.name, mostly=round(1 - allowed, 6), row_condition=ACCEPTED, condition_parser="pandas",
                meta={"threshold": "quality.drift.max_null_share_increase", "limit": d.max_null_share_increase,
                      "silver_null_share": round(col["nulls"] / rows, 4)}))
        if c.type == "string" and not c.allowed and c.name != contract.primary_key and rows - col["nulls"] >= d.min_rows:
            # Distinct values per key: Silver holds one row per key; a batch holds any number of
            # events per key (a catch-up of a day: dozens), so its values are counted against its keys.
            silver_ratio = min(1.0, col["distinct"] / rows)  # approximate distinct count: may exceed 1 a little
            keys = accepted_rows if accepted_keys is None else accepted_keys
            exps.append(gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=c.name, min_value=max(1, math.floor(d.min_distinct_ratio * silver_ratio * keys)), row_condition=ACCEPTED,
                condition_parser="pandas",
                meta={"threshold": "quality.drift.min_distinct_ratio", "limit": d.min_distinct_ratio,
                      "silver_distinct_per_key": round(silver_ratio, 4), "batch_keys": keys}))
    return exps


def changes_suite(contract: Contract, now: datetime | None = None) -> gx.ExpectationSuite:
    now = now or datetime.now(UTC)
    exps: list[gxe.Expectation] = [gxe.ExpectColumnToExist(column=n) for n in contract.names]
    exps.append(gxe.ExpectColumnValuesToBeUnique(column=contract.primary_key))
    exps += rule_expectations(contract, 1.0, now)
    return gx.ExpectationSuite(name=f"{contract.entity}_changes", expectations=exps)


def table_suite(contract: Contract) -> gx.ExpectationSuite:
    """Over a one-row frame of facts (rows, keys) from the version's manifest."""
    return gx.ExpectationSuite(name=f"{contract.entity}_table", expectations=[
        gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="rows", column_B="keys",
                                            meta={"why": "one Silver row per primary key"}),
    ])
