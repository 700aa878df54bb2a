"""The input-event schema, defined once: field and header names, content types, the
packed layout, and the rules a JSON event's fields are parsed by.

Both sides read it: the worker's decoders (``tripwire.stream.wire.encodings``) and the
training/scoring files (``tripwire.training.textdata`` reads ``.jsonl`` lines with
:func:`event_text` and :func:`feature_row`). docs/formats.md is the one document
of these formats; ``SCHEMA_VERSION`` is the version it describes.

A change that an existing producer or consumer would notice (a field, a header, a
layout, a rule) is a new version: a new ``SCHEMA_VERSION`` here and in
docs/formats.md ("Input"); a new packed layout also gets a new magic.

>>> event_text(7, ID_FIELD), event_text("evt-1", ID_FIELD)
('7', 'evt-1')
>>> feature_row([1, 2.5], ("a", "b")).tolist()
[1.0, 2.5]
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

#: Version of the input formats below (docs/formats.md, "Input").
SCHEMA_VERSION = 1

# -- JSON event fields -----------------------------------------------------------
ID_FIELD = "id"
KEY_FIELD = "key"
TS_FIELD = "ts"
FEATURES_FIELD = "features"

# -- Kafka headers ---------------------------------------------------------------
CONTENT_TYPE_HEADER = "content-type"
ID_HEADER = "tripwire-id"
TS_HEADER = "tripwire-ts"

# -- content types (the ``content-type`` header picks the encoding) ---------------
JSON_TYPE = "application/json"
F32_TYPE = "application/x-tripwire-f32"
PACKED_TYPE = "application/x-tripwire-f32-packed"

# -- packed layout (little-endian) -------------------------------------------------
#: magic | uint32 n | uint16 d | uint16 flags, then the sections the flags name:
#: [int64 ts * n] if FLAG_TS, float32 vectors n * d, [uint32 L | ids joined by "\n"]
#: if FLAG_IDS, [uint32 L | keys joined by "\n"] if FLAG_KEYS.
PACKED_MAGIC = b"TWP1"
PACKED_HEADER = struct.Struct("<4sIHH")
PACKED_LENGTH = struct.Struct("<I")
FLAG_IDS, FLAG_KEYS, FLAG_TS = 1, 2, 4
#: The separator of the ids and keys sections (so never inside an id or key).
PACKED_SEPARATOR = "\n"


class FieldError(ValueError):
    """A field of an event breaks its rule (``__cause__``: the exception behind it, if any).

    Attributes
    ----------
    reason : str
        The refusal reason a worker reports for it (``schema``, ``non_numeric``,
        ``non_finite``: docs/formats.md "Limits and refusals").
    detail : str
        What exactly is wrong.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


def event_text(value: Any, name: str) -> str | None:
    """A JSON ``id`` or ``key``: a non-empty string, or an integer (as its decimal text).

    ``None`` when absent (``null``); anything else is a :class:`FieldError`.
    """
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if type(value) is int:
        return str(value)
    raise FieldError("schema", f"'{name}' must be a non-empty string or an integer")


def event_ms(ts: Any) -> float:
    """A JSON ``ts``: epoch ms (a number >= 0) or RFC 3339 text with a UTC offset.

    An integer too large for a float raises ``OverflowError`` (not a ``FieldError``:
    the worker dead-letters it as ``processing_error``, docs/formats.md).
    """
    if type(ts) in (int, float):
        if not math.isfinite(ts) or ts < 0:
            raise FieldError("schema", f"'ts' {ts!r} is not a valid epoch-ms time")
        return float(ts)
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError as e:
            raise FieldError("schema", f"'ts' {ts[:40]!r} is not RFC 3339") from e
        if dt.tzinfo is None:
            raise FieldError("schema", f"'ts' {ts[:40]!r} has no UTC offset")
        return dt.timestamp() * 1000.0
    raise FieldError("schema", f"'ts' must be epoch ms or RFC 3339, not {type_name(ts)}")


def header_ms(raw: bytes) -> float:
    """A ``tripwire-ts`` header value: ASCII decimal epoch ms, finite and >= 0."""
    try:
        ts = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FieldError("schema", f"header {TS_HEADER} {raw[:30]!r} is not epoch ms") from e
    if not math.isfinite(ts) or ts < 0:
        raise FieldError("schema", f"header {TS_HEADER} {raw[:30]!r} is not epoch ms")
    return ts


def feature_row(values: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """One event's feature values as float32 (d,): JSON numbers, finite in float32.

    A value that is not a number (a string, a boolean, ``null``) is ``non_numeric``;
    NaN, ±inf, an integer beyond float range and a number beyond float32 are
    ``non_finite``.
    """
    for i, v in enumerate(values):
        if type(v) is not float and type(v) is not int:
            raise FieldError("non_numeric", f"feature {names[i]!r} is {type_name(v)}")
    try:
        with np.errstate(over="ignore"):
            x = np.asarray(values, dtype=np.float32)
    except OverflowError as e:  # an integer beyond float range
        raise FieldError("non_finite", f"a feature is out of float range: {e}") from e
    if not np.isfinite(x).all():
        bad = names[int(np.flatnonzero(~np.isfinite(x))[0])]
        raise FieldError("non_finite", f"feature {bad!r} is NaN/inf (or beyond float32)")
    return x


def type_name(v: Any) -> str:
    """The JSON-ish name of a value's type, for messages."""
    return "null" if v is None else type(v).__name__
