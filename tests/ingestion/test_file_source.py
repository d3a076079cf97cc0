"""The file source: rows of a CSV or Parquet file become events (ingestion/file_source.py)."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.examples import subscribers_rows, to_csv, write_example
from ingestion.file_source import event_id_for, ingest_file, read_file, to_events
from mdp.core.contract import load_contract
from mdp.core.errors import ConfigError
from mdp.core.lake import BRONZE_SCHEMA, bronze_table_uri
from mdp.core.storage import store_for

pytestmark = pytest.mark.unit
SUBSCRIBERS = load_contract("subscribers")


def _messages(events):
    return [json.loads(v) for _, _, v in events.messages]


@pytest.fixture
def example(tmp_path):
    return write_example("subscribers", tmp_path / "subscribers.csv", rows=400, seed=11)


def test_every_row_is_an_event_with_every_column_as_it_is(example):
    data = read_file(example)
    events = to_events(data, SUBSCRIBERS)
    msgs = _messages(events)
    assert len(msgs) == data.records == 400
    rows = subscribers_rows(400, seed=11)
    for msg, row, (pos, key, _) in zip(msgs, rows, events.messages, strict=True):
        assert set(msg) == set(row) | {"event_id"}
        # Texts stay texts ("70.35", "1"): Silver casts them; blanks become null.
        assert {k: v for k, v in msg.items() if k != "event_id"} == {k: (v or None) for k, v in row.items()}
        assert key == row["account_no"].encode()
        assert uuid.UUID(msg["event_id"]) and msg["event_id"] == event_id_for(data.sha256, pos)


def test_blanks_are_counted_per_column(example):
    events = to_events(read_file(example), SUBSCRIBERS)
    rows = subscribers_rows(400, seed=11)
    expected = {c: sum(r[c] == "" for r in rows) for c in rows[0]}
    assert dict(events.blanks) == {c: n for c, n in expected.items() if n}
    assert events.blanks["monthly_charges"] > 0 and events.blanks["total_charges"] > 0
    whitespace = to_events(_csv_data(example.parent, "account_no,churn\n1,   \n2,Yes\n"), SUBSCRIBERS)
    assert dict(whitespace.blanks) == {"churn": 1} and _messages(whitespace)[0]["churn"] is None


def _csv_data(folder, text, name="f.csv"):
    path = folder / name
    path.write_text(text)
    return read_file(path)


def test_event_ids_are_stable_across_reingest_and_change_with_content(example, tmp_path):
    first = _messages(to_events(read_file(example), SUBSCRIBERS))
    copy = tmp_path / "renamed.csv"
    shutil.copy(example, copy)
    again = _messages(to_events(read_file(copy), SUBSCRIBERS))
    assert [m["event_id"] for m in again] == [m["event_id"] for m in first]  # same content, same events
    assert again == first
    assert len({m["event_id"] for m in first}) == len(first)
    changed = tmp_path / "changed.csv"
    changed.write_text(example.read_text().replace("\n", "\n", 1) + "999999,North,One year,DSL,1,1,1,0,0,a@b.c,No\n")
    other = _messages(to_events(read_file(changed), SUBSCRIBERS))
    assert not {m["event_id"] for m in other} & {m["event_id"] for m in first}  # a new file is new events


def test_a_file_with_its_own_event_ids_keeps_them_and_fills_blanks(tmp_path):
    data = _csv_data(tmp_path, "event_id,account_no,churn\nown-1,1,Yes\n,2,No\n")
    events = to_events(data, SUBSCRIBERS)
    msgs = _messages(events)
    assert msgs[0]["event_id"] == "own-1" and msgs[1]["event_id"] == event_id_for(data.sha256, 1)
    assert events.ids_filled == 1 and "event_id" not in events.blanks


def test_a_header_that_does_not_match_is_kept_as_unknown_fields(tmp_path):
    from ingestion.file_source import header_report

    data = _csv_data(tmp_path, "Account No,region,churn,loyalty\n7,North,Yes,gold\n")
    msg = _messages(to_events(data, SUBSCRIBERS))[0]
    # Nothing is dropped or renamed: Silver quarantines the row as unknown_field, value kept.
    assert msg["Account No"] == "7" and msg["loyalty"] == "gold" and msg["region"] == "North"
    report = header_report(data, SUBSCRIBERS)
    assert report["unknown_columns"] == ["Account No", "loyalty"]
    assert "account_no" in report["missing_required"] and "tenure_months" in report["missing_required"]
    assert report["missing_optional"] == ["monthly_charges", "total_charges", "email"]


def test_lines_with_the_wrong_field_count_travel_as_raw_text(tmp_path):
    data = _csv_data(tmp_path, 'account_no,churn\n1,Yes\n2,No,extra\n\n3\n4,"No"\n')
    assert data.records == 4 and sorted(data.bad_lines) == [1, 2]
    events = to_events(data, SUBSCRIBERS)
    values = [v for _, _, v in events.messages]
    assert [p for p, _, _ in events.messages] == [0, 1, 2, 3]
    assert values[1] == b"2,No,extra" and values[2] == b"3"  # not JSON: quarantined, bytes kept
    assert json.loads(values[3])["account_no"] == "4"


def test_parquet_values_keep_their_json_types(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "account_no": pa.array([1, 2], pa.int64()),
            "monthly_charges": pa.array([70.35, float("nan")]),
            "total_charges": pa.array([None, 5.0]),
            "region": ["North", " "],
            "since": pa.array([date(2024, 1, 2), None]),
            "seen": pa.array([datetime(2024, 1, 2, 3, 4, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")),
            "paperless_billing": [True, False],
        }
    )
    pq.write_table(table, path)
    events = to_events(read_file(path), SUBSCRIBERS)
    a, b = _messages(events)
    assert a["account_no"] == 1 and a["monthly_charges"] == 70.35 and a["total_charges"] is None
    assert a["since"] == "2024-01-02" and a["seen"].startswith("2024-01-02T03:04:00") and a["paperless_billing"] is True
    assert b["monthly_charges"] is None and b["region"] is None  # NaN and whitespace are blanks
    assert dict(events.blanks) == {"monthly_charges": 1, "total_charges": 1, "region": 1, "since": 1, "seen": 1}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", b"{}", "cannot tell the format"),
        ("x.csv", b"", "no header row"),
        ("x.csv", b"a,b\n\xff\xfe,1\n", "not UTF-8"),
        ("x.csv", b"a,a\n1,2\n", "duplicate column names ['a']"),
        ("x.parquet", b"not parquet", "not a readable Parquet file"),
    ],
)
def test_bad_files_are_config_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        read_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        read_file(tmp_path / "missing.csv")


def test_ingest_writes_bronze_and_a_reingest_within_the_hour_leaves_its_objects(example, make_settings):
    settings = make_settings(contract="subscribers")
    store = store_for(settings)
    at = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    f1 = ingest_file(settings, store, example, at=at)
    assert f1["destination"] == "bronze" and f1["events"] == 400 and f1["event_time"] is None
    assert f1["unknown_columns"] == [] and f1["missing_required"] == []
    (uri,) = f1["bronze_objects"]
    assert uri.startswith(f"{bronze_table_uri(settings)}/ingest_date=2026-05-01/ingest_hour=10/part-file-subscribers-")
    table = pq.read_table(uri.removeprefix("file://"))
    assert table.schema == BRONZE_SCHEMA and table.num_rows == 400
    assert table.column("offset").to_pylist() == list(range(400))
    assert set(table.column("topic").to_pylist()) == {"subscribers"}
    # The same file again, later in the same hour: the object and its ingest times stay as they were.
    f2 = ingest_file(settings, store, example, at=at.replace(minute=50))
    assert f2["bronze_objects"] == f1["bronze_objects"]
    assert pq.read_table(uri.removeprefix("file://")).equals(table)


def test_file_goes_to_kafka_when_the_source_is_kafka(example, make_settings):
    from ingestion.file_source import goes_to_kafka

    assert goes_to_kafka(make_settings(source="kafka", kafka_bootstrap="127.0.0.1:1"))
    assert not goes_to_kafka(make_settings())
    assert not goes_to_kafka(make_settings(source="file", input_file=str(example)))


def test_source_file_needs_an_input_file(make_settings):
    with pytest.raises(ConfigError, match=r"input_file \(MDP_INPUT_FILE\)"):
        make_settings(source="file")


def test_generator_refuses_a_contract_it_does_not_make(make_settings):
    from ingestion.land import check_generator_fits

    check_generator_fits(load_contract("customers"))
    with pytest.raises(ConfigError, match=r"MDP_CONTRACT.*\['event_type', 'event_ts', 'customer_id'"):
        check_generator_fits(SUBSCRIBERS)


def test_generator_fields_are_what_it_emits():
    from ingestion.generator import FIELDS, generate_hour

    events = generate_hour(3, datetime(2026, 1, 1, tzinfo=UTC), 20, dirty_fraction=0.0)
    assert all(tuple(json.loads(e.message)) == FIELDS for e in events)


def test_example_is_seeded_and_has_the_promised_shape():
    rows = subscribers_rows(2000, seed=5)
    assert to_csv(rows) == to_csv(subscribers_rows(2000, seed=5)) != to_csv(subscribers_rows(2000, seed=6))
    assert {r["churn"] for r in rows} == {"Yes", "No"}
    assert {r["paperless_billing"] for r in rows} == {"0", "1"}
    assert sum(r["monthly_charges"] == "" for r in rows) > 20 and sum(r["total_charges"] == "" for r in rows) > 20
    assert len({r["account_no"] for r in rows}) == 2000
    assert "customer_id" not in rows[0] and not any("time" in c or "date" in c for c in rows[0])
