"""The lake's tables by name, for people and tools: what `mdp sql` queries, and how tests read.

    bronze             raw events, every hour partition (no versions: Bronze only grows)
    silver.state       the latest state per key
    silver.quarantine  every quarantined record, with its reasons
    gold.features      one feature row per entity (a version is a Gold snapshot)
    gold.<scores>      the champion's scores (<scores> from the contract)

A versioned table is read at its published version, or at an older one (`version`). `query` runs
SQL over them in DuckDB, through Arrow datasets (DuckDB's own delta extension is a download).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.dataset as ds

from mdp.core.errors import ConfigError, StageError
from mdp.core.lake import arrow_filesystem, arrow_path, bronze_table_uri
from mdp.core.settings import Settings
from mdp.core.storage import join, store_for
from mdp.core.tables import Dataset, gold_dataset, scores_dataset, silver_dataset

SILVER_NAMES = ("state", "quarantine")


def table_names(settings: Settings) -> list[str]:
    return [
        "bronze",
        *[f"silver.{t}" for t in SILVER_NAMES],
        "gold.features",
        f"gold.{settings.data_contract.scores_name}",
    ]


def _unknown(settings: Settings, name: str) -> ConfigError:
    return ConfigError(f"unknown table {name!r}: the tables are {', '.join(table_names(settings))} (mdp sql --tables)")


def current_version(settings: Settings, name: str) -> int | str | None:
    """The published version of a table (None: not published yet; "-" for Bronze, which has none)."""
    if name == "bronze":
        return "-"
    data = _dataset(settings, name)
    found = data.primary.version()  # Silver's version is its state table's
    if found is None:
        data.current()  # an old lake is refused, naming `mdp lake convert`
    return found


def _dataset(settings: Settings, name: str) -> Dataset:
    if name in (f"silver.{t}" for t in SILVER_NAMES):
        return silver_dataset(settings)
    if name == "gold.features":
        return gold_dataset(settings)
    if name == f"gold.{settings.data_contract.scores_name}":
        return scores_dataset(settings)
    raise _unknown(settings, name)


def dataset(settings: Settings, name: str, version: int | str | None = None) -> ds.Dataset | None:
    """A table as a pyarrow dataset at its published version or `version` (None: nothing there yet)."""
    if name not in table_names(settings):
        raise _unknown(settings, name)
    fs = arrow_filesystem(settings)
    if name == "bronze":
        if version is not None:
            raise ConfigError("bronze has no versions (it only grows): drop --as-of for it")
        base = bronze_table_uri(settings)
        if not store_for(settings).list_dirs(base):
            return None
        part = ds.partitioning(pa.schema([("ingest_date", pa.string()), ("ingest_hour", pa.string())]), flavor="hive")
        return ds.dataset(arrow_path(base), format="parquet", filesystem=fs, partitioning=part)
    data, table = _dataset(settings, name), name.split(".", 1)[1]
    latest = data.primary.version()
    if latest is None:
        data.current()  # an old lake is refused, naming `mdp lake convert`
        return None
    if version is not None and not 0 <= _as_int(name, version) <= latest:
        raise StageError(
            f"{name} has no version {version} (its versions run from 0 to {latest}; vacuum keeps the "
            "recent ones and the champion's)"
        )
    try:
        # A version is the dataset's (Silver's is its state table's): quarantine as of Silver N.
        return data.table(table).dataset(data.version_of(table, None if version is None else _as_int(name, version)))
    except Exception as exc:  # delta-rs: a version whose log or files retention removed
        raise StageError(f"{name} version {version} cannot be read (retention removed it?): {exc}") from None


def _as_int(name: str, version: int | str) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: a version is a number (a Delta table version), not {version!r}") from None


def files(settings: Settings, name: str, version: int | str | None = None) -> list[str]:
    """The lake URIs a table's version reads (what Spark is given)."""
    if dataset(settings, name, version) is None:  # also checks the name and the version
        raise StageError(f"{name}: nothing published yet")
    if name == "bronze":
        base = bronze_table_uri(settings)
        return [join(base, p) for p in store_for(settings).walk_files(base) if p.endswith(".parquet")]
    data, table = _dataset(settings, name), name.split(".", 1)[1]
    return data.files(table, None if version is None else _as_int(name, version))


def read(settings: Settings, name: str, version: int | str | None = None, columns: list[str] | None = None) -> pa.Table:
    """A table as an Arrow table (StageError when nothing is published yet)."""
    found = dataset(settings, name, version)
    if found is None:
        raise StageError(f"{name}: nothing published yet")
    return found.to_table(columns=columns)


def _pins(settings: Settings, referenced: list[str], as_of: list[str]) -> dict[str, str]:
    """`--as-of N` (the one versioned table the query reads) or `--as-of TABLE=N`, per table."""
    pins: dict[str, str] = {}
    versioned = [n for n in referenced if n != "bronze"]
    for item in as_of:
        name, _, version = item.rpartition("=")
        if not name:
            if len(versioned) != 1:
                raise ConfigError(
                    f"--as-of {item}: the query reads {len(versioned)} versioned tables "
                    f"({', '.join(versioned) or 'none'}); say which: --as-of TABLE={item}"
                )
            name = versioned[0]
        if name not in referenced:
            raise ConfigError(f"--as-of {item}: the query does not read {name!r}")
        pins[name] = version
    return pins


def query(settings: Settings, sql: str, as_of: list[str] | None = None) -> pa.Table:
    """Run SQL over the lake's tables (by the names of table_names) and return the result."""
    import duckdb

    names = table_names(settings)
    try:
        found = duckdb.get_table_names(sql, qualified=True)
        # Names come back as written, with any alias ("silver.state AS s").
        referenced = sorted({n.split(" AS ")[0].replace('"', "").strip() for n in found})
    except duckdb.ParserException as exc:
        raise ConfigError(f"bad query: {exc}") from None
    except duckdb.Error:  # it binds some queries (USING) before any table exists: find the names in the text
        referenced = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", sql)]
    unknown = [n for n in referenced if n not in names]
    if unknown:
        raise _unknown(settings, unknown[0])
    pins = _pins(settings, referenced, as_of or [])
    con = duckdb.connect()
    try:
        for i, name in enumerate(referenced):
            data = dataset(settings, name, pins.get(name))
            if data is None:
                raise StageError(f"{name}: nothing published yet (run the pipeline first)")
            con.register(f"_mdp_{i}", data)
            if "." in name:
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.split(".")[0]}"')
            view = ".".join(f'"{p}"' for p in name.split("."))
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM _mdp_{i}")
        try:
            result = con.sql(sql)
        except duckdb.CatalogException as exc:
            raise ConfigError(f"bad query: {exc} (the tables: {', '.join(names)})") from None
        except duckdb.Error as exc:
            raise ConfigError(f"bad query: {exc}") from None
        return result.to_arrow_table() if result is not None else pa.table({})
    finally:
        con.close()
