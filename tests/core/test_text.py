"""core.text: what the databases cannot hold is replaced, what a column cannot hold is cut."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.text import REPLACEMENT, bounded_int, clean_json, clean_text


def test_lone_surrogates_and_nul_are_replaced_pairs_are_kept() -> None:
    assert clean_text("a\ud800b\x00c") == f"a{REPLACEMENT}b{REPLACEMENT}c"
    assert clean_text(json.loads('"\\ud83d\\ude00"')) == "😀"  # a pair is one code point
    assert clean_text(json.loads('"\\udc00\\ud800"')) == REPLACEMENT * 2  # reversed: lone
    assert clean_text("x" * 300, 128) == "x" * 128


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_anything_cleaned_encodes_as_utf8_without_nul(value: str) -> None:
    cleaned = clean_text(value)
    cleaned.encode("utf-8")  # never raises
    assert "\x00" not in cleaned and len(cleaned) == len(value)


def test_json_is_cleaned_deeply_keys_too_and_loses_nan() -> None:
    data = json.loads('{"a\\u0000": ["\\ud800", {"b": NaN, "c": 1.5, "d": Infinity}], "n": 7}')
    assert clean_json(data) == {
        f"a{REPLACEMENT}": [REPLACEMENT, {"b": None, "c": 1.5, "d": None}],
        "n": 7,
    }


def test_bounded_int_takes_plain_decimals_in_range_only() -> None:
    high = 2**63 - 1
    assert bounded_int("42", low=1, high=high) == 42
    assert bounded_int(str(high), low=1, high=high) == high
    for text in ("9" * 30, str(high + 1), "0", "-1", "", "1e3", "٣", " 7x"):
        assert bounded_int(text, low=1, high=high) is None, text
