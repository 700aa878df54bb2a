"""Malformed input records of every kind, each with the dead-letter reasons it may get.

``malformed_records(rng, n)`` draws ``n`` records round-robin from ``KINDS``; a
kind returns ``(Out, reasons)``. Reasons follow docs/formats.md ("Limits and
refusals"); where the exact refusal depends on random bytes (``{`` + noise may
parse as ``{}``), every reason the spec allows is listed. Every record is invalid
by construction: none can decode to a finite vector of the right size.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable

import numpy as np

from tests.fixtures.registry import N_FEATURES
from tests.stream.harness import Out
from tripwire.core.events import (
    F32_TYPE,
    ID_HEADER,
    JSON_TYPE,
    PACKED_HEADER,
    PACKED_MAGIC,
    PACKED_TYPE,
    TS_HEADER,
)
from tripwire.stream.wire.encodings import Events, encoding

TEN_MB = 10 * 1024 * 1024
Kind = Callable[[random.Random], tuple[Out, set[str]]]


def _noise(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def _features(rng: random.Random, n: int = N_FEATURES) -> list[float]:
    return [round(rng.gauss(0, 1), 4) for _ in range(n)]


def _event(rng: random.Random, features: object, **extra: object) -> bytes:
    doc = {"id": f"bad-{rng.getrandbits(48):x}", "features": features, **extra}
    return json.dumps(doc, allow_nan=True).encode()


def _encoded(name: str, x: list[float]) -> Out:
    """One good vector ``x`` in encoding ``name`` (the registry's encoder)."""
    [r] = encoding(name).encode(Events(np.asarray([x])))
    return Out(r.value, key=r.key, headers=r.headers)


def _ctype(value: str) -> list[tuple[str, bytes]]:
    return [("content-type", value.encode())]


def random_bytes(rng: random.Random) -> tuple[Out, set[str]]:
    first = rng.choice([b for b in range(256) if b not in b"{ \t\r\n"]).to_bytes(1, "big")
    return Out(first + _noise(rng, rng.randint(0, 2000))), {"unknown_encoding"}


def random_json_bytes(rng: random.Random) -> tuple[Out, set[str]]:
    value = b"{" + _noise(rng, rng.randint(1, 500))
    headers = rng.choice([None, _ctype(JSON_TYPE), _ctype("Application/JSON; charset=utf-8")])
    return Out(value, headers=headers), {"malformed", "schema"}


def random_binary(rng: random.Random) -> tuple[Out, set[str]]:
    """Noise declared f32 (never exactly one vector long) or packed (never the magic)."""
    if rng.random() < 0.5:
        n = rng.choice([k for k in range(1, 400) if k != 4 * N_FEATURES])
        reasons = {"malformed"} if n % 4 else {"feature_count"}
        return Out(_noise(rng, n), headers=_ctype(F32_TYPE)), reasons
    value = rng.choice([b"", b"TWP"]) + _noise(rng, rng.randint(0, 300))
    if value[:4] == b"TWP1" or len(value) < 12:
        value = b"XWP1" + value[4:] + bytes(12)
    return Out(value, headers=_ctype(PACKED_TYPE)), {"malformed"}


def truncated_json(rng: random.Random) -> tuple[Out, set[str]]:
    value = _event(rng, _features(rng), ts=1_764_324_000_000)
    return Out(value[: rng.randint(1, len(value) - 1)]), {"malformed"}


def deeply_nested_json(rng: random.Random) -> tuple[Out, set[str]]:
    depth = rng.choice([5_000, 20_000, 100_000])  # < max_message_bytes
    if rng.random() < 0.5:
        nested = b"[" * depth + b"]" * depth
    else:
        nested = b'{"a":' * depth + b"1" + b"}" * depth
    value = b'{"id": "deep", "features": ' + nested + b"}"
    return Out(value), {"malformed"}


def wrong_feature_count(rng: random.Random) -> tuple[Out, set[str]]:
    n = rng.choice([0, 1, N_FEATURES - 1, N_FEATURES + 1, 100])
    form = rng.randrange(3)
    if form == 0:
        return Out(_event(rng, _features(rng, n))), {"feature_count"}
    if form == 1:
        return _encoded("binary", _features(rng, max(n, 1))), {"feature_count"}
    d = rng.choice([1, N_FEATURES - 1, N_FEATURES + 1])
    return _encoded("packed", _features(rng, d)), {"feature_count"}


def wrong_feature_names(rng: random.Random) -> tuple[Out, set[str]]:
    names = [f"f{i}" for i in range(N_FEATURES)]
    form = rng.randrange(3)
    if form == 0:
        names[rng.randrange(N_FEATURES)] = "nope"
    elif form == 1:
        names.pop(rng.randrange(N_FEATURES))
    else:
        names.append("extra")
    features = dict(zip(names, _features(rng, len(names)), strict=True))
    return Out(_event(rng, features)), {"feature_names"}


def non_finite(rng: random.Random) -> tuple[Out, set[str]]:
    """NaN, +-inf and numbers beyond float32, in JSON text, f32 and packed records."""
    form = rng.randrange(3)
    if form == 0:
        text = rng.choice(["NaN", "Infinity", "-Infinity", "1e39", "-3.5e38", "1e400", "9" * 400])
        features = ", ".join([text] + ["0.5"] * (N_FEATURES - 1))
        return Out(f'{{"id": "nf", "features": [{features}]}}'.encode()), {"non_finite"}
    bad = rng.choice([float("nan"), float("inf"), float("-inf")])
    x = _features(rng)
    x[rng.randrange(N_FEATURES)] = bad
    if form == 1:
        return Out(struct.pack(f"<{N_FEATURES}f", *x), headers=_ctype(F32_TYPE)), {"non_finite"}
    head = PACKED_HEADER.pack(PACKED_MAGIC, 1, N_FEATURES, 0)  # NaN: not the encoder's
    value = head + struct.pack(f"<{N_FEATURES}f", *x)
    return Out(value, headers=_ctype(PACKED_TYPE)), {"non_finite"}


def wrong_types(rng: random.Random) -> tuple[Out, set[str]]:
    """Strings, booleans, nulls where numbers belong; documents that are not events."""
    x: list[object] = list(_features(rng))
    cases: list[tuple[bytes, str]] = [
        (_event(rng, [*x[:-1], rng.choice(["1.5", "abc", True, None, [1.0], {}])]), "non_numeric"),
        (_event(rng, "0.1,0.2"), "schema"),
        (_event(rng, None), "schema"),
        (json.dumps({"features": x}).encode(), "schema"),
        (json.dumps({"id": rng.choice(["", 1.5, None, [], True]), "features": x}).encode(),
         "schema"),
        (_event(rng, x, ts=rng.choice(["yesterday", -5, "2026-11-28T10:00:00", [1]])), "schema"),
        (_event(rng, x, key=rng.choice(["", 2.5, {}])), "schema"),
        (json.dumps(x).encode(), "unknown_encoding"),  # a JSON array
    ]  # fmt: skip
    value, reason = rng.choice(cases)
    if reason == "unknown_encoding" and rng.random() < 0.5:
        return Out(value, headers=_ctype(JSON_TYPE)), {"schema"}
    return Out(value), {reason}


def bad_headers(rng: random.Random) -> tuple[Out, set[str]]:
    """A good vector with an unparseable id/ts header, or an unknown content-type."""
    good = _encoded("binary", _features(rng))
    x, headers = good.value, good.headers or []
    form = rng.randrange(3)
    if form == 0:
        ts = rng.choice([b"soon", b"-1", b"nan", b"\xff"])
        return Out(x, headers=[*headers, (TS_HEADER, ts)]), {"schema"}
    if form == 1:
        return Out(x, headers=[*headers, (ID_HEADER, b"\xff\xfe\xfd")]), {"schema"}
    ctype = rng.choice(["text/plain", "application/x-tripwire-f64", "", "\xe9"])
    return Out(_event(rng, _features(rng)), headers=_ctype(ctype)), {"unknown_encoding"}


def wrong_encoding(rng: random.Random) -> tuple[Out, set[str]]:
    """A good event in Latin-1 (invalid UTF-8) or EBCDIC text."""
    text = json.dumps({"id": "café-ß", "features": _features(rng)}, ensure_ascii=False)
    if rng.random() < 0.5:
        return Out(text.encode("latin-1")), {"malformed"}
    value = text.encode("cp500")  # EBCDIC: no "{" byte
    if rng.random() < 0.5:
        return Out(value, headers=_ctype(JSON_TYPE)), {"malformed"}
    return Out(value), {"unknown_encoding"}


def empty(rng: random.Random) -> tuple[Out, set[str]]:
    """A zero-length value or a tombstone (``None``)."""
    return Out(b"" if rng.random() < 0.5 else None, key=b"k"), {"empty"}


def ten_megabytes(rng: random.Random) -> tuple[Out, set[str]]:
    body = _event(rng, _features(rng), pad="x" * TEN_MB)
    return Out(body), {"oversize"}


KINDS: tuple[Kind, ...] = (
    random_bytes, random_json_bytes, random_binary, truncated_json, deeply_nested_json,
    wrong_feature_count, wrong_feature_names, non_finite, wrong_types, bad_headers,
    wrong_encoding, empty,
)  # fmt: skip


def malformed_records(rng: random.Random, n: int) -> list[tuple[Out, set[str], str]]:
    """``n`` invalid records (round-robin over ``KINDS``): (record, reasons, kind)."""
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        record, reasons = kind(rng)
        out.append((record, reasons, kind.__name__))
    return out
