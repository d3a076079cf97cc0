"""Ad hoc scoring (`mdp score`): some entities of the current Gold, or feature rows from a file, scored
by the champion in this process (pandas: these are a handful of rows, not a table)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from mdp.core.errors import ConfigError, StageError
from mdp.core.tables import gold_dataset, scores_dataset
from scoring import champion
from scoring.champion import SCORE
from training.model import feature_names


def _where_key_in(key: str, values: list[str]):
    import pyarrow.dataset as ds

    return ds.field(key).isin(values)


def gold_rows(settings, keys: list[str]) -> tuple[int, pd.DataFrame]:
    """(snapshot, the Gold rows of these keys) from the current snapshot."""
    contract = settings.data_contract
    current = gold_dataset(settings).current()
    if not current:
        raise StageError("no Gold snapshot: run the pipeline (silver_to_gold) first")
    table = gold_dataset(settings).read("features", current.version)
    rows = table.filter(_where_key_in(contract.primary_key, keys)).to_pandas()
    missing = sorted(set(keys) - set(rows[contract.primary_key]))
    if missing:
        raise StageError(
            f"{contract.primary_key} {missing} not in Gold snapshot {current.version} "
            f"({current.rows} {contract.entity}; a deleted entity leaves Gold)"
        )
    return current.version, rows


def batch_scores(settings, keys: list[str]) -> pd.DataFrame | None:
    """The published batch scores of these keys (None before the first score_customers)."""
    contract = settings.data_contract
    dataset = scores_dataset(settings)
    current = dataset.current()
    if not current:
        return None
    table = dataset.read(version=current.version)
    return table.filter(_where_key_in(contract.primary_key, keys)).to_pandas()


def read_rows(path: Path, contract) -> pd.DataFrame:
    """Feature rows from a CSV or Parquet file; every feature the contract names must be a column."""
    if not path.exists():
        raise ConfigError(f"--file: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows = pd.read_parquet(path)
    elif suffix in (".csv", ".txt"):
        rows = pd.read_csv(path, dtype={contract.primary_key: str})
    else:
        raise ConfigError(f"--file {str(path)!r}: a .csv or .parquet file, please")
    missing = [c for c in feature_names(contract) if c not in rows.columns]
    if missing:
        raise ConfigError(
            f"--file {str(path)!r} lacks the features {missing} (the contract's features: {feature_names(contract)})"
        )
    return rows


def score_rows(settings, rows: pd.DataFrame) -> tuple[champion.ChampionRef, pd.DataFrame]:
    """The champion's score of every row, beside its key when the rows carry one."""
    contract = settings.data_contract
    ref = champion.require(settings)
    local = champion.download(settings, ref)
    try:
        champion.check_inputs(local, ref, contract, list(rows.columns))
        model = champion.load(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    scores = champion.score_frame(model, rows.reset_index(drop=True), contract)
    out = pd.DataFrame({SCORE: scores})
    if contract.primary_key in rows.columns:
        out.insert(0, contract.primary_key, rows[contract.primary_key].to_numpy())
    return ref, out
