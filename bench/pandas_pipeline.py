"""The naive reference: Bronze -> Silver -> Gold in pandas, one json.loads per message in Python.

Same semantics as spark_apps/transforms.py for everything the generator produces, derived from the
contract like the Spark and DuckDB versions. It holds every event in memory, so the bench runs it
only up to a size (`pandas_max`). Casts follow Spark's for the texts that occur in practice
(ints, decimals, ISO dates and timestamps, true/false); exotic texts may differ.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, Column, Contract, load_contract

BRONZE_META = ["source", "topic", "partition", "offset", "ingest_ts", "ingest_date", "ingest_hour"]
QUARANTINE_KEY = ["source", "topic", "partition", "offset", "ingest_date", "ingest_hour"]
ARROW = {
    "string": pa.string(),
    "int": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_INT = re.compile(r"^\s*[+-]?\d+\s*$")


def _text(v):
    """A JSON value as Spark's map<string,string> holds it: strings as is, others as JSON text."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return repr(v) if isinstance(v, float) else str(v)


def _parse(value: bytes | None):
    try:
        obj = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _cast(s: pd.Series, c: Column) -> pd.Series:
    if c.type == "string":  # text with U+0000 is held by no SQL store: it does not cast
        return s.where(~s.str.contains("\x00", regex=False, na=False))
    if c.type == "int":
        ok = s.str.match(_INT.pattern, na=False)
        n = pd.to_numeric(s.where(ok), errors="coerce")
        n = n.where((n >= -(2**31)) & (n < 2**31))
        return n.astype("Int32")
    if c.type == "double":
        return pd.to_numeric(s.str.strip(), errors="coerce").astype("Float64")
    if c.type == "boolean":
        return s.str.strip().str.lower().map({"true": True, "false": False}).astype("boolean")
    if c.type == "date":
        return pd.to_datetime(s.str.strip().str[:10], format="%Y-%m-%d", errors="coerce").dt.date.where(
            lambda x: x.notna(), None
        )
    if c.type == "timestamp":
        return pd.to_datetime(s.str.strip(), format="ISO8601", utc=True, errors="coerce")
    raise ValueError(c.type)


def _normalise(s: pd.Series, c: Column) -> pd.Series:
    for step in c.normalise:
        s = {"trim": lambda x: x.str.strip(" "), "lower": lambda x: x.str.lower(), "upper": lambda x: x.str.upper()}[
            step
        ](s)
    return s


def parse(bronze: pd.DataFrame, contract: Contract, skew: pd.Timedelta) -> pd.DataFrame:
    objs = [_parse(v) for v in bronze["value"]]
    not_object = pd.Series([o is None for o in objs], index=bronze.index)
    known = set(contract.names)
    unknown = pd.Series([o is not None and not set(o) <= known for o in objs], index=bronze.index)
    df = bronze[BRONZE_META + ["value"]].copy()
    raw, typed = {}, {}
    for c in contract.columns:
        raw[c.name] = pd.Series(
            [_text(o.get(c.name)) if o is not None else None for o in objs], index=bronze.index, dtype=object
        )
        typed[c.name] = _cast(_normalise(raw[c.name], c), c)
    fails: list[tuple[str, pd.Series]] = [(UNPARSEABLE, not_object)]
    if contract.unknown_fields == "quarantine":
        fails.append((UNKNOWN_FIELD, unknown))
    limit = df["ingest_ts"] + skew
    for rule in contract.rules():
        c = contract.column(rule.column)
        r, t = raw[c.name], typed[c.name]
        present = t.notna()
        if rule.kind == "not_null":
            bad = r.isna()
            if c.name in contract.tombstone_may_omit:  # a delete need not carry the entity's fields
                bad = bad & ~(typed[contract.tombstone.column] == contract.tombstone.value).fillna(False)
        elif rule.kind == "type":
            bad = r.notna() & t.isna()
        elif rule.kind == "regex":
            bad = present & ~t.fillna("").str.contains(c.regex, regex=True)
        elif rule.kind == "in_set":
            bad = present & ~t.isin(c.allowed)
        elif rule.kind == "between":
            # The contract writes bounds as dates; a timestamp column compares with UTC timestamps.
            lo, hi = (
                (pd.Timestamp(v, tz="UTC") if c.type == "timestamp" and v is not None else v) for v in (c.min, c.max)
            )
            low = (t < lo) if lo is not None else False
            high = (t > hi) if hi is not None else False
            bad = present & (pd.Series(low, index=t.index).fillna(False) | pd.Series(high, index=t.index).fillna(False))
        elif rule.kind == "not_future":
            as_ts = pd.to_datetime(t, utc=True) if c.type == "date" else t
            bad = present & (as_ts > limit).fillna(False)
        else:
            raise ValueError(rule.kind)
        fails.append((rule.code, bad.fillna(False).astype(bool)))
    codes = np.array([code for code, _ in fails], dtype=object)
    matrix = np.column_stack([f.to_numpy(dtype=bool) for _, f in fails])
    reasons = [list(codes[row]) for row in matrix]
    reasons = [[UNPARSEABLE] if no else r for r, no in zip(reasons, not_object, strict=False)]
    for c in contract.columns:
        df[c.name] = typed[c.name]
    df["_reasons"] = reasons
    return df


def _write(df: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(df, schema=schema, preserve_index=False), path / "part-0.parquet", compression="zstd"
    )


def bronze_to_silver(files: list[str], out: Path, contract: Contract) -> dict:
    bronze = _with_partitions(files)
    parsed = parse(bronze, contract, pd.Timedelta(hours=contract.max_future_skew_hours))
    bad = parsed["_reasons"].map(len) > 0
    q = parsed[bad].drop_duplicates(QUARANTINE_KEY).copy()
    q["reason"] = q["_reasons"].map(lambda r: r[0])
    q["reasons"] = q.pop("_reasons")
    valid = parsed[~bad].drop(columns=["_reasons", "value"])
    # Arrival order: ingest time, offset, partition, source (the first arrival is kept of exact copies).
    valid = valid.sort_values(["ingest_ts", "offset", "partition", "source"], kind="stable")
    dup = valid.duplicated([contract.event_id, *[n for n in contract.names if n != contract.event_id]], keep="first")
    rows = valid[~dup]
    rows = rows.rename(
        columns={"source": "_source", "partition": "_partition", "offset": "_offset", "ingest_ts": "_ingest_ts"}
    )
    rows = rows[contract.names + ["_source", "_partition", "_offset", "_ingest_ts"]]
    # The latest state: the maximum by (event time, content field by field with NULL smallest, earliest
    # arrival), as spark_apps/transforms.py: latest_state defines it.
    # Without an event time: the latest arrival, then the content.
    arrival = ["_ingest_ts", "_offset", "_partition", "_source"]
    if contract.event_time:
        by, up = [contract.event_time, *contract.names, *arrival], [True] * (1 + len(contract.names)) + [False] * 4
    else:
        by, up = [*arrival, *contract.names], [True] * (4 + len(contract.names))
    rows = rows.sort_values(by, ascending=up, na_position="first", kind="stable")
    state = rows.drop_duplicates(contract.primary_key, keep="last")
    cols = [pa.field(c.name, ARROW[c.type]) for c in contract.columns]
    silver_schema = pa.schema(
        cols
        + [
            pa.field("_source", pa.string()),
            pa.field("_partition", pa.int32()),
            pa.field("_offset", pa.int64()),
            pa.field("_ingest_ts", pa.timestamp("us", tz="UTC")),
        ]
    )
    _write(state, silver_schema, out / "customers")
    q_schema = pa.schema(
        [
            pa.field("source", pa.string()),
            pa.field("topic", pa.string()),
            pa.field("partition", pa.int32()),
            pa.field("offset", pa.int64()),
            pa.field("ingest_ts", pa.timestamp("us", tz="UTC")),
            pa.field("ingest_date", pa.string()),
            pa.field("ingest_hour", pa.string()),
            pa.field("value", pa.binary()),
            pa.field("reason", pa.string()),
            pa.field("reasons", pa.list_(pa.string())),
        ]
    )
    _write(q[[f.name for f in q_schema]], q_schema, out / "quarantine")
    batch = parsed[~parsed["_reasons"].map(lambda r: UNPARSEABLE in r)][contract.names]
    _write(batch, pa.schema(cols), out / "batch")
    return {
        "bronze_in": len(parsed),
        "quarantined": int(bad.sum()),
        "duplicates": int(dup.sum()),
        "accepted": int((~dup).sum()),
        "silver_rows": len(state),
    }


def _with_partitions(files: list[str]) -> pd.DataFrame:
    frames = []
    for f in files:
        t = pq.read_table(f).to_pandas()
        for part in Path(f).parent.parts[-2:]:
            k, v = part.split("=", 1)
            t[k] = v
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _date(v):
    """A date, a timestamp or NULL as a date (timestamps are UTC, as in Spark's session)."""
    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    return v.date() if hasattr(v, "date") else v


def _days_since(s: pd.Series, as_of_date) -> pd.Series:
    return s.map(lambda v: (as_of_date - d).days if (d := _date(v)) is not None else None).astype("Int32")


def gold_frame(silver: pd.DataFrame, contract: Contract) -> pa.Table:
    """build_features (spark_apps/features.py) in pandas, from the contract: the identifier, the
    features by role and the derived ones, the label as 0/1, as_of; tombstoned entities left out."""
    src = contract.event_time or "_ingest_ts"
    as_of = silver[src].max()
    s = silver
    if contract.tombstone:
        t = contract.tombstone
        s = s[~s[t.column].eq(t.value).fillna(False).astype(bool)]
    as_of_date = _date(as_of)
    derived = {d.name: d for d in contract.derived}
    data: dict[str, pd.Series] = {contract.primary_key: s[contract.primary_key]}
    fields = [pa.field(contract.primary_key, ARROW[contract.column(contract.primary_key).type])]
    for name, role, _ in contract.features():
        if name in derived:
            d = derived[name]
            if d.kind == "days_since":
                col = _days_since(s[d.column], as_of_date)
                if d.fallback:
                    col = col.fillna(_days_since(s[d.fallback], as_of_date))
                typ = pa.int32()
            else:  # is_present
                col = s[d.column].notna()
                col, typ = (col, pa.bool_()) if d.feature == "boolean" else (col.astype("Int32"), pa.int32())
        elif role == "boolean" and contract.column(name).type != "boolean":
            col, typ = s[name].ne(0).astype("boolean").mask(s[name].isna()), pa.bool_()
        else:
            col, typ = s[name], ARROW[contract.column(name).type]
        data[name] = col
        fields.append(pa.field(name, typ))
    label = s[contract.label.column]
    data[contract.label.column] = label.eq(contract.label.positive).astype("Int32").mask(label.isna())
    fields.append(pa.field(contract.label.column, pa.int32()))
    data["as_of"] = pd.Series([as_of] * len(s), index=s.index, dtype=silver[src].dtype)
    fields.append(
        pa.field("as_of", ARROW[contract.column(src).type] if src in contract.names else pa.timestamp("us", tz="UTC"))
    )
    return pa.Table.from_pandas(pd.DataFrame(data), schema=pa.schema(fields), preserve_index=False)


def silver_to_gold(silver_dir: Path, out: Path, contract: Contract) -> dict:
    gold = gold_frame(pq.read_table(silver_dir).to_pandas(), contract)
    path = out / "customer_features"
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(gold, path / "part-0.parquet", compression="zstd")
    return {"gold_rows": gold.num_rows}


def run(files: list[str], out: Path) -> dict:
    contract = load_contract()
    t0 = time.perf_counter()
    silver = bronze_to_silver(files, out / "silver", contract)
    t1 = time.perf_counter()
    gold = silver_to_gold(out / "silver" / "customers", out / "gold", contract)
    t2 = time.perf_counter()
    return {
        "stages": {"bronze_to_silver": t1 - t0, "silver_to_gold": t2 - t1},
        "figures": {**silver, **gold},
        "outputs": {
            "silver": str(out / "silver" / "customers"),
            "quarantine": str(out / "silver" / "quarantine"),
            "gold": str(out / "gold" / "customer_features"),
        },
    }
