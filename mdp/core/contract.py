"""The data contract, loaded once and typed. Everything schema-shaped derives from here.

A contract names an entity (its lake tables, its Kafka topic, its model), the envelope every
message carries (event id, optional event time, type and tombstone marker), the entity's columns
with their rules and feature roles, derived features, the label, and the quality gate's
thresholds. A bad contract fails on load with the offending key named.
"""

from __future__ import annotations

import os
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mdp.core.errors import ConfigError

CONTRACTS_DIR = Path(__file__).with_name("contracts")
ColumnType = Literal["string", "int", "double", "boolean", "date", "timestamp"]
Normaliser = Literal["trim", "lower", "upper"]
FeatureRole = Literal["numeric", "categorical", "boolean", "identifier", "excluded"]
Impute = Literal["median", "mean", "most_frequent", "zero"]
NUMERIC_TYPES = ("int", "double")

# Reason codes that are not column rules.
UNPARSEABLE = "unparseable_json"
UNKNOWN_FIELD = "unknown_field"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Column(_Strict):
    name: str
    type: ColumnType
    nullable: bool = True
    normalise: list[Normaliser] = Field(default_factory=list)
    regex: str | None = None  # full-match semantics: the whole value must match, in every engine
    allowed: list[str] | None = None
    min: float | date | None = None
    max: float | date | None = None
    not_future: bool = False
    feature: FeatureRole | None = None  # None: chosen from the type (see Contract.feature_role)
    impute: Impute | None = None  # how the model fills a missing value (None: median / most frequent)


class Derived(_Strict):
    """A Gold feature computed from columns, relative to the snapshot's as-of time."""

    name: str
    kind: Literal["days_since", "is_present"]
    column: str
    fallback: str | None = None  # days_since: the column used when `column` is null
    feature: FeatureRole = "numeric"
    impute: Impute | None = None


class Label(_Strict):
    column: str
    positive: bool | int | str = True  # the value that means "positive class" (after normalisers)


class Tombstone(_Strict):
    """An event whose `column` equals `value` deletes the entity: kept in Silver, dropped from Gold."""

    column: str
    value: str


class PostgresSource(_Strict):
    """The optional Postgres source table that follows this contract (its DDL derives from it)."""

    table: str | None = None  # default: the entity
    watermark_column: str = "updated_at"  # set by a trigger on every write; becomes the event time


class Drift(_Strict):
    """Batch against published Silver, per column. Checked only when both have `min_rows` rows.

    Null share: the batch's may exceed Silver's by `max_null_share_increase`. Distinct values: only
    for free-text string columns other than the key (no `allowed` set: emails, names, phones), per
    key: the batch's distinct values over its distinct keys must be at least `min_distinct_ratio` x
    Silver's (Silver holds one row per key). That holds whatever the table's size and however many
    events a key has in the batch (a day's catch-up). Numbers, dates, booleans and enumerations are
    not judged by their distinct count: a batch of new accounts all at tenure 0 is legitimate.
    Deletes are left out on both sides (a delete need not carry the entity's fields)."""

    max_null_share_increase: float = Field(default=0.3, ge=0, le=1)
    min_distinct_ratio: float = Field(default=0.1, ge=0, le=1)
    min_rows: int = Field(default=1000, ge=1)


class Quality(_Strict):
    """The gate's thresholds, each a share of the run's distinct deliveries (exact copies removed).

    A batch (or an ingest hour) smaller than `min_batch_rows` is judged by counts: each threshold
    allows the rows it would allow in a batch of `min_batch_rows` (10% of 200: 20 rows), never
    fewer than its share. So a late bad record alone in its hour does not stop the line, and 21 bad
    emails in a batch of 30 still do. A threshold of 0 stays strict at any size."""

    max_quarantined: float = Field(default=0.10, ge=0, le=1)  # all reasons together
    max_unparseable: float = Field(default=0.05, ge=0, le=1)  # not a JSON object / not UTF-8
    max_unknown_fields: float = Field(default=0.05, ge=0, le=1)  # a field the contract does not name
    max_bad_type: float = Field(default=0.05, ge=0, le=1)  # a value that does not cast to its type
    max_per_rule: float = Field(default=0.10, ge=0, le=1)  # any one other rule (missing, format, set, range)
    max_conflicting_duplicates: float = Field(default=0.01, ge=0, le=1)  # one event id, two contents
    min_batch_rows: int = Field(default=200, ge=1)  # below this, shares become counts (see above)
    drift: Drift = Field(default_factory=Drift)


class Rule(BaseModel):
    """One row-level check. `code` is the quarantine reason; `kind` maps to one GX expectation."""

    code: str
    kind: Literal["not_null", "type", "regex", "in_set", "between", "not_future"]
    column: str

    @property
    def threshold(self) -> str:
        """The Quality field that bounds this rule's share of a batch."""
        return "max_bad_type" if self.kind == "type" else "max_per_rule"


class Contract(_Strict):
    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int
    primary_key: str
    event_id: str
    event_time: str | None = None  # None: the ingest time orders the state
    event_type: str | None = None
    tombstone: Tombstone | None = None
    label: Label
    model_name: str | None = None  # default: <entity>-<label column>
    unknown_fields: Literal["quarantine", "ignore"] = "quarantine"
    max_future_skew_hours: int = 24
    quality: Quality = Field(default_factory=Quality)
    postgres: PostgresSource = Field(default_factory=PostgresSource)
    columns: list[Column]
    derived: list[Derived] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "max_bad_fraction" in data:
                raise ValueError(
                    "max_bad_fraction: replaced by quality.max_per_rule (and the other quality.* thresholds)"
                )
            if isinstance(data.get("label"), str):
                data = {**data, "label": {"column": data["label"]}}
        return data

    @model_validator(mode="after")
    def _check_names(self) -> Contract:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns: duplicate names {dupes}")
        for key in ("primary_key", "event_id", "event_time", "event_type"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ValueError(f"{key}: {value!r} is not a declared column")
        # The key and the event id identify a row and an event: never null, as a SQL PRIMARY KEY
        # implies NOT NULL. Left out, `nullable` means false for them; stated true, it is refused.
        for key in ("primary_key", "event_id"):
            c = self.column(getattr(self, key))
            if c.nullable and "nullable" in c.model_fields_set:
                raise ValueError(
                    f"columns.{c.name}.nullable: the {key} cannot be nullable (a null {key} identifies nothing)"
                )
            c.nullable = False
        if self.label.column not in names:
            raise ValueError(f"label.column: {self.label.column!r} is not a declared column")
        if self.tombstone and self.tombstone.column not in names:
            raise ValueError(f"tombstone.column: {self.tombstone.column!r} is not a declared column")
        for c in self.columns:
            if c.feature == "numeric" and c.type not in NUMERIC_TYPES:
                raise ValueError(f"columns.{c.name}.feature: numeric needs type int or double, not {c.type}")
            if c.allowed is not None and c.type != "string":
                raise ValueError(f"columns.{c.name}.allowed: only for string columns")
            if c.feature == "boolean" and c.type not in ("boolean", "int"):
                raise ValueError(
                    f"columns.{c.name}.feature: boolean needs type boolean or int (a 0/1 flag), not {c.type}"
                )
            if c.regex is not None:
                problem = regex_problem(c.regex)
                if problem:
                    raise ValueError(f"columns.{c.name}.regex: {problem}")
        derived_names = [d.name for d in self.derived]
        for d in self.derived:
            if d.name in names or derived_names.count(d.name) > 1:
                raise ValueError(f"derived.{d.name}: the name is already used")
            for ref in (d.column, d.fallback):
                if ref is not None and ref not in names:
                    raise ValueError(f"derived.{d.name}: {ref!r} is not a declared column")
            if d.kind == "days_since" and self.column(d.column).type not in ("date", "timestamp"):
                raise ValueError(f"derived.{d.name}: days_since needs a date or timestamp column")
            if d.fallback and self.column(d.fallback).type not in ("date", "timestamp"):
                raise ValueError(f"derived.{d.name}.fallback: needs a date or timestamp column")
            if d.feature not in ("numeric", "excluded") and not (d.kind == "is_present" and d.feature == "boolean"):
                raise ValueError(
                    f"derived.{d.name}.feature: {d.kind} gives a numeric feature (is_present may be boolean)"
                )
        for name, role, impute in self.features():  # the model fills gaps; the strategy must fit the role
            if impute in ("median", "mean") and role != "numeric" or impute == "zero" and role == "categorical":
                where = "derived" if name in derived_names else "columns"
                raise ValueError(f"{where}.{name}.impute: {impute} does not fit a {role} feature")
        label_type = self.column(self.label.column).type
        positive = self.label.positive
        ok = {
            "boolean": isinstance(positive, bool),
            "int": isinstance(positive, int) and not isinstance(positive, bool),
            "string": isinstance(positive, str),
        }.get(label_type, False)
        if not ok:
            raise ValueError(f"label.positive: {positive!r} does not fit the {label_type} column {self.label.column!r}")
        return self

    # ---- names ------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"contract {self.entity}: no column {name!r}")

    @property
    def envelope(self) -> list[str]:
        """The event's own fields (not the entity's state)."""
        return [n for n in (self.event_id, self.event_time, self.event_type) if n]

    @property
    def tombstone_may_omit(self) -> set[str]:
        """Required columns a delete need not carry: all but the key, the envelope and the
        tombstone column. A delete of only those is a delete, not a record missing its fields."""
        if not self.tombstone:
            return set()
        return {c.name for c in self.columns if c.name not in {self.primary_key, *self.envelope, self.tombstone.column}}

    @property
    def state_columns(self) -> list[Column]:
        """The columns an entity row holds: everything but the envelope."""
        return [c for c in self.columns if c.name not in self.envelope]

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything in the contract changes (Gold is rebuilt when it does)."""
        import hashlib

        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    # What does not shape Silver: read only by the gate, Gold, the model, the Postgres source and
    # the scores. Everything else does, so a field added to the contract is in the fingerprint
    # unless it is named here (tests/core/test_contract.py checks that each field is one or the other).
    NOT_SILVER: ClassVar[frozenset[str]] = frozenset(
        {"version", "label", "model_name", "quality", "postgres", "derived"}
    )
    NOT_SILVER_COLUMN: ClassVar[frozenset[str]] = frozenset({"feature", "impute"})

    @property
    def silver_fingerprint(self) -> str:
        """Changes when what Silver holds for the same Bronze could change: every field that parsing
        and the merge read (the columns with their types, normalisers and rules, the key, the event
        id, time and type, the tombstone, unknown fields, the future skew), i.e. all but NOT_SILVER.
        A backfill under another one rebuilds Silver (spark_apps/bronze_to_silver.py)."""
        import hashlib
        import json

        shaping = self.model_dump(exclude={*self.NOT_SILVER, "columns"})
        shaping["columns"] = [c.model_dump(exclude=set(self.NOT_SILVER_COLUMN)) for c in self.columns]
        return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def source_table(self) -> str:
        return self.postgres.table or self.entity

    @property
    def registered_model(self) -> str:
        return self.model_name or f"{self.entity}-{self.label.column}"

    @property
    def scores_name(self) -> str:
        """The champion's scores in the lake: the model's name past the entity ('customers-churn' -> 'churn_scores')."""
        stem = re.sub(r"[^a-z0-9]+", "_", self.registered_model.lower().removeprefix(f"{self.entity}-")).strip("_")
        return f"{stem or self.label.column}_scores"

    @property
    def scores_table(self) -> str:
        """The scores' Postgres table: one entity per row ('customers' -> 'customer_churn_scores')."""
        one = self.entity[:-1] if self.entity.endswith("s") and not self.entity.endswith("ss") else self.entity
        return f"{one}_{self.scores_name}"

    # ---- features -----------------------------------------------------------------------------------
    def feature_role(self, c: Column) -> FeatureRole:
        """The column's role in Gold and the model: stated, or chosen from its type."""
        if c.name == self.primary_key:
            return "identifier"
        if c.name in self.envelope or c.name == self.label.column:
            return "excluded"
        if c.feature:
            return c.feature
        if c.type in NUMERIC_TYPES:
            return "numeric"
        if c.type == "boolean":
            return "boolean"
        if c.type == "string" and c.allowed:
            return "categorical"
        return "excluded"

    def features(self) -> list[tuple[str, FeatureRole, Impute | None]]:
        """(name, role, impute) of every model input, columns first then derived, in contract order."""
        out = [(c.name, self.feature_role(c), c.impute) for c in self.columns]
        out += [(d.name, d.feature, d.impute) for d in self.derived]
        return [(n, r, i) for n, r, i in out if r in ("numeric", "categorical", "boolean")]

    def features_by_role(self, role: FeatureRole) -> list[str]:
        return [n for n, r, _ in self.features() if r == role]

    # ---- rules ----------------------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        """Row-level rules in evaluation order; the first failing one is a row's primary reason."""
        out: list[Rule] = []
        for c in self.columns:
            if not c.nullable:
                out.append(Rule(code=f"missing:{c.name}", kind="not_null", column=c.name))
            # Every column has a type rule: a text holding U+0000, a date beyond year 9999, a number
            # that does not cast (the engines' `_typed`: values every store downstream can hold).
            out.append(Rule(code=f"bad_type:{c.name}", kind="type", column=c.name))
            if c.regex:
                out.append(Rule(code=f"bad_format:{c.name}", kind="regex", column=c.name))
            if c.allowed:
                out.append(Rule(code=f"bad_value:{c.name}", kind="in_set", column=c.name))
            if c.min is not None or c.max is not None:
                out.append(Rule(code=f"out_of_range:{c.name}", kind="between", column=c.name))
            if c.not_future:
                out.append(Rule(code=f"future:{c.name}", kind="not_future", column=c.name))
        return out


def anchored(regex: str, engine: Literal["java", "python", "re2"]) -> str:
    """A contract regex with full-match semantics, written so that every engine agrees.

    A bare `$` differs between engines: Java matches it before a final line terminator (\\n, \\r,
    U+0085, U+2028...), Python before a final \\n only, RE2 only at the end. So the whole value must
    match and the end is absolute: \\z in Java and RE2, \\Z in Python.
    """
    end = {"java": r"\z", "python": r"\Z", "re2": r"\z"}[engine]
    return f"^(?:{regex}){end}"


# Python-only syntax that Java's java.util.regex (Spark's rlike) refuses. Java cannot be asked
# without a JVM, so this is an approximation: the constructs Python accepts and Java does not.
_PYTHON_ONLY = (
    (re.compile(r"\(\?P[<=>]"), "a Python named group (?P<name>...) / (?P=name); write (?<name>...) / \\k<name>"),
    (re.compile(r"\(\?#"), "an inline comment (?#...)"),
    (re.compile(r"\(\?\("), "a conditional group (?(id)yes|no)"),
    (re.compile(r"\(\?[imsux]*[aL][a-zA-Z]*[:)]"), "the Python-only flag a or L"),
)


def regex_problem(regex: str) -> str | None:
    """Why a contract regex would not compile in both engines it runs in, or None.

    Spark checks it with Java's regex (`anchored(..., "java")`), the gate's GX pandas suite with
    Python's `re` (`anchored(..., "python")`). Python is compiled here; Java is approximated by
    refusing the Python-only constructs (a JVM-only construct such as \\p{Lu} fails Python's compile)."""
    try:
        re.compile(anchored(regex, "python"))
    except re.error as exc:
        return f"Python's re (the gate's GX suite) refuses {regex!r}: {exc}"
    unescaped = re.sub(r"\\.", "", regex)  # an escaped '(' is a literal, not a group
    for pattern, what in _PYTHON_ONLY:
        if pattern.search(unescaped):
            return f"Java's regex (Spark, bronze_to_silver) refuses {regex!r}: {what}"
    return None


def schema_of(contract: Contract) -> dict:
    """What a Silver version records about the contract it was written with (for evolution checks)."""
    return {
        "version": contract.version,
        "primary_key": contract.primary_key,
        "event_id": contract.event_id,
        "columns": {c.name: {"type": c.type, "nullable": c.nullable} for c in contract.columns},
    }


def incompatibilities(contract: Contract, published: dict | None, rebuild: bool = False) -> list[str]:
    """Why Silver written under `published` (schema_of of an earlier contract) cannot be merged under
    `contract`. Adding a nullable column is compatible, and so is dropping one when the contract
    ignores unknown fields; the rest is named here. A rename is a drop and an add: history would
    read NULL under the new name, so it is named too. A `rebuild` (from Bronze alone, reading no
    published row) may make a column non-nullable or add a non-nullable one: no old row is kept."""
    if not published:
        return []
    out = []
    for key in ("primary_key", "event_id"):
        if published.get(key) != getattr(contract, key):
            out.append(f"{key}: was {published.get(key)!r}, now {getattr(contract, key)!r}")
    old = published.get("columns", {})
    added = {c.name: c.type for c in contract.columns if c.name not in old}
    for name, before in old.items():
        if name in contract.names:
            continue
        like = sorted(n for n, t in added.items() if t == before["type"])
        if like:
            out.append(
                f"columns.{name}: dropped while {', '.join(like)} ({before['type']}) was added: a rename is not "
                f"compatible (published rows would read NULL under the new name); keep {name} declared "
                "(feature: excluded stops the model using it) beside the new column"
            )
        elif contract.unknown_fields == "quarantine":
            out.append(
                f"columns.{name}: dropped, but messages that still carry it would be quarantined as unknown_field "
                "(and stop the gate at quality.max_unknown_fields); keep it declared (feature: excluded stops "
                "the model using it), or set unknown_fields: ignore"
            )
    for c in contract.columns:
        before = old.get(c.name)
        rebuild_hint = "; `mdp run --all` rebuilds Silver from Bronze under the new contract"
        if before is None:
            if not c.nullable and not rebuild:
                out.append(
                    f"columns.{c.name}: a new column must be nullable (published rows have no value for it){rebuild_hint}"
                )
        elif before["type"] != c.type:
            out.append(f"columns.{c.name}: type changed from {before['type']} to {c.type}")
        elif before["nullable"] and not c.nullable and not rebuild:
            out.append(f"columns.{c.name}: became non-nullable; published rows may hold nulls{rebuild_hint}")
    return out


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(lines)


def contract_path(name_or_path: str) -> Path:
    """A bundled contract's name (`customers`) or a path to a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        return Path(name_or_path)
    return CONTRACTS_DIR / f"{name_or_path}.yaml"


def bundled_contracts() -> list[str]:
    return sorted(p.stem for p in CONTRACTS_DIR.glob("*.yaml"))


def parse_contract(data: Any, source: str = "contract") -> Contract:
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"contract {source}: {_describe(exc)}") from None


@cache
def load_contract(name_or_path: str = "customers") -> Contract:
    """Load and check a contract (MDP_CONTRACT names it); a bad one is a ConfigError naming the key."""
    path = contract_path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"contract (MDP_CONTRACT): no contract {name_or_path!r}; give a YAML path or one of: {', '.join(bundled_contracts())}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"contract {path}: not valid YAML ({exc})") from None
    return parse_contract(data, str(path))
