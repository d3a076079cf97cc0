"""The quality gate: GX validates what a run staged; only a passing version is published.

Write-audit-publish: bronze_to_silver stages a Silver write under its run id (files outside the
Delta logs), this stage audits exactly those files and publishes them as one Delta commit per table
(it fails if Silver moved since the write began). On failure the write is marked rejected and
never enters a log, so Gold, the model and every reader keep the last good Silver;
the error names the failed expectations, the contract thresholds they enforce, the records behind
them, how to go on, and the Data Docs. Running the gate again for the same run (while its staged
entry is kept: mdp.core.lake.STAGED_TTL) gives the same answer: a rejected run stays rejected, a
published one reports published, also when the earlier attempt died after its commit (the
write's Delta `txn`; tests/pipeline/test_edges_deletes_and_retries.py). Clearing a task in Airflow cannot drop a batch.

Its cost follows the new data: it reads the run's batch and the rows the run changed, never the
whole table; whole-table facts come from the manifest bronze_to_silver wrote.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    import great_expectations as gx

from mdp.core.context import RunContext
from mdp.core.contract import Contract
from mdp.core.errors import GateFailed, StageError
from mdp.core.lake import arrow_filesystem, read_parquet
from mdp.core.storage import Store, join
from mdp.core.tables import Write, silver_dataset

log = logging.getLogger(__name__)
ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


def schema_mismatches(schema: pa.Schema, contract: Contract) -> list[str]:
    out = []
    for c in contract.columns:
        if c.name not in schema.names:
            out.append(f"{c.name}: missing")
            continue
        actual = schema.field(c.name).type
        ok = pa.types.is_timestamp(actual) if c.type == "timestamp" else actual == ARROW_TYPES[c.type]
        if not ok:
            out.append(f"{c.name}: {actual} is not {c.type}")
    return out


def by_condition(df: pd.DataFrame, suite: gx.ExpectationSuite) -> list[tuple[str, pd.DataFrame, gx.ExpectationSuite]]:
    """The suite split by row condition, each part over its rows filtered once. GX's pandas engine
    applies a row_condition (`df.query`) again for every metric of every expectation: on a batch of
    millions that copy dominated the gate. Same rows, same expectations, same answers."""
    import great_expectations as gx

    parts: dict[str | None, list] = {}
    columns: dict[str | None, set] = {}
    for e in suite.expectations:
        fields = {k: v for k, v in e.dict().items() if v is not None and k not in ("id", "notes", "description")}
        rc = fields.pop("row_condition", None)
        condition = rc.get("pass_through_filter") if isinstance(rc, dict) else rc
        if condition:
            fields.pop("condition_parser", None)
            e = type(e)(**fields)
        parts.setdefault(condition, []).append(e)
        columns.setdefault(condition, set()).update(
            v for k, v in fields.items() if k in ("column", "column_A", "column_B")
        )
    out = []
    for condition, exps in parts.items():
        name = suite.name if condition is None else f"{suite.name} where {condition}"
        # A filtered part keeps only the columns its expectations read: GX copies the frame per metric.
        rows = (
            df
            if condition is None
            else df.loc[df.eval(condition, parser="pandas"), [c for c in df.columns if c in columns[condition]]]
        )
        out.append((name, rows, gx.ExpectationSuite(name=name, expectations=exps)))
    return out


def validate_frames(
    frames: dict[str, tuple[pd.DataFrame, gx.ExpectationSuite]], docs_dir: str, quick: frozenset[str] = frozenset()
) -> tuple[bool, list[dict]]:
    """Run each (frame, suite) pair through GX (one checkpoint per row condition in the suite, see
    by_condition); Data Docs and result JSON go to docs_dir. Failures name the table, not the part.
    `quick` tables (an hour of a catch-up: many small frames) are validated without a checkpoint or a
    Data Docs page, which cost more than their expectations; their results go to the JSON too."""
    import great_expectations as gx  # seconds of imports: paid only when there is something to validate
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory frame under 1 GB (an MD5 over hash_pandas_object of all rows),
    # a batch marker nothing here reads: 4-5 s per 2M-row frame on 2 cores. 0: no frame is hashed.
    pandas_execution_engine.HASH_THRESHOLD = 0

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}  # type: ignore[assignment]  # GX's validator reads it as a dict
    ctx.add_data_docs_site(
        site_name="lake",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = ctx.data_sources.add_pandas(name="lake")
    failures, success, definitions, batches, results = [], True, [], {}, []
    quick_def = source.add_dataframe_asset(name="quick").add_batch_definition_whole_dataframe("all") if quick else None
    for table, (df, suite) in frames.items():
        for i, (_name, rows, part) in enumerate(by_condition(df, suite)):
            if table in quick:
                assert quick_def is not None  # made above whenever `quick` names a table
                asset = re.sub(r"[^A-Za-z0-9_.-]+", "_", table) + (f"_{i}" if i else "")
                results.append((table, asset, quick_def.get_batch(batch_parameters={"dataframe": rows}).validate(part)))
                continue
            asset = table if i == 0 else f"{table}_{i}"
            batch_def = source.add_dataframe_asset(name=asset).add_batch_definition_whole_dataframe("all")
            part = ctx.suites.add(part)
            vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{asset}_vd", data=batch_def, suite=part))
            definitions.append((table, asset, vd))
            batches[asset] = rows
    for table, asset, vd in definitions:
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"{asset}_gate",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["lake"])],
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": batches[asset]})
        results += [(table, asset, vr) for vr in result.run_results.values()]
    for table, asset, vr in results:
        success &= vr.success
        Path(docs_dir, f"{asset}_result.json").write_text(json.dumps(vr.to_json_dict(), indent=1, default=str))
        for r in vr.results:
            if not r.success:
                cfg = r.expectation_config
                assert cfg is not None  # a result of a suite's run names its expectation
                failures.append(
                    {
                        "table": table,
                        "expectation": cfg.type,
                        "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_B"),
                        "threshold": (cfg.meta or {}).get("threshold"),
                        "limit": (cfg.meta or {}).get("limit"),
                        "small_batch": (cfg.meta or {}).get("small_batch"),
                        "unexpected_percent": r.result.get("unexpected_percent"),
                        "observed": r.result.get("observed_value"),
                        "sample": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:3]],
                    }
                )
    return success, failures


def _upload_dir(store: Store, local: str, uri: str) -> None:
    for path in Path(local).rglob("*"):
        if path.is_file():
            store.put_bytes(join(uri, str(path.relative_to(local))), path.read_bytes())


def describe(failures: list[dict]) -> str:
    lines = []
    for f in failures:
        what = f"{f['table']}: {f['expectation']}({f['column'] or ''})"
        if f.get("unexpected_percent") is not None:
            what += f" {f['unexpected_percent']:.1f}% unexpected"
        elif f.get("observed") is not None:
            what += f" observed {f['observed']}"
        if f.get("threshold"):
            what += f" > {f['threshold']} = {f['limit']}"
        if f.get("small_batch"):
            what += f" ({f['small_batch']})"
        if f.get("sample"):
            what += f", e.g. {f['sample']}"
        lines.append(f"  - {what}")
    return "\n".join(lines)


def records_behind(failures: list[dict], batch: pd.DataFrame, contract: Contract, limit: int = 3) -> str:
    """Quarantined records of the batch behind the failed share thresholds: event id, key, reason
    and ingest hour, so that one bad record that stops a run is named, not only counted."""
    if not len(batch):
        return ""
    bad = batch[batch["_quarantined"]]
    lines = []
    for f in failures:
        threshold = str(f.get("threshold") or "")
        if not threshold.startswith("quality.max_") or threshold == "quality.max_conflicting_duplicates":
            continue
        rows = bad
        if ", ingest hour " in f["table"]:
            day, hh = f["table"].rsplit(", ingest hour ", 1)[1].split("T")
            rows = rows[(rows["_ingest_date"] == day) & (rows["_ingest_hour"] == hh)]
        if f.get("column"):
            rows = rows[rows["_reason"].fillna("").str.endswith(f":{f['column']}")]
        for _, r in rows.head(limit).iterrows():
            line = (
                f"  - {contract.event_id}={r[contract.event_id]!r} {contract.primary_key}={r[contract.primary_key]!r} "
                f"reason={r['_reason']} ingest hour {r['_ingest_date']}T{r['_ingest_hour']} ({threshold})"
            )
            if line not in lines:
                lines.append(line)
    return "\n".join(lines)


HOW_TO_GO_ON = (
    "To go on: the records are in Silver's quarantine with their reasons and raw bytes. Fix the producer "
    "and send corrected events (a later event of a key wins), or, if this share is acceptable for this "
    "data, raise the named quality.* threshold in the contract (then `mdp contract check`) and run again; "
    "the next run reads the same Bronze objects with whatever else has landed."
)


def _schema(settings, uri: str) -> pa.Schema:
    import pyarrow.dataset as ds

    path = uri.removeprefix("file://").removeprefix("s3://")
    return ds.dataset(path, format="parquet", filesystem=arrow_filesystem(settings)).schema


def run(ctx: RunContext) -> dict:
    contract, settings = ctx.contract, ctx.settings
    silver = silver_dataset(settings, ctx.store)
    staged = silver.staged(ctx.run_id)
    if staged is None:
        raise StageError(f"nothing staged in Silver for run {ctx.run_id!r}: run bronze_to_silver for this run first")
    if staged.status == "rejected":  # the same data gets the same answer
        raise GateFailed((staged.rejection or {})["message"])
    if not staged.write:
        return {"validated_version": None, "published": False, "reason": "nothing new in Bronze", "nothing_new": True}
    if staged.status == "published":
        return {"validated_version": staged.version, "published": True, "silver_rows": staged.get("silver_rows")}
    write = Write.from_doc(silver, staged.write)
    version = write.write_id  # the staged write; its Delta version comes with the commit
    from validation.suite import (
        batch_suite,
        changes_suite,
        hour_suites,
        live_counts,
        rule_values,
        table_suite,
        with_future_limit,
    )

    # Both carry each row's ingest time: "future" is judged against it, as Spark judges it.
    batch = with_future_limit(read_parquet(settings, write.staging("batch")).to_pandas(), contract)
    changes = with_future_limit(read_parquet(settings, write.staging("changes")).to_pandas(), contract)
    published_before = silver.current()
    profile = published_before.profile if published_before else None
    facts = pd.DataFrame([{"rows": staged["profile"]["rows"], "keys": staged["profile"]["keys"]}])
    accepted = int((~batch["_quarantined"]).sum()) if len(batch) else 0
    parsed = int((~batch["_unparseable"]).sum()) if len(batch) else 0
    live_rows, live_keys = live_counts(contract, batch)  # drift leaves deletes out
    report_uri = silver.reports_uri(version)
    with tempfile.TemporaryDirectory(prefix="mdp-gx-") as docs:
        mismatches = schema_mismatches(_schema(settings, write.staging("state")), contract)
        # A catch-up: each share threshold per ingest hour too; a rebuild and a first run alike, so
        # that `--all` and a fresh run over the same Bronze give the same verdict. (A resend's bad
        # records are copies in the batch, as its good ones are: its hour is not left wholly bad.)
        hours = hour_suites(contract, batch)
        success, failures = validate_frames(
            {
                f"{contract.entity}_batch": (
                    batch,
                    batch_suite(
                        contract,
                        profile,
                        accepted,
                        rows=len(batch),
                        parsed_rows=parsed,
                        accepted_keys=live_keys,
                        live_rows=live_rows,
                        values=rule_values(contract, batch),
                    ),
                ),
                f"{contract.entity}_changes": (changes, changes_suite(contract)),
                f"{contract.entity}_table": (facts, table_suite(contract)),
                **hours,
            },
            docs,
            quick=frozenset(hours),
        )
        failures += [
            {"table": "state", "expectation": "schema", "column": m, "unexpected_percent": 100.0, "sample": []}
            for m in mismatches
        ]
        success = success and not mismatches
        summary = {
            "version": version,
            "run_id": ctx.run_id,
            "success": success,
            "failures": failures,
            "validated_at": datetime.now(UTC).isoformat(),
        }
        Path(docs, "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        _upload_dir(ctx.store, docs, report_uri)
    docs_index = join(report_uri, "index.html")
    if not success:
        behind = records_behind(failures, batch, contract)
        message = (
            f"GX validation failed for Silver write {version} (run {ctx.run_id}); Silver, Gold and the model "
            f"are unchanged, and the same Bronze objects will be read again by the next run.\n"
            f"Failed expectations:\n{describe(failures)}\n"
            + (f"Records behind them (up to 3 each):\n{behind}\n" if behind else "")
            + f"{HOW_TO_GO_ON}\nData Docs: {docs_index}"
        )
        silver.reject(ctx.run_id, {"message": message, "failures": failures, "data_docs": docs_index})
        raise GateFailed(message)
    with silver.lease(ctx.run_id):
        published = silver.publish(ctx.run_id)
        silver.gc()
    log.info("published Silver %s (write %s)", published.version, version)
    return {
        "validated_version": published.version,
        "published": True,
        "silver_rows": published.silver_rows,
        "changed": published.get("changed"),
        "data_docs": docs_index,
    }
