"""Decode input records into feature vectors, or say precisely why not.

Three encodings share the input topic; the ``content-type`` header tells them apart.

JSON (``content-type: application/json``, or no content-type and a value whose first
non-blank byte is ``{``)::

    {"id": "evt-1", "key": "card-42", "ts": 1764324000000,
     "features": [0.1, 2.5, ...]}                  # or {"f0": 0.1, "f1": 2.5, ...}

- ``id`` (string or integer, required): unique per event; alert ids derive from it.
- ``key`` (string or integer, optional): the entity. Default: the Kafka record key,
  else the id.
- ``ts`` (optional): event time, epoch milliseconds (number) or an RFC 3339 string
  with a UTC offset. Default: the Kafka record timestamp.
- ``features``: a list of exactly ``n_features`` numbers in the model's feature
  order, or an object mapping every model feature name to a number (missing or
  extra names are refused).

Binary (``content-type: application/x-tripwire-f32``): the value is
``n_features`` little-endian IEEE-754 float32 values (``4 * n_features`` bytes).
The Kafka record key is the entity key; header ``tripwire-id`` (UTF-8) the id
(default ``<topic>-<partition>-<offset>``); header ``tripwire-ts`` (ASCII epoch ms)
the event time (default: the record timestamp).

Packed binary (``content-type: application/x-tripwire-f32-packed``): many vectors
in one record, little-endian throughout::

    offset  size       field
    0       4          magic b"TWP1"
    4       4          uint32 n: number of vectors (>= 1)
    8       2          uint16 d: features per vector (= n_features)
    10      2          uint16 flags: 1 = ids section, 2 = keys section,
                       4 = timestamps section; other bits must be 0
    12      8*n        int64 event times, epoch ms           (if flags & 4)
    ...     4*n*d      float32 vectors, row after row
    ...     4 + L      uint32 L, then L bytes: the n ids, UTF-8, joined by "\\n"
                                                             (if flags & 1)
    ...     4 + L      uint32 L, then the n entity keys likewise (if flags & 2)

The value must end exactly there. Without an ids section the ids are
``<topic>-<partition>-<offset>-<i>``; without keys every vector's entity is the
record key, else its id; without timestamps, ``tripwire-ts`` or the record
timestamp. A vector with a NaN/inf value is refused on its own (its neighbours are
scored); any other defect refuses the whole record.

A record with a header key that is not UTF-8 (Kafka header keys are UTF-8 strings;
aiokafka alone cannot read such a record: :func:`tripwire.stream.compat.install_lenient_fetch`)
is refused as ``malformed`` whatever its encoding.

Every refusal raises :class:`InvalidEvent` whose ``reason`` is one of
:data:`tripwire.stream.observability.metrics.INVALID_REASONS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np

from tripwire.stream.compat import UNDECODABLE_HEADER_KEY
from tripwire.stream.wire.errors import InvalidEvent, processing_error
from tripwire.stream.wire.packed import CONTENT_TYPE as PACKED_CONTENT_TYPE
from tripwire.stream.wire.packed import FLAG_IDS, FLAG_KEYS, FLAG_TS, PackedLayout
from tripwire.stream.wire.records import Decoded, Headers, InputRecord

# Re-exported for callers that build or inspect records.
__all__ = [
    "F32_TYPE", "FLAG_IDS", "FLAG_KEYS", "FLAG_TS", "JSON_TYPE", "PACKED_TYPE",
    "Codec", "InvalidEvent", "header",
]  # fmt: skip

JSON_TYPE = "application/json"
F32_TYPE = "application/x-tripwire-f32"
PACKED_TYPE = PACKED_CONTENT_TYPE
ID_HEADER = "tripwire-id"
TS_HEADER = "tripwire-ts"
_BLANK = b" \t\r\n"


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header ``name`` (case-insensitive), or ``None``."""
    found = None
    for k, v in headers or ():
        if k.lower() == name:
            found = v
    return found


class Codec:
    """Decoder of input records for one model's feature schema.

    Parameters
    ----------
    feature_names : sequence of str
        The model's features, in order.
    max_message_bytes : int
        Larger values are refused as ``oversize``.
    """

    def __init__(self, feature_names: Sequence[str], max_message_bytes: int) -> None:
        self.feature_names = tuple(feature_names)
        self.n_features = len(self.feature_names)
        self.max_message_bytes = max_message_bytes
        self._index = {name: i for i, name in enumerate(self.feature_names)}

    def decode(self, record: InputRecord) -> Decoded:
        """Decode one record; raise :class:`InvalidEvent` if it cannot be scored."""
        value = record.value
        undecodable = header(record.headers, UNDECODABLE_HEADER_KEY)
        if undecodable is not None:
            raise InvalidEvent("malformed", f"a header key is not UTF-8: {undecodable[:60]!r}")
        if not value:
            raise InvalidEvent("empty", "the record value is empty")
        if len(value) > self.max_message_bytes:
            raise InvalidEvent(
                "oversize", f"{len(value)} bytes > max_message_bytes {self.max_message_bytes}"
            )
        ctype = _media_type(header(record.headers, "content-type"))
        if ctype == F32_TYPE:
            return self._decode_f32(record, value)
        if ctype == PACKED_TYPE:
            return self._decode_packed(record, value)
        if ctype == JSON_TYPE or (ctype is None and value.lstrip(_BLANK)[:1] == b"{"):
            return self._decode_json(record, value)
        shown = ctype if ctype is not None else f"none, value starts {value[:8]!r}"
        raise InvalidEvent("unknown_encoding", f"content-type {shown}")

    def decode_batch(self, records: Sequence[InputRecord]) -> list[Decoded | InvalidEvent]:
        """:meth:`decode` of every record: the decoded record or the error it raised.

        Same results as one ``decode`` per record; the binary (one vector) records are
        converted and checked for NaN/inf with one numpy call for them all, which is
        most of what decoding them one by one costs.
        """
        out: list[Decoded | InvalidEvent | None] = []
        f32: list[int] = []
        values: list[bytes] = []
        found: list[dict[str, bytes]] = []
        size = 4 * self.n_features
        for record in records:
            value = record.value
            headers = _binary_headers(record.headers)
            if (
                value and len(value) == size and size <= self.max_message_bytes
                and _media_type(headers.get("content-type")) == F32_TYPE
                and UNDECODABLE_HEADER_KEY not in headers
            ):  # fmt: skip
                f32.append(len(out))
                values.append(value)
                found.append(headers)
                out.append(None)
            else:
                out.append(self.decode_or_error(record))
        if f32:
            X = np.frombuffer(b"".join(values), dtype="<f4").reshape(len(f32), self.n_features)
            for row, (i, ok) in enumerate(zip(f32, np.isfinite(X).all(axis=1), strict=True)):
                if not ok:  # decode says which feature
                    out[i] = self.decode_or_error(records[i])
                    continue
                try:
                    out[i] = self._f32_decoded(records[i], X[row : row + 1], found[row])
                except InvalidEvent as e:
                    out[i] = e
                except Exception as e:  # attributable to this record whatever it is
                    out[i] = processing_error(e)
        return cast(list[Decoded | InvalidEvent], out)

    def decode_or_error(self, record: InputRecord) -> Decoded | InvalidEvent:
        """:meth:`decode`, returning the refusal instead of raising it.

        Any other exception the record makes decoding raise (an integer too large
        for a float, say) is returned as an ``InvalidEvent`` with reason
        ``processing_error``, naming the exception: it is this record's, not the batch's.
        """
        try:
            return self.decode(record)
        except InvalidEvent as e:
            return e
        except Exception as e:  # attributable to this record whatever it is
            return processing_error(e)

    # -- JSON ------------------------------------------------------------------

    def _decode_json(self, record: InputRecord, value: bytes) -> Decoded:
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise InvalidEvent("malformed", f"not JSON: {e}", e) from None
        if not isinstance(doc, dict):
            raise InvalidEvent("schema", f"expected a JSON object, got {type(doc).__name__}")
        event_id = _json_text(doc.get("id"), "id")
        if event_id is None:
            raise InvalidEvent("schema", "missing 'id'")
        key = _json_text(doc.get("key"), "key")
        if key is None:
            key = _record_key(record) or event_id
        ts = doc.get("ts")
        event_ms = record.timestamp_ms if ts is None else _json_ts(ts)
        if "features" not in doc:
            raise InvalidEvent("schema", "missing 'features'")
        x = self._json_features(doc["features"])
        return Decoded(x[None, :], [event_id], [key], [_opt_float(event_ms)])

    def _json_features(self, features: Any) -> np.ndarray:
        if isinstance(features, dict):
            values = self._by_name(features)
        elif isinstance(features, list):
            if len(features) != self.n_features:
                raise InvalidEvent(
                    "feature_count", f"{len(features)} features, model expects {self.n_features}"
                )
            values = features
        else:
            raise InvalidEvent(
                "schema", f"'features' must be a list or an object, not {type(features).__name__}"
            )
        for i, v in enumerate(values):
            if type(v) is not float and type(v) is not int:
                name = self.feature_names[i]
                raise InvalidEvent("non_numeric", f"feature {name!r} is {_type_name(v)}")
        return _finite_row(values, self.feature_names)

    def _by_name(self, features: dict[str, Any]) -> list[Any]:
        index = self._index
        if len(features) != self.n_features or any(k not in index for k in features):
            missing = [n for n in self.feature_names if n not in features]
            extra = [k for k in features if k not in index]
            raise InvalidEvent(
                "feature_names",
                f"missing {_few(missing)}, unknown {_few(extra)}",
            )
        return [features[name] for name in self.feature_names]

    # -- binary ----------------------------------------------------------------

    def _decode_f32(self, record: InputRecord, value: bytes) -> Decoded:
        if len(value) % 4:
            raise InvalidEvent("malformed", f"{len(value)} bytes is not a whole number of float32")
        if len(value) // 4 != self.n_features:
            raise InvalidEvent(
                "feature_count",
                f"{len(value) // 4} float32 values, model expects {self.n_features}",
            )
        x = np.frombuffer(value, dtype="<f4")
        if not np.isfinite(x).all():
            raise InvalidEvent("non_finite", f"NaN or inf at feature {_first_bad(x, self)}")
        return self._f32_decoded(record, x[None, :], _binary_headers(record.headers))

    def _f32_decoded(
        self, record: InputRecord, x: np.ndarray, headers: dict[str, bytes]
    ) -> Decoded:
        """The ``Decoded`` of a binary record whose vector ``x`` (1, d) is valid."""
        event_id = _header_text(headers.get(ID_HEADER), ID_HEADER) or _offset_id(record)
        key = _record_key(record) or event_id
        return Decoded(x, [event_id], [key], [_event_ms(record, headers.get(TS_HEADER))])

    def _decode_packed(self, record: InputRecord, value: bytes) -> Decoded:
        layout = PackedLayout.parse(value, self.n_features)
        n = layout.n
        X = np.frombuffer(value, dtype="<f4", count=n * self.n_features, offset=layout.x_at)
        X = X.reshape(n, self.n_features)
        ids = layout.ids
        if ids is None:
            base = f"{_offset_id(record)}-"
            ids = [f"{base}{i}" for i in range(n)]
        if layout.keys is not None:
            keys = layout.keys
        else:
            record_key = _record_key(record)
            keys = [record_key] * n if record_key else list(ids)
        if layout.ts is not None:
            event_ms: list[float | None] = [_opt_float(t) for t in layout.ts.tolist()]
        else:
            event_ms = [_event_ms(record, header(record.headers, TS_HEADER))] * n
        if np.isfinite(X).all():  # one flat check: far cheaper than the per-row one
            return Decoded(X, ids, keys, event_ms, index=list(range(n)))
        ok = np.isfinite(X).all(axis=1)
        keep = np.flatnonzero(ok).tolist()
        rejected = [
            (i, "non_finite", f"vector {i} ({ids[i]}): NaN or inf at feature "
             f"{_first_bad(X[i], self)}")
            for i in np.flatnonzero(~ok).tolist()
        ]  # fmt: skip
        return Decoded(
            X[ok], [ids[i] for i in keep], [keys[i] for i in keep],
            [event_ms[i] for i in keep], index=keep, rejected=rejected,
        )  # fmt: skip


# -- helpers -----------------------------------------------------------------------


def _media_type(raw: bytes | None) -> str | None:
    """The media type of a ``content-type`` header value, lower case."""
    if raw is None:
        return None
    return raw.decode("latin-1").split(";", 1)[0].strip().lower()


_BINARY_HEADERS = ("content-type", ID_HEADER, TS_HEADER, UNDECODABLE_HEADER_KEY)


def _binary_headers(headers: Headers) -> dict[str, bytes]:
    """The last value of each header the binary encodings read, in one pass."""
    found: dict[str, bytes] = {}
    for k, v in headers or ():
        name = k if k in _BINARY_HEADERS else k.lower()
        if name in _BINARY_HEADERS:
            found[name] = v
    return found


def _json_text(value: Any, name: str) -> str | None:
    """A JSON id/key: a non-empty string or an integer, ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if type(value) is int:
        return str(value)
    raise InvalidEvent("schema", f"'{name}' must be a non-empty string or an integer")


def _json_ts(ts: Any) -> float:
    if type(ts) in (int, float):
        if not math.isfinite(ts) or ts < 0:
            raise InvalidEvent("schema", f"'ts' {ts!r} is not a valid epoch-ms time")
        return float(ts)
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError as e:
            raise InvalidEvent("schema", f"'ts' {ts[:40]!r} is not RFC 3339", e) from None
        if dt.tzinfo is None:
            raise InvalidEvent("schema", f"'ts' {ts[:40]!r} has no UTC offset")
        return dt.timestamp() * 1000.0
    raise InvalidEvent("schema", f"'ts' must be epoch ms or RFC 3339, not {_type_name(ts)}")


def _finite_row(values: list[Any], names: tuple[str, ...]) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):
            x = np.asarray(values, dtype=np.float32)
    except OverflowError as e:  # an integer beyond float range
        raise InvalidEvent("non_finite", f"a feature is out of float range: {e}", e) from None
    if not np.isfinite(x).all():
        bad = names[int(np.flatnonzero(~np.isfinite(x))[0])]
        raise InvalidEvent("non_finite", f"feature {bad!r} is NaN/inf (or beyond float32)")
    return x


def _first_bad(x: np.ndarray, codec: Codec) -> str:
    return repr(codec.feature_names[int(np.flatnonzero(~np.isfinite(x))[0])])


def _header_text(raw: bytes | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvent("schema", f"header {name} is not UTF-8", e) from None
    return text or None


def _event_ms(record: InputRecord, raw: bytes | None) -> float | None:
    """Event time from a ``tripwire-ts`` header value, else the record timestamp."""
    if raw is None:
        return _opt_float(record.timestamp_ms)
    try:
        ts = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidEvent(
            "schema", f"header {TS_HEADER} {raw[:30]!r} is not epoch ms", e
        ) from None
    if not math.isfinite(ts) or ts < 0:
        raise InvalidEvent("schema", f"header {TS_HEADER} {raw[:30]!r} is not epoch ms")
    return ts


def _record_key(record: InputRecord) -> str | None:
    """The Kafka key as text; undecodable bytes survive via ``surrogateescape``."""
    if not record.key:
        return None
    return record.key.decode("utf-8", "surrogateescape")


def _offset_id(record: InputRecord) -> str:
    return f"{record.topic}-{record.partition}-{record.offset}"


def _opt_float(v: float | int | None) -> float | None:
    return None if v is None or v < 0 else float(v)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i)[:40] for i in items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}]{more}"
