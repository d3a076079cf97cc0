"""A seeded fuzzer for the `customers` topic: hostile messages, each with the outcome it must have.

Every message is built from a clean generated event and then (most of the time) damaged by one
of the MUTATIONS below. Each case carries what the contract says must happen to it:

  accept      a valid event with a new event id: it must reach Silver's merge (not quarantined)
  duplicate   an exact copy of an earlier valid event (same id, same content): dropped as a copy
  conflict    an earlier valid event id with other content: not a copy, so a candidate of its own
  quarantine  must be quarantined; `code`, when set, must be among the record's reason codes
  any         hostile enough that either outcome is acceptable, but it must be accounted for

The fuzzer is deterministic for a seed, so a failure reproduces. `variety()` summarises what a
run produced, so the test can show that the input really was varied.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tests.helpers import clean_events

MB = 1024 * 1024


@dataclass(slots=True)
class Case:
    kind: str
    value: bytes | None
    expect: str  # accept | duplicate | conflict | quarantine | any
    code: str | None = None  # a reason code that must be present (quarantine only)
    event_id: str | None = None  # for accept/duplicate: the id Silver dedupes on
    customer_id: str | None = None


def _dump(e: dict) -> bytes:
    return json.dumps(e, ensure_ascii=False).encode()


def _set(field: str, value, expect: str = "quarantine", code: str | None = None, raw: bool = False):
    """A mutation that sets one field. `raw` inserts `value` as JSON text verbatim (e.g. 1e400, NaN)."""

    def mutate(rng: random.Random, e: dict, state: _State) -> Case:
        e = dict(e)
        if raw:
            marker = f"__RAW_{rng.getrandbits(48):x}__"
            e[field] = marker
            body = _dump(e).replace(f'"{marker}"'.encode(), value.encode())
        else:
            e[field] = value(rng) if callable(value) else value
            body = _dump(e)
        ok = expect == "accept"
        return Case("", body, expect, code, e["event_id"] if ok else None, e.get("customer_id") if ok else None)

    return mutate


def _drop(field: str, expect: str, code: str | None = None):
    def mutate(rng, e, state):
        e = {k: v for k, v in e.items() if k != field}
        ok = expect == "accept"
        return Case("", _dump(e), expect, code, e["event_id"] if ok else None, e.get("customer_id") if ok else None)

    return mutate


def _text(
    fn: Callable[[random.Random, dict], bytes | None], code: str | None = "unparseable_json", expect: str = "quarantine"
):
    def mutate(rng, e, state):
        return Case("", fn(rng, e), expect, code)

    return mutate


def _unicode_soup(rng: random.Random, n: int = 40) -> str:
    pools = [
        "Ñoño Zoë Åsa Øyvind",  # Latin with diacritics
        "李小龍 山田太郎 김민준",  # CJK, Hangul
        "محمد עברית",  # right-to-left
        "😀🚀👩‍👩‍👧‍👦🏳️‍🌈",  # emoji incl. ZWJ sequences
        "e\u0301\u0308\u20dd",  # combining marks
        "\u200b\u200d\ufeff\u2028\u2029",  # zero width, BOM, line/paragraph separators
        "\ud7ff\ue000\U0010fffd",  # edges of the planes
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def _controls(rng: random.Random, n: int = 12) -> str:
    return "".join(chr(rng.choice([1, 7, 8, 9, 10, 13, 27, 31, 127, 0x85])) for _ in range(n))  # U+0000: nul_in_name


def _big(rng: random.Random, alphabet: str = "abcdefghij ") -> str:
    return "".join(rng.choices(alphabet, k=MB))


def _truncate(rng, e):
    body = _dump(e)
    return body[: rng.randint(0, len(body) - 1)]


def _nested(depth: int):
    return lambda rng, e: ('{"event_id": ' + "[" * depth + "]" * depth + "}").encode()


def _dup_key(rng, e):
    # The same key twice with conflicting values: JSON leaves the winner to the parser.
    body = _dump(e)
    return body[:-1] + b', "age": "not a number"}'


def _raw_controls(rng, e):
    # Unescaped control characters inside a string: not valid JSON.
    body = _dump({**e, "full_name": "X"})
    return body.replace(b'"X"', b'"a\x00b\x07c\x1bd\x01"')


class _State:
    def __init__(self):
        self.valid: list[dict] = []  # accepted events so far (sources for duplicates)


def _exact_duplicate(rng, e, state: _State) -> Case:
    prior = rng.choice(state.valid[-500:])
    return Case("", _dump(prior), "duplicate", None, prior["event_id"], prior["customer_id"])


def _conflicting_duplicate(rng, e, state: _State) -> Case:
    prior = dict(rng.choice(state.valid[-500:]))
    prior["monthly_spend"] = round(prior["monthly_spend"] + 13.5, 2)
    prior["plan"] = "enterprise" if prior["plan"] != "enterprise" else "free"
    return Case("", _dump(prior), "conflict", None, prior["event_id"], prior["customer_id"])


def _conflicting_update(rng, e, state: _State) -> Case:
    # A new event id for an existing customer at exactly the same event time: the tie is broken by
    # content, never by chance or by the order in which batches are processed.
    prior = rng.choice(state.valid[-500:])
    e = dict(e, customer_id=prior["customer_id"], event_ts=prior["event_ts"], plan="pro")
    return Case("", _dump(e), "accept", None, e["event_id"], e["customer_id"])


MUTATIONS: dict[str, Callable] = {
    # -- not JSON at all ------------------------------------------------------------------------
    "malformed_json": _text(lambda r, e: b"{event_id: " + e["event_id"].encode() + b", oops"),
    "truncated_json": _text(_truncate),
    "empty_message": _text(lambda r, e: b""),
    "null_value": _text(lambda r, e: None),  # a Kafka tombstone: no value at all
    "whitespace_only": _text(lambda r, e: b" \t\r\n "),
    "json_null": _text(lambda r, e: b"null"),
    "json_array": _text(lambda r, e: b"[" + _dump(e) + b"]"),
    "json_number": _text(lambda r, e: b"12345"),
    "json_string": _text(lambda r, e: b'"customer_created"'),
    "binary_garbage": _text(lambda r, e: bytes(r.getrandbits(8) for _ in range(r.randint(1, 300)))),
    "invalid_utf8_in_string": _text(lambda r, e: _dump(dict(e, full_name="X")).replace(b'"X"', b'"\xff\xfe\xc3"')),
    "raw_control_chars": _text(_raw_controls, code=None, expect="any"),
    "deep_nesting": _text(_nested(5000), code=None),
    "duplicate_json_key": _text(_dup_key, code=None, expect="any"),
    "huge_garbage": _text(lambda r, e: b"{" + _big(r).encode()),
    # -- wrong types ------------------------------------------------------------------------------
    "age_as_word": _set("age", "forty", code="bad_type:age"),
    "age_as_float": _set("age", 42.5, code="bad_type:age"),
    "age_as_bool": _set("age", True, code="bad_type:age"),
    "age_as_object": _set("age", {"years": 40}, code="bad_type:age"),
    "spend_as_word": _set("monthly_spend", "lots", code="bad_type:monthly_spend"),
    "churned_as_word": _set("churned", "maybe", code="bad_type:churned"),
    "event_ts_as_number": _set("event_ts", 1772442000, code="bad_type:event_ts"),
    "signup_not_a_date": _set("signup_date", "yesterday", code="bad_type:signup_date"),
    "signup_impossible_date": _set("signup_date", "2025-02-30", code="bad_type:signup_date"),
    "customer_id_as_number": _set("customer_id", 1234567, code="bad_format:customer_id"),
    "email_as_list": _set("email", ["a@b.co"], code="bad_format:email"),
    # -- missing and extra fields -------------------------------------------------------------
    "missing_customer_id": _drop("customer_id", "quarantine", "missing:customer_id"),
    "missing_event_id": _drop("event_id", "quarantine", "missing:event_id"),
    "missing_email": _drop("email", "quarantine", "missing:email"),
    "null_event_ts": _set("event_ts", None, code="missing:event_ts"),
    "missing_phone_ok": _drop("phone", "accept"),
    "extra_field": _set("loyalty_tier", "gold", code="unknown_field"),
    "renamed_field": _text(
        lambda r, e: _dump({("Customer_ID" if k == "customer_id" else k): v for k, v in e.items()}),
        code="unknown_field",
    ),
    "empty_object": _text(lambda r, e: b"{}", code="missing:event_id"),
    # -- unicode and control characters -----------------------------------------------------
    "unicode_name_ok": _set("full_name", lambda r: _unicode_soup(r), expect="accept"),
    "control_chars_in_name_ok": _set("full_name", lambda r: "A" + _controls(r) + "Z", expect="accept"),
    "unicode_email": _set("email", lambda r: _unicode_soup(r, 6) + "@example.com", code="bad_format:email"),
    "fullwidth_customer_id": _set("customer_id", "Ｃ０００１２３４", code="bad_format:customer_id"),
    "nul_in_customer_id": _set("customer_id", "C000\x001234", code="bad_type:customer_id"),
    "nul_in_name": _set("full_name", "Ada\x00Lovelace", code="bad_type:full_name"),  # no SQL text type holds U+0000
    "bidi_plan": _set("plan", "\u202epro", code="bad_value:plan"),
    # -- 1 MB strings ---------------------------------------------------------------------------
    "megabyte_name_ok": _set("full_name", lambda r: _big(r, "abcdefghijklmnopqrstuvwxyz "), expect="accept"),
    "megabyte_email": _set("email", lambda r: _big(r, "ab c") + "@x.io", code="bad_format:email"),
    "megabyte_customer_id": _set("customer_id", lambda r: "C" + _big(r, "0123456789"), code="bad_format:customer_id"),
    # -- negative and absurd numbers ----------------------------------------------------------
    "negative_age": _set("age", lambda r: -r.randint(1, 10**6), code="out_of_range:age"),
    "ancient_age": _set("age", 4000, code="out_of_range:age"),
    "overflow_age": _set("age", 10**30, code="bad_type:age"),
    "negative_spend": _set("monthly_spend", -0.01, code="out_of_range:monthly_spend"),
    "absurd_spend": _set("monthly_spend", 1e308, code="out_of_range:monthly_spend"),
    "infinite_spend": _set("monthly_spend", "1e400", raw=True, expect="quarantine"),
    "nan_spend": _set("monthly_spend", "NaN", raw=True, expect="quarantine"),
    "negative_tickets": _set("support_tickets", -1, code="out_of_range:support_tickets"),
    "huge_tickets": _set("support_tickets", 2**31, code="bad_type:support_tickets"),
    # -- dates in the far past and future -----------------------------------------------------
    "far_past_signup": _set(
        "signup_date", lambda r: r.choice(["0001-01-01", "1066-10-14", "1899-12-31"]), code="out_of_range:signup_date"
    ),
    "far_future_signup": _set(
        "signup_date", lambda r: r.choice(["2999-01-01", "9999-12-31"]), code="future:signup_date"
    ),
    "far_past_last_login": _set("last_login_date", "1970-01-01", code="out_of_range:last_login_date"),
    "far_future_event": _set(
        "event_ts", lambda r: r.choice(["2999-06-01T00:00:00Z", "9999-12-31T23:59:59Z"]), code="future:event_ts"
    ),
    "year_10000_event": _set("event_ts", "+10000-01-01T00:00:00Z", code="bad_type:event_ts"),
    # Years past 9999 or before 1: Spark parses them, no store downstream holds them (pandas, Python).
    "year_10000_signup": _set("signup_date", "10000-01-01", code="bad_type:signup_date"),
    "year_minus_1_login": _set("last_login_date", "-0001-06-01", code="bad_type:last_login_date"),
    "far_past_event": _set(
        "event_ts",
        lambda r: r.choice(["0001-01-01T00:00:00Z", "1066-10-14T09:00:00Z", "1899-12-31T23:59:59Z"]),
        code="out_of_range:event_ts",
    ),
    # -- enums and formats ----------------------------------------------------------------------
    "bad_plan": _set("plan", "platinum", code="bad_value:plan"),
    "bad_country": _set("country", "XX", code="bad_value:country"),
    "bad_event_type": _set(
        "event_type", "customer_merged", code="bad_value:event_type"
    ),  # customer_deleted is a tombstone
    "bad_event_id": _set("event_id", "not-a-uuid", code="bad_format:event_id"),
    "bad_phone": _set("phone", "call me", code="bad_format:phone"),
    # -- duplicates and conflicting updates ---------------------------------------------------
    "exact_duplicate": _exact_duplicate,
    "conflicting_duplicate": _conflicting_duplicate,
    "conflicting_update_ok": _conflicting_update,
}

# Kinds whose message is big: a few of each are plenty (and keep the run's memory bounded).
RARE = {"megabyte_name_ok": 6, "megabyte_email": 4, "megabyte_customer_id": 4, "huge_garbage": 4, "deep_nesting": 10}


def fuzz(seed: int, hour: datetime, n: int, clean_share: float = 0.3, kinds: list[str] | None = None) -> list[Case]:
    """`n` messages: about `clean_share` untouched events, the rest damaged by one random mutation each."""
    rng = random.Random(seed)
    events = clean_events(seed, hour, n)
    kinds = list(kinds or MUTATIONS)
    budget = {k: RARE.get(k, n) for k in kinds}
    state, cases = _State(), []
    for e in events:
        kind = "clean" if rng.random() < clean_share or not state.valid else rng.choice(kinds)
        if kind != "clean" and budget[kind] <= 0:
            kind = "clean"
        if kind == "clean":
            case = Case("clean", _dump(e), "accept", None, e["event_id"], e["customer_id"])
        else:
            budget[kind] -= 1
            case = MUTATIONS[kind](rng, e, state)
            case.kind = kind
        if case.expect == "accept" and case.value is not None:
            state.valid.append(json.loads(case.value))
        cases.append(case)
    return cases


def variety(cases: list[Case]) -> dict:
    kinds = Counter(c.kind for c in cases)
    sizes = [len(c.value) for c in cases if c.value is not None]
    return {
        "messages": len(cases),
        "mutated": sum(c.kind != "clean" for c in cases),
        "kinds": dict(sorted(kinds.items())),
        "distinct_messages": len({c.value for c in cases}),
        "max_bytes": max(sizes),
        "total_bytes": sum(sizes),
        "expected": dict(Counter(c.expect for c in cases)),
    }
