"""Dead letters: the original record plus headers saying why."""

from __future__ import annotations

from tripwire.stream.wire.dead_letters import MAX_DETAIL_CHARS, dead_letter
from tripwire.stream.wire.records import InputRecord


def record(value: bytes = b"{bad", headers: list | None = None) -> InputRecord:
    return InputRecord("features", 1, 77, 1_700_000_000_123, b"key", value, headers or [])


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
