"""Seeded synthetic customer events (Faker), in the exact JSON shape the `customers` topic carries.

This generator makes the bundled `customers` contract's events (FIELDS); land_bronze refuses it
for a contract without those columns (ingestion/land.py). Other data comes in through files
(`mdp ingest`, ingestion/file_source.py). Every event carries the customer's full state (snapshot-style change events). The churn label is
drawn from a logistic model of the customer's features, so a good classifier can learn it and a
constant one cannot. A configurable fraction of events is deliberately dirty.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from faker import Faker

from mdp.core.contract import load_contract

PLAN_EFFECT = {"free": 0.9, "basic": 0.3, "pro": -0.4, "enterprise": -1.1}
CONTRACT = "customers"  # the bundled contract whose events this generator makes
FIELDS = (
    "event_id",
    "event_type",
    "event_ts",
    "customer_id",
    "full_name",
    "email",
    "phone",
    "country",
    "age",
    "plan",
    "signup_date",
    "monthly_spend",
    "support_tickets",
    "last_login_date",
    "churned",
)
DIRTY_KINDS = (
    "unparseable_json",
    "truncated_json",
    "unknown_field",
    "null_customer_id",
    "null_email",
    "malformed_email",
    "age_out_of_range",
    "bad_plan",
    "bad_type_age",
    "future_event_ts",
    "duplicate_event",
    "conflicting_duplicate",
)


def churn_probability(
    plan: str, tenure_days: int, monthly_spend: float, tickets: int, days_idle: int, age: int
) -> float:
    logit = (
        -1.2
        + PLAN_EFFECT[plan]
        - 0.0015 * tenure_days
        - 0.008 * monthly_spend
        + 0.45 * tickets
        + 0.045 * days_idle
        - 0.01 * (age - 40)
    )
    return 1.0 / (1.0 + math.exp(-logit))


@dataclass(slots=True)
class Event:
    customer_id: str
    message: bytes
    dirty: str | None  # which kind of dirt, None for a clean event


class CustomerEventGenerator:
    def __init__(self, seed: int, hour: datetime, n_customers: int):
        # One RNG stream per (seed, hour): an hour regenerates identically, a new hour brings new events.
        self.hour = hour
        self.rng = random.Random(seed * 1_000_003 + int(hour.timestamp()) // 3600)
        self.fake = Faker("en_US")
        self.fake.seed_instance(self.rng.randrange(2**31))
        self.n_customers = max(1, n_customers)
        self.contract = load_contract(CONTRACT)
        countries, plans = self.contract.column("country").allowed, self.contract.column("plan").allowed
        assert countries and plans  # the bundled customers contract lists both
        self.countries, self.plans = countries, plans
        self._seen: set[int] = set()
        self._profiles: dict[int, dict] = {}
        self._last_events: list[dict] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _profile(self, idx: int) -> dict:
        if idx not in self._profiles:
            first, last = self.fake.first_name(), self.fake.last_name()
            user = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
            self._profiles[idx] = {
                "full_name": f"{first} {last}",
                "email": f"{user}{idx}@{self.fake.free_email_domain()}",
                "country": self.rng.choice(self.countries),
                "age": self.rng.randint(18, 85),
                "signup_date": date(2019, 1, 1)
                + timedelta(days=self.rng.randint(0, (self.hour.date() - date(2019, 1, 1)).days)),
            }
        return self._profiles[idx]

    def _clean_event(self, i: int, n: int) -> dict:
        idx = self.rng.randrange(self.n_customers)
        p = self._profile(idx)
        event_ts = self.hour + timedelta(seconds=3600 * i / n)
        plan = self.rng.choices(self.plans, weights=(40, 30, 20, 10))[0]
        tenure = (event_ts.date() - p["signup_date"]).days
        spend = round({"free": 0, "basic": 19, "pro": 59, "enterprise": 249}[plan] + self.rng.uniform(0, 60), 2)
        tickets = min(12, int(self.rng.expovariate(0.6)))
        idle = min(tenure, int(self.rng.expovariate(1 / 12)))
        churned = self.rng.random() < churn_probability(plan, tenure, spend, tickets, idle, p["age"])
        event = {
            "event_id": self._uuid(),
            "event_type": "customer_updated" if idx in self._seen else "customer_created",
            "event_ts": event_ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "customer_id": f"C{idx:07d}",
            "full_name": p["full_name"],
            "email": p["email"],
            "phone": f"+{self.rng.randint(1, 99)} {self.rng.randint(100, 999)} {self.rng.randint(1000000, 9999999)}",
            "country": p["country"],
            "age": p["age"],
            "plan": plan,
            "signup_date": p["signup_date"].isoformat(),
            "monthly_spend": spend,
            "support_tickets": tickets,
            "last_login_date": (event_ts.date() - timedelta(days=idle)).isoformat(),
            "churned": churned,
        }
        self._seen.add(idx)
        # Sources are messy but fixable: Silver normalises case and whitespace.
        if self.rng.random() < 0.05:
            event["email"] = f"  {event['email'].upper()} "
            event["country"] = event["country"].lower()
            event["plan"] = f" {plan.title()}"
        return event

    def _dirty(self, kind: str, event: dict) -> dict | str:
        if kind == "unparseable_json":
            return "{not json: " + event["customer_id"]
        if kind == "truncated_json":
            return json.dumps(event)[: self.rng.randint(1, 40)]
        if kind == "unknown_field":
            event["loyalty_tier"] = "gold"
        elif kind == "null_customer_id":
            event["customer_id"] = None
        elif kind == "null_email":
            event["email"] = None
        elif kind == "malformed_email":
            event["email"] = event["email"].replace("@", " at ")
        elif kind == "age_out_of_range":
            event["age"] = self.rng.choice([-3, 7, 130, 999])
        elif kind == "bad_plan":
            event["plan"] = "platinum"
        elif kind == "bad_type_age":
            event["age"] = "forty"
        elif kind == "future_event_ts":
            event["event_ts"] = (self.hour + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind in ("duplicate_event", "conflicting_duplicate") and self._last_events:
            prior = dict(self.rng.choice(self._last_events[-50:]))
            if kind == "conflicting_duplicate":
                prior["monthly_spend"] = round(prior["monthly_spend"] + 1, 2)
            return prior
        return event

    def events(self, n: int, dirty_fraction: float) -> Iterator[Event]:
        for i in range(n):
            event = self._clean_event(i, n)
            kind = self.rng.choice(DIRTY_KINDS) if self.rng.random() < dirty_fraction else None
            body = self._dirty(kind, event) if kind else event
            if kind is None:
                self._last_events.append(event)
                if len(self._last_events) > 200:
                    del self._last_events[:100]
            text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
            cid = body.get("customer_id") if isinstance(body, dict) else None
            yield Event(customer_id=cid or "", message=text.encode(), dirty=kind)


def generate_hour(seed: int, hour: datetime, n_events: int, dirty_fraction: float) -> list[Event]:
    gen = CustomerEventGenerator(seed, hour, n_customers=max(1, n_events // 4))
    return list(gen.events(n_events, dirty_fraction))


def ingest_time(hour: datetime, i: int, n: int) -> datetime:
    """Deterministic ingest timestamps spread over the hour, so reruns write identical Bronze."""
    return hour.astimezone(UTC) + timedelta(microseconds=int(3_600_000_000 * i / max(n, 1)))
