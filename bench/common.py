"""Shared pieces of the benchmark: Bronze generation, scenario lakes, checksums, the RSS sampler."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

BASE_HOUR = datetime(2026, 1, 5, 0, tzinfo=UTC)  # fixed, so every bench run reads the same Bronze
SEED = 42


# ---- Bronze, generated once per bench run ---------------------------------------------------------
def _gen_hour(args) -> tuple[str, int, float]:
    lake, hour_iso, n, seed = args
    from ingestion.land import land_from_generator
    from mdp.core.context import RunContext
    from mdp.core.lake import Interval
    from mdp.core.settings import get_settings

    t0 = time.perf_counter()
    settings = get_settings(lake_root=str(lake), events=n, seed=seed)
    figures = land_from_generator(RunContext(settings, Interval.hour_of(datetime.fromisoformat(hour_iso))))
    return hour_iso, figures["landed"], time.perf_counter() - t0


def generate_bronze(lake: Path, hours: list[datetime], events_per_hour: int, workers: int, seed: int = SEED) -> dict:
    """Generate the hours into lake/bronze with a process pool; reuse what a matching earlier run made."""
    manifest_path = lake / "bench-bronze.json"
    want = {"seed": seed, "events_per_hour": events_per_hour}
    done = {}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if {k: old.get(k) for k in want} == want:
            done = old.get("hours", {})
    todo = [h for h in hours if h.isoformat() not in done]
    t0 = time.perf_counter()
    cpu = 0.0
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for hour_iso, n, secs in pool.map(_gen_hour, [(lake, h.isoformat(), events_per_hour, seed) for h in todo]):
                done[hour_iso] = n
                cpu += secs
        manifest_path.write_text(json.dumps({**want, "hours": done}, indent=1))
    wall = time.perf_counter() - t0
    n_new = sum(done[h.isoformat()] for h in todo)
    return {
        "hours": len(hours),
        "generated_hours": len(todo),
        "reused_hours": len(hours) - len(todo),
        "events": sum(done[h.isoformat()] for h in hours),
        "seconds": round(wall, 2),
        "events_per_s_per_process": round(n_new / cpu) if cpu else None,
        "events_per_s": round(n_new / wall) if todo and wall else None,
    }


def scenario_lake(root: Path, shared_lake: Path, hours: list[datetime]) -> Path:
    """A fresh lake whose Bronze hours are symlinks to the shared Bronze (same bytes for every engine)."""
    import shutil

    from mdp.core.lake import bronze_partition

    if root.exists():
        shutil.rmtree(root)
    for h in hours:
        part = bronze_partition(h)
        target = shared_lake / "bronze" / "customers" / part
        link = root / "bronze" / "customers" / part
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)
    return root


def bronze_files(settings, interval) -> list[str]:
    """The Parquet files the Spark stage reads for the interval (the same listing a backfill uses)."""
    from mdp.core.lake import bronze_files_in

    return sorted(uri.removeprefix("file://") for uri in bronze_files_in(settings, interval))


# ---- checksums: the same function for every engine's Parquet output --------------------------------
def _normalise(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_timestamp(t):
        return pc.cast(col.cast(pa.timestamp("us", tz="UTC") if t.tz else pa.timestamp("us")), pa.int64())
    if pa.types.is_date(t):
        return pc.cast(col.cast(pa.date32()), pa.int32()).cast(pa.int64())
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_floating(t):
        return col.cast(pa.float64())
    if pa.types.is_boolean(t):
        return col.cast(pa.int64())
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col.cast(pa.string())
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return col.cast(pa.binary())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.chunked_array(
            [pa.array(["\x1f".join(v) if v is not None else None for v in col.to_pylist()], pa.string())]
        )
    return col


def _family(t: pa.DataType) -> str:
    for name, test in (
        ("timestamp", pa.types.is_timestamp),
        ("date", pa.types.is_date),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("bool", pa.types.is_boolean),
        ("list", lambda x: pa.types.is_list(x) or pa.types.is_large_list(x)),
        ("binary", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)),
        ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
    ):
        if test(t):
            return name
    return str(t)


def read_table(path: str | list[str]) -> pa.Table:
    """A folder of Parquet, or a list of files (a Delta version's)."""
    paths = [p.removeprefix("file://") for p in path] if isinstance(path, list) else path.removeprefix("file://")
    return ds.dataset(paths, format="parquet").to_table()


def checksum(path: str, keys: list[str]) -> dict:
    """Rows, column names + type families, and a SHA-256 per column over the rows sorted by `keys`.

    Types are normalised (ints to int64, timestamps to UTC microseconds, dates to days, booleans
    to 0/1, lists joined), so int32 vs int64 or a writer's timestamp flavour do not count.
    """
    raw = read_table(path)
    schema = [(f.name, _family(f.type)) for f in raw.schema]
    table = pa.table({n: _normalise(raw.column(n)) for n in raw.column_names})
    if table.num_rows:
        table = table.take(
            pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys], null_placement="at_start")
        )
    cols = {}
    for name in table.column_names:
        h = hashlib.sha256()
        h.update(repr(table.column(name).to_pylist()).encode())
        cols[name] = h.hexdigest()[:16]
    total = hashlib.sha256(json.dumps([schema, cols], sort_keys=True).encode()).hexdigest()[:16]
    return {"rows": table.num_rows, "schema": schema, "columns": cols, "checksum": total}


def compare(a: dict, b: dict) -> list[str]:
    """Differences between two checksum() results, named (empty when equal)."""
    out = []
    if a["rows"] != b["rows"]:
        out.append(f"rows {a['rows']} != {b['rows']}")
    if a["schema"] != b["schema"]:
        out.append(f"schema {a['schema']} != {b['schema']}")
    out += [f"column {n} differs" for n in a["columns"] if n in b["columns"] and a["columns"][n] != b["columns"][n]]
    return out


# ---- peak RSS of the driver (this process) and the JVM (its java child) ------------------------------
class RssSampler:
    def __init__(self, interval_s: float = 0.2):
        import psutil

        self.proc = psutil.Process()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.reset()
        self.thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.peak_driver = 0
            self.peak_jvm = 0

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                driver = self.proc.memory_info().rss
                jvm = 0
                for child in self.proc.children(recursive=True):
                    try:
                        if "java" in child.name():
                            jvm += child.memory_info().rss
                    except psutil.Error:
                        pass
                with self._lock:
                    self.peak_driver = max(self.peak_driver, driver)
                    self.peak_jvm = max(self.peak_jvm, jvm)
            except psutil.Error:
                pass
            self._stop.wait(self.interval_s)

    def peaks_mb(self) -> dict:
        with self._lock:
            return {"driver_rss_mb": round(self.peak_driver / 2**20), "jvm_rss_mb": round(self.peak_jvm / 2**20)}

    def stop(self) -> None:
        self._stop.set()


def machine() -> dict:
    import psutil

    def version(mod: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return None

    java = None
    try:
        import subprocess

        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20).stderr.splitlines()[0]
    except Exception:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "versions": {
            m: version(m)
            for m in (
                "pyspark",
                "duckdb",
                "pandas",
                "pyarrow",
                "great-expectations",
                "mlflow",
                "scikit-learn",
                "kafka-python",
            )
        },
    }


def hours_from(start: datetime, n: int) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]
