"""mdp.core.tables on a local lake: a run's write (begin, stage, commit, abort), idempotent through
Delta's txn, refused when the table moved since the run began, and read back at any version.
tests/core/test_tables_s3.py runs the same scenario on SeaweedFS."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdp.core.errors import StageError
from mdp.core.lake import arrow_filesystem, arrow_path
from mdp.core.manifests import Manifest
from mdp.core.tables import Dataset


def stage_rows(settings, write, table: str, ids: list[int]) -> None:
    fs = arrow_filesystem(settings)
    where = arrow_path(write.staging(table))
    fs.create_dir(where, recursive=True)
    with fs.open_output_stream(f"{where}/part-00000.parquet") as fh:
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "name": [f"n{i}" for i in ids]}), fh)


def parquet(paths: list[str]) -> list[str]:
    return [p for p in paths if p.endswith(".parquet")]  # S3 folder markers go too


def ids(table, version=None) -> list[int]:
    return sorted(table.to_arrow(version)["id"].to_pylist())


def scenario(settings) -> None:
    ds = Dataset(settings, "gold", ("aux", "main"))
    assert ds.current() is None

    w1 = ds.begin("run 1/a")  # any character in a run id
    stage_rows(settings, w1, "aux", [10])
    stage_rows(settings, w1, "main", [1, 2, 3])
    assert not ds.primary.exists()  # staged files are outside any log
    assert w1.commit({"rows": 3}) == 0
    current = ds.current()
    assert (current["rows"], current["run_id"], current["version"], current["tables"]) == (3, "run 1/a", 0, {"aux": 0})
    assert ds.read("aux")["id"].to_pylist() == [10]
    assert w1.commit({"rows": 3}) == 0  # a retried publish is recognised as done
    assert ds.primary.version() == 0

    w2 = ds.begin("run-2")
    stage_rows(settings, w2, "aux", [20])
    stage_rows(settings, w2, "main", [4, 5])
    w3 = ds.begin("run-3")  # began from the same versions as w2
    assert w2.commit({"rows": 2}) == 1
    stage_rows(settings, w3, "aux", [30])
    stage_rows(settings, w3, "main", [6])
    with pytest.raises(StageError, match="moved from 0 to 1"):
        w3.commit({"rows": 1})
    w3.abort()
    assert (ds.primary.version(), ds.table("aux").version()) == (1, 1)
    assert ds.read("aux", 0)["id"].to_pylist() == [10] and ds.read("aux")["id"].to_pylist() == [20]

    main = ds.primary
    assert ids(main) == [4, 5] and ids(main, 0) == [1, 2, 3]
    assert main.manifest(0)["run_id"] == "run 1/a" and main.manifest(1)["rows"] == 2
    assert [u.rsplit("/", 1)[-1] for u in main.file_uris(0)] == ["part-00000.parquet"]
    assert all(u.startswith(main.uri) for u in main.file_uris(0))
    import duckdb

    con = duckdb.connect()  # its own connection: another test may hold the default one
    con.register("dataset", main.dataset(0))  # by name: ruff once dropped the variable DuckDB found by its name
    assert con.sql("select sum(id) from dataset").fetchall() == [(6,)]

    # Retention keeps the pinned version 0 and the latest; with nothing pinned, version 0's files go.
    ds.pin("champion", {"main": 0}, "test")
    assert parquet(ds.vacuum(keep=1, retention_hours=0)["main"]) == []
    assert ids(main, 0) == [1, 2, 3]
    ds.pin("champion", {"main": 1}, "test")
    removed = ds.vacuum(keep=1, retention_hours=0)
    assert len(parquet(removed["main"])) == 1 and len(parquet(removed["aux"])) == 1
    assert ids(main) == [4, 5]


def test_write_commit_retry_stale_abort_vacuum(make_settings):
    scenario(make_settings())


def test_a_crash_between_tables_is_finished_by_the_retry(make_settings):
    settings = make_settings()
    ds = Dataset(settings, "gold", ("aux", "main"))
    w = ds.begin("r")
    stage_rows(settings, w, "aux", [1])
    stage_rows(settings, w, "main", [1])
    # The first table of two, then a crash.
    ds.table("aux")._commit(w.staging("aux"), w.write_id, Manifest(run_id="r", write_id=w.write_id))
    assert ds.current() is None
    assert w.commit({}) == 0
    assert ds.table("aux").version() == 0  # not committed twice
    current = ds.current()
    assert w.commit({}) == 0 and current is not None and current.tables == {"aux": 0}


def test_a_run_id_used_again_is_a_new_write(make_settings):
    # `mdp stage` runs every stage as run "manual": its second write is not taken for its first.
    settings = make_settings()
    ds = Dataset(settings, "gold", ("main",))
    for n in (1, 2):
        w = ds.begin("manual")
        stage_rows(settings, w, "main", [n])
        w.commit({})
    assert ds.primary.version() == 1 and ids(ds.primary) == [2]


def test_stats_from_the_footers(make_settings):
    settings = make_settings()
    ds = Dataset(settings, "gold", ("main",))
    w = ds.begin("r")
    stage_rows(settings, w, "main", [3, 1, 2])
    w.commit({})
    actions = ds.primary._open().get_add_actions(flatten=True)
    cols = {actions.schema.field(i).name: actions.column(i).to_pylist() for i in range(actions.num_columns)}
    assert cols["num_records"] == [3] and cols["min.id"] == [1] and cols["max.id"] == [3]
    assert cols["null_count.id"] == [0]


def test_begin_under_the_lease_sweeps_what_dead_writers_staged(make_settings):
    settings = make_settings()
    ds = Dataset(settings, "gold", ("main",))
    done = ds.begin("a")
    stage_rows(settings, done, "main", [1])
    done.commit({})
    dead, waiting = ds.begin("b"), ds.begin("c")  # b died before its commit; c awaits its gate
    stage_rows(settings, dead, "main", [2])
    stage_rows(settings, waiting, "main", [3])
    with ds.lease("d"):
        ds.begin("d", keep=frozenset({waiting.write_id}))
    left = set(ds.staged_writes("main"))
    assert left == {f"staged-{done.write_id}", f"staged-{waiting.write_id}"}
    assert ids(ds.primary) == [1]


def test_a_stale_write_is_refused_after_a_concurrent_append(make_settings):
    """delta-rs alone commits a stale overwrite after a concurrent append (stack-facts, 2026-12-06):
    the check of the version the write began from refuses it."""
    from deltalake import write_deltalake

    settings = make_settings()
    ds = Dataset(settings, "gold", ("main",))
    first = ds.begin("a")
    stage_rows(settings, first, "main", [1])
    first.commit({})
    stale = ds.begin("b")
    stage_rows(settings, stale, "main", [2])
    write_deltalake(
        ds.primary.uri.removeprefix("file://"),
        pa.table({"id": pa.array([9], pa.int64()), "name": ["x"]}),
        mode="append",
    )
    with pytest.raises(StageError, match="moved from 0 to 1"):
        stale.commit({})
    assert ids(ds.primary) == [1, 9]
