"""The lake's published tables as Delta Lake tables, committed by delta-rs, and the one object that
owns a run's write.

    <layer>/<entity>/<table>/_delta_log/...            the table's versions (0, 1, 2, ...), any Delta reader's
    <layer>/<entity>/<table>/staged-<write>/part-*.parquet  a write's files: Spark writes them, a commit adds them
    <layer>/<entity>/_LEASE.json                         the one writer's lease (mdp.core.lake.Lease)
    <layer>/<entity>/_PINS.json                          versions retention keeps (the champion's lineage)

A run's write reads as a straight line:

    write = dataset.begin(run_id)          # under the lease: remember the versions the run starts from
    spark_df.write.parquet(spark_uri(write.staging("features")))   # outside the log: no reader sees it
    write.commit(manifest)                 # one Delta commit per table, the primary table last
    # or write.abort(): the staged files never enter the log

The commit is idempotent through Delta's application transaction (`txn`, app id = the write's id,
drawn at begin, not the run id: `mdp stage` reuses the run id "manual"): a retried publish finds
its own transaction in the log and returns the version it committed. The same id names the staging
folder, so a folder whose id no `txn` holds was never committed (`sweep`). Before
it commits, it checks that each table is still at the version the run started from: delta-rs alone
would let a stale overwrite commit after a concurrent append (../shared/notes/stack-facts.md).
The primary table's commit carries the run's manifest (commitInfo `mdp`), so a version and what
made it are one record, readable by any engine that reads the Delta log.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from mdp.core.errors import Busy, StageError
from mdp.core.lake import Lease, arrow_filesystem, arrow_path, read_parquet, spark_uri, utcnow
from mdp.core.manifests import Manifest, StagedRun, StagedWrite, VersionManifest
from mdp.core.settings import Settings
from mdp.core.storage import Store, join, store_for

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

MANIFEST_KEY = "mdp"  # the commitInfo field holding a version's manifest
STAGED_PREFIX = "staged-"
RETENTION_HOURS = 7 * 24  # staged files of an unfinished run, and versions no pin names, live this long
TXN_VERSION = 1  # a write's one application transaction per table (app id = the write id)


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs's options for the lake, from the settings (the only place a store shows)."""
    if not settings.lake_is_s3:
        return {}
    opts = {
        "AWS_ENDPOINT_URL": settings.s3_endpoint or "",
        "AWS_REGION": settings.s3_region,
        # S3 has no atomic rename: a commit is a conditional put of the next log entry.
        "aws_conditional_put": "etag",
    }
    if settings.s3_access_key and settings.s3_secret_key:
        opts["AWS_ACCESS_KEY_ID"] = settings.s3_access_key.get_secret_value()
        opts["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_key.get_secret_value()
    if (settings.s3_endpoint or "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def delta_uri(uri: str) -> str:
    """A lake URI as delta-rs takes it: a local path as it is (Settings.lake_base keeps it literal)."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _stats(meta: pq.FileMetaData) -> str:
    """Delta's per-file statistics from a Parquet footer: rows, and per top-level column the null
    count and (where the footer has one for every row group) min and max."""
    nulls: dict[str, int] = {}
    lo: dict[str, object] = {}
    hi: dict[str, object] = {}
    unknown: set[str] = set()
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            name = col.path_in_schema
            if "." in name:
                continue  # nested: no stats
            st = col.statistics
            if st is None or not st.has_null_count:
                unknown.add(name)
                continue
            nulls[name] = nulls.get(name, 0) + st.null_count
            if not st.has_min_max or col.physical_type in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY", "INT96"):
                # Binary and string bounds may be truncated by the writer: no bound beats a wrong one.
                if rg.num_rows > st.null_count:
                    lo[name] = hi[name] = None
                continue
            if st.logical_type.type in ("TIMESTAMP", "DATE"):
                lo[name] = hi[name] = None  # Delta wants these as ISO text; skipping them is always safe
                continue
            mn, mx = st.min, st.max
            if name not in lo:
                lo[name], hi[name] = mn, mx
            elif lo[name] is not None:
                lo[name], hi[name] = min(lo[name], mn), max(hi[name], mx)
    doc: dict[str, Any] = {
        "numRecords": meta.num_rows,
        "nullCount": {k: v for k, v in nulls.items() if k not in unknown},
    }
    bounded = {k for k, v in lo.items() if v is not None and k not in unknown}
    if bounded:
        doc["minValues"] = {k: lo[k] for k in bounded}
        doc["maxValues"] = {k: hi[k] for k in bounded}
    return json.dumps(doc, default=str)


class Table:
    """One Delta table of the lake, read at its latest or a pinned version."""

    def __init__(self, settings: Settings, uri: str):
        self.settings, self.uri = settings, uri

    def _open(self, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        return DeltaTable(delta_uri(self.uri), version=version, storage_options=storage_options(self.settings))

    def exists(self) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(delta_uri(self.uri), storage_options=storage_options(self.settings))

    def version(self) -> int | None:
        """The latest version, or None when there is no table yet."""
        return self._open().version() if self.exists() else None

    def manifest(self, version: int | None = None) -> VersionManifest | None:
        """What the run that made `version` (default: the latest) recorded."""
        if not self.exists():
            return None
        dt = self._open()
        latest = dt.version()
        version = latest if version is None else version
        if not 0 <= version <= latest:
            raise StageError(f"{self.uri} has no version {version} (latest: {latest})")
        # history() of a table opened at an old version mislabels commits (delta-rs 1.6.6): read from the latest.
        for entry in dt.history(latest - version + 1):
            if entry.get("version") == version:
                return VersionManifest.from_commit_info(version, entry.get(MANIFEST_KEY))
        return VersionManifest(version=version)

    def txn_version(self, app_id: str) -> int | None:
        return self._open().transaction_version(app_id) if self.exists() else None

    def file_uris(self, version: int | None = None) -> list[str]:
        """The data files of a version, as lake URIs (a local path stays literal, as the store names it)."""
        paths = self._open(version).get_add_actions(flatten=True).column("path").to_pylist()
        return sorted(join(self.uri, unquote(p)) for p in paths)

    def dataset(self, version: int | None = None) -> pads.Dataset:
        """A pyarrow dataset of a version (pyarrow, pandas, DuckDB read it without a JVM)."""
        return self._open(version).to_pyarrow_dataset()

    def to_arrow(self, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        return self.dataset(version).to_table(columns=columns)

    def vacuum(
        self, keep_versions: list[int], retention_hours: int = RETENTION_HOURS, dry_run: bool = False
    ) -> list[str]:
        """Delete files no kept version reads: versions newer than the retention, and `keep_versions`.
        Full: a rejected run's staged files (never in the log) go too once they are that old."""
        if not self.exists():
            return []
        return self._open().vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            full=True,
            enforce_retention_duration=False,
            keep_versions=sorted(set(keep_versions)),
        )

    # -- committing (Write calls these) --
    def _adds(self, staging: str) -> tuple[list[AddAction], pa.Schema | None]:
        """Add actions for the Parquet files under `staging`, with stats from their footers."""
        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction
        from pyarrow import fs as pafs

        fs = arrow_filesystem(self.settings)
        base = arrow_path(staging)
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        adds: list[AddAction] = []
        schema: pa.Schema | None = None
        for info in sorted(infos, key=lambda i: i.path):
            name = info.path.rsplit("/", 1)[-1]
            if info.type != pafs.FileType.File or not name.endswith(".parquet") or name.startswith((".", "_")):
                continue
            with fs.open_input_file(info.path) as fh:
                meta = pq.ParquetFile(fh).metadata
            schema = schema or meta.schema.to_arrow_schema()
            rel = info.path[len(arrow_path(self.uri)) :].lstrip("/")
            mtime = int(info.mtime.timestamp() * 1000) if info.mtime else 0
            adds.append(AddAction(quote(rel), info.size, {}, mtime, True, _stats(meta)))
        return adds, schema

    def _commit(self, staging: str, write_id: str, manifest: Manifest, schema: pa.Schema | None = None) -> int:
        from deltalake import CommitProperties, Schema, Transaction
        from deltalake.transaction import create_table_with_add_actions

        adds, found = self._adds(staging)
        schema = schema or found
        if schema is None:
            raise StageError(f"{staging}: no Parquet files were staged, and no schema was given")
        now_ms = int(utcnow().timestamp() * 1000)
        props = CommitProperties(
            custom_metadata={MANIFEST_KEY: manifest.to_commit_info()},
            app_transactions=[Transaction(write_id, TXN_VERSION, last_updated=now_ms)],
        )
        if not self.exists():
            # One txn per write: readers that honour the retention drop old ones (a retry comes within days).
            create_table_with_add_actions(
                delta_uri(self.uri),
                Schema.from_arrow(schema),
                adds,
                mode="error",
                configuration={"delta.setTransactionRetentionDuration": "interval 30 days"},
                storage_options=storage_options(self.settings),
                commit_properties=props,
            )
        else:
            # overwrite: every file of the version read is removed, the staged ones added.
            self._open().create_write_transaction(
                [*adds],  # a fresh list of delta-rs's own element type (AddAction | RemoveAction)
                mode="overwrite",
                schema=Schema.from_arrow(schema),
                commit_properties=props,
            )
        return self._open().version()


class Dataset:
    """Tables of one entity in one layer that a run writes together under one lease. The last table
    is the primary one: its commit carries the manifest and names the dataset's version."""

    def __init__(
        self,
        settings: Settings,
        layer: str,
        tables: tuple[str, ...],
        store: Store | None = None,
        lease_name: str = "_LEASE.json",
    ):
        self.settings, self.layer, self.tables, self.lease_name = settings, layer, tables, lease_name
        self.store: Store = store or store_for(settings)
        self.root = join(settings.layer_uri(layer), settings.data_contract.entity)
        self._lease: Lease | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r}, {self.tables})"

    def table(self, name: str) -> Table:
        return Table(self.settings, join(self.root, name))

    @property
    def primary(self) -> Table:
        return self.table(self.tables[-1])

    def current(self) -> VersionManifest | None:
        """The published version's manifest, or None before the first publish."""
        found = self.primary.manifest()
        if found is None:
            self._refuse_old_layout()
        return found

    def _refuse_old_layout(self) -> None:
        scores = self.tables == (self.settings.data_contract.scores_name,)
        pointer = join(self.root, *((self.tables[0],) if scores else ()), "_CURRENT.json")
        if self.store.get_bytes(pointer) is not None:
            raise StageError(
                f"{pointer}: this lake is in the layout before Delta tables (v=<version>/ folders); "
                "convert it once with `mdp lake convert`"
            )

    def version_of(self, table: str, version: int | None = None) -> int | None:
        """The version of `table` that belongs to the dataset's `version` (default: the published one)."""
        if table == self.tables[-1]:
            return self.primary.version() if version is None else version
        doc = self.primary.manifest(version)
        if doc is None:
            return None
        return doc.tables.get(table)

    def files(self, table: str | None = None, version: int | None = None) -> list[str]:
        """The data files of a table as of the dataset's version (what Spark reads)."""
        table = table or self.tables[-1]
        return self.table(table).file_uris(self.version_of(table, version))

    def read(self, table: str | None = None, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """A table as of the dataset's version, as an Arrow table."""
        table = table or self.tables[-1]
        return self.table(table).to_arrow(self.version_of(table, version), columns)

    @contextmanager
    def lease(self, run_id: str) -> Iterator[Lease]:
        """Hold the dataset's writer lease for the block (re-entrant within one process)."""
        if self._lease is not None:
            yield self._lease
            return
        lease = Lease(self.store, join(self.root, self.lease_name), run_id, self.settings.lease_ttl_s).acquire()
        self._lease = lease
        try:
            yield lease
        finally:
            self._lease = None
            lease.release()

    def begin(self, run_id: str, keep: frozenset[str] = frozenset()) -> Write:
        """A run's write, starting from the tables' versions as they are now. Under the lease, the
        staged files of earlier writes that died (all but `keep`, writes awaiting their gate) go:
        no log names them."""
        if self._lease is not None:
            self.sweep(keep)
        return Write(self, run_id, {t: self.table(t).version() for t in self.tables}, uuid.uuid4().hex[:16])

    def staged_writes(self, table: str) -> list[str]:
        """The staging folders in a table's folder (a finished write's files are the table's own)."""
        return [d for d in self.store.list_dirs(self.table(table).uri) if d.startswith(STAGED_PREFIX)]

    def sweep(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Delete staging folders no log names, except those of the writes in `keep`."""
        removed: list[str] = []
        for name in self.tables:
            t = self.table(name)
            dt = t._open() if t.exists() else None
            for d in self.staged_writes(name):
                write_id = d[len(STAGED_PREFIX) :]
                if write_id in keep or (dt is not None and dt.transaction_version(write_id) is not None):
                    continue  # awaiting its gate, or committed: its files are versions' files
                self.store.delete_prefix(join(t.uri, d))
                removed.append(f"{name}/{d}")
        return removed

    # -- a write that waits for its gate (write-audit-publish across processes) --
    def _staged_uri(self, run_id: str) -> str:
        return join(self.root, "_staged", f"{run_id}.json")

    def stage(self, run_id: str, write: Write | None, manifest: Mapping[str, Any]) -> StagedRun:
        """Record what a run staged (write None: the run found nothing new). A retry of the same run
        replaces its earlier entry; other runs' entries are untouched."""
        current = self.current()
        _crash_hook("MDP_TEST_CRASH_BEFORE_POINTER", self.layer)
        doc = StagedRun.new(run_id, write.to_doc() if write else None, current.version if current else None, manifest)
        self._put_staged(doc)
        return doc

    def _put_staged(self, doc: StagedRun) -> None:
        self.store.put_text(self._staged_uri(doc.run_id), doc.to_json())

    def staged(self, run_id: str) -> StagedRun | None:
        """A run's staged entry. One still "staged" whose write the log holds (its `txn`) was
        published by a process that died before marking it: it is marked now, so a retry of the
        run finds what it published."""
        data = self.store.get_text(self._staged_uri(run_id))
        doc = StagedRun.from_json(data) if data else None
        if doc and doc.status == "staged" and doc.write:
            version = Write.from_doc(self, doc.write).committed()
            if version is not None:
                doc.status, doc.version = "published", version
                self._put_staged(doc)
        return doc

    def reject(self, run_id: str, reason: dict[str, Any]) -> None:
        doc = self.staged(run_id)
        if doc:
            doc.status, doc.rejected_at, doc.rejection = "rejected", utcnow().isoformat(), reason
            self._put_staged(doc)

    def publish(self, run_id: str) -> VersionManifest:
        """Commit the write a run staged, exactly that one, if no table moved since it began.
        Then the entry is marked; a crash between the two is repaired by staged()."""
        staged = self.staged(run_id)
        if not staged or not staged.write:
            raise StageError(f"{self.root}: run {run_id} has no staged version")
        if staged.status != "published":
            version = Write.from_doc(self, staged.write).commit(staged.manifest())
            staged.status, staged.version, staged.published_at = "published", version, utcnow().isoformat()
            self._put_staged(staged)
        published = self.primary.manifest(staged.version)
        if published is None:  # a published version is in the log: only a lake deleted under us lacks it
            raise StageError(f"{self.root}: version {staged.version} of run {run_id} is not in the log")
        return published

    def all_staged(self) -> list[StagedRun]:
        docs = [
            self.store.get_text(join(self.root, "_staged", n))
            for n in self.store.list_files(join(self.root, "_staged"))
        ]
        return [StagedRun.from_json(d) for d in docs if d]

    def waiting(self) -> frozenset[str]:
        """Writes of staged entries younger than the retention, not published: their files stay."""
        cutoff = utcnow().timestamp() - RETENTION_HOURS * 3600
        return frozenset(
            d.write.write_id
            for d in self.all_staged()
            if d.write and d.status != "published" and _ts(d.staged_at) >= cutoff
        )

    # -- retention --
    def pins(self) -> dict[str, dict[str, Any]]:
        data = self.store.get_text(join(self.root, "_PINS.json"))
        return json.loads(data) if data else {}

    def pin(self, name: str, versions: dict[str, int], reason: str) -> None:
        """Keep these table versions through vacuum under `name` (replacing what `name` pinned)."""
        uri = join(self.root, "_PINS.json")
        for _ in range(5):
            data, token = self.store.get_versioned(uri)
            old = json.loads(data) if data else {}
            # Merged per table: datasets that share a folder (Gold's features and scores) share the file.
            kept = {**old.get(name, {}).get("versions", {}), **versions}
            new = {**old, name: {"versions": kept, "reason": reason, "pinned_at": utcnow().isoformat()}}
            body = json.dumps(new, indent=1).encode()
            if self.store.put_if_match(uri, body, token) if token else self.store.put_if_absent(uri, body):
                return
        raise Busy(f"{uri}: could not update the pins (concurrent writers)")

    def pin_version(self, name: str, version: int, reason: str) -> None:
        """Pin a dataset version: the primary table's and the other tables' that belong to it."""
        found = self.primary.manifest(version) if isinstance(version, int) else None
        tables = found.tables if found else {}
        self.pin(name, {**{t: v for t, v in tables.items() if v is not None}, self.tables[-1]: version}, reason)

    def vacuum(
        self, keep: int = 3, retention_hours: int = RETENTION_HOURS, dry_run: bool = False
    ) -> dict[str, list[str]]:
        """Per table: delete files that neither the last `keep` versions, nor a pinned version, nor the
        retention window still read."""
        if self._lease is not None:
            self._lease.check()  # a writer whose lease lapsed must not delete another's new files
        pins = self.pins().values()
        out: dict[str, list[str]] = {}
        for name in self.tables:
            t = self.table(name)
            latest = t.version()
            if latest is None:
                continue
            kept = [v for v in range(max(0, latest - keep + 1), latest + 1)]
            kept += [p["versions"][name] for p in pins if name in p.get("versions", {})]
            out[name] = t.vacuum(kept, retention_hours, dry_run)
        return out


@dataclass
class Write:
    """One run's write to a dataset: stage files outside the log, then commit them or abort."""

    dataset: Dataset
    run_id: str
    based_on: dict[str, int | None]
    write_id: str

    def staging(self, table: str) -> str:
        """Where the run writes a table's files: inside the table's folder, outside its log."""
        return join(self.dataset.table(table).uri, STAGED_PREFIX + self.write_id)

    def to_doc(self) -> StagedWrite:
        return StagedWrite(run_id=self.run_id, write_id=self.write_id, based_on=self.based_on)

    @classmethod
    def from_doc(cls, dataset: Dataset, doc: StagedWrite) -> Write:
        return cls(dataset, doc.run_id, dict(doc.based_on), doc.write_id)

    def committed(self) -> int | None:
        """The primary table's version this write committed, or None (read from the log's `txn`)."""
        t = self.dataset.primary
        return _txn_commit(t, self.write_id) if t.txn_version(self.write_id) is not None else None

    def commit(self, manifest: Manifest | Mapping[str, Any], schemas: Mapping[str, pa.Schema] | None = None) -> int:
        """Commit every staged table, the primary last; returns the primary's new version. A retry
        after a crash commits only what is missing, and a finished write returns its version."""
        ds = self.dataset
        if ds._lease is not None:
            ds._lease.check()
        fields = manifest.fields() if isinstance(manifest, Manifest) else dict(manifest)
        ids = {"run_id": self.run_id, "write_id": self.write_id}
        versions: dict[str, int | None] = {}
        for name in ds.tables:
            t = ds.table(name)
            if t.txn_version(self.write_id) is not None:
                versions[name] = _txn_commit(t, self.write_id)
                continue  # committed by an earlier attempt of this write
            primary = name == ds.tables[-1]
            if not primary and not self.has_staged(name):
                versions[name] = t.version()  # not written by this run (Silver's `seen` under an event time)
                continue
            found = t.version()
            if found != self.based_on.get(name):
                raise StageError(
                    f"{t.uri}: the published version moved from {self.based_on.get(name)} to {found} while run "
                    f"{self.run_id} wrote; nothing of it was published there (run the stage again to build on {found})"
                )
            if primary:
                _crash_hook("MDP_TEST_CRASH_BEFORE_POINTER", ds.layer)
            # The primary's manifest names the versions of the others that belong to it.
            versions[name] = t._commit(
                self.staging(name),
                self.write_id,
                Manifest.model_validate({**fields, **ids, "tables": versions} if primary else ids),
                (schemas or {}).get(name),
            )
            if primary:
                _crash_hook("MDP_TEST_CRASH_AFTER_POINTER", ds.layer)
        committed = versions[ds.tables[-1]]
        assert committed is not None  # the primary was committed just now, or by an earlier attempt
        return committed

    def has_staged(self, table: str) -> bool:
        return any(f.endswith(".parquet") for f in self.dataset.store.walk_files(self.staging(table)))

    def abort(self) -> None:
        """The staged files go; none of them was ever in a log."""
        for name in self.dataset.tables:
            if self.dataset.table(name).txn_version(self.write_id) is None:
                self.dataset.store.delete_prefix(self.staging(name))


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _txn_commit(t: Table, write_id: str) -> int:
    """The version of `t` that the write `write_id` committed."""
    for entry in t._open().history():
        if VersionManifest.from_commit_info(entry["version"], entry.get(MANIFEST_KEY)).write_id == write_id:
            return int(entry["version"])
    raise StageError(f"{t.uri}: write {write_id} is in the log's txn but no commit names it")


def _crash_hook(var: str, layer: str) -> None:
    # Test hooks (tests/reliability, tests/pipeline): SIGKILL this process right before or after
    # the commit that publishes a version: the crash windows to survive.
    if os.environ.get(var) == layer:
        os.kill(os.getpid(), signal.SIGKILL)


def spark_paths(uris: list[str]) -> list[str]:
    """Lake URIs as Spark reads them (s3a:// for S3)."""
    return [spark_uri(u) for u in uris]


# ---- the lake's datasets -----------------------------------------------------------------------------
def gold_dataset(settings: Settings, store: Store | None = None) -> Dataset:
    """Gold features, one row per entity: gold/<entity>/features/ (a version is a Gold snapshot)."""
    return Dataset(settings, "gold", ("features",), store)


def scores_dataset(settings: Settings, store: Store | None = None) -> Dataset:
    """The champion's scores of a Gold snapshot: gold/<entity>/<scores>/ (<scores> from the contract)."""
    name = settings.data_contract.scores_name
    return Dataset(settings, "gold", (name,), store, lease_name=f"_LEASE-{name}.json")


# Silver's tables, committed in this order: state last, so its version is Silver's version.
# `seen`: every distinct event, kept only when the contract has no event time (bronze_to_silver's SilverVersionBuilder._unseen).
SILVER_TABLES = ("batch", "changes", "seen", "quarantine", "state")


class SilverDataset(Dataset):
    """Silver: its tables, the Structured Streaming checkpoint of each write, and the gate's reports.

    silver/<entity>/<table>/                 Delta tables (state is the primary)
    silver/<entity>/_checkpoint/<write>/     the file-source checkpoint as of that write
    silver/<entity>/_reports/gx/<write>/     validation JSON and Data Docs
    silver/<entity>/_staged/<run>.json       a run's staged write, awaiting the gate (or rejected by it)
    """

    def checkpoint_uri(self, write_id: str) -> str:
        return join(self.root, "_checkpoint", write_id)

    def reports_uri(self, write_id: str) -> str:
        return join(self.root, "_reports", "gx", write_id)

    def read_staged(self, run_id: str, table: str) -> pa.Table:
        """A table as a run staged it (published or not): what its gate audits."""
        doc = self.staged(run_id)
        if not doc or not doc.write:
            raise StageError(f"{self.root}: run {run_id} staged nothing")
        if doc.status == "published":
            return self.read(table, doc.version)
        return read_parquet(self.settings, Write.from_doc(self, doc.write).staging(table))

    def gc(self, keep: int = 3) -> list[str]:
        """Vacuum the tables; delete checkpoints and reports that neither a kept or pinned version nor
        a waiting write names, and staged entries older than the retention."""
        removed = [f"{t}/{f}" for t, files in self.vacuum(keep).items() for f in files]
        latest = self.primary.version()
        versions = set() if latest is None else set(range(max(0, latest - keep + 1), latest + 1))
        versions |= {p["versions"]["state"] for p in self.pins().values() if "state" in p.get("versions", {})}
        live = set(self.waiting())
        live |= {m.write_id for m in map(self.primary.manifest, versions) if m and m.write_id}
        for folder in ("_checkpoint", "_reports/gx"):
            for write_id in self.store.list_dirs(join(self.root, folder)):
                if write_id not in live:
                    self.store.delete_prefix(join(self.root, folder, write_id))
                    removed.append(f"{folder}/{write_id}")
        cutoff = utcnow().timestamp() - RETENTION_HOURS * 3600
        for doc in self.all_staged():
            if _ts(doc.staged_at) < cutoff:
                self.store.delete(self._staged_uri(doc.run_id))
        return removed


def silver_dataset(settings: Settings, store: Store | None = None) -> SilverDataset:
    return SilverDataset(settings, "silver", SILVER_TABLES, store)
