"""Dead letters: the original record plus headers saying why it was refused.

A dead letter keeps the input's key, value and headers, and adds:

=============================  =====================================================
``tripwire-reason``            one of ``tripwire.stream.observability.metrics.INVALID_REASONS``
``tripwire-error``             class of the exception that refused it
``tripwire-detail``            what exactly is wrong (at most 1,000 characters)
``tripwire-source-topic``      input topic
``tripwire-source-partition``  input partition (decimal)
``tripwire-source-offset``     input offset (decimal)
``tripwire-source-timestamp``  input record timestamp, epoch ms (absent if none)
``tripwire-indices``           packed records only: refused vector positions, ``3,17``
``tripwire-truncated``         the original size in bytes, when the value was cut
=============================  =====================================================

An ``oversize`` value is cut to ``max_message_bytes`` so the dead letter itself can
be produced; everything else is copied byte for byte. Earlier ``tripwire-reason`` /
``-error`` / ``-detail`` / ``-source-*`` headers (a dead letter replayed into the
input) are replaced, not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

from tripwire.stream.wire.records import InputRecord, OutputRecord

MAX_DETAIL_CHARS = 1000
_OWN_PREFIXES = (
    "tripwire-reason", "tripwire-error", "tripwire-detail", "tripwire-source-",
    "tripwire-indices", "tripwire-truncated",
)  # fmt: skip


def dead_letter(
    record: InputRecord,
    topic: str,
    *,
    reason: str,
    error: str,
    detail: str,
    max_value_bytes: int,
    indices: Sequence[int] = (),
) -> OutputRecord:
    """The dead letter of ``record`` for ``topic`` (see the module docstring)."""
    headers = [(k, v) for k, v in record.headers or () if not k.lower().startswith(_OWN_PREFIXES)]
    headers += [
        ("tripwire-reason", reason.encode()),
        ("tripwire-error", error.encode()),
        ("tripwire-detail", detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
        ("tripwire-source-topic", record.topic.encode()),
        ("tripwire-source-partition", str(record.partition).encode()),
        ("tripwire-source-offset", str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append(("tripwire-source-timestamp", str(record.timestamp_ms).encode()))
    if indices:
        headers.append(("tripwire-indices", ",".join(map(str, indices)).encode()))
    value = record.value or b""
    if len(value) > max_value_bytes:
        headers.append(("tripwire-truncated", str(len(value)).encode()))
        value = value[:max_value_bytes]
    return OutputRecord(topic, record.key, value, headers)
