"""Dead letters: the original record plus headers saying why it was refused.

A dead letter keeps the input's key, value and headers, and adds:

=============================  =====================================================
``tripwire-reason``            a :class:`DeadLetterReason`
``tripwire-error``             class of the exception that refused it
``tripwire-detail``            what exactly is wrong (at most 1,000 characters)
``tripwire-source-topic``      input topic
``tripwire-source-partition``  input partition (decimal)
``tripwire-source-offset``     input offset (decimal)
``tripwire-source-timestamp``  input record timestamp, epoch ms (absent if none)
``tripwire-indices``           packed records only: refused vector positions, ``3,17``
``tripwire-truncated``         the original size in bytes, when the value was cut
``tripwire-truncated-key``     the original size of the key, when it was cut
``tripwire-truncated-headers`` the original size of the record's own headers (names
                               and values), when some were left out
``tripwire-output-topic``      ``output_too_large`` only: where the refused output went
=============================  =====================================================

A dead letter is bounded by construction: it fits in ``max_output_bytes`` (the
broker's ``message.max.bytes``) whatever the input. The key is kept up to
``MAX_DLQ_KEY_BYTES`` (a longer one is cut and ends with its digest,
:func:`tripwire.stream.wire.limits.bounded_bytes`), the record's own headers in order
while they fit in ``MAX_DLQ_HEADER_BYTES`` in total (later ones are left out), both
at most a sixteenth of ``max_output_bytes``; the
value up to ``max_value_bytes`` (an ``oversize`` value is cut to ``max_message_bytes``)
and to what is left of ``max_output_bytes``; everything else is copied byte for byte.
``tripwire-indices`` lists at most ``MAX_INDICES_BYTES`` of positions and then ``...``.
Earlier ``tripwire-*`` headers of this table (a dead letter replayed into the input)
are replaced, not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from tripwire.stream.wire.limits import (
    DEFAULT_MAX_OUTPUT_BYTES,
    MAX_DLQ_HEADER_BYTES,
    MAX_DLQ_KEY_BYTES,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    RECORD_OVERHEAD,
    bounded_bytes,
)
from tripwire.stream.wire.records import Headers, InputRecord, OutputRecord

MAX_DETAIL_CHARS = 1000
MAX_INDICES_BYTES = 4096


class DeadLetterReason(StrEnum):
    """Why a record was dead-lettered: its ``tripwire-reason`` header.

    All but ``OUTPUT_TOO_LARGE`` refuse the input and are the ``reason`` label of
    ``tripwire_invalid_events_total``
    (:data:`tripwire.stream.observability.metrics.INVALID_REASONS`).
    """

    EMPTY = "empty"  # zero-length value
    OVERSIZE = "oversize"  # value larger than max_message_bytes
    UNKNOWN_ENCODING = "unknown_encoding"  # neither JSON nor a known binary layout
    MALFORMED = "malformed"  # undecodable bytes / JSON syntax error / truncated binary
    SCHEMA = "schema"  # decodes, but not the event shape (missing id/features, wrong types)
    FEATURE_COUNT = "feature_count"  # wrong number of features for the model
    FEATURE_NAMES = "feature_names"  # named features missing or unknown to the model
    NON_NUMERIC = "non_numeric"  # a feature value that is not a number
    NON_FINITE = "non_finite"  # NaN or +/-inf (or a non-finite score)
    PROCESSING_ERROR = "processing_error"  # processing this record raised (type, message)
    OUTPUT_TOO_LARGE = "output_too_large"  # the broker refused an output (the input was scored)


#: Reason of the dead letter of an input whose output the broker refused for its size.
OUTPUT_TOO_LARGE = DeadLetterReason.OUTPUT_TOO_LARGE
_OWN_PREFIXES = (
    "tripwire-reason", "tripwire-error", "tripwire-detail", "tripwire-source-",
    "tripwire-indices", "tripwire-truncated", "tripwire-output-topic",
)  # fmt: skip
#: Bytes a header adds to a record besides its name and value (varints, at most).
_HEADER_OVERHEAD = 10
#: Room for the ``tripwire-truncated`` header added once the value is measured.
_TRUNCATED_HEADER = 64


def dead_letter(
    record: InputRecord,
    topic: str,
    *,
    reason: DeadLetterReason,
    error: str,
    detail: str,
    max_value_bytes: int,
    indices: Sequence[int] = (),
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    output_topic: str | None = None,
) -> OutputRecord:
    """The dead letter of ``record`` for ``topic`` (see the module docstring).

    The result's key, value and headers take at most ``max_output_bytes`` together
    with a record batch's overhead (``RECORD_OVERHEAD``).
    """
    headers = _why(record, reason, error, detail, indices, output_topic)
    # a sixteenth of the output each at most, so that small limits still leave room
    key, key_limit = record.key, min(MAX_DLQ_KEY_BYTES, max_output_bytes // 16)
    if key is not None and len(key) > key_limit:
        headers.append(("tripwire-truncated-key", str(len(key)).encode()))
        key = bounded_bytes(key, key_limit)
    own, dropped_from = _copied_headers(
        record.headers or (), min(MAX_DLQ_HEADER_BYTES, max_output_bytes // 16)
    )
    if dropped_from is not None:
        headers.append(("tripwire-truncated-headers", str(dropped_from).encode()))
    headers = own + headers
    used = RECORD_OVERHEAD + _TRUNCATED_HEADER + len(key or b"") + _headers_size(headers)
    value = record.value or b""
    limit = max(0, min(max_value_bytes, max_output_bytes - used))
    if len(value) > limit:
        headers.append(("tripwire-truncated", str(len(value)).encode()))
        value = value[:limit]
    return OutputRecord(topic, key, value, headers, source=record)


def _why(
    record: InputRecord,
    reason: DeadLetterReason,
    error: str,
    detail: str,
    indices: Sequence[int],
    output_topic: str | None,
) -> list[tuple[str, bytes]]:
    """The ``tripwire-*`` headers saying why and where from (bounded)."""
    headers = [
        ("tripwire-reason", reason.encode()),
        ("tripwire-error", error[:MAX_NAME_BYTES].encode("utf-8", "replace")),
        ("tripwire-detail", detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
        ("tripwire-source-topic", record.topic.encode()),
        ("tripwire-source-partition", str(record.partition).encode()),
        ("tripwire-source-offset", str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append(("tripwire-source-timestamp", str(record.timestamp_ms).encode()))
    if indices:
        headers.append(("tripwire-indices", _indices(indices)))
    if output_topic is not None:
        headers.append(("tripwire-output-topic", output_topic.encode()))
    return headers


def _copied_headers(headers: Headers, limit: int) -> tuple[list[tuple[str, bytes]], int | None]:
    """The record's own headers that fit in ``limit`` bytes together, in order.

    Earlier dead-letter headers are left out (replaced). Returns the kept headers and,
    if some did not fit, the size of all of them (else ``None``).
    """
    kept: list[tuple[str, bytes]] = []
    size = total = 0
    for k, v in headers:
        if k.lower().startswith(_OWN_PREFIXES):
            continue
        n = _HEADER_OVERHEAD + len(k.encode("utf-8", "surrogatepass")) + len(v or b"")
        total += n
        if size + n <= limit:
            kept.append((k, v))
            size += n
    return kept, None if total == size else total


def _headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(
        _HEADER_OVERHEAD + len(k.encode("utf-8", "surrogatepass")) + len(v or b"")
        for k, v in headers
    )


def _indices(indices: Sequence[int]) -> bytes:
    """``3,17``: the positions, cut after ``MAX_INDICES_BYTES`` with ``,...``."""
    text = ",".join(map(str, indices))
    if len(text) <= MAX_INDICES_BYTES:
        return text.encode()
    return text[: text.rfind(",", 0, MAX_INDICES_BYTES - 4)].encode() + b",..."


def output_dead_letter(
    output: OutputRecord, error: BaseException, *, topic: str, max_output_bytes: int
) -> OutputRecord | None:
    """The dead letter replacing ``output``, which the broker refused as too large.

    The dead letter of ``output.source`` (the input it was made from), reason
    ``output_too_large``, naming ``output``'s topic and vector. If ``output`` is
    itself a dead letter (the dead-letter topic takes less than ``max_output_bytes``),
    a minimal one: the source position and a bounded key, no value, no headers;
    ``None`` when even that was refused (nothing smaller can be said).
    """
    source = output.source or InputRecord(
        output.topic, -1, -1, None, output.key, output.value, output.headers or ()
    )
    output_topic = output.topic
    if output.topic == topic:
        if (output.headers or []).count(("tripwire-output-topic", topic.encode())):
            return None
        key = None if source.key is None else bounded_bytes(source.key, MAX_ID_BYTES)
        source, output_topic = replace(source, key=key, value=b"", headers=()), topic
    return dead_letter(
        source,
        topic,
        reason=OUTPUT_TOO_LARGE,
        error=type(error).__name__,
        detail=f"a {len(output.value)}-byte record for {output.topic} was refused: {error}",
        max_value_bytes=max_output_bytes,
        indices=() if output.index is None else (output.index,),
        max_output_bytes=max_output_bytes,
        output_topic=output_topic,
    )
