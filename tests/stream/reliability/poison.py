"""Poison records: one record that, on main, crashed every replica it reached (issue 11 §1).

``poison_records()`` returns each trigger the issue confirmed live, plus their
neighbours in the same classes, as ``(name, Out, rows it must get scored, reasons its
dead letter may have)``. The anomalous vector makes the alert path run (an event
time past year 9999 only fails when an alert formats it).
"""

from __future__ import annotations

import json

import numpy as np

from tests.fixtures.registry import N_FEATURES, anomalous_rows, normal_rows
from tests.stream.harness import Out, RawKey, packed
from tripwire.stream.wire.codecs import F32_TYPE, PACKED_TYPE

#: 10000-01-01T00:00:00Z in epoch ms: past what RFC 3339 (and ``datetime``) can write.
YEAR_10000_MS = 253_402_300_800_000
PROCESSING_ERROR = frozenset({"processing_error"})
#: no dead letter: the record must be scored
SCORED: frozenset[str] = frozenset()

Poison = tuple[str, Out, dict[str, np.ndarray], frozenset[str]]


def _json(doc: dict, x: np.ndarray, headers: list | None = None) -> Out:
    return Out(json.dumps({**doc, "features": x.tolist()}).encode(), headers=headers)


def poison_records(partition: int | None = None) -> list[Poison]:
    """Every poison class, each record among valid ones, all for ``partition``."""
    a = anomalous_rows(8, seed=21)
    n = normal_rows(2, seed=22)
    f32 = [("content-type", F32_TYPE.encode())]
    pk = [("content-type", PACKED_TYPE.encode())]
    cases: list[Poison] = [
        ("json ts of 400 digits", _json({"id": "p-ts", "ts": 10**400}, n[0]), {}, PROCESSING_ERROR),
        # crashed main (UnicodeEncodeError); bounded outputs now write the surrogate
        # as its 3 UTF-8-style bytes, so these are scored and alerted like any event
        ("json key lone surrogate", _json({"id": "p-key", "key": "\ud800"}, a[0]),
         {"p-key": a[0]}, SCORED),
        ("json id lone surrogate", _json({"id": "p-\udfff"}, a[1]), {"p-\udfff": a[1]}, SCORED),
        ("json ts number after 9999", _json({"id": "p-big", "ts": YEAR_10000_MS}, a[2]), {},
         PROCESSING_ERROR),
        ("json ts string after 9999",
         _json({"id": "p-str", "ts": "9999-12-31T23:30:00-01:00"}, a[3]), {}, PROCESSING_ERROR),
        ("f32 tripwire-ts 1e20", Out(a[4].astype("<f4").tobytes(), key=b"p-f32",
         headers=[*f32, ("tripwire-ts", b"1e20")]), {}, PROCESSING_ERROR),
        ("packed int64 ts after 9999", Out(packed(np.vstack([n[1], a[5]]), ids=["p-ok", "p-pk"],
         ts=[1_764_324_000_000, 2**62]), headers=pk), {"p-ok": n[1]}, PROCESSING_ERROR),
        ("header key not UTF-8", _json({"id": "p-hk"}, a[6], [(RawKey(b"\xff\xfeid"), b"1")]),
         {}, frozenset({"malformed"})),
        ("header key and value not UTF-8", Out(a[7].astype("<f4").tobytes(), key=b"p-hkv",
         headers=[*f32, (RawKey(b"tripwire-\xc3"), b"\xff"), ("tripwire-x", None)]), {},
         frozenset({"malformed"})),
        ("packed with fewer features than the model",
         Out(packed(n[:1, : N_FEATURES - 1]), headers=pk), {}, frozenset({"feature_count"})),
    ]  # fmt: skip
    if partition is not None:
        cases = [
            (name, Out(o.value, o.key, o.headers, partition), rows, reasons)
            for name, o, rows, reasons in cases
        ]
    return cases
