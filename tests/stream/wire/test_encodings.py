"""The encodings registry: every encoder and its decoder follow the same rules.

For events drawn from the whole value space (NaN/inf and numbers beyond float32,
huge, negative and int64-overflowing times, empty ids, ids with newlines or lone
surrogates, keys from non-UTF-8 bytes), an encoder accepts exactly the events a
plain writer of the documented format would get back from the decoder unchanged,
and what it writes decodes to them. The plain writers below follow docs/formats.md
by hand (``json.dumps``, ``tobytes``, ``tests.stream.harness.packed``), not the encoders.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stream.harness import packed
from tripwire.core.events import F32_TYPE, PACKED_TYPE
from tripwire.stream.wire.codecs import Codec
from tripwire.stream.wire.encodings import BY_CONTENT_TYPE, ENCODINGS, Encoded, Events, encoding
from tripwire.stream.wire.records import Decoded, InputRecord

D = 3
NAMES = ("a", "b", "c")
CODEC = Codec(NAMES, max_message_bytes=1 << 20)
RECORD_TS = 1_700_000_000_000


def test_the_registry_is_keyed_by_name_and_content_type() -> None:
    assert set(ENCODINGS) == {"json", "binary", "packed"}
    assert {e.name for e in BY_CONTENT_TYPE.values()} == set(ENCODINGS)
    assert encoding("packed").content_type == PACKED_TYPE
    with pytest.raises(ValueError, match="unknown encoding 'csv'"):
        encoding("csv")


# -- strategies: the whole value space ----------------------------------------------

good_values = st.floats(-1e6, 1e6, width=32) | st.floats(-3e38, 3e38)
good_texts = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1,
                     max_size=6)  # fmt: skip
good_times = st.integers(0, 2**53)
#: One nasty value per field, put in a good event by ``events``.
nasty_values = st.sampled_from([math.nan, math.inf, -math.inf, 1e39, -1e300, 3.4028236e38])
nasty_texts = (
    st.text(max_size=6)  # "" and "\n" and lone surrogates (st.text draws them)
    | st.binary(min_size=1, max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape"))
    | st.sampled_from(["", "\ud800", "a\nb", "\n", "\udc80"])
)
nasty_times = st.sampled_from([-1, -(2**63), 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**400])


@st.composite
def events(draw: st.DrawFn) -> Events:
    """A good event, or one with a single field spoiled by a value from the whole space."""
    n = draw(st.integers(1, 3))
    X = np.asarray(draw(st.lists(st.lists(good_values, min_size=D, max_size=D),
                                 min_size=n, max_size=n)), np.float64)  # fmt: skip
    ids = draw(st.none() | st.lists(good_texts, min_size=n, max_size=n))
    keys = draw(
        st.none() | st.lists(good_texts, min_size=n, max_size=n) | good_texts.map(lambda k: [k] * n)
    )
    ts = draw(st.none() | st.lists(good_times, min_size=n, max_size=n))
    spoil = draw(st.sampled_from(["none", "X", "ids", "keys", "shared keys", "ts"]))
    i = draw(st.integers(0, n - 1))
    if spoil == "X":
        X[i, draw(st.integers(0, D - 1))] = draw(nasty_values)
    elif spoil == "ids":
        ids = list(ids or [f"e{j}" for j in range(n)])
        ids[i] = draw(nasty_texts)
    elif spoil == "keys":
        keys = list(keys or [f"k{j}" for j in range(n)])
        keys[i] = draw(nasty_texts)
    elif spoil == "shared keys":
        keys = [draw(nasty_texts)] * n
    elif spoil == "ts":
        ts = list(ts or [0] * n)
        ts[i] = draw(nasty_times)
    return Events(X, ids=ids, keys=keys, ts_ms=ts, names=draw(st.sampled_from([None, NAMES])))


# -- plain writers of the documented formats ------------------------------------------


def kafka_key(key: str) -> bytes:
    """A key as bytes: its escaped bytes back where it has some, else UTF-8-style."""
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")


def plain(name: str, e: Events) -> list[Encoded]:
    n = len(e.X)
    ids = e.ids if e.ids is not None else (None if name != "json" else [str(i) for i in range(n)])
    if name == "json":
        out = []
        for i, row in enumerate(e.X.tolist()):
            doc: dict[str, Any] = {"id": ids[i]} if ids is not None else {}
            if e.ts_ms is not None:
                doc["ts"] = e.ts_ms[i]
            doc["features"] = dict(zip(e.names, row, strict=True)) if e.names else row
            key = kafka_key(e.keys[i]) if e.keys is not None else None
            out.append(Encoded(json.dumps(doc).encode(), key, []))
        return out
    if name == "binary":
        out = []
        for i, row in enumerate(e.X):
            headers = [("content-type", F32_TYPE.encode())]
            if ids is not None:
                headers.append(("tripwire-id", ids[i].encode("utf-8", "surrogatepass")))
            if e.ts_ms is not None:
                headers.append(("tripwire-ts", str(e.ts_ms[i]).encode()))
            key = kafka_key(e.keys[i]) if e.keys is not None else None
            with np.errstate(over="ignore"):
                out.append(Encoded(row.astype("<f4").tobytes(), key, headers))
        return out
    if name != "packed":
        raise AssertionError(f"no by-hand writer of encoding {name!r}: add one here")
    shared = e.keys is not None and len(set(e.keys)) == 1
    ts = list(e.ts_ms) if e.ts_ms is not None else None
    if ts is not None and not all(-(2**63) <= t < 2**63 for t in ts):
        raise OverflowError("int64")  # not writable in the layout at all
    with np.errstate(over="ignore"):
        value = packed(e.X.astype(np.float32), ids=_list(ids), ts=ts,
                       keys=None if shared or e.keys is None else list(e.keys))  # fmt: skip
    key = kafka_key(e.keys[0]) if shared and e.keys is not None else None
    return [Encoded(value, key, [("content-type", PACKED_TYPE.encode())])]


def _list(items: Any) -> list[str] | None:
    return None if items is None else list(items)


# -- what comes back ------------------------------------------------------------------


def decoded(records: list[Encoded]) -> list[Decoded] | None:
    """The records decoded, ``None`` if any is refused or loses a vector."""
    out = []
    for offset, r in enumerate(records):
        got = CODEC.decode_or_error(InputRecord("t", 0, offset, RECORD_TS, r.key, r.value,
                                                r.headers))  # fmt: skip
        if not isinstance(got, Decoded) or got.rejected:
            return None
        out.append(got)
    return out


def unchanged(name: str, e: Events, got: list[Decoded] | None) -> bool:
    """Whether ``got`` is ``e`` as given: vectors as float32, ids, keys, times."""
    if got is None:
        return False
    with np.errstate(over="ignore"):
        want = np.asarray(e.X, np.float32)
    X = np.vstack([d.X for d in got])
    ids = [i for d in got for i in d.ids]
    keys = [k for d in got for k in d.keys]
    ms = [t for d in got for t in d.event_ms]
    want_ids = list(e.ids) if e.ids is not None else ids  # the decoder's default ids
    want_keys = list(e.keys) if e.keys is not None else want_ids
    want_ms = [float(t) for t in e.ts_ms] if e.ts_ms is not None else [float(RECORD_TS)] * len(X)
    if e.ids is None and name == "json":
        want_ids = [str(i) for i in range(len(X))]
        want_keys = list(e.keys) if e.keys is not None else want_ids
    return (
        X.shape == want.shape and bool(np.array_equal(X, want))
        and (ids, keys, ms) == (want_ids, want_keys, want_ms)
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(ENCODINGS))
@settings(max_examples=400, deadline=None)
@given(e=events())
def test_an_encoder_accepts_exactly_what_comes_back_unchanged(name: str, e: Events) -> None:
    try:
        written = ENCODINGS[name].encode(e)
    except ValueError:
        written = None
    try:
        by_hand = unchanged(name, e, decoded(plain(name, e)))
    except (OverflowError, ValueError):  # the format cannot even hold it
        by_hand = False
    assert (written is not None) == by_hand, (written, e)
    if written is not None:
        assert unchanged(name, e, decoded(written))
        assert [r.headers[:1] for r in written if r.headers] == [
            [("content-type", ENCODINGS[name].content_type.encode())]
        ] * len([r for r in written if r.headers])


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=1, max_size=12))
def test_kafka_keys_of_any_bytes_come_back_byte_for_byte(raw: bytes) -> None:
    """A decoded key (non-UTF-8 bytes as ``surrogateescape``) encodes to the same bytes."""
    d = CODEC.decode(InputRecord("t", 0, 0, None, raw, b'{"id": "e", "features": [1, 2, 3]}'))
    [r] = encoding("binary").encode(Events(np.ones((1, D)), ids=["e"], keys=d.keys))
    assert r.key == raw


def test_json_carries_what_the_binary_encodings_cannot() -> None:
    """Lone surrogates travel in JSON text (escaped), not in UTF-8 headers or sections."""
    e = Events(np.ones((1, D)), ids=["\ud800"])
    assert unchanged("json", e, decoded(encoding("json").encode(e)))
    for name in ("binary", "packed"):
        with pytest.raises(ValueError, match="not valid UTF-8"):
            encoding(name).encode(e)


def test_times_beyond_float_range_are_refused_by_both_sides() -> None:
    e = Events(np.ones((1, D)), ids=["e"], ts_ms=[10**400])
    for name in ENCODINGS:
        with pytest.raises(ValueError):
            encoding(name).encode(e)
    assert not math.isfinite(float("1" * 400))
