"""Account for every input event: scored, dead-lettered, duplicated, lost.

A test plans its input with a :class:`Ledger` (which vectors each record must get
scored, which dead-letter reasons it must get), produces it, injects its fault, and
calls :meth:`Ledger.tally` once the worker group has committed the whole input. The
tally reads the scores, dead-letter and alert topics and returns :class:`Figures`,
which every test prints (and appends, as a JSON line, to the file named by
``$TRIPWIRE_RELIABILITY_FIGURES`` when set: the source of docs/reliability.md).

Figures, per scenario:

- ``events_in``: valid feature vectors + invalid input records;
- ``scored``: valid vectors with at least one score record;
- ``dead_lettered``: invalid records with at least one dead letter;
- ``duplicated``: score records and dead letters beyond the first of their input
  (at-least-once re-deliveries);
- ``lost``: valid vectors never scored + invalid records never dead-lettered +
  anomalies without their alert. Any loss fails the test.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.fixtures.registry import N_FEATURES, Published
from tests.stream.harness import (
    Out,
    committed,
    consume,
    produce,
    topics_for,
    wait_for,
    worker_settings,
)
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.compat import install_lenient_fetch
from tripwire.stream.wire.alerts import alert_id
from tripwire.stream.wire.codecs import Codec, InvalidEvent
from tripwire.stream.wire.records import InputRecord

FIGURES_ENV = "TRIPWIRE_RELIABILITY_FIGURES"
Where = tuple[int, int]  # (partition, offset) of an input record


@dataclass
class Figures:
    """What one scenario put in and got out; ``check`` fails on any loss."""

    scenario: str
    events_in: int = 0
    scored: int = 0
    dead_lettered: int = 0
    duplicated: int = 0
    lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.extra.items())
        if not self.events_in:  # a scenario without events (the registry's)
            return f"[{self.scenario}] {extra}"
        return (
            f"[{self.scenario}] events in {self.events_in}, scored {self.scored}, "
            f"dead-lettered {self.dead_lettered}, duplicated {self.duplicated}, "
            f"lost {self.lost}{', ' if extra else ''}{extra}"
        )

    def emit(self) -> None:
        """Print the figures (and append them to ``$TRIPWIRE_RELIABILITY_FIGURES``)."""
        print(f"\n{self.line()}")
        for problem in self.problems[:20]:
            print(f"  problem: {problem}")
        path = os.environ.get(FIGURES_ENV)
        if path:
            doc = {k: v for k, v in self.__dict__.items() if k != "problems"}
            with open(path, "a") as f:
                f.write(json.dumps({**doc, "problems": len(self.problems)}, default=str) + "\n")

    def check(self) -> None:
        """Emit, then fail on any lost event or misrouted output."""
        self.emit()
        assert self.lost == 0, f"{self.lost} lost: {self.problems[:10]}"
        assert not self.problems, self.problems[:10]


@dataclass
class Outputs:
    """The output topics, indexed by what they answer for."""

    scores: dict[str, list[dict[str, Any]]]  # input id -> score records
    dead: dict[Where, list[tuple[dict[str, str], bytes]]]  # source -> (headers, value)
    alerts: dict[str, list[dict[str, Any]]]  # alert id -> anomaly events


class Ledger:
    """What a test sent to the input topic and what each input must produce.

    Parameters
    ----------
    bootstrap : str
    topics : mapping
        ``features``, ``alerts``, ``dlq`` and ``scores`` topic names.
    group : str
        The workers' consumer group.
    partitions : int
        Partitions of the input topic.
    """

    def __init__(
        self, bootstrap: str, topics: Mapping[str, str], group: str, partitions: int
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = dict(topics)
        self.group = group
        self.partitions = partitions
        self.rows: dict[str, np.ndarray] = {}  # valid id -> vector: must be scored
        self.bad: dict[Where, frozenset[str]] = {}  # invalid record -> accepted reasons
        self.ends: dict[int, int] = dict.fromkeys(range(partitions), 0)
        self._queue: list[tuple[Out, dict[str, np.ndarray], frozenset[str]]] = []

    @property
    def events_in(self) -> int:
        return len(self.rows) + len(self.bad)

    def plan(
        self,
        out: Out,
        rows: Mapping[str, np.ndarray] | None = None,
        reasons: Iterable[str] = (),
    ) -> None:
        """Queue a record: the vectors it must get scored, the dead-letter reasons it may get.

        A record with ``reasons`` must get a dead letter with one of them (a packed
        record may have both: its good vectors scored, its bad ones dead-lettered).
        """
        reasons = frozenset(reasons)
        assert rows or reasons, "a record must be scored or dead-lettered"
        self._queue.append((out, dict(rows or {}), reasons))

    def send(self) -> list[Where]:
        """Produce the queued records in order; return where they landed."""
        queue, self._queue = self._queue, []
        placed = produce(self.bootstrap, self.topics["features"], [o for o, _, _ in queue])
        for (_, rows, reasons), where in zip(queue, placed, strict=True):
            duplicate = rows.keys() & self.rows.keys()
            assert not duplicate, f"event ids planned twice: {sorted(duplicate)[:5]}"
            self.rows.update(rows)
            if reasons:
                self.bad[where] = reasons
        self.record({}, placed)
        return placed

    def record(self, rows: Mapping[str, np.ndarray], placed: Iterable[Where]) -> None:
        """Add valid events produced elsewhere (e.g. by a ``RateProducer``)."""
        self.rows.update(rows)
        for p, o in placed:
            self.ends[p] = max(self.ends[p], o + 1)

    def committed(self) -> dict[int, int]:
        got = committed(self.bootstrap, self.group, self.topics["features"], self.partitions)
        return {p: o or 0 for p, o in got.items()}

    def wait_committed(self, timeout: float = 60.0) -> None:
        """Wait until the group committed every input record (so outputs are complete)."""
        try:
            wait_for(lambda: self.committed() == self.ends, timeout, "commits", every=0.5)
        except AssertionError:
            raise AssertionError(f"committed {self.committed()} != log ends {self.ends}") from None

    def read(self) -> Outputs:
        """Read the output topics to their ends."""
        scores: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in consume(self.bootstrap, self.topics["scores"]):
            doc = json.loads(r.value)
            scores[doc["id"]].append(doc)
        dead: dict[Where, list[tuple[dict[str, str], bytes]]] = defaultdict(list)
        for r in consume(self.bootstrap, self.topics["dlq"]):
            h = {k: (v or b"").decode("utf-8", "replace") for k, v in r.headers}
            where = (int(h["tripwire-source-partition"]), int(h["tripwire-source-offset"]))
            dead[where].append((h, r.value or b""))
        alerts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in consume(self.bootstrap, self.topics["alerts"]):
            doc = json.loads(r.value)
            alerts[doc["id"]].append(doc)
        return Outputs(dict(scores), dict(dead), dict(alerts))

    def tally(self, scenario: str, timeout: float = 60.0) -> tuple[Figures, Outputs]:
        """Wait for the commits, read every output, and account for every input."""
        self.wait_committed(timeout)
        out = self.read()
        fig = Figures(scenario, events_in=self.events_in)
        _tally_scores(fig, self.rows, out)
        _tally_dead_letters(fig, self.bad, out)
        _tally_alerts(fig, out)
        if fig.lost:
            fig.problems.insert(0, f"lost events by partition: {self.locate(out)}")
        return fig, out

    def locate(self, out: Outputs) -> dict[int, str]:
        """Where the valid events without a score record sit in the input (diagnostics)."""
        install_lenient_fetch()  # the input may hold header keys that are not UTF-8
        codec = Codec([f"f{i}" for i in range(N_FEATURES)], 1 << 30)
        lost: dict[int, list[int]] = defaultdict(list)
        for r in consume(self.bootstrap, self.topics["features"]):
            record = InputRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                                 list(r.headers))  # fmt: skip
            try:
                ids = codec.decode(record).ids
            except InvalidEvent:
                continue
            if any(i in self.rows and i not in out.scores for i in ids):
                lost[r.partition].append(r.offset)
        return {p: f"{len(o)} records in offsets {min(o)}..{max(o)}" for p, o in lost.items()}


def new_run(
    broker: EmbeddedBroker, pub: Published, tag: str, partitions: int, **overrides: Any
) -> tuple[dict[str, Any], Ledger]:
    """Fresh topics for a worker group serving ``pub``: worker settings and a ledger."""
    topics = topics_for(broker, tag, partitions)
    settings = {**worker_settings(broker, pub, topics), **overrides}
    return settings, Ledger(broker.bootstrap, topics, settings["group_id"], partitions)


def _tally_scores(fig: Figures, rows: Mapping[str, np.ndarray], out: Outputs) -> None:
    for eid in rows:
        n = len(out.scores.get(eid, ()))
        if n:
            fig.scored += 1
            fig.duplicated += n - 1
        else:
            fig.lost += 1
            fig.problems.append(f"event {eid!r} never scored")
    fig.problems += [f"unexpected score record for {i!r}" for i in out.scores.keys() - rows.keys()]


def _tally_dead_letters(fig: Figures, bad: Mapping[Where, frozenset[str]], out: Outputs) -> None:
    for where, reasons in bad.items():
        letters = out.dead.get(where, [])
        if not letters:
            fig.lost += 1
            fig.problems.append(f"invalid record {where} never dead-lettered ({set(reasons)})")
            continue
        fig.dead_lettered += 1
        fig.duplicated += len(letters) - 1
        for h, _ in letters:
            if h.get("tripwire-reason") not in reasons or not h.get("tripwire-detail"):
                fig.problems.append(
                    f"{where}: reason {h.get('tripwire-reason')!r} "
                    f"({h.get('tripwire-detail')!r}), expected one of {sorted(reasons)}"
                )
    fig.problems += [f"unexpected dead letter of {w}" for w in out.dead.keys() - bad.keys()]


def _tally_alerts(fig: Figures, out: Outputs) -> None:
    """Every anomalous score has its alert; copies share the deterministic id."""
    want = {
        alert_id(eid, doc["model"]["name"], doc["model"]["version"])
        for eid, docs in out.scores.items()
        for doc in docs
        if doc["anomaly"]
    }
    duplicated = 0
    for aid, docs in out.alerts.items():
        duplicated += len(docs) - 1
        data = [(d["data"]["input_id"], d["data"]["score"], d["data"]["model"]) for d in docs]
        input_id, _, model = data[0]
        derived = alert_id(input_id, model["name"], model["version"])
        if aid != derived or len(set(map(str, data))) > 1:
            fig.problems.append(f"alert {aid}: id not derived from its input or copies differ")
    lost = want - out.alerts.keys()
    fig.lost += len(lost)
    fig.problems += [f"anomaly without alert: {a}" for a in sorted(lost)[:10]]
    fig.problems += [f"alert without anomaly: {a}" for a in sorted(out.alerts.keys() - want)]
    fig.extra.update(alerts=len(out.alerts), alerts_duplicated=duplicated)


def check_redeliveries(out: Outputs, windows: list[dict[int, int]]) -> dict[str, int]:
    """Fail on any re-delivery from outside the uncommitted window of a killed worker.

    ``windows`` holds, per killed worker, the group's committed offset of each
    partition it owned when it died. An input at ``(p, o)`` may be output once, plus
    once per window with ``o >= window[p]``. Returns the re-delivery figures.
    """
    copies: dict[Where, int] = {}
    for docs in out.scores.values():
        where = (docs[0]["partition"], docs[0]["offset"])
        copies[where] = max(copies.get(where, 0), len(docs))
    for where, letters in out.dead.items():
        copies[where] = max(copies.get(where, 0), len(letters))
    outside = []
    for (p, o), n in copies.items():
        allowed = 1 + sum(p in window and o >= window[p] for window in windows)
        if n > allowed:
            outside.append(((p, o), n, allowed))
    assert not outside, f"re-delivered outside the uncommitted windows {windows}: {outside[:10]}"
    return {"redelivered_records": sum(n > 1 for n in copies.values())}
