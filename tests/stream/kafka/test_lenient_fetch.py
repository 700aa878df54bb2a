"""Issue 11 §1: a record whose header key is not UTF-8 no longer breaks aiokafka's fetch.

aiokafka decodes header keys strictly while it parses a fetched batch; on main one
such record made every fetch of its partition raise (the worker crash-looped). The
fetcher now reads that batch again leniently (``tripwire.stream.compat``). These
tests parse record batches built byte for byte by aiokafka's own (pure-Python)
builder, with keys and values hypothesis draws from all bytes, and compare with what
was written: every record comes out once, in order, with its key, value and
headers; a key that is not UTF-8 comes out escaped and marked.
"""

from __future__ import annotations

import struct

import pytest
from aiokafka import ConsumerRecord
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stream.harness import RawKey
from tripwire.stream.compat import (
    UNDECODABLE_HEADER_KEY,
    KeptMemoryRecords,
    LenientPartitionRecords,
)

TP = TopicPartition("in", 0)
Record = tuple[bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]


def batch(records: list[Record], base_offset: int) -> bytes:
    """One v2 record batch of ``records`` (key, value, headers with raw byte keys)."""
    builder = _DefaultRecordBatchBuilderPy(
        magic=2, compression_type=0, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 24,
    )  # fmt: skip
    for i, (key, value, headers) in enumerate(records):
        raw_headers = [(RawKey(k), v) for k, v in headers]
        assert builder.append(i, timestamp=1_700_000_000_000 + i, key=key, value=value,
                              headers=raw_headers) is not None  # fmt: skip
    out = bytearray(builder.build())
    struct.pack_into(">q", out, 0, base_offset)  # the broker's job (not in the CRC)
    return bytes(out)


def fetched(data: bytes, fetch_offset: int = 0) -> list[ConsumerRecord]:
    records = LenientPartitionRecords(
        TP, KeptMemoryRecords(data), None, fetch_offset, None, None, True, READ_UNCOMMITTED
    )
    return list(records)


def expected_headers(headers: list[tuple[bytes, bytes | None]]) -> list[tuple[str, bytes | None]]:
    """Computed here, not with the code under test: UTF-8, else ``\\xNN`` + a marker."""
    out: list[tuple[str, bytes | None]] = []
    marks: list[tuple[str, bytes | None]] = []
    for k, v in headers:
        try:
            out.append((k.decode("utf-8"), v))
        except UnicodeDecodeError:
            out.append((_escape_invalid(k), v))
            marks.append((UNDECODABLE_HEADER_KEY, k))
    return out + marks


def _escape_invalid(raw: bytes) -> str:
    """UTF-8 where it is valid, ``\\xNN`` for every byte of what is not (by hand)."""
    text, i = [], 0
    while i < len(raw):
        for n in (4, 3, 2, 1):
            try:
                text.append(raw[i : i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            text.append(f"\\x{raw[i]:02x}")
            i += 1
    return "".join(text)


def test_a_batch_with_a_bad_header_key_in_the_middle_comes_out_whole() -> None:
    records: list[Record] = [
        (b"k0", b"v0", [(b"content-type", b"application/json")]),
        (b"k1", b"v1", [(b"\xff\xfe", b"x"), (b"ok", None)]),
        (None, None, []),
    ]
    data = batch(records[:2], 0) + batch(records[2:], 2)
    plain = PartitionRecords(TP, MemoryRecords(data), None, 0, None, None, True, READ_UNCOMMITTED)
    with pytest.raises(UnicodeDecodeError):  # aiokafka alone: what crash-looped the worker
        list(plain)
    out = fetched(data)
    assert [r.offset for r in out] == [0, 1, 2]
    assert [r.value for r in out] == [b"v0", b"v1", None]
    assert out[1].headers == (
        ("\\xff\\xfe", b"x"), ("ok", None), (UNDECODABLE_HEADER_KEY, b"\xff\xfe"),
    )  # fmt: skip
    assert out[0].headers == (("content-type", b"application/json"),)
    assert fetched(data, fetch_offset=1)[0].offset == 1  # nothing before the fetch offset


header_keys = st.binary(max_size=6) | st.text(max_size=4).map(str.encode)
headers = st.lists(st.tuples(header_keys, st.none() | st.binary(max_size=6)), max_size=3)
records = st.lists(
    st.tuples(st.none() | st.binary(max_size=8), st.none() | st.binary(max_size=8), headers),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(records, min_size=1, max_size=3))
def test_any_header_bytes_parse_to_every_record_in_order(batches: list[list[Record]]) -> None:
    data, offset, want = b"", 0, []
    for rs in batches:
        data += batch(rs, offset)
        offset += len(rs)
        want += rs
    out = fetched(data)
    assert [r.offset for r in out] == list(range(len(want)))
    assert [(r.key, r.value) for r in out] == [(k, v) for k, v, _ in want]
    assert [list(r.headers) for r in out] == [expected_headers(h) for _, _, h in want]
