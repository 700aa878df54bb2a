"""``Codec.decode_batch`` (the worker's bulk decoding) is ``decode`` record by record.

Batches mix every kind of record the input topic may carry: good and broken binary
records (NaN, wrong size, undecodable id header, bad time header), JSON, packed,
empty and oversize values, unknown encodings.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stream.harness import packed
from tripwire.stream.wire.codecs import F32_TYPE, ID_HEADER, PACKED_TYPE, TS_HEADER, Codec
from tripwire.stream.wire.errors import InvalidEvent
from tripwire.stream.wire.records import Decoded, InputRecord

D = 4
CODEC = Codec([f"f{i}" for i in range(D)], max_message_bytes=64)


def f32_value(x: list[float]) -> bytes:
    return np.asarray(x, dtype="<f4").tobytes()


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
good_floats = st.floats(min_value=-1e6, max_value=1e6, width=32)


@st.composite
def records(draw: st.DrawFn) -> InputRecord:
    kind = draw(st.sampled_from(["f32", "f32", "f32", "json", "packed", "raw"]))
    headers: list[tuple[str, bytes]] = []
    if kind == "f32":
        n = draw(st.sampled_from([D, D, D, D - 1, D + 1]))
        value = f32_value(draw(st.lists(st.one_of(good_floats, floats), min_size=n, max_size=n)))
        headers.append((draw(st.sampled_from(["content-type", "Content-Type"])), F32_TYPE.encode()))
        if draw(st.booleans()):
            headers.append((ID_HEADER, draw(st.sampled_from([b"id-1", b"", b"\xff\xfe"]))))
        if draw(st.booleans()):
            headers.append((TS_HEADER, draw(st.sampled_from([b"1700000000000", b"-5", b"soon"]))))
        # other headers, other cases, repeats (the last one counts), in any order
        extra = st.tuples(
            st.sampled_from(["Tripwire-Id", "TRIPWIRE-TS", "x-trace", ID_HEADER, "content-type"]),
            st.sampled_from([b"a", b"42", F32_TYPE.encode(), b"\xff"]),
        )
        headers += draw(st.lists(extra, max_size=2))
        headers = draw(st.permutations(headers))
    elif kind == "json":
        x = draw(st.lists(good_floats, min_size=D, max_size=D))
        value = json.dumps({"id": "j", "features": x}).encode()
    elif kind == "packed":
        X = np.asarray(draw(st.lists(st.lists(floats, min_size=D, max_size=D), min_size=1,
                                     max_size=3)), dtype=np.float32)  # fmt: skip
        value = packed(X)  # by hand: NaN/inf vectors too
        headers.append(("content-type", PACKED_TYPE.encode()))
    else:
        value = draw(st.sampled_from([b"", b"x" * 100, b"hello", b"{"]))
    offset = draw(st.integers(0, 1000))
    key = draw(st.sampled_from([None, b"k", b"\xff"]))
    ts = draw(st.sampled_from([None, 1_700_000_000_000]))
    return InputRecord("t", 0, offset, ts, key, value, headers)


def same(a: Decoded | InvalidEvent, b: Decoded | InvalidEvent) -> bool:
    if isinstance(a, InvalidEvent) or isinstance(b, InvalidEvent):
        return (
            isinstance(a, InvalidEvent) and isinstance(b, InvalidEvent)
            and (a.reason, a.detail, a.error) == (b.reason, b.detail, b.error)
        )  # fmt: skip
    return (
        np.array_equal(a.X, b.X) and a.X.shape == b.X.shape
        and (a.ids, a.keys, a.event_ms, a.index, a.rejected)
        == (b.ids, b.keys, b.event_ms, b.index, b.rejected)
    )  # fmt: skip


def one_by_one(batch: list[InputRecord]) -> list[Decoded | InvalidEvent]:
    out: list[Decoded | InvalidEvent] = []
    for r in batch:
        try:
            out.append(CODEC.decode(r))
        except InvalidEvent as e:
            out.append(e)
    return out


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(records(), max_size=12))
def test_decode_batch_is_decode_of_each_record(batch: list[InputRecord]) -> None:
    got = CODEC.decode_batch(batch)
    want = one_by_one(batch)
    assert len(got) == len(want)
    assert all(same(g, w) for g, w in zip(got, want, strict=True))


def test_binary_records_are_decoded_in_bulk_and_keep_their_rows() -> None:
    X = np.arange(3 * D, dtype=np.float32).reshape(3, D)
    batch = [
        InputRecord(
            "t", 1, 10 + i, 5, b"k", f32_value(x.tolist()), [("content-type", F32_TYPE.encode())]
        )  # fmt: skip
        for i, x in enumerate(X)
    ]
    batch[1] = InputRecord("t", 1, 11, 5, b"k", f32_value([1.0, float("nan"), 0.0, 0.0]),
                           [("content-type", F32_TYPE.encode())])  # fmt: skip
    got = CODEC.decode_batch(batch)
    assert isinstance(got[1], InvalidEvent) and got[1].reason == "non_finite"
    assert "'f1'" in got[1].detail
    for i in (0, 2):
        d = got[i]
        assert isinstance(d, Decoded)
        np.testing.assert_array_equal(d.X, X[i : i + 1])
        assert d.ids == [f"t-1-{10 + i}"] and d.event_ms == [5.0]
