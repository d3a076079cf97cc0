"""Bundled example files for "bring your own data" (`mdp example NAME --rows N --out FILE`).

`subscribers`: a telecom-style churn table, shaped unlike the customers events on purpose:
- one row per account, keyed by `account_no` (an integer), with no event-time column;
- numbers that arrive as texts, some blank: `monthly_charges` (3% blank) and `total_charges`
  (blank for new accounts, as billing systems often leave it, plus 1%);
- a 0/1 integer flag (`paperless_billing`) and categorical texts with spaces and hyphens;
- a free-text contact column the model should not see (`email`);
- a string label, `churn`: "Yes" or "No".

The label is drawn from a logistic model of the features (churn_probability), so a classifier can
learn it and a constant one cannot. Seeded: the same (rows, seed) give the same bytes. Its curated
contract is mdp/core/contracts/subscribers.yaml.
"""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path

REGIONS = ("North", "South", "East", "West", "Central")
CONTRACT_TYPES = {"Month-to-month": 1.2, "One year": -0.3, "Two year": -1.5}
CONTRACT_WEIGHTS = (55, 25, 20)
INTERNET = {"DSL": (45.0, 0.0), "Fiber optic": (80.0, 0.6), "No internet": (22.0, -0.8)}  # base charge, effect
INTERNET_WEIGHTS = (35, 45, 20)
FIRST = (
    "ana",
    "ben",
    "chen",
    "dara",
    "eli",
    "fatima",
    "goran",
    "hana",
    "ivan",
    "jo",
    "kofi",
    "lena",
    "mei",
    "nils",
    "olu",
    "priya",
)
LAST = (
    "silva",
    "okafor",
    "nguyen",
    "novak",
    "smith",
    "kowalski",
    "haddad",
    "tanaka",
    "berg",
    "moreau",
    "rossi",
    "khan",
)
COLUMNS = (
    "account_no",
    "region",
    "contract_type",
    "internet_service",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "paperless_billing",
    "email",
    "churn",
)


def churn_probability(
    contract_type: str, internet: str, tenure: int, monthly: float, calls: int, paperless: int
) -> float:
    logit = (
        -1.3
        + CONTRACT_TYPES[contract_type]
        + INTERNET[internet][1]
        - 0.045 * tenure
        + 0.02 * (monthly - 60)
        + 0.4 * calls
        + 0.35 * paperless
    )
    return 1.0 / (1.0 + math.exp(-logit))


def subscribers_rows(n: int, seed: int = 42) -> list[dict[str, str]]:
    """n accounts as CSV cells (texts); a blank cell is ''."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        account = 100_001 + i
        contract_type = rng.choices(list(CONTRACT_TYPES), weights=CONTRACT_WEIGHTS)[0]
        internet = rng.choices(list(INTERNET), weights=INTERNET_WEIGHTS)[0]
        long_contract = contract_type != "Month-to-month"
        tenure = min(72, int(rng.expovariate(1 / (30 if long_contract else 14))))
        monthly = round(INTERNET[internet][0] + rng.uniform(0, 35), 2)
        calls = min(9, int(rng.expovariate(0.8)))
        paperless = int(rng.random() < 0.6)
        total = round(monthly * tenure * rng.uniform(0.95, 1.05), 2)
        churn = rng.random() < churn_probability(contract_type, internet, tenure, monthly, calls, paperless)
        rows.append(
            {
                "account_no": str(account),
                "region": rng.choice(REGIONS),
                "contract_type": contract_type,
                "internet_service": internet,
                "tenure_months": str(tenure),
                "monthly_charges": "" if rng.random() < 0.03 else f"{monthly:.2f}",
                "total_charges": "" if tenure == 0 or rng.random() < 0.01 else f"{total:.2f}",
                "support_calls": str(calls),
                "paperless_billing": str(paperless),
                "email": f"{rng.choice(FIRST)}.{rng.choice(LAST)}{account}@example.net",
                "churn": "Yes" if churn else "No",
            }
        )
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


EXAMPLES = {"subscribers": subscribers_rows}


def write_example(name: str, path: str | Path, rows: int, seed: int = 42) -> Path:
    """Write example `name` as a CSV file (a new file, or replace an old one whole)."""
    if name not in EXAMPLES:
        raise KeyError(f"no example {name!r}; examples are: {', '.join(EXAMPLES)}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_csv(EXAMPLES[name](rows, seed)))
    tmp.replace(path)
    return path
