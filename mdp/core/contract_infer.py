"""Draft a data contract from a sample of a table (`mdp contract infer`). Pure: no I/O.

The input is the sample's columns as lists of values, either the texts a CSV holds or the typed
values Parquet gives. The draft is a dict that `parse_contract` accepts, and `render_yaml` prints
it with one line per column and the evidence (blanks, distinct values) as comments, for a person
to review, edit and commit. What is inferred, per column:

- the type: a column whose non-blank values all read as int (32-bit), double, boolean
  (true/false), date (YYYY-MM-DD) or timestamp (ISO 8601) gets that type, else string. Blanks do not
  count against a type: a numeric column with blank cells is numeric and nullable;
- nullability: nullable when the sample has a blank (empty or whitespace only) in it;
- allowed sets for strings with few distinct values (at most MAX_CATEGORIES, each seen about twice
  or more), with the normalisers (trim, lower or upper) that make the set clean;
- observed ranges (min, max) of numeric columns: hard rules once committed, so widen them;
- feature roles: numeric, boolean, categorical (strings with an allowed set), identifier (the key,
  and columns named like an id), excluded (free text, dates); dates get a derived days_since.

The envelope: an event id column (filled by the file ingest when the file has none), and an event
time only when one is named (without it, Silver orders states by arrival).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import yaml

from mdp.core.errors import ConfigError

MAX_CATEGORIES = 20
INT32 = (-(2**31), 2**31 - 1)
EVENT_ID = "event_id"
POSITIVE_WORDS = ("yes", "y", "true", "t", "1", "positive")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ID_NAME = re.compile(r"(^id$|_id$|_no$|_number$|_uuid$|_key$)", re.IGNORECASE)
_SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")


def is_blank(value: Any) -> bool:
    """A missing cell: None, NaN, or a text of only whitespace (CSV has no other way to say null)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


@dataclass
class ColumnProfile:
    """What the sample says about one column, and the contract column drafted from it."""

    name: str
    rows: int
    blanks: int
    distinct: int
    type: str
    spec: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def comment(self) -> str:
        parts = [f"{self.blanks} blank of {self.rows}" if self.blanks else "no blanks", f"{self.distinct} distinct"]
        return "; ".join(parts + self.notes)


@dataclass
class Draft:
    contract: dict[str, Any]
    profiles: list[ColumnProfile]
    warnings: list[str]
    source: str = "a sample"


# ---- per-value readings ------------------------------------------------------------------------------
def _text_type(v: str) -> str:
    if _INT.match(v):
        digits = v.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            return "string"  # a code with leading zeros (a postcode, an account code): keep its digits
        return "int" if INT32[0] <= int(v) <= INT32[1] else "bigint"
    if _FLOAT.match(v):
        return "double"
    if v.lower() in ("true", "false"):
        return "boolean"
    if _DATE.match(v):
        try:
            date.fromisoformat(v)
            return "date"
        except ValueError:
            return "string"
    if _TIMESTAMP.match(v):
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
            return "timestamp"
        except ValueError:
            return "string"
    return "string"


def _value_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int" if INT32[0] <= v <= INT32[1] else "bigint"
    if isinstance(v, (float, Decimal)):
        return "double"
    if isinstance(v, datetime):
        return "timestamp"
    if isinstance(v, date):
        return "date"
    if isinstance(v, str):
        return _text_type(v.strip())
    return "string"


def _column_type(kinds: set[str]) -> str:
    """The narrowest contract type every non-blank value fits."""
    if not kinds:
        return "string"  # all blank: nothing to go on
    if kinds <= {"int"}:
        return "int"
    if kinds <= {"int", "bigint", "double"}:
        return "double"  # a 64-bit integer has no contract type but double; an id becomes string below
    if len(kinds) == 1 and kinds < {"boolean", "date", "timestamp"}:
        return next(iter(kinds))
    if kinds <= {"date", "timestamp"}:
        return "timestamp"
    return "string"


def _number(v: Any) -> float | int:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if isinstance(v, Decimal):
        return float(v)
    text = str(v).strip()
    return int(text) if _INT.match(text) else float(text)


def _plain(x: float | int) -> float | int:
    """A range bound as YAML writes it back unchanged (ints stay ints)."""
    return int(x) if isinstance(x, int) else float(x)


def _case_normaliser(texts: list[str]) -> str | None:
    """lower/upper when case variants of one value appear ('Yes' and 'yes'), else None."""
    distinct = set(texts)
    if len({t.lower() for t in distinct}) == len(distinct):
        return None
    upper = sum(t.isupper() for t in texts)
    return "upper" if upper > len(texts) / 2 else "lower"


_NORMALISERS: dict[str, Callable[[str], str]] = {"trim": str.strip, "lower": str.lower, "upper": str.upper}


def _apply(text: str, normalise: list[str]) -> str:
    for step in normalise:
        text = _NORMALISERS[step](text)
    return text


# ---- one column -------------------------------------------------------------------------------------------
def profile_column(name: str, values: Sequence[Any], role_hint: str | None = None) -> ColumnProfile:
    """Infer one column. role_hint: 'key', 'label', 'event_id', 'event_time' or None."""
    present = [v for v in values if not is_blank(v)]
    kinds = {_value_type(v) for v in present}
    ctype = _column_type(kinds)
    if ctype == "double" and "bigint" in kinds and (role_hint == "key" or _ID_NAME.search(name)):
        ctype = "string"  # a 64-bit id: keep its digits exact
    if role_hint == "event_id":
        ctype = "string"
    texts = [str(v) for v in present]
    distinct = len(set(texts))
    p = ColumnProfile(name=name, rows=len(values), blanks=len(values) - len(present), distinct=distinct, type=ctype)
    spec: dict[str, Any] = {
        "name": name,
        "type": ctype,
        "nullable": bool(p.blanks) and role_hint not in ("key", "event_id"),
    }

    if ctype == "string":
        normalise = []
        if any(t != t.strip() for t in texts):
            normalise.append("trim")
        cleaned = [t.strip() for t in texts]
        case = _case_normaliser(cleaned)
        if case:
            normalise.append(case)
        cleaned = [_apply(t, normalise) for t in texts]
        values_set = sorted(set(cleaned))
        if normalise:
            spec["normalise"] = normalise
        categorical = role_hint == "label" or (
            role_hint is None and 0 < len(values_set) <= MAX_CATEGORIES and len(cleaned) >= 2 * len(values_set)
        )
        if categorical and values_set:
            spec["allowed"] = values_set
        if p.blanks and role_hint is None:
            p.notes.append("blanks in a string column are null")
    elif ctype in ("int", "double") and present and role_hint not in ("key",):
        numbers = [_number(v) for v in present]
        spec["min"], spec["max"] = _plain(min(numbers)), _plain(max(numbers))
        if ctype == "int" and set(numbers) <= {0, 1}:
            p.notes.append("a 0/1 flag")

    # Feature roles, stated so the reader sees them (the contract would default most of them).
    if role_hint == "key":
        spec["feature"] = "identifier"
    elif role_hint is None:
        if _ID_NAME.search(name) and distinct == len(present) and ctype in ("int", "string", "double"):
            spec["feature"] = "identifier"
            spec.pop("min", None), spec.pop("max", None)
            p.notes.append("every value distinct and named like an id")
        elif ctype in ("int", "double"):
            spec["feature"] = "numeric"
        elif ctype == "boolean":
            spec["feature"] = "boolean"
        elif ctype == "string" and "allowed" in spec:
            spec["feature"] = "categorical"
        else:
            spec["feature"] = "excluded"
            if ctype == "string":
                p.notes.append("many distinct texts: excluded (free text, names, contacts)")
    p.spec = spec
    return p


# ---- the whole table ------------------------------------------------------------------------------------
def _positive(label: ColumnProfile, values: Sequence[Any], given: str | None) -> bool | int | str:
    present = [v for v in values if not is_blank(v)]
    if label.type == "boolean":
        seen = {str(v).strip().lower() for v in present}
        if given is None:
            return True
        if given.strip().lower() not in ("true", "false"):
            raise ConfigError(f"--positive: {given!r} is not a boolean (true or false) for label column {label.name!r}")
        truth = given.strip().lower() == "true"
        if str(truth).lower() not in seen:
            raise ConfigError(f"--positive: {given!r} never occurs in label column {label.name!r}")
        return truth
    if label.type == "int":
        seen_int = {_number(v) for v in present}
        if given is None:
            if seen_int <= {0, 1}:
                return 1
            raise ConfigError(f"--positive: required for label column {label.name!r} (values {sorted(seen_int)[:10]})")
        if not _INT.match(given.strip()) or int(given) not in seen_int:
            raise ConfigError(
                f"--positive: {given!r} is not one of label column {label.name!r}'s values {sorted(seen_int)[:10]}"
            )
        return int(given)
    if label.type != "string":
        raise ConfigError(f"--label: column {label.name!r} reads as {label.type}; a label is boolean, int or string")
    allowed = label.spec.get("allowed", [])
    norm = label.spec.get("normalise", [])
    if given is None:
        matches = [a for a in allowed if a.strip().lower() in POSITIVE_WORDS]
        if len(allowed) == 2 and len(matches) == 1:
            return matches[0]
        raise ConfigError(f"--positive: required for label column {label.name!r}; its values are {allowed[:10]}")
    value = _apply(given, norm)
    if value not in allowed:
        raise ConfigError(f"--positive: {given!r} is not one of label column {label.name!r}'s values {allowed[:10]}")
    return value


def infer_contract(
    columns: Mapping[str, Sequence[Any]],
    entity: str,
    key: str,
    label: str,
    positive: str | None = None,
    event_time: str | None = None,
    source: str = "a sample",
) -> Draft:
    """A draft contract for a table given as {column: values}. Bad options raise ConfigError naming them."""
    names = list(columns)
    if not re.match(r"^[a-z][a-z0-9_]*$", entity):
        raise ConfigError(
            f"--entity: {entity!r} must be lower case letters, digits and _ (it names lake tables and the topic)"
        )
    for option, col in (("--key", key), ("--label", label), ("--event-time", event_time)):
        if col is not None and col not in columns:
            raise ConfigError(f"{option}: no column {col!r} in {source}; its columns are: {', '.join(names)}")
    if key == label:
        raise ConfigError("--label: the label cannot be the key")
    if not any(len(v) for v in columns.values()):
        raise ConfigError(f"{source}: no rows to infer from")

    event_id = "_event_id" if EVENT_ID in (key, label) else EVENT_ID
    hints = {key: "key", label: "label", event_id: "event_id"}
    if event_time:
        hints[event_time] = "event_time"
    profiles = [profile_column(n, columns[n], hints.get(n)) for n in names]
    by_name = {p.name: p for p in profiles}
    warnings: list[str] = []

    k = by_name[key]
    if k.blanks:
        warnings.append(f"key {key!r} has {k.blanks} blank values: those rows will be quarantined (missing:{key})")
    if k.distinct < k.rows - k.blanks:
        warnings.append(
            f"key {key!r} repeats ({k.distinct} distinct of {k.rows - k.blanks}): the last row per key wins"
        )
    if event_time:
        t = by_name[event_time]
        if t.type not in ("date", "timestamp"):
            raise ConfigError(f"--event-time: column {event_time!r} reads as {t.type}, not a date or timestamp")
        t.spec["nullable"] = False
        t.spec["not_future"] = True
    lab = by_name[label]
    pos = _positive(lab, columns[label], positive)
    bad_names = [n for n in names if not _SNAKE.match(n)]
    if bad_names:
        warnings.append(
            f"columns {bad_names} are not snake_case: the contract keeps the file's names as they are, "
            "but lake tables and SQL engines are happier with snake_case headers"
        )

    cols = [p.spec for p in profiles]
    if event_id not in columns:
        cols.insert(0, {"name": event_id, "type": "string", "nullable": False})
    derived = [
        {"name": f"days_since_{p.name}", "kind": "days_since", "column": p.name}
        for p in profiles
        if p.type in ("date", "timestamp") and p.name not in hints
    ]
    contract: dict[str, Any] = {
        "entity": entity,
        "version": 2,
        "primary_key": key,
        "event_id": event_id,
        **({"event_time": event_time} if event_time else {}),
        "label": {"column": label, "positive": pos},
        "model_name": f"{entity}-{label}".lower().replace("_", "-"),
        "columns": cols,
        **({"derived": derived} if derived else {}),
    }
    return Draft(contract=contract, profiles=profiles, warnings=warnings, source=source)


# ---- YAML ---------------------------------------------------------------------------------------------------
def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True).strip()


def _block(key: str, value: Any) -> str:
    style = None if isinstance(value, (dict, list)) else False  # collections inline, scalars plain
    return yaml.safe_dump(
        {key: value}, default_flow_style=style, sort_keys=False, width=10**9, allow_unicode=True
    ).rstrip("\n")


def render_yaml(draft: Draft) -> str:
    """The draft as YAML: one line per column with its evidence as a comment. Loads back to draft.contract."""
    c = draft.contract
    comments = {p.name: p.comment for p in draft.profiles}
    rows = draft.profiles[0].rows if draft.profiles else 0
    out = [
        f"# Draft data contract `{c['entity']}`, inferred by `mdp contract infer` from {draft.source} ({rows} rows).",
        "# Review it, then commit it and point MDP_CONTRACT at the file. Things to check:",
        "# - types and nullable: a column with no blank in the sample is required (a blank row is quarantined);",
        "# - min/max are the sample's observed range, and they become hard rules: widen them;",
        "# - allowed: the values seen; a new value later is quarantined as bad_value:<column>;",
        "# - feature: numeric | categorical | boolean | identifier | excluded (what the model sees);",
        f"# - {c['event_id']}: `mdp ingest` fills it from the file's content hash and the row, so a re-ingest is dropped as a copy.",
    ]
    if "event_time" not in c:
        out.append("# No event_time: Silver keeps the latest arrival per key (add one if the file has a change time).")
    for key in ("entity", "version", "primary_key", "event_id", "event_time", "label", "model_name"):
        if key in c:
            out.append(_block(key, c[key]))
    out.append("columns:")
    width = min(100, max(len(_flow(col)) for col in c["columns"]))
    for col in c["columns"]:
        note = comments.get(col["name"], "envelope: filled by the file ingest")
        out.append(f"  - {_flow(col).ljust(width)}   # {note}")
    if c.get("derived"):
        out.append("derived:                           # relative to the snapshot's as-of time")
        out += [f"  - {_flow(d)}" for d in c["derived"]]
    for key in c:
        if key not in (
            "entity",
            "version",
            "primary_key",
            "event_id",
            "event_time",
            "label",
            "model_name",
            "columns",
            "derived",
        ):
            out.append(_block(key, c[key]))
    return "\n".join(out) + "\n"
