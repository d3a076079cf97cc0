"""GX expectation suites, derived from the data contract (nothing restated by hand).

Two suites, one builder:
- `customers_silver`: the published Silver table, strict (every rule holds for every row, the
  primary key is unique).
- `customers_batch`: the run's parsed events before quarantine, tolerant up to the contract's
  `max_bad_fraction` per rule. Bad rows below that share are quarantined and the batch flows;
  a batch that is broken wholesale (say, every email malformed) stops the pipeline.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from mdp.core.contract import Contract


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


def build_suite(contract: Contract, name: str, mostly: float, now: datetime | None = None) -> gx.ExpectationSuite:
    now = now or datetime.now(UTC)
    exps: list[gxe.Expectation] = []
    key = contract.primary_key if mostly == 1.0 else contract.event_id
    exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    exps.append(gxe.ExpectColumnValuesToBeUnique(column=key, mostly=mostly))
    seen_between = set()
    for c in contract.columns:
        exps.append(gxe.ExpectColumnToExist(column=c.name))
    for rule in contract.rules():
        c = contract.column(rule.column)
        if rule.kind == "not_null":
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name, mostly=mostly))
        elif rule.kind == "regex":
            exps.append(gxe.ExpectColumnValuesToMatchRegex(column=c.name, regex=c.regex, mostly=mostly))
        elif rule.kind == "in_set":
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=c.allowed, mostly=mostly))
        elif rule.kind in ("between", "not_future") and c.name not in seen_between:
            seen_between.add(c.name)  # one range per column, the tighter of max and "not future"
            low, high = _bounds(contract, c.name, now)
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=low, max_value=high, mostly=mostly))
        # "type" rules are enforced by the Parquet schema that Silver is written with.
    return gx.ExpectationSuite(name=name, expectations=exps)


def silver_suite(contract: Contract, now: datetime | None = None) -> gx.ExpectationSuite:
    return build_suite(contract, f"{contract.entity}_silver", mostly=1.0, now=now)


def batch_suite(contract: Contract, now: datetime | None = None) -> gx.ExpectationSuite:
    return build_suite(contract, f"{contract.entity}_batch", mostly=round(1.0 - contract.quality.max_per_rule, 6), now=now)
