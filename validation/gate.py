"""The quality gate: GX validates the staged Silver; only a passing version is published.

Write-audit-publish: bronze_to_silver stages a new Silver version, this stage audits it and
moves the `_CURRENT` pointer. On failure the pointer stays put, so Gold, the model and every
reader keep the last good Silver, and the error names the failed expectations and the Data Docs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import pyarrow as pa  # noqa: E402

from mdp.core.context import GateFailed, RunContext, StageError  # noqa: E402
from mdp.core.contract import Contract, load_contract  # noqa: E402
from mdp.core.lake import read_parquet, silver_dataset  # noqa: E402
from mdp.core.storage import Store, join  # noqa: E402
from validation.suite import batch_suite, silver_suite  # noqa: E402

ARROW_TYPES = {"string": pa.string(), "int": pa.int32(), "double": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}


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


def validate_frames(frames: dict, contract: Contract, docs_dir: str, now: datetime | None = None) -> tuple[bool, list[dict]]:
    """Run the contract's suites on pandas frames ({'silver': df, 'batch': df}). Returns (success, failures)."""
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    ctx.add_data_docs_site(
        site_name="lake",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = ctx.data_sources.add_pandas(name="lake")
    suites = {"silver": silver_suite(contract, now), "batch": batch_suite(contract, now)}
    failures, success = [], True
    for table, df in frames.items():
        batch_def = source.add_dataframe_asset(name=f"{contract.entity}_{table}").add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(suites[table])
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{table}_vd", data=batch_def, suite=suite))
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"{table}_gate",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["lake"])],
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": df})
        success &= result.success
        for vr in result.run_results.values():
            Path(docs_dir, f"{table}_result.json").write_text(json.dumps(vr.to_json_dict(), indent=1, default=str))
            for r in vr.results:
                if not r.success:
                    failures.append(
                        {
                            "table": table,
                            "expectation": r.expectation_config.type,
                            "column": r.expectation_config.kwargs.get("column"),
                            "unexpected_percent": r.result.get("unexpected_percent"),
                            "sample": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:3]],
                        }
                    )
    return success, failures


def _upload_dir(store: Store, local: str, uri: str) -> None:
    for path in Path(local).rglob("*"):
        if path.is_file():
            store.put_bytes(join(uri, str(path.relative_to(local))), path.read_bytes())


def describe(failures: list[dict]) -> str:
    return "\n".join(
        f"  - {f['table']}: {f['expectation']}({f['column'] or ''}) "
        f"{(f['unexpected_percent'] or 0):.1f}% unexpected, e.g. {f['sample']}"
        for f in failures
    )


def run(ctx: RunContext) -> dict:
    contract = load_contract()
    silver = silver_dataset(ctx.settings, ctx.store)
    staged = silver.staged()
    if not staged:
        current = silver.current()
        if current:  # nothing new was staged: the published version stands
            return {"validated_version": current["version"], "published": False}
        raise StageError("nothing staged in Silver: run bronze_to_silver first")
    version = staged["version"]
    customers = read_parquet(ctx.settings, silver.table_uri("customers", version))
    batch = read_parquet(ctx.settings, silver.table_uri("batch", version))
    report_uri = join(silver.root, "_reports", "gx", version)
    with tempfile.TemporaryDirectory(prefix="mdp-gx-") as docs:
        mismatches = schema_mismatches(customers.schema, contract)
        success, failures = validate_frames(
            {"silver": customers.to_pandas(), "batch": batch.to_pandas()}, contract, docs
        )
        failures += [{"table": "silver", "expectation": "schema", "column": m, "unexpected_percent": 100.0, "sample": []} for m in mismatches]
        success = success and not mismatches
        summary = {"version": version, "success": success, "failures": failures, "validated_at": datetime.now(UTC).isoformat()}
        Path(docs, "summary.json").write_text(json.dumps(summary, indent=1))
        _upload_dir(ctx.store, docs, report_uri)
    docs_index = join(report_uri, "index.html")
    if not success:
        silver.discard_staged()
        raise GateFailed(
            f"GX validation failed for Silver version {version}; Silver, Gold and the model are unchanged.\n"
            f"Failed expectations:\n{describe(failures)}\nData Docs: {docs_index}"
        )
    published = silver.promote_staged()
    logging.getLogger(__name__).info("published Silver %s", version)
    return {
        "validated_version": version,
        "published": True,
        "silver_rows": customers.num_rows,
        "data_docs": docs_index,
        **{k: published.get(k) for k in ("bronze_in",)},
    }
