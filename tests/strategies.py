"""Hypothesis strategies for hostile input: Unicode of every kind (lone surrogates, controls, combining marks,
right-to-left text, line separators), JSON of any shape and size, raw bytes; and records known to be good."""
from __future__ import annotations

import json

from hypothesis import strategies as st

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
SPECIALS = st.sampled_from(["\x00", "\x01", "\x7f", "\u0301", "\u0651", "\u202e", "\u200f", "\u2028", "\u2029",
                            "\x85", "\ufeff", "\u00ad", "\u200b", "\uffff", "\U0010ffff", "\ufb01", "\uff11",
                            "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\r\n", "\t", "  "])
WORDS = st.sampled_from(["Patients", "were", "randomised", "to", "aspirin", "placebo", ".", "p < 0.05.", "RESULTS:",
                         "Methods.", "12 wk.", "e.g.", "et al.", "(95 % CI 1.2-3.4)", "\n\n", "BACKGROUND\n"])
TEXT = st.lists(st.one_of(st.characters(exclude_categories=()), SURROGATES, SPECIALS, WORDS), max_size=80).map(
    lambda parts: " ".join(parts) if len(parts) % 2 else "".join(parts))
LONG_TEXT = st.builds(lambda piece, n: piece * n, TEXT.filter(bool), st.integers(100, 2_000))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
RECORDS = st.one_of(
    st.fixed_dictionaries({"text": st.one_of(TEXT, LONG_TEXT)}, optional={"id": JSON_VALUES, "extra": JSON_VALUES}),
    JSON_VALUES, TEXT)
GOOD_TEXT = st.lists(st.sampled_from(["Asthma is common in children.", "We randomised 120 adults.",
                                      "Pain decreased by 30 % (p < 0.05).", "Aspirin is safe."]),
                     min_size=1, max_size=6).map(" ".join)


def encoded(value, ensure_ascii: bool) -> bytes:
    """JSON bytes as a careless client sends them: escapes, or raw UTF-8 with lone surrogates passed through
    (ED A0 80 for U+D800)."""
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


BODIES = st.one_of(st.builds(encoded, RECORDS, st.booleans()), st.binary(max_size=300),
                   st.integers(1, 30_000).map(lambda n: b"[" * n + b"]" * n))
