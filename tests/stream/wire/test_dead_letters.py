"""Dead letters: the original record plus headers saying why."""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.stream.observability.metrics import INVALID_REASONS
from tripwire.stream.wire.dead_letters import (
    MAX_DETAIL_CHARS,
    OUTPUT_TOO_LARGE,
    DeadLetterReason,
    dead_letter,
    output_dead_letter,
)
from tripwire.stream.wire.limits import (
    DEFAULT_MAX_OUTPUT_BYTES,
    MAX_DLQ_KEY_BYTES,
    MIN_MAX_OUTPUT_BYTES,
)
from tripwire.stream.wire.records import InputRecord, OutputRecord


def record(value: bytes = b"{bad", headers: list | None = None) -> InputRecord:
    return InputRecord("features", 1, 77, 1_700_000_000_123, b"key", value, headers or [])


def test_the_reasons_are_the_invalid_event_labels_and_output_too_large() -> None:
    """The header values are the metric's labels (declared apart: observability sits below wire)."""
    assert [r.value for r in DeadLetterReason] == [*INVALID_REASONS, "output_too_large"]
    assert OUTPUT_TOO_LARGE is DeadLetterReason.OUTPUT_TOO_LARGE


def test_dead_letter_keeps_the_original_and_says_why() -> None:
    orig = [("content-type", b"application/json"), ("trace", b"xyz")]
    out = dead_letter(
        record(headers=orig), "dlq", reason="malformed", error="JSONDecodeError",
        detail="Expecting value", max_value_bytes=1000,
    )  # fmt: skip
    assert (out.topic, out.key, out.value) == ("dlq", b"key", b"{bad")
    h = dict(out.headers or [])
    assert h["content-type"] == b"application/json" and h["trace"] == b"xyz"
    assert h["tripwire-reason"] == b"malformed" and h["tripwire-error"] == b"JSONDecodeError"
    assert h["tripwire-detail"] == b"Expecting value"
    assert h["tripwire-source-topic"] == b"features"
    assert (h["tripwire-source-partition"], h["tripwire-source-offset"]) == (b"1", b"77")
    assert h["tripwire-source-timestamp"] == b"1700000000123"
    assert "tripwire-truncated" not in h and "tripwire-indices" not in h


def test_dead_letter_truncates_oversize_and_replaces_earlier_dlq_headers() -> None:
    replayed = [("tripwire-reason", b"schema"), ("tripwire-source-offset", b"5")]
    out = dead_letter(
        record(b"x" * 50, replayed), "dlq", reason="oversize", error="InvalidEvent",
        detail="d" * 5000, max_value_bytes=10, indices=[3, 17],
    )  # fmt: skip
    assert out.value == b"x" * 10
    names = [k for k, _ in out.headers or []]
    assert names.count("tripwire-reason") == 1 and names.count("tripwire-source-offset") == 1
    h = dict(out.headers or [])
    assert h["tripwire-reason"] == b"oversize" and h["tripwire-truncated"] == b"50"
    assert h["tripwire-indices"] == b"3,17"
    assert len(h["tripwire-detail"]) == MAX_DETAIL_CHARS


sizes = st.one_of(st.integers(0, 100), st.integers(0, 3_000_000))


@settings(max_examples=60, deadline=None)
@given(
    key=st.one_of(st.none(), sizes),
    value=sizes,
    headers=st.lists(st.tuples(st.integers(0, 300), sizes), max_size=8),
    empty_headers=st.integers(0, 20_000),
    limit=st.integers(MIN_MAX_OUTPUT_BYTES, 2 * DEFAULT_MAX_OUTPUT_BYTES),
    indices=st.integers(0, 50_000),
)
def test_a_dead_letter_fits_the_output_limit_whatever_the_record(
    key: int | None,
    value: int,
    headers: list[tuple[int, int]],
    empty_headers: int,
    limit: int,
    indices: int,
) -> None:
    hs = [("h" * k, b"v" * v) for k, v in headers] + [("", b"")] * empty_headers
    rec = InputRecord("features", 0, 1, 2, None if key is None else b"k" * key, b"x" * value, hs)
    out = dead_letter(
        rec, "dlq", reason="malformed", error="E" * 5000, detail="\U0010ffff" * 5000,
        max_value_bytes=1_000_000, indices=range(indices), max_output_bytes=limit,
    )  # fmt: skip
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(out.key, out.value, out.headers)
    assert size <= limit
    h = dict(out.headers or [])
    assert out.value == rec.value[: len(out.value)]
    assert (len(out.value) < value) == ("tripwire-truncated" in h)
    if "tripwire-truncated" in h:
        assert h["tripwire-truncated"] == str(value).encode()


def test_a_long_key_and_many_headers_are_cut_and_say_so() -> None:
    rec = InputRecord(
        "features", 0, 1, None, b"k" * 200_000, b"{" * 900_000, [("big", b"h" * 1_500_000)]
    )
    out = dead_letter(
        rec, "dlq", reason="malformed", error="E", detail="d", max_value_bytes=1_000_000
    )
    h = dict(out.headers or [])
    assert h["tripwire-truncated-key"] == b"200000" and len(out.key or b"") == MAX_DLQ_KEY_BYTES
    assert h["tripwire-truncated-headers"] == str(10 + 3 + 1_500_000).encode()
    assert "big" not in h
    assert out.value == rec.value  # the value is what matters most: kept whole
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(out.key, out.value, out.headers)
    assert size <= DEFAULT_MAX_OUTPUT_BYTES


def test_an_output_refused_as_too_large_dead_letters_its_input() -> None:
    src = record(b'{"id": "x"}')
    alert = OutputRecord("anomalies", b"key", b"a" * 2_000_000, None, src, 4)
    out = output_dead_letter(
        alert, MessageSizeTooLargeError("big"), topic="dlq", max_output_bytes=100_000
    )
    assert out is not None and (out.topic, out.key, out.value) == ("dlq", b"key", src.value)
    h = dict(out.headers or [])
    assert h["tripwire-reason"] == OUTPUT_TOO_LARGE.encode()
    assert h["tripwire-error"] == b"MessageSizeTooLargeError"
    assert h["tripwire-output-topic"] == b"anomalies" and h["tripwire-indices"] == b"4"
    assert b"2000000-byte record for anomalies" in h["tripwire-detail"]
    # the dead letter refused too: a minimal one, then nothing
    minimal = output_dead_letter(
        out, MessageSizeTooLargeError(), topic="dlq", max_output_bytes=100_000
    )
    assert minimal is not None and minimal.value == b""
    assert dict(minimal.headers or [])["tripwire-output-topic"] == b"dlq"
    assert (
        output_dead_letter(minimal, MessageSizeTooLargeError(), topic="dlq", max_output_bytes=1)
        is None
    )
