"""Gold snapshots for the training tests, written straight into a lake (no Spark), and one training.

`synthetic_gold` draws customers the way the generator does and labels them with its churn model,
so a good classifier reaches a ROC AUC well above 0.5. `shuffle_training_features` breaks the link
between features and label on the training rows only: the split (which depends on the keys alone)
and the held-out rows stay exactly the same, so a model trained on it is deliberately worse on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.generator import PLAN_EFFECT, churn_probability
from mdp.core.context import RunContext
from mdp.core.lake import Interval
from mdp.core.tables import gold_dataset
from training.model import split

HOUR = datetime(2026, 1, 5, 0, tzinfo=UTC)
FEATURES = [
    "country",
    "age",
    "plan",
    "monthly_spend",
    "support_tickets",
    "tenure_days",
    "days_since_last_login",
    "has_phone",
]


def synthetic_gold(n: int, seed: int = 0, extra: dict | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plans = np.array(list(PLAN_EFFECT))
    plan = rng.choice(plans, n, p=[0.4, 0.3, 0.2, 0.1])
    age = rng.integers(18, 86, n)
    tenure = rng.integers(0, 2500, n)
    spend = np.round(
        np.vectorize({"free": 0, "basic": 19, "pro": 59, "enterprise": 249}.get)(plan) + rng.uniform(0, 60, n), 2
    )
    tickets = np.minimum(12, rng.exponential(1 / 0.6, n).astype(int))
    idle = np.minimum(tenure, rng.exponential(12, n).astype(int))
    p = np.array([churn_probability(*args) for args in zip(plan, tenure, spend, tickets, idle, age, strict=False)])
    gold = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "country": rng.choice(["DE", "FR", "GB", "US"], n),
            "age": age.astype("int32"),
            "plan": plan,
            "monthly_spend": spend,
            "support_tickets": tickets.astype("int32"),
            "tenure_days": tenure.astype("int32"),
            "days_since_last_login": idle.astype("int32"),
            "has_phone": rng.random(n) < 0.8,
            "churned": (rng.random(n) < p).astype("int32"),
            "as_of": pd.Timestamp(HOUR),
        }
    )
    for name, values in (extra or {}).items():
        gold.insert(len(gold.columns) - 2, name, values)
    return gold


def shuffle_training_features(gold: pd.DataFrame, contract) -> pd.DataFrame:
    """The same Gold, with the feature values of the training rows permuted among those rows."""
    X_train, _, _, _ = split(gold, contract)
    rows = gold.sort_values(contract.primary_key).reset_index(drop=True)
    train = np.sort(X_train.index.to_numpy())
    perm = np.random.default_rng(1).permutation(train)
    out = rows.copy()
    for col in FEATURES:
        out.loc[train, col] = rows.loc[perm, col].to_numpy()
    return out


def publish_gold(settings, gold: pd.DataFrame) -> int:
    """Write `gold` as a new Gold snapshot and make it current, as silver_to_gold does."""
    dataset = gold_dataset(settings)
    write = dataset.begin("test")
    path = Path(write.staging("features").removeprefix("file://"))
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(gold, preserve_index=False), path / "part-0.parquet")
    based_on = write.based_on["features"]
    snapshot = 0 if based_on is None else based_on + 1
    assert write.commit({"silver_version": f"silver-for-{snapshot}", "rows": len(gold)}) == snapshot
    return snapshot


def train(settings) -> dict:
    """One train_model stage, through its real entry point."""
    from training.train import run

    return run(RunContext(settings, Interval.hour_of(HOUR)))
