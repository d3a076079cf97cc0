"""Gold's features mean what the contract says, in Spark and in both bench references.

Hand-built Silver tables (Parquet, written with pyarrow) go through spark_apps.features.build_features,
the DuckDB SQL and the pandas frame of bench/; every engine must give the expected rows, computed
here by hand from the dates and values in the table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from bench import duckdb_pipeline, pandas_pipeline
from mdp.core.contract import load_contract, parse_contract
from spark_apps.features import build_features

pytestmark = pytest.mark.unit
C = load_contract()
ARROW = {
    "string": pa.string(),
    "int": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
META = [
    ("_source", pa.string()),
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
    ("_ingest_ts", pa.timestamp("us", tz="UTC")),
]


def write_silver(tmp_path, contract, rows: list[dict]) -> str:
    """A Silver table as bronze_to_silver writes it: the contract's columns, typed, plus lineage."""
    schema = pa.schema([(c.name, ARROW[c.type]) for c in contract.columns] + META)
    full = [
        {
            **{f.name: None for f in schema},
            "_source": "test",
            "_partition": 0,
            "_offset": i,
            "_ingest_ts": datetime(2026, 1, 12, tzinfo=UTC),
            **r,
        }
        for i, r in enumerate(rows)
    ]
    path = tmp_path / f"silver-{contract.entity}"
    path.mkdir()
    pq.write_table(pa.Table.from_pylist(full, schema=schema), path / "part-0.parquet")
    return str(path)


def _epoch(v) -> int:
    return (
        int(v.timestamp()) if isinstance(v, datetime) else int(datetime(v.year, v.month, v.day, tzinfo=UTC).timestamp())
    )


def gold_by_engine(spark, path: str, contract) -> dict[str, tuple[list[str], dict]]:
    """engine -> (column names, {key: row}) with as_of as epoch seconds (engines differ in tz handling)."""
    out = {}
    g = build_features(spark.read.parquet(path), contract)
    rows = [r.asDict() for r in g.withColumn("as_of", F.unix_timestamp("as_of")).collect()]
    out["spark"] = (g.columns, rows)
    con = duckdb_pipeline.connect()
    t = con.sql(duckdb_pipeline.gold_sql(f"read_parquet('{path}/*.parquet')", contract)).to_arrow_table()
    con.close()
    out["duckdb"] = (t.column_names, [{**r, "as_of": _epoch(r["as_of"])} for r in t.to_pylist()])
    t = pandas_pipeline.gold_frame(pq.read_table(path).to_pandas(), contract)
    out["pandas"] = (t.column_names, [{**r, "as_of": _epoch(r["as_of"])} for r in t.to_pylist()])
    return {e: (cols, {r[contract.primary_key]: r for r in rows}) for e, (cols, rows) in out.items()}


def customer(cid: str, **over) -> dict:
    base = {
        "event_id": f"e-{cid}",
        "event_type": "customer_updated",
        "event_ts": datetime(2026, 1, 10, 12, tzinfo=UTC),
        "customer_id": cid,
        "email": f"{cid.lower()}@example.com",
        "phone": "+44 20 7123 4567",
        "country": "GB",
        "age": 40,
        "plan": "pro",
        "signup_date": date(2025, 1, 1),
        "monthly_spend": 59.5,
        "support_tickets": 1,
        "last_login_date": date(2026, 1, 9),
        "churned": False,
    }
    return {**base, **over}


def test_customers_features_mean_what_the_contract_says(spark, tmp_path):
    # as_of = the latest event time in Silver = C9's deletion at 2026-01-11 06:00 (a tombstone still
    # counts for as_of, and then leaves Gold). All day counts are to 2026-01-11.
    path = write_silver(
        tmp_path,
        C,
        [
            customer(
                "C0000001",
                signup_date=date(2026, 1, 1),
                last_login_date=date(2026, 1, 8),
                phone=None,
                churned=True,
                event_ts=datetime(2026, 1, 10, 23, 59, tzinfo=UTC),
            ),
            customer(
                "C0000002",
                signup_date=date(2025, 12, 31),
                last_login_date=None,
                age=71,
                plan="free",
                country="DE",
                monthly_spend=0.0,
                support_tickets=7,
                event_ts=datetime(2026, 1, 5, tzinfo=UTC),
            ),
            customer("C0000009", event_type="customer_deleted", event_ts=datetime(2026, 1, 11, 6, tzinfo=UTC)),
        ],
    )
    expected = {
        "C0000001": {
            "customer_id": "C0000001",
            "country": "GB",
            "age": 40,
            "plan": "pro",
            "monthly_spend": 59.5,
            "support_tickets": 1,
            "tenure_days": 10,
            "days_since_last_login": 3,
            "has_phone": False,
            "churned": 1,
        },
        # no last login: days_since_last_login falls back to the signup date
        "C0000002": {
            "customer_id": "C0000002",
            "country": "DE",
            "age": 71,
            "plan": "free",
            "monthly_spend": 0.0,
            "support_tickets": 7,
            "tenure_days": 11,
            "days_since_last_login": 11,
            "has_phone": True,
            "churned": 0,
        },
    }
    as_of = int(datetime(2026, 1, 11, 6, tzinfo=UTC).timestamp())
    columns = ["customer_id", *[n for n, _, _ in C.features()], "churned", "as_of"]
    for engine, (cols, gold) in gold_by_engine(spark, path, C).items():
        assert cols == columns, engine
        assert set(gold) == set(expected), f"{engine}: the deleted customer must leave Gold"
        for key, want in expected.items():
            assert {k: gold[key][k] for k in want} == want, engine
            assert gold[key]["as_of"] == as_of, engine


def small_contract(label: dict, label_type: str, event_time: bool = False, **extra):
    cols = [
        {"name": "eid", "type": "string", "nullable": False},
        {"name": "ref", "type": "string", "nullable": False},
        {"name": "balance", "type": "double"},
        {"name": "vip", "type": "int", "feature": "boolean"},  # a 0/1 flag
        {"name": "opened", "type": "date"},
        {"name": "left", "type": label_type},
    ]
    if event_time:
        cols.append({"name": "ts", "type": "timestamp", "nullable": False})
    data = {
        "entity": "accounts",
        "version": 1,
        "primary_key": "ref",
        "event_id": "eid",
        "label": label,
        "columns": cols,
        "derived": [
            {"name": "age_days", "kind": "days_since", "column": "opened"},
            {"name": "has_balance", "kind": "is_present", "column": "balance"},
        ],
        **extra,
    }
    if event_time:
        data["event_time"] = "ts"
    return parse_contract(data, "test")


@pytest.mark.parametrize(
    ("label_type", "positive", "values", "want"),
    [
        ("string", "Yes", ["Yes", "No", None, "yes"], [1, 0, None, 0]),  # compared as stored (after normalisers)
        ("int", 1, [1, 0, None, 2], [1, 0, None, 0]),
        ("boolean", False, [False, True, None, False], [1, 0, None, 1]),  # positive can be False ("not active")
    ],
    ids=["string-Yes", "int-1", "boolean-False"],
)
def test_label_is_one_where_the_positive_value_is(spark, tmp_path, label_type, positive, values, want):
    contract = small_contract({"column": "left", "positive": positive}, label_type)
    rows = [
        {"eid": f"e{i}", "ref": f"A{i}", "balance": 10.0 * i, "vip": i % 2, "opened": date(2025, 12, 1), "left": v}
        for i, v in enumerate(values)
    ]
    path = write_silver(tmp_path, contract, rows)
    for engine, (_, gold) in gold_by_engine(spark, path, contract).items():
        assert [gold[f"A{i}"]["left"] for i in range(len(values))] == want, engine


def test_without_event_time_as_of_is_the_latest_ingest_and_flags_read_as_booleans(spark, tmp_path):
    contract = small_contract({"column": "left", "positive": "Yes"}, "string")
    rows = [
        {
            "eid": "e1",
            "ref": "A1",
            "balance": None,
            "vip": 1,
            "opened": date(2026, 1, 1),
            "left": "No",
            "_ingest_ts": datetime(2026, 2, 1, 8, tzinfo=UTC),
        },
        {
            "eid": "e2",
            "ref": "A2",
            "balance": 3.5,
            "vip": 0,
            "opened": None,
            "left": "Yes",
            "_ingest_ts": datetime(2026, 1, 15, tzinfo=UTC),
        },
    ]
    path = write_silver(tmp_path, contract, rows)
    for engine, (cols, gold) in gold_by_engine(spark, path, contract).items():
        assert cols == ["ref", "balance", "vip", "age_days", "has_balance", "left", "as_of"], engine
        assert gold["A1"]["as_of"] == gold["A2"]["as_of"] == int(datetime(2026, 2, 1, 8, tzinfo=UTC).timestamp()), (
            engine
        )
        assert (gold["A1"]["vip"], gold["A2"]["vip"]) == (True, False), engine
        assert (gold["A1"]["age_days"], gold["A2"]["age_days"]) == (31, None), engine  # no fallback: a gap stays a gap
        assert (gold["A1"]["has_balance"], gold["A2"]["has_balance"]) == (0, 1), engine  # numeric role: 0/1
        assert gold["A1"]["balance"] is None, engine


def test_excluded_and_identifier_columns_stay_out_of_the_features():
    contract = small_contract({"column": "left", "positive": "Yes"}, "string")
    assert [n for n, _, _ in contract.features()] == ["balance", "vip", "age_days", "has_balance"]
    assert "opened" not in [n for n, _, _ in contract.features()]  # a date is excluded unless derived from
