"""Binary input: one float32 vector per record (``application/x-tripwire-f32``).

The value is ``n_features`` little-endian float32; the Kafka key is the entity,
header ``tripwire-id`` the id, ``tripwire-ts`` the event time (docs/formats.md
"Binary"). Its ``decode_batch`` is the worker's hot path: every well-formed binary
record of a batch is converted and checked for NaN/inf with one numpy call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np

from tripwire.core.events import (
    CONTENT_TYPE_HEADER,
    F32_TYPE,
    ID_HEADER,
    TS_HEADER,
    FieldError,
    header_ms,
)
from tripwire.stream.compat import UNDECODABLE_HEADER_KEY
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.encodings.base import (
    Encoded,
    Encoding,
    Events,
    FeatureSchema,
    first_bad,
    header_text,
    key_bytes,
    media_type,
    offset_id,
    record_event_ms,
    record_key,
    texts,
    times,
    utf8,
    vectors,
)
from tripwire.stream.wire.errors import InvalidEvent, processing_error
from tripwire.stream.wire.records import Decoded, Headers, InputRecord

_READ = (CONTENT_TYPE_HEADER, ID_HEADER, TS_HEADER, UNDECODABLE_HEADER_KEY)


class BinaryEncoding(Encoding):
    """``n_features`` float32 per record; id and time in headers."""

    name = "binary"
    content_type = F32_TYPE

    def encode(self, events: Events) -> list[Encoded]:
        X = np.ascontiguousarray(vectors(events))
        texts(events.ids, "ids")
        texts(events.keys, "keys")
        ts = times(events.ts_ms)
        ids = [utf8(i, "id") for i in events.ids] if events.ids is not None else None
        keys = [key_bytes(k) for k in events.keys] if events.keys is not None else None
        ctype = self.ctype_headers()
        out = []
        for i, x in enumerate(X):
            headers = list(ctype)
            if ids is not None:
                headers.append((ID_HEADER, ids[i]))
            if ts is not None:
                headers.append((TS_HEADER, _ts_header(ts[i])))
            out.append(Encoded(x.tobytes(), keys[i] if keys else None, headers))
        return out

    def decode(self, record: InputRecord, schema: FeatureSchema) -> Decoded:
        value = record.value or b""
        if len(value) % 4:
            raise InvalidEvent(
                DeadLetterReason.MALFORMED, f"{len(value)} bytes is not a whole number of float32"
            )
        if len(value) // 4 != schema.n:
            raise InvalidEvent(
                DeadLetterReason.FEATURE_COUNT,
                f"{len(value) // 4} float32 values, model expects {schema.n}",
            )
        x = np.frombuffer(value, dtype="<f4")
        if not np.isfinite(x).all():
            raise InvalidEvent(
                DeadLetterReason.NON_FINITE, f"NaN or inf at feature {first_bad(x, schema)}"
            )
        return _decoded(record, x[None, :], _headers(record.headers))

    def decode_batch(
        self,
        records: Sequence[InputRecord],
        schema: FeatureSchema,
        max_bytes: int,
        one: Callable[[InputRecord], Decoded | InvalidEvent],
    ) -> list[Decoded | InvalidEvent]:
        """``one(record)`` of every record, the binary ones converted all at once.

        Same results as one ``decode`` per record; converting and checking the
        binary vectors with one numpy call is most of what decoding them one by one costs.
        """
        out: list[Decoded | InvalidEvent | None] = []
        f32: list[int] = []
        values: list[bytes] = []
        found: list[dict[str, bytes]] = []
        size = 4 * schema.n
        for record in records:
            value = record.value
            headers = _headers(record.headers)
            if (
                value and len(value) == size and size <= max_bytes
                and media_type(headers.get(CONTENT_TYPE_HEADER)) == F32_TYPE
                and UNDECODABLE_HEADER_KEY not in headers
            ):  # fmt: skip
                f32.append(len(out))
                values.append(value)
                found.append(headers)
                out.append(None)
            else:
                out.append(one(record))
        if f32:
            X = np.frombuffer(b"".join(values), dtype="<f4").reshape(len(f32), schema.n)
            for row, (i, ok) in enumerate(zip(f32, np.isfinite(X).all(axis=1), strict=True)):
                if not ok:  # decode says which feature
                    out[i] = one(records[i])
                    continue
                try:
                    out[i] = _decoded(records[i], X[row : row + 1], found[row])
                except InvalidEvent as e:
                    out[i] = e
                except Exception as e:  # attributable to this record whatever it is
                    out[i] = processing_error(e)
        return cast(list[Decoded | InvalidEvent], out)


def _decoded(record: InputRecord, x: np.ndarray, headers: dict[str, bytes]) -> Decoded:
    """The ``Decoded`` of a binary record whose vector ``x`` (1, d) is valid."""
    event_id = header_text(headers.get(ID_HEADER), ID_HEADER) or offset_id(record)
    key = record_key(record) or event_id
    return Decoded(x, [event_id], [key], [record_event_ms(record, headers.get(TS_HEADER))])


def _ts_header(ts: int) -> bytes:
    raw = str(ts).encode()
    try:
        header_ms(raw)  # the decoder's rule (a time beyond float range fails it)
    except FieldError as e:
        raise ValueError(f"ts {raw[:40]!r}: {e}") from None
    return raw


def _headers(headers: Headers) -> dict[str, bytes]:
    """The last value of each header the binary encodings read, in one pass."""
    found: dict[str, bytes] = {}
    for k, v in headers or ():
        name = k if k in _READ else k.lower()
        if name in _READ:
            found[name] = v
    return found
