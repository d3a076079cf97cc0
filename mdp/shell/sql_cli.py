"""`mdp sql`: query the lake's layers by name (mdp.core.catalog), at their published or an older version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdp.core.errors import ConfigError
from mdp.shell.cli_common import Profile, fail, settings_or_exit

console = Console()


def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="SQL over bronze, silver.state, silver.quarantine, gold.features, gold.<scores>"),
    ] = None,
    profile: Profile = None,
    tables: Annotated[bool, typer.Option("--tables", help="list the tables and their current versions")] = False,
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of", help="VERSION of the one versioned table the query reads, or TABLE=VERSION; repeatable"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the whole result to FILE.csv or FILE.parquet")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="rows shown on the terminal")] = 50,
) -> None:
    """Query the lake with SQL (DuckDB): every layer by name, at any kept version."""
    from mdp.core import catalog

    settings = settings_or_exit(profile)
    try:
        if tables:
            listing = Table(title=f"lake tables ({settings.lake_base})")
            for c in ("table", "version"):
                listing.add_column(c)
            for name in catalog.table_names(settings):
                version = catalog.current_version(settings, name)
                listing.add_row(name, "not published" if version is None else str(version))
            console.print(listing)
            return
        if not query:
            raise ConfigError("give a query (mdp sql 'select count(*) from silver.state'), or --tables")
        if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
            raise ConfigError(f"--out {out}: a .csv or .parquet file, please")
        result = catalog.query(settings, query, as_of)
    except Exception as exc:
        raise fail(exc) from None
    if out is not None:
        if out.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(result, out)
        else:
            import pyarrow.parquet as pq

            pq.write_table(result, out)
        console.print(f"{result.num_rows} rows written to {out}")
        return
    shown = Table()
    for name in result.column_names:
        shown.add_column(name)
    for row in result.slice(0, max_rows).to_pylist():
        shown.add_row(*["NULL" if v is None else str(v) for v in row.values()])
    console.print(shown)
    more = result.num_rows - max_rows
    console.print(f"{result.num_rows} rows" + (f" ({more} not shown: --max-rows, or --out FILE)" if more > 0 else ""))
