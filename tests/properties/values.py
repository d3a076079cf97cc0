"""Field values from the contract's types: the edges a producer can send (issue 28, part 3).

Each strategy draws a value for one column of one type: extreme and out-of-range dates and
timestamps, NUL and other control characters, characters outside the BMP, very long strings,
numbers at and past the limits of the column's type, and values of the wrong JSON type.

Left out on purpose: the disagreements between Spark and DuckDB that bench/duckdb_pipeline.py
already names as known and unreachable from real producers here (a JSON object repeating a key,
non-UTF-8 bytes, a fractional number for an int column).
"""

from __future__ import annotations

from hypothesis import strategies as st

CONTROL = st.sampled_from(["\x00", "\x01", "\x08", "\x1b", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff", "\u200b"])
NON_BMP = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
TEXT = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), CONTROL, st.text(max_size=4)),
    st.text(alphabet=NON_BMP, min_size=1, max_size=3),
    st.integers(300, 20_000).map(lambda n: "x" * n),
    st.sampled_from(["", "   ", "\t", "null", "None"]),
)
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from("ab"), st.integers(0, 9), max_size=1),
)
INTS = st.one_of(
    st.sampled_from(
        [0, -1, 1, 17, 18, 100, 101, 600, 601, 1000, 1001, 2**31 - 1, -(2**31), 2**31, 2**63 - 1, -(2**63), 10**20]
    ),
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from(["42", "-0", " 7 ", "forty", "0x10", "1e3"]),
)
DOUBLES = st.one_of(
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308, 100000.0, 100000.01, -0.01, 2.0**53 + 1, 10**25]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["12.5", "NaN", "Infinity", "1e309", "-", "1,5"]),
)
BOOLS = st.sampled_from([True, False, "true", "false", "yes", 0, 1, "1", "TRUE"])
DATES = st.one_of(
    st.sampled_from(
        [
            "10000-01-01",
            "99999-12-31",
            "0001-01-01",
            "1999-12-31",
            "2000-01-01",
            "9999-12-31",
            "2024-02-30",
            "+2024-01-01",
            "-0001-01-01",
            "20260504",
            "2026-5-4",
            " 2026-05-04 ",
            "2026-05-04T10:00:00Z",
            "2026-05-06",
            "1970-01-01",
        ]
    ),
    st.dates().map(lambda d: d.isoformat()),
)
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "10000-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "2026-05-04T23:59:60Z",
            "2026-13-01T00:00:00Z",
            "2026-05-04T10:00:00+14:00",
            "2026-05-04T10:00:00-12:00",
            "2026-05-04T10:00:00.123456789Z",
            "2026-05-04",
            "2026-05-04 10:00:00",
            "9999-12-31T23:59:59.999999Z",
            "2026-05-06T10:00:00Z",
            "0001-01-01T00:00:00Z",
        ]
    ),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
)
BY_TYPE = {"string": TEXT, "int": INTS, "double": DOUBLES, "boolean": BOOLS, "date": DATES, "timestamp": TIMESTAMPS}
RAW = st.sampled_from([b"{not json", b"[]", b"null", b"42", b'"text"', b"", b"{}", b'{"a":', b"\xef\xbb\xbf{}"])


def _fractional_text(v) -> bool:
    """A text that casts to a number with a fraction: Spark truncates it to an int, DuckDB rounds (known)."""
    try:
        return isinstance(v, str) and float(v.strip()) != int(float(v.strip()))
    except (ValueError, OverflowError):
        return False


def value_for(col_type: str) -> st.SearchStrategy:
    """A value for a column of this contract type: its edges, or a value of another JSON type."""
    if col_type == "string":
        return st.one_of(TEXT, WRONG_TYPE, INTS, DOUBLES)
    drawn = st.one_of(BY_TYPE[col_type], WRONG_TYPE, TEXT)
    return drawn.filter(lambda v: not _fractional_text(v)) if col_type == "int" else drawn


def text_cell(value) -> str:
    """What a CSV cell holds for a drawn value (a file has no JSON types)."""
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
