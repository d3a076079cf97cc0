"""The data contract, loaded once and typed. Everything schema-shaped derives from here."""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTRACTS_DIR = Path(__file__).with_name("contracts")
ColumnType = Literal["string", "int", "double", "boolean", "date", "timestamp"]
Normaliser = Literal["trim", "lower", "upper"]


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: ColumnType
    nullable: bool = True
    role: Literal["attribute", "event", "label"] = "attribute"
    normalise: list[Normaliser] = Field(default_factory=list)
    regex: str | None = None
    allowed: list[str] | None = None
    min: float | date | None = None
    max: float | date | None = None
    not_future: bool = False


class Rule(BaseModel):
    """One row-level check. `code` is the quarantine reason; `kind` maps to one GX expectation."""

    code: str
    kind: Literal["not_null", "type", "regex", "in_set", "between", "not_future"]
    column: str


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity: str
    version: int
    primary_key: str
    event_id: str
    event_time: str
    label: str
    unknown_fields: Literal["quarantine", "ignore"] = "quarantine"
    max_future_skew_hours: int = 24
    max_bad_fraction: float = Field(ge=0, le=1)
    columns: list[Column]

    @model_validator(mode="after")
    def _check_names(self) -> "Contract":
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in contract {self.entity}")
        for key in (self.primary_key, self.event_id, self.event_time, self.label):
            if key not in names:
                raise ValueError(f"contract {self.entity}: {key!r} is not a declared column")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def rules(self) -> list[Rule]:
        """Row-level rules in evaluation order; the first failing one is a row's primary reason."""
        out: list[Rule] = []
        for c in self.columns:
            if not c.nullable:
                out.append(Rule(code=f"missing:{c.name}", kind="not_null", column=c.name))
            if c.type != "string":
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


# Reason codes that are not column rules.
UNPARSEABLE = "unparseable_json"
UNKNOWN_FIELD = "unknown_field"


@cache
def load_contract(name: str = "customers") -> Contract:
    return Contract.model_validate(yaml.safe_load((CONTRACTS_DIR / f"{name}.yaml").read_text()))
