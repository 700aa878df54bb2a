"""The packed binary encoding: many feature vectors in one Kafka record.

Layout (little-endian; see ``tripwire.stream.wire.codecs`` and docs/formats.md)::

    magic b"TWP1" | uint32 n | uint16 d | uint16 flags
    [int64 ts * n]                         if flags & FLAG_TS
    float32 vectors, n * d
    [uint32 L | ids joined by newlines]    if flags & FLAG_IDS
    [uint32 L | keys joined by newlines]   if flags & FLAG_KEYS

``encode_packed`` writes it (for producers, benchmarks and tests);
``PackedLayout.parse`` validates it without copying the vectors.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from tripwire.stream.wire.errors import InvalidEvent

CONTENT_TYPE = "application/x-tripwire-f32-packed"
PACKED_MAGIC = b"TWP1"
PACKED_HEADER = struct.Struct("<4sIHH")
FLAG_IDS, FLAG_KEYS, FLAG_TS = 1, 2, 4


def encode_packed(
    X: np.ndarray,
    ids: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    ts_ms: Sequence[int] | None = None,
) -> bytes:
    """The packed value of vectors ``X`` (n, d) with optional ids, keys and times.

    >>> v = encode_packed(np.zeros((2, 3)), ids=["a", "b"])
    >>> PackedLayout.parse(v, 3).ids
    ['a', 'b']
    """
    X = np.asarray(X, dtype="<f4")
    if X.ndim != 2 or not len(X):
        raise ValueError(f"expected vectors of shape (n >= 1, d), got {X.shape}")
    n = len(X)
    flags = (FLAG_IDS if ids else 0) | (FLAG_KEYS if keys else 0) | (FLAG_TS if ts_ms else 0)
    parts = [PACKED_HEADER.pack(PACKED_MAGIC, n, X.shape[1], flags)]
    if ts_ms:
        parts.append(np.asarray(ts_ms, dtype="<i8").tobytes())
    parts.append(X.tobytes())
    for section in (ids, keys):
        if section:
            if len(section) != n or any(not s or "\n" in s for s in section):
                raise ValueError("ids/keys: one non-empty string without newlines per vector")
            blob = "\n".join(section).encode("utf-8")
            parts += [struct.pack("<I", len(blob)), blob]
    return b"".join(parts)


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
        if len(value) < PACKED_HEADER.size:
            raise InvalidEvent("malformed", f"packed record of {len(value)} bytes < header")
        magic, n, d, flags = PACKED_HEADER.unpack_from(value)
        if magic != PACKED_MAGIC:
            raise InvalidEvent("malformed", f"packed magic {magic!r} != {PACKED_MAGIC!r}")
        if flags & ~(FLAG_IDS | FLAG_KEYS | FLAG_TS) or n == 0:
            raise InvalidEvent("schema", f"packed header: n={n}, unknown flags {flags:#x}")
        if d != n_features:
            raise InvalidEvent("feature_count", f"packed d={d}, model expects {n_features}")
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
            raise InvalidEvent("malformed", f"{len(value) - at} trailing bytes after packed data")
        return self


def _need(value: bytes, end: int, what: str) -> None:
    if len(value) < end:
        raise InvalidEvent("malformed", f"packed record truncated in {what}")


def _text_section(value: bytes, at: int, n: int, what: str) -> tuple[list[str], int]:
    _need(value, at + 4, what)
    (length,) = struct.unpack_from("<I", value, at)
    at += 4
    _need(value, at + length, what)
    try:
        items = value[at : at + length].decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise InvalidEvent("malformed", f"packed {what} are not UTF-8", e) from None
    if len(items) != n or not all(items):
        raise InvalidEvent("schema", f"packed {what}: {len(items)} entries for {n} vectors")
    return items, at + length
