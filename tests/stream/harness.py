"""Run ``tripwire worker`` as a real subprocess against the test broker, and talk Kafka.

``WorkerProcess`` starts ``python -m tripwire worker`` with settings passed as
``TRIPWIRE_*`` variables (as an operator would), logs to a file, and is always
stopped by its owner (``stop`` = SIGTERM, ``kill`` = SIGKILL). The Kafka helpers
are plain aiokafka clients run with ``asyncio.run``. Shared inputs live here too:
``worker_settings``/``topics_for`` for a worker run, ``bad_inputs`` (one record per
dead-letter reason) and ``packed`` (the packed layout written byte by byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import N_FEATURES, Published
from tripwire.core.events import FLAG_IDS, FLAG_KEYS, FLAG_TS, PACKED_TYPE
from tripwire.embedded import EmbeddedBroker, free_port
from tripwire.stream.wire.encodings import Encoded, Events, encoding

REPO = Path(__file__).resolve().parents[2]
#: Short session timeout: Tansu delays a group join by half of it.
SESSION_TIMEOUT = "4"
#: The ``max_message_bytes`` of workers fed :func:`bad_inputs` (its "oversize" record).
MAX_MESSAGE_BYTES = 4096

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Out:
    """A record to produce to the input topic."""

    value: bytes
    key: bytes | None = None
    headers: Headers | None = None
    partition: int | None = None


def _out(record: Encoded) -> Out:
    return Out(record.value, key=record.key, headers=record.headers or None)


def json_event(
    event_id: str, x: Iterable[float], key: str | None = None, ts: int | None = None
) -> Out:
    events = Events(
        np.asarray([list(x)], np.float64), ids=[event_id],
        keys=None if key is None else [key], ts_ms=None if ts is None else [ts],
    )  # fmt: skip
    return _out(encoding("json").encode(events)[0])


def f32_event(event_id: str, x: np.ndarray, key: str) -> Out:
    events = Events(np.asarray(x)[None, :], ids=[event_id], keys=[key])
    return _out(encoding("binary").encode(events)[0])


def packed_event(ids: Sequence[str], X: np.ndarray, key: str) -> Out:
    """A packed record of ``X``; one with NaN/inf vectors (which the worker refuses one by
    one, and the encoder refuses to write) is written by hand (:func:`packed`)."""
    if not np.isfinite(X).all():
        value = packed(np.asarray(X), ids=list(ids))
        return Out(value, key=key.encode(), headers=[("content-type", PACKED_TYPE.encode())])
    return _out(encoding("packed").encode(Events(X, ids=ids, keys=[key] * len(X)))[0])


def packed(
    X: np.ndarray,
    *,
    ids: list[str] | None = None,
    keys: list[str] | None = None,
    ts: list[int] | None = None,
    d: int | None = None,
    magic: bytes = b"TWP1",
    extra_flags: int = 0,
) -> bytes:
    """A packed value written byte by byte from the documented layout (not the encoder).

    ``d``, ``magic`` and ``extra_flags`` override the header to build broken values.
    """
    n = len(X)
    flags = (FLAG_IDS if ids else 0) | (FLAG_KEYS if keys else 0) | (FLAG_TS if ts else 0)
    out = struct.pack("<4sIHH", magic, n, X.shape[1] if d is None else d, flags | extra_flags)
    if ts:
        out += np.asarray(ts, "<i8").tobytes()
    out += np.asarray(X, "<f4").tobytes()
    for section in (ids, keys):
        if section:
            blob = "\n".join(section).encode()
            out += struct.pack("<I", len(blob)) + blob
    return out


#: A NaN vector, by hand: the encoders refuse to write one.
NAN_F32, F32 = np.full(N_FEATURES, np.nan, "<f4").tobytes(), b"application/x-tripwire-f32"


def bad_inputs() -> list[tuple[str, Out]]:
    """One or more records of every kind of bad input, with the reason expected."""
    ok = [0.5] * N_FEATURES
    return [
        ("malformed", Out(b'{"id": "m", "features": [1, 2')),
        ("empty", Out(b"", key=b"e")),
        (
            "oversize",
            Out(json.dumps({"id": "big", "features": ok, "pad": " " * MAX_MESSAGE_BYTES}).encode()),
        ),
        ("unknown_encoding", Out(b"hello")),
        ("unknown_encoding", Out(b'{"id": "x"}', headers=[("content-type", b"text/plain")])),
        ("schema", Out(json.dumps({"features": ok}).encode())),
        ("feature_count", json_event("fc", ok[:-1])),
        ("feature_count", f32_event("fc-bin", np.ones(N_FEATURES + 1), "k")),
        ("feature_names", Out(json.dumps({"id": "fn", "features": {"f0": 1.0}}).encode())),
        ("non_numeric", Out(json.dumps({"id": "nn", "features": ["a"] * N_FEATURES}).encode())),
        (
            "non_finite",
            Out(NAN_F32, key=b"k", headers=[("content-type", F32), ("tripwire-id", b"nf")]),
        ),
    ]


def topics_for(broker: EmbeddedBroker, tag: str, partitions: int) -> dict[str, str]:
    names = {k: f"{k}-{tag}-{time.monotonic_ns()}" for k in ("features", "alerts", "dlq", "scores")}
    asyncio.run(create_topics(broker.bootstrap, [names["features"]], partitions))
    return names


def worker_settings(broker: EmbeddedBroker, pub: Published, topics: dict[str, str]) -> dict:
    return {
        "bootstrap": broker.bootstrap, "registry": pub.root, "model_ref": pub.name,
        "input_topic": topics["features"], "alert_topic": topics["alerts"],
        "dlq_topic": topics["dlq"], "scores_topic": topics["scores"],
        "group_id": f"g-{topics['features']}", "commit_interval": 0.5,
    }  # fmt: skip


class RawKey(str):
    """A header key that is not UTF-8 (``Out.headers`` may hold ``(RawKey(b"\\xff"), v)``).

    aiokafka's producer only writes ``str`` keys, encoded strictly; :func:`produce`
    writes these through aiokafka's pure-Python batch builder, which calls ``encode``.
    """

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        self = super().__new__(cls, raw.decode("latin-1"))
        self.raw = raw
        return self

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@contextlib.contextmanager
def _raw_header_keys(records: Sequence[Out]) -> Iterator[None]:
    """While producing ``records``: the pure-Python batch builder if one has a ``RawKey``."""
    if not any(isinstance(k, RawKey) for r in records for k, _ in r.headers or ()):
        yield
        return
    from aiokafka.producer import message_accumulator, producer
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    saved = message_accumulator.DefaultRecordBatchBuilder, producer.DefaultRecordBatchBuilder
    message_accumulator.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy
    producer.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy
    try:
        yield
    finally:
        message_accumulator.DefaultRecordBatchBuilder, producer.DefaultRecordBatchBuilder = saved


def produce(bootstrap: str, topic: str, records: Sequence[Out]) -> list[tuple[int, int]]:
    """Produce ``records`` in order; return their (partition, offset)."""

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=20_000_000)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in records
            ]
            return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
        finally:
            await producer.stop()

    with _raw_header_keys(records):
        return asyncio.run(run())


def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
    timeout: float = 60.0,
) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning until ``until(records)`` or ``timeout``.

    Without ``until``: read up to the log end (the high watermark fetches report;
    Tansu's ListOffsets answer is the last *batch's* base offset + 1, so
    ``end_offsets`` cannot be used for this).
    """

    async def run() -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
            fetch_max_bytes=50_000_000, max_partition_fetch_bytes=20_000_000,
        )  # fmt: skip
        await consumer.start()
        try:
            out: list[ConsumerRecord] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    out.extend(records)
                if until(out) if until is not None else await _at_end(consumer):
                    break
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    tps = consumer.assignment()
    if not tps:
        return False
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offset per partition."""

    async def run() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            return {
                p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)
            }
        finally:
            await consumer.stop()

    return asyncio.run(run())


def log_ends(placed: Iterable[tuple[int, int]], partitions: int) -> dict[int, int]:
    """Per partition, one past the last offset in ``placed`` (0 if none)."""
    ends = dict.fromkeys(range(partitions), 0)
    for p, o in placed:
        ends[p] = max(ends[p], o + 1)
    return ends


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class WorkerProcess:
    """One ``tripwire worker`` subprocess."""

    def __init__(self, log_path: Path, **settings: Any) -> None:
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
        env.update({f"TRIPWIRE_{k.upper()}": str(v) for k, v in settings.items()})
        env.setdefault("TRIPWIRE_SESSION_TIMEOUT", SESSION_TIMEOUT)
        env["TRIPWIRE_METRICS_PORT"] = str(self.metrics_port)
        env["TRIPWIRE_METRICS_HOST"] = "127.0.0.1"
        env["PYTHONPATH"] = str(REPO)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # closed in stop/kill
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire", "worker"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The /metrics samples as ``{'name{labels}': value}`` (empty if not up)."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            body = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return {}
        pairs = (line.rsplit(" ", 1) for line in body.splitlines() if line and line[0] != "#")
        return {k: float(v) for k, v in pairs}

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit code (SIGKILL if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
