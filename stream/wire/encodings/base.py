"""The contract of an input encoding, and what its encoders and decoders share.

An :class:`Encoding` is a pair: ``encode(events) -> [Encoded]`` (what a producer
writes) and ``decode(record, schema) -> Decoded`` (what the worker reads), with the
same rules on both sides, so that for every ``events`` an encoder accepts::

    decode(encode(events)) == events       (vectors as float32)

and an encoder refuses (``ValueError``) what its decoder would refuse. The field
rules themselves are defined once, in :mod:`tripwire.core.events`;
tests/stream/wire/test_encodings.py checks the round trip over the whole value space.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tripwire.core.events import CONTENT_TYPE_HEADER, FieldError, header_ms
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.errors import InvalidEvent
from tripwire.stream.wire.records import Decoded, Headers, InputRecord

HeaderList = list[tuple[str, bytes]]


class FeatureSchema:
    """The model's features, in order: what a decoder checks vectors against."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.n = len(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}


@dataclass(frozen=True, slots=True)
class Events:
    """Events to encode: ``n`` feature vectors and what goes with them.

    Attributes
    ----------
    X : array-like of shape (n, d)
        Feature vectors in the model's order; each value finite as float32.
    ids : sequence of str, length n, or None
        Event ids (non-empty). ``None``: the decoder's default (from the offset).
    keys : sequence of str, length n, or None
        Entity keys (non-empty). ``None``: the entity is the id.
    ts_ms : sequence of int, length n, or None
        Event times, epoch ms (>= 0). ``None``: the Kafka record timestamp.
    names : sequence of str, length d, or None
        JSON only: write ``features`` as an object of these names.
    """

    X: np.ndarray
    ids: Sequence[str] | None = None
    keys: Sequence[str] | None = None
    ts_ms: Sequence[int] | None = None
    names: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Encoded:
    """One Kafka record to produce."""

    value: bytes
    key: bytes | None
    headers: HeaderList


class Encoding(ABC):
    """One input encoding: its name, its content type, its encoder and decoder."""

    name: ClassVar[str]
    content_type: ClassVar[str]

    @abstractmethod
    def encode(self, events: Events) -> list[Encoded]:
        """The records of ``events``; ``ValueError`` if the decoder would refuse them."""

    @abstractmethod
    def decode(self, record: InputRecord, schema: FeatureSchema) -> Decoded:
        """The vectors of ``record``; :class:`InvalidEvent` if it cannot be scored."""

    def decode_batch(
        self,
        records: Sequence[InputRecord],
        schema: FeatureSchema,
        max_bytes: int,
        one: Callable[[InputRecord], Decoded | InvalidEvent],
    ) -> list[Decoded | InvalidEvent]:
        """``one(record)`` of every record; an encoding may decode its own records at once."""
        return [one(r) for r in records]

    def ctype_headers(self) -> HeaderList:
        return [(CONTENT_TYPE_HEADER, self.content_type.encode())]


# -- encoder side ------------------------------------------------------------------


def vectors(events: Events) -> np.ndarray:
    """``events.X`` as float32 (n >= 1, d >= 1); ``ValueError`` if a value is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.asarray(events.X, dtype="<f4")
    if X.ndim != 2 or not X.shape[0] or not X.shape[1]:
        raise ValueError(f"expected vectors of shape (n >= 1, d >= 1), got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("a feature value is NaN/inf or beyond float32 (non_finite)")
    n = len(X)
    for what, seq in (("ids", events.ids), ("keys", events.keys), ("ts_ms", events.ts_ms)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{len(seq)} {what} for {n} vectors")
    if events.names is not None and len(events.names) != X.shape[1]:
        raise ValueError(f"{len(events.names)} names for {X.shape[1]} features")
    return X


def texts(items: Sequence[str] | None, what: str) -> None:
    """Ids or keys: each a non-empty string."""
    if items is not None and any(not isinstance(s, str) or not s for s in items):
        raise ValueError(f"{what}: every one must be a non-empty string")


def key_bytes(key: str) -> bytes:
    """A Kafka record key: the inverse of :func:`record_key` (``surrogateescape``)."""
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise ValueError(f"key {key[:40]!r} cannot be a Kafka key: {e.reason}") from None


def utf8(text: str, what: str) -> bytes:
    """``text`` as strict UTF-8 (what a header or a packed section holds)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} {text[:40]!r} is not valid UTF-8 text: {e.reason}") from None


def times(ts_ms: Sequence[int] | None) -> list[int] | None:
    """Event times: integers >= 0 (what every decoder reads as a time)."""
    if ts_ms is None:
        return None
    out = [int(t) for t in ts_ms]
    if any(type(t) is bool or t != o or o < 0 for t, o in zip(ts_ms, out, strict=True)):
        raise ValueError("ts_ms: every one must be an integer >= 0 (epoch ms)")
    return out


# -- decoder side ------------------------------------------------------------------


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header ``name`` (case-insensitive), or ``None``."""
    found = None
    for k, v in headers or ():
        if k.lower() == name:
            found = v
    return found


def media_type(raw: bytes | None) -> str | None:
    """The media type of a ``content-type`` header value, lower case."""
    if raw is None:
        return None
    return raw.decode("latin-1").split(";", 1)[0].strip().lower()


def invalid(e: FieldError) -> InvalidEvent:
    """The refusal of a field that broke its rule."""
    return InvalidEvent(e.reason, e.detail, e.__cause__)


def header_text(raw: bytes | None, name: str) -> str | None:
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvent(DeadLetterReason.SCHEMA, f"header {name} is not UTF-8", e) from None
    return text or None


def record_event_ms(record: InputRecord, raw: bytes | None) -> float | None:
    """Event time from a ``tripwire-ts`` header value, else the record timestamp."""
    if raw is None:
        return opt_float(record.timestamp_ms)
    try:
        return header_ms(raw)
    except FieldError as e:
        raise invalid(e) from None


def record_key(record: InputRecord) -> str | None:
    """The Kafka key as text; undecodable bytes survive via ``surrogateescape``."""
    if not record.key:
        return None
    return record.key.decode("utf-8", "surrogateescape")


def offset_id(record: InputRecord) -> str:
    return f"{record.topic}-{record.partition}-{record.offset}"


def opt_float(v: float | int | None) -> float | None:
    return None if v is None or v < 0 else float(v)


def first_bad(x: np.ndarray, schema: FeatureSchema) -> str:
    return repr(schema.names[int(np.flatnonzero(~np.isfinite(x))[0])])
