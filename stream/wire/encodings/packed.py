"""Packed binary input: many float32 vectors in one record
(``application/x-tripwire-f32-packed``; layout: :mod:`tripwire.core.events` and
docs/formats.md "Packed binary").

``PackedLayout.parse`` validates a value without copying the vectors. A vector with
a NaN/inf value is refused on its own (its neighbours are scored); any other defect
refuses the whole record.
"""

from __future__ import annotations

import numpy as np

from tripwire.core.events import (
    FLAG_IDS,
    FLAG_KEYS,
    FLAG_TS,
    PACKED_HEADER,
    PACKED_LENGTH,
    PACKED_MAGIC,
    PACKED_SEPARATOR,
    PACKED_TYPE,
    TS_HEADER,
)
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.encodings.base import (
    Encoded,
    Encoding,
    Events,
    FeatureSchema,
    first_bad,
    header,
    key_bytes,
    offset_id,
    opt_float,
    record_event_ms,
    record_key,
    texts,
    times,
    utf8,
    vectors,
)
from tripwire.stream.wire.errors import InvalidEvent
from tripwire.stream.wire.records import Decoded, InputRecord

_INT64_MAX = 2**63 - 1


class PackedEncoding(Encoding):
    """All the events in one record: header, [times], vectors, [ids], [keys]."""

    name = "packed"
    content_type = PACKED_TYPE

    def encode(self, events: Events) -> list[Encoded]:
        """One record of every vector (split the events to make several).

        Keys that are all equal travel as the Kafka record key (the decoder's
        default entity), other keys in a keys section.
        """
        X = vectors(events)
        n = len(X)
        texts(events.ids, "ids")
        texts(events.keys, "keys")
        ts = times(events.ts_ms)
        if ts is not None and max(ts) > _INT64_MAX:
            raise ValueError("ts_ms: a time beyond int64")
        record_key_: bytes | None = None
        keys = events.keys
        if keys is not None and len(set(keys)) == 1:
            try:
                record_key_, keys = key_bytes(keys[0]), None
            except ValueError:
                pass  # not a Kafka key: a keys section carries it
        flags = (FLAG_IDS if events.ids else 0) | (FLAG_KEYS if keys else 0)
        flags |= FLAG_TS if ts is not None else 0
        parts = [PACKED_HEADER.pack(PACKED_MAGIC, n, X.shape[1], flags)]
        if ts is not None:
            parts.append(np.asarray(ts, dtype="<i8").tobytes())
        parts.append(X.tobytes())
        for what, section in (("id", events.ids), ("key", keys)):
            if section:
                if any(PACKED_SEPARATOR in s for s in section):
                    raise ValueError(f"a packed {what} may not contain a newline")
                blob = utf8(PACKED_SEPARATOR.join(section), what)
                parts += [PACKED_LENGTH.pack(len(blob)), blob]
        return [Encoded(b"".join(parts), record_key_, self.ctype_headers())]

    def decode(self, record: InputRecord, schema: FeatureSchema) -> Decoded:
        value = record.value or b""
        layout = PackedLayout.parse(value, schema.n)
        n, d = layout.n, schema.n
        X = np.frombuffer(value, dtype="<f4", count=n * d, offset=layout.x_at).reshape(n, d)
        ids = layout.ids
        if ids is None:
            base = f"{offset_id(record)}-"
            ids = [f"{base}{i}" for i in range(n)]
        if layout.keys is not None:
            keys = layout.keys
        else:
            key = record_key(record)
            keys = [key] * n if key else list(ids)
        if layout.ts is not None:
            event_ms: list[float | None] = [opt_float(t) for t in layout.ts.tolist()]
        else:
            event_ms = [record_event_ms(record, header(record.headers, TS_HEADER))] * n
        if np.isfinite(X).all():  # one flat check: far cheaper than the per-row one
            return Decoded(X, ids, keys, event_ms, index=list(range(n)))
        ok = np.isfinite(X).all(axis=1)
        keep = np.flatnonzero(ok).tolist()
        rejected = [
            (i, DeadLetterReason.NON_FINITE, f"vector {i} ({ids[i]}): NaN or inf at feature "
             f"{first_bad(X[i], schema)}")
            for i in np.flatnonzero(~ok).tolist()
        ]  # fmt: skip
        return Decoded(
            X[ok], [ids[i] for i in keep], [keys[i] for i in keep],
            [event_ms[i] for i in keep], index=keep, rejected=rejected,
        )  # fmt: skip


class PackedLayout:
    """Offsets and sections of a packed record (see the module docstring)."""

    def __init__(self) -> None:
        self.n = 0
        self.x_at = 0
        self.ts: np.ndarray | None = None
        self.ids: list[str] | None = None
        self.keys: list[str] | None = None

    @classmethod
    def parse(cls, value: bytes, n_features: int) -> PackedLayout:
        """Check ``value`` against the layout; ``InvalidEvent`` names the first defect.

        >>> enc = PackedEncoding().encode(Events(np.zeros((2, 3)), ids=["a", "b"]))
        >>> PackedLayout.parse(enc[0].value, 3).ids
        ['a', 'b']
        """
        if len(value) < PACKED_HEADER.size:
            raise InvalidEvent(
                DeadLetterReason.MALFORMED, f"packed record of {len(value)} bytes < header"
            )
        magic, n, d, flags = PACKED_HEADER.unpack_from(value)
        if magic != PACKED_MAGIC:
            raise InvalidEvent(
                DeadLetterReason.MALFORMED, f"packed magic {magic!r} != {PACKED_MAGIC!r}"
            )
        if flags & ~(FLAG_IDS | FLAG_KEYS | FLAG_TS) or n == 0:
            raise InvalidEvent(
                DeadLetterReason.SCHEMA, f"packed header: n={n}, unknown flags {flags:#x}"
            )
        if d != n_features:
            raise InvalidEvent(
                DeadLetterReason.FEATURE_COUNT, f"packed d={d}, model expects {n_features}"
            )
        self = cls()
        self.n, at = n, PACKED_HEADER.size
        if flags & FLAG_TS:
            _need(value, at + 8 * n, "timestamps")
            self.ts = np.frombuffer(value, dtype="<i8", count=n, offset=at)
            at += 8 * n
        self.x_at = at
        at += 4 * n * d
        _need(value, at, "vectors")
        if flags & FLAG_IDS:
            self.ids, at = _text_section(value, at, n, "ids")
        if flags & FLAG_KEYS:
            self.keys, at = _text_section(value, at, n, "keys")
        if at != len(value):
            raise InvalidEvent(
                DeadLetterReason.MALFORMED, f"{len(value) - at} trailing bytes after packed data"
            )
        return self


def _need(value: bytes, end: int, what: str) -> None:
    if len(value) < end:
        raise InvalidEvent(DeadLetterReason.MALFORMED, f"packed record truncated in {what}")


def _text_section(value: bytes, at: int, n: int, what: str) -> tuple[list[str], int]:
    _need(value, at + PACKED_LENGTH.size, what)
    (length,) = PACKED_LENGTH.unpack_from(value, at)
    at += PACKED_LENGTH.size
    _need(value, at + length, what)
    try:
        items = value[at : at + length].decode("utf-8").split(PACKED_SEPARATOR)
    except UnicodeDecodeError as e:
        raise InvalidEvent(DeadLetterReason.MALFORMED, f"packed {what} are not UTF-8", e) from None
    if len(items) != n or not all(items):
        raise InvalidEvent(
            DeadLetterReason.SCHEMA, f"packed {what}: {len(items)} entries for {n} vectors"
        )
    return items, at + length
