"""escaped(): any value becomes one printable, bounded log line (issue 11 §4)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tripwire.core.untrusted import DEFAULT_LIMIT, escaped

# every code point, lone surrogates included (st.text() alone never draws them)
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=300)


@given(any_text | st.binary(max_size=300))
def test_any_value_is_one_printable_line(value: str | bytes) -> None:
    shown = str(escaped(value))
    assert shown and shown.isprintable() and len(shown.splitlines()) == 1
    shown.encode("utf-8")  # no lone surrogate survives: it can be written anywhere


@given(any_text.filter(bool))
def test_escaping_is_unambiguous(text: str) -> None:
    """Printable text stays as it is; everything else is a Python escape that reads back."""
    shown = str(escaped(text, limit=10_000))
    assert shown.encode("ascii", "backslashreplace").decode("unicode_escape") == text


@given(st.text(min_size=DEFAULT_LIMIT + 1, max_size=5000))
def test_long_values_are_cut_and_their_length_said(text: str) -> None:
    shown = str(escaped(text))
    assert shown.endswith(f"... ({len(text)} characters)")
    assert len(shown) <= 10 * DEFAULT_LIMIT + 40  # the longest escape is \U0010ffff


def test_a_megabyte_id_makes_a_short_line() -> None:
    assert len(str(escaped("x" * 1_000_000))) < 250
    cut = str(escaped(b"\x00" * 1_000_000, limit=4))
    assert cut == "b'\\x00\\x00\\x00\\x00'... (1000000 bytes)"


def test_a_forged_log_line_stays_in_its_record(caplog: pytest.LogCaptureFixture) -> None:
    forged = "evt-1\n2026-01-01 00:00:00,000 CRITICAL tripwire: disk on fire\x1b[2J"
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("input %s", escaped(forged))
    (message,) = caplog.messages
    assert "\n" not in message and "\x1b" not in message
    assert message == (
        "input evt-1\\n2026-01-01 00:00:00,000 CRITICAL tripwire: disk on fire\\x1b[2J"
    )


def test_exceptions_and_objects_are_escaped_too() -> None:
    assert str(escaped(ValueError("a\nb"))) == "ValueError: a\\nb"
    assert str(escaped(["a\nb"])) == "['a\\\\nb']"  # repr, then escaped


def test_formatting_is_lazy() -> None:
    class Boom:
        def __repr__(self) -> str:
            raise AssertionError("formatted although the record was dropped")

    logging.getLogger("t.lazy").debug("%s", escaped(Boom()))  # below the level: not formatted
