"""Bounded strings and keys: within the limit whatever the input, distinct stays distinct."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from tripwire.stream.wire.limits import (
    MAX_ID_BYTES,
    bounded,
    bounded_bytes,
    encoded,
    output_key,
)

#: Any code point, lone surrogates included (``st.text()`` alone never makes them).
chars = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
surrogates = st.sampled_from(["\ud800", "\udbff", "\udc80", "\udfff"])
texts = st.one_of(
    st.text(chars, max_size=300),
    st.lists(st.one_of(chars, surrogates), max_size=50).map("".join),
    st.builds(lambda c, n: c * n, st.text(chars, min_size=1, max_size=3), st.integers(0, 3000)),
)


@given(texts, st.integers(80, 2048))
def test_a_bounded_string_fits_and_is_the_original_when_that_fits(text: str, limit: int) -> None:
    out = bounded(text, limit)
    assert len(encoded(out)) <= limit
    if len(encoded(text)) <= limit:
        assert out == text
    else:
        prefix, digest = out.rsplit("\u2026sha256=", 1)
        assert text.startswith(prefix)
        assert digest == hashlib.sha256(encoded(text)).hexdigest()


def test_long_strings_that_share_a_prefix_stay_distinct() -> None:
    a, b = "x" * 5000 + "a", "x" * 5000 + "b"
    assert bounded(a) != bounded(b)
    assert len(bounded(a).encode()) == MAX_ID_BYTES


@given(st.binary(max_size=5000), st.integers(80, 2048))
def test_bounded_bytes_fit(raw: bytes, limit: int) -> None:
    out = bounded_bytes(raw, limit)
    assert len(out) <= limit
    assert out == raw if len(raw) <= limit else out.startswith(raw[: limit - 74])


@given(texts)
def test_an_output_key_never_fails_and_is_bounded(entity: str) -> None:
    key = output_key(entity)
    assert len(key) <= MAX_ID_BYTES
    assert output_key(entity) == key  # the same entity, the same partition


@given(st.binary(max_size=MAX_ID_BYTES))
def test_an_output_key_of_a_kafka_key_that_was_not_utf8_is_its_original_bytes(raw: bytes) -> None:
    assert output_key(raw.decode("utf-8", "surrogateescape")) == raw


def test_surrogates_in_a_key_do_not_collide() -> None:
    assert output_key("\ud800") != output_key("\ud801") != output_key("?")
