"""GX expectation suites, derived from the data contract (nothing restated by hand).

Three suites, each over what one run changed, never over the whole Silver table:
- `<entity>_batch`: the run's distinct deliveries as parsed (exact copies already removed, a bad
  event once by event id and bytes, so at-least-once redelivery and a resend never count against
  a batch), tolerant up to the contract's `quality` thresholds: the total quarantined share,
  unparseable messages, unknown fields, values that do not cast, each other rule (over the rows it
  reads), conflicting duplicates of an event id (fewer rows than `quality.min_batch_rows` by counts
  instead of shares); and a drift check of each nullable column's null share, and each free-text
  column's distinct values per key, against the published Silver's profile. A batch of several
  ingest hours (a catch-up, a first run, a rebuild) is also judged hour by hour on each share
  threshold (`hour_suites`), so many clean hours cannot dilute one broken hour.
- `<entity>_changes`: the Silver rows this run changed, strict (every rule, unique key).
- `<entity>_table`: whole-table facts that bronze_to_silver computed in Spark when it wrote the
  version (rows, distinct keys), so the gate never loads the table.
Each tolerant expectation carries the contract threshold it enforces in `meta.threshold`.

"Future" has one clock, as in Spark: a `not_future` value may not be later than the row's own
ingest time (`_ingest_ts`, which the batch and the changes carry) + `max_future_skew_hours`. The
limit is a column of the frame (`with_future_limit`), compared by GX column against column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from mdp.core.contract import Contract, Rule, anchored

PARSED = "_unparseable == False"  # rows whose columns could be read at all
ACCEPTED = "_quarantined == False"
INGEST_TS, INGEST_DATE, INGEST_HOUR = "_ingest_ts", "_ingest_date", "_ingest_hour"  # the row's Bronze arrival
# The latest value a not_future column may hold in a row: its ingest time + max_future_skew_hours.
FUTURE_LIMIT = {"timestamp": "_future_limit", "date": "_future_limit_date"}


def _bounds(contract: Contract, name: str) -> tuple[float | date | None, float | date | None]:
    c = contract.column(name)
    low, high = c.min, c.max
    if c.type == "timestamp":  # the contract writes dates; pandas compares timestamps with datetimes
        low, high = (datetime.combine(v, datetime.min.time(), UTC) if isinstance(v, date) else v for v in (low, high))
    return low, high


def with_future_limit(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The frame with the limit columns its not_future expectations compare against, from the
    row's own ingest time. A date is future when its midnight is later than the limit, i.e. when it
    is later than the limit's date (Spark casts the date to a timestamp, in UTC)."""
    types = {c.type for c in contract.columns if c.not_future}
    if not types:
        return df
    limit = df[INGEST_TS] + pd.Timedelta(hours=contract.max_future_skew_hours)
    if "date" in types:  # date objects, as pyarrow gives a date column; made once per distinct day
        codes, days = pd.factorize(limit.dt.normalize())
        # A missing ingest time (code -1) picks the None appended last.
        dates = pd.Series(np.array([d.date() for d in days] + [None], dtype=object)[codes], index=df.index)
    return df.assign(**{FUTURE_LIMIT[t]: dates if t == "date" else limit for t in types})


def _threshold(name: str, value: float) -> dict:
    return {"threshold": f"quality.{name}", "limit": value}


def share_check(contract: Contract, name: str, rows: int | None) -> dict:
    """`mostly` and `meta` for the share threshold quality.<name> over an expectation's `rows` rows.

    From quality.min_batch_rows rows on (or rows unknown), the share itself. Below, a count: the
    rows the share allows in a batch of min_batch_rows (at least the share). A share of a few rows
    says nothing of the producer that made them: a late record alone in its hour, or an hour that
    holds only a resend's bad records, is one bad record, not a broken stream."""
    limit, smallest = getattr(contract.quality, name), contract.quality.min_batch_rows
    meta = _threshold(name, limit)
    if rows is None or rows >= smallest or rows == 0:
        return {"mostly": round(1 - limit, 6), "meta": meta}
    cap = math.floor(limit * smallest)
    allowed = min(1.0, max(limit, cap / rows))
    meta["small_batch"] = (
        f"{rows} rows < quality.min_batch_rows = {smallest}: at most {math.floor(allowed * rows + 1e-9)} rows"
    )
    return {"mostly": round(1 - allowed, 6), "meta": meta}


def _but_deletes(contract: Contract, column: str, kw: dict) -> dict:
    """`kw` with rows that delete left out, for a column a delete need not carry (the same rule as
    Spark's, Contract.tombstone_may_omit)."""
    if column not in contract.tombstone_may_omit:
        return kw
    t = contract.tombstone
    assert t is not None  # tombstone_may_omit is empty without a tombstone
    cond = f"{t.column} != {t.value!r}"
    return {
        **kw,
        "row_condition": f"({kw['row_condition']}) & ({cond})" if kw.get("row_condition") else cond,
        "condition_parser": "pandas",
    }


def rule_expectations(contract: Contract, mostly: float | Callable[[Rule], dict], **kw) -> list[gxe.Expectation]:
    """One expectation per contract rule (type rules are the Parquet schema's job). A not_future
    rule reads the frame's limit column (see with_future_limit). `mostly` may be a function of the
    rule that gives its `mostly` and `meta` (a share over the rows that rule reads: rule_values)."""
    exps: list[gxe.Expectation] = []
    for rule in contract.rules():
        c = contract.column(rule.column)
        if callable(mostly):
            spec = mostly(rule)
            share, args = spec["mostly"], {**kw, "meta": {**kw.get("meta", {}), **spec["meta"]}}
        else:
            share, args = mostly, kw
        if rule.kind == "not_null":
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(column=c.name, mostly=share, **_but_deletes(contract, c.name, args))
            )
        elif rule.kind == "regex":
            assert c.regex is not None  # Contract.rules() makes a regex rule only of a column's regex
            exps.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=c.name, regex=anchored(c.regex, "python"), mostly=share, **args
                )
            )
        elif rule.kind == "in_set":
            assert c.allowed is not None  # and an in_set rule only of its allowed values
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=c.allowed, mostly=share, **args))
        elif rule.kind == "between":
            low, high = _bounds(contract, c.name)
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=low, max_value=high, mostly=share, **args)
            )
        elif rule.kind == "not_future":  # a null value is the not_null rule's business
            exps.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=FUTURE_LIMIT[c.type],
                    column_B=c.name,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                    mostly=share,
                    **args,
                )
            )
    return exps


def rule_values(contract: Contract, frame: pd.DataFrame) -> dict[str, int]:
    """Per rule (by code), the parsed rows it reads. GX takes a rule's share over non-null values,
    so a rule over a mostly-null column reads few rows (and is judged by counts below
    quality.min_batch_rows); a not_null rule reads every parsed row, a delete aside where the
    delete may omit the column."""
    parsed = ~frame["_unparseable"]
    t = contract.tombstone
    deleting = (frame[t.column] == t.value).fillna(False) if t else pd.Series(False, index=frame.index)
    out = {}
    for rule in contract.rules():
        if rule.kind == "not_null":
            reads = parsed & ~deleting if rule.column in contract.tombstone_may_omit else parsed
        else:
            reads = parsed & frame[rule.column].notna()
        out[rule.code] = int(reads.sum())
    return out


def share_expectations(
    contract: Contract,
    rows: int | None,
    parsed_rows: int | None,
    accepted_rows: int | None,
    values: dict[str, int] | None = None,
    **meta,
) -> list[gxe.Expectation]:
    """One expectation per share threshold of contract.quality over a frame of the batch: `rows`,
    `parsed_rows`, `accepted_rows` are its rows, those whose columns could be read, and those
    accepted (None: unknown, the share itself); `values`, per rule, the rows it reads (rule_values;
    None: the parsed rows); `meta` is added to each (the hour it judges)."""

    def check(name: str, n: int | None) -> dict:
        c = share_check(contract, name, n)
        return {**c, "meta": {**c["meta"], **meta}}

    exps: list[gxe.Expectation] = []
    for flag, name in (
        ("_quarantined", "max_quarantined"),
        ("_unparseable", "max_unparseable"),
        ("_unknown_field", "max_unknown_fields"),
        ("_bad_type", "max_bad_type"),
    ):
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=flag, value_set=[False], **check(name, rows)))

    def per_rule(rule: Rule) -> dict:
        return check("max_per_rule", parsed_rows if values is None else values[rule.code])

    exps += rule_expectations(contract, per_rule, row_condition=PARSED, condition_parser="pandas")
    conflicts = check("max_conflicting_duplicates", accepted_rows)
    exps.append(
        gxe.ExpectColumnValuesToBeUnique(
            column=contract.event_id, row_condition=ACCEPTED, condition_parser="pandas", **conflicts
        )
    )
    # A copy arriving in a later run, with other content than the state it is the event of.
    exps.append(
        gxe.ExpectColumnValuesToBeInSet(
            column="_conflict", value_set=[False], row_condition=ACCEPTED, condition_parser="pandas", **conflicts
        )
    )
    return exps


def batch_suite(
    contract: Contract,
    profile: dict | None = None,
    accepted_rows: int = 0,
    rows: int | None = None,
    parsed_rows: int | None = None,
    accepted_keys: int | None = None,
    live_rows: int | None = None,
    values: dict[str, int] | None = None,
) -> gx.ExpectationSuite:
    """`rows`, `parsed_rows`, `accepted_rows`: the batch's rows, those whose columns could be read,
    and those accepted; `values`: per rule, the rows it reads (rule_values); a share threshold over
    fewer than quality.min_batch_rows becomes a count. Drift is judged over the accepted rows that
    are not deletes: `live_rows` of them (None: all accepted rows), with `accepted_keys` distinct
    keys (see live_counts)."""
    exps: list[gxe.Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    exps += [gxe.ExpectColumnToExist(column=n) for n in contract.names]
    exps += share_expectations(contract, rows, parsed_rows, accepted_rows if rows is not None else None, values)
    exps += drift_expectations(contract, profile, accepted_rows if live_rows is None else live_rows, accepted_keys)
    return gx.ExpectationSuite(name=f"{contract.entity}_batch", expectations=exps)


def hour_suites(contract: Contract, batch: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, gx.ExpectationSuite]]:
    """The ingest hours of a batch that spans several, each with the share expectations over its
    own rows (an hour smaller than quality.min_batch_rows judged by counts, as a small batch is).
    A batch of one hour is its hour: the batch suite judges it. Keyed by a name that says the hour.

    Only the hours that could fail get a suite (see hour_bounds): GX's cost is per expectation, not
    per row, so a day's catch-up judged hour by hour in full would take the gate 24 times as long."""
    bounds = hour_bounds(contract, batch) if len(batch) else pd.DataFrame()
    if len(bounds) < 2:
        return {}
    out = {}
    for (day, hh), b in bounds.iterrows():
        allowed = {
            name: (1 - share_check(contract, name, int(b[over]))["mostly"]) * int(b[of]) + 1e-9
            for name, over, of in _BOUNDED
        }
        if all(b[name] <= allowed[name] for name, _, _ in _BOUNDED):
            continue  # no share expectation can fail over this hour's rows
        label = f"{day}T{hh}"
        name = f"{contract.entity}_batch, ingest hour {label}"
        rows = batch[(batch[INGEST_DATE] == day) & (batch[INGEST_HOUR] == hh)]
        counts = int(b["rows"]), int(b["parsed"]), int(b["accepted"])
        exps = share_expectations(contract, *counts, rule_values(contract, rows), ingest_hour=label)
        out[name] = (rows, gx.ExpectationSuite(name=name, expectations=exps))
    return out


# Per share threshold: the bound's column in hour_bounds, the rows its `mostly` is computed for
# (share_check), and the fewest values its share can be taken over.
_BOUNDED = [
    ("max_quarantined", "rows", "rows"),
    ("max_unparseable", "rows", "rows"),
    ("max_unknown_fields", "rows", "rows"),
    ("max_bad_type", "rows", "rows"),
    ("max_per_rule", "fewest", "fewest"),
    ("max_conflicting_duplicates", "accepted", "accepted"),
]


def hour_bounds(contract: Contract, batch: pd.DataFrame) -> pd.DataFrame:
    """Per ingest hour: its rows, parsed and accepted rows, and for each share threshold an upper
    bound of the rows GX can count against it. A flag counts its flagged rows; a column rule at most
    the parsed rows Spark quarantined (GX and Spark apply the same rules; the whole batch and the
    changes are still judged in full by GX), over at least the fewest non-null values a rule reads
    (`fewest`: GX takes a rule's share over non-null values; a null where the contract forbids one
    is a quarantined row); conflicting duplicates at most the accepted rows whose event id repeats
    in the batch or conflicts with the published state (`_conflict`). One pass of counts over the batch, however many hours it spans."""
    g = batch.groupby([INGEST_DATE, INGEST_HOUR], sort=True)
    codes, keys = g.ngroup().to_numpy(), g.size().index

    def per_hour(mask) -> np.ndarray:
        return np.bincount(codes, weights=np.asarray(mask, dtype=np.float64), minlength=len(keys)).astype(np.int64)

    parsed, accepted = ~batch["_unparseable"], ~batch["_quarantined"]
    out = pd.DataFrame(
        {
            "rows": per_hour(np.ones(len(batch))),
            "parsed": per_hour(parsed),
            "accepted": per_hour(accepted),
            "max_quarantined": per_hour(batch["_quarantined"]),
            "max_unparseable": per_hour(batch["_unparseable"]),
            "max_unknown_fields": per_hour(batch["_unknown_field"]),
            "max_bad_type": per_hour(batch["_bad_type"]),
            "max_per_rule": per_hour(parsed & batch["_quarantined"]),
            "max_conflicting_duplicates": per_hour(
                accepted & (batch[contract.event_id].duplicated(keep=False) | batch["_conflict"])
            ),
        },
        index=keys,
    )
    nullable = sorted({r.column for r in contract.rules() if r.kind != "type" and contract.column(r.column).nullable})
    out["fewest"] = np.minimum.reduce(
        [out["parsed"] - out["max_per_rule"], *[per_hour(parsed & batch[c].notna()) for c in nullable]]
    )
    return out


def live_condition(contract: Contract) -> str:
    """The accepted rows that are not deletes (the rows drift judges): a delete need carry no values
    (Contract.tombstone_may_omit), so its nulls and absent values say nothing about the data."""
    t = contract.tombstone
    return ACCEPTED if t is None else f"({ACCEPTED}) & ({t.column} != {t.value!r})"


def live_counts(contract: Contract, batch: pd.DataFrame) -> tuple[int, int]:
    """The batch's rows under live_condition, and their distinct keys."""
    if not len(batch):
        return 0, 0
    live = batch.eval(live_condition(contract), parser="pandas")
    return int(live.sum()), int(batch.loc[live, contract.primary_key].nunique())


def drift_expectations(
    contract: Contract, profile: dict | None, live_rows: int, live_keys: int | None = None
) -> list[gxe.Expectation]:
    """Each column's null share in the batch's accepted rows that are not deletes (`live_rows` of
    them, see live_condition), and each free-text column's distinct values per key (the batch's
    against its own distinct keys, `live_keys`), against the published Silver's profile over its
    live keys (see contract.Drift, bronze_to_silver SilverVersionBuilder._profile). Only when both have at least
    `drift.min_rows` rows."""
    d = contract.quality.drift
    # A profile written before live rows were counted took its column figures over all rows.
    rows = (profile or {}).get("live_rows", (profile or {}).get("rows", 0))
    if not profile or rows < d.min_rows or live_rows < d.min_rows:
        return []
    exps: list[gxe.Expectation] = []
    live = live_condition(contract)
    for c in contract.columns:
        col = profile["columns"].get(c.name)
        if col is None:  # a column the published Silver did not have yet
            continue
        if c.nullable:
            allowed = min(1.0, col["nulls"] / rows + d.max_null_share_increase)
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=c.name,
                    mostly=round(1 - allowed, 6),
                    row_condition=live,
                    condition_parser="pandas",
                    meta={
                        "threshold": "quality.drift.max_null_share_increase",
                        "limit": d.max_null_share_increase,
                        "silver_null_share": round(col["nulls"] / rows, 4),
                    },
                )
            )
        if (
            c.type == "string"
            and not c.allowed
            and c.name != contract.primary_key
            and rows - col["nulls"] >= d.min_rows
        ):
            # Distinct values per key: Silver holds one row per key; a batch holds any number of
            # events per key (a catch-up of a day: dozens), so its values are counted against its keys.
            silver_ratio = min(1.0, col["distinct"] / rows)  # approximate distinct count: may exceed 1 a little
            keys = live_rows if live_keys is None else live_keys
            exps.append(
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column=c.name,
                    min_value=max(1, math.floor(d.min_distinct_ratio * silver_ratio * keys)),
                    row_condition=live,
                    condition_parser="pandas",
                    meta={
                        "threshold": "quality.drift.min_distinct_ratio",
                        "limit": d.min_distinct_ratio,
                        "silver_distinct_per_key": round(silver_ratio, 4),
                        "batch_keys": keys,
                    },
                )
            )
    return exps


def changes_suite(contract: Contract) -> gx.ExpectationSuite:
    exps: list[gxe.Expectation] = [gxe.ExpectColumnToExist(column=n) for n in contract.names]
    exps.append(gxe.ExpectColumnValuesToBeUnique(column=contract.primary_key))
    exps += rule_expectations(contract, 1.0)
    return gx.ExpectationSuite(name=f"{contract.entity}_changes", expectations=exps)


def table_suite(contract: Contract) -> gx.ExpectationSuite:
    """Over a one-row frame of facts (rows, keys) from the version's manifest."""
    return gx.ExpectationSuite(
        name=f"{contract.entity}_table",
        expectations=[
            gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="rows", column_B="keys", meta={"why": "one Silver row per primary key"}
            ),
        ],
    )
