"""An independent Delta reader for the tests: DuckDB's own `delta` extension (built on
delta-kernel-rs, not delta-rs), from its PyPI wheel. The wheel is built for one DuckDB version, not
the project's, so it lives in a venv of its own under .cache/ (made once, from PyPI through uv).

`read_versions` reads each (table folder, version) with `delta_scan(..., version => N)` and returns
the rows as Arrow tables, for the tests to compare with what mdp's reader gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
PINS = ("duckdb==1.5.5", "duckdb-extension-delta==1.5.5")  # the extension's wheel names its DuckDB
VENV = ROOT / ".cache" / "delta-reader"

_SCRIPT = r"""
import json, sys
import duckdb
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute("SET autoload_known_extensions = false")
from pathlib import Path
import duckdb_extension_delta as ext  # the wheel holds the binary for its one DuckDB version
con.execute(f"LOAD '{Path(ext.__file__).parent / 'extensions' / ('v' + duckdb.__version__) / 'delta.duckdb_extension'}'")
for uri, version, out in json.loads(sys.argv[1]):
    con.execute(f"COPY (SELECT * FROM delta_scan('{uri}', version => {int(version)})) TO '{out}' (FORMAT parquet)")
"""


def reader_python() -> Path:
    """The reader venv's interpreter, made (or remade when the pins change) on first use."""
    py, stamp = VENV / "bin" / "python", VENV / ".pins"
    if not (py.exists() and stamp.is_file() and stamp.read_text() == " ".join(PINS)):
        uv = Path(sys.executable).parent / "uv"
        subprocess.run([str(uv), "venv", "-q", "--clear", "-p", sys.executable, str(VENV)], check=True)
        subprocess.run([str(uv), "pip", "install", "-q", "-p", str(py), *PINS], check=True)
        stamp.write_text(" ".join(PINS))
    return py


def read_versions(wanted: list[tuple[Path, int]], out_dir: Path) -> list[pa.Table]:
    """Each local table folder at each version, read by DuckDB's delta extension."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(Path(folder).resolve().as_uri(), v, str(out_dir / f"{i}.parquet")) for i, (folder, v) in enumerate(wanted)]
    done = subprocess.run([str(reader_python()), "-c", _SCRIPT, json.dumps(jobs)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [pq.read_table(out) for _, _, out in jobs]
