"""Labels for a replay: input ids marked 0/1, or time ranges of known incidents.

A labels file (``--labels``) is CSV or JSON (by its first non-blank byte: ``{`` or
``[`` is JSON):

- CSV with columns ``id,label`` (label 0 or 1): those events are labelled;
- CSV with columns ``start,end``: incident time ranges (ISO-8601 with a UTC offset,
  or epoch milliseconds), both ends included;
- JSON ``{"events": {"<id>": 0 | 1, ...}, "incidents": [{"start": ..., "end": ...}]}``
  (either key may be left out; ``events`` may also be a list of ``{"id", "label"}``).

An event's label is its id's when the file lists it; otherwise, when the file
has incidents, 1 inside one (by event time) and 0 outside; otherwise it is
unlabelled and left out of precision and recall. An incident is detected at the
event time of the first alert inside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.core.errors import ConfigError
from tripwire.core.untrusted import escaped

#: A larger labels file is refused.
LABELS_LIMIT = 512 << 20


@dataclass(frozen=True)
class Labels:
    """A parsed labels file.

    Attributes
    ----------
    ids : dict of str to int
        Input id -> 0 or 1.
    incidents : ndarray of shape (k, 2), float64
        ``[start, end]`` epoch ms of each incident, in file order.
    """

    source: str
    ids: dict[str, int] = field(repr=False)
    incidents: np.ndarray

    def of(self, ids: list[str], event_ms: np.ndarray) -> np.ndarray:
        """Labels of events (n,): 1, 0, or -1 (unlabelled)."""
        out = np.fromiter((self.ids.get(i, -1) for i in ids), np.int8, len(ids))
        if len(self.incidents):
            inside = self.inside(event_ms).any(axis=1)
            known = np.isfinite(event_ms)
            out = np.where(out >= 0, out, np.where(known, inside.astype(np.int8), -1))
        return out

    def inside(self, event_ms: np.ndarray) -> np.ndarray:
        """(n, k): whether event i's time lies in incident j."""
        t = event_ms[:, None]
        return (t >= self.incidents[None, :, 0]) & (t <= self.incidents[None, :, 1])


def load_labels(path: str) -> Labels:
    """Read ``path``; ``ConfigError`` naming the problem (and its line) if it is not labels."""
    try:
        with open(path, "rb") as f:
            data = f.read(LABELS_LIMIT + 1)
    except OSError as e:
        raise ConfigError(f"--labels {path}: cannot read it: {e.strerror or e}") from None
    if len(data) > LABELS_LIMIT:
        raise ConfigError(f"--labels {path}: larger than {LABELS_LIMIT} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"--labels {path}: not UTF-8") from None
    parse = _from_json if text.lstrip()[:1] in ("{", "[") else _from_csv
    ids, incidents = parse(text, path)
    if not ids and not incidents:
        raise ConfigError(f"--labels {path}: no labelled ids and no incidents in it")
    spans = np.array(incidents, np.float64).reshape(-1, 2)
    return Labels(str(Path(path)), ids, spans)


def _from_csv(text: str, path: str) -> tuple[dict[str, int], list[tuple[float, float]]]:
    rows = csv.DictReader(io.StringIO(text))
    columns = set(rows.fieldnames or ())
    ids: dict[str, int] = {}
    incidents: list[tuple[float, float]] = []
    if {"id", "label"} <= columns:
        for row in rows:
            where = f"--labels {path} line {rows.line_num}"
            ids[_id(row["id"], where)] = _label(row["label"], where)
    elif {"start", "end"} <= columns:
        for row in rows:
            where = f"--labels {path} line {rows.line_num}"
            incidents.append(_incident(row, where))
    else:
        raise ConfigError(
            f"--labels {path}: a CSV needs the columns id,label or start,end "
            f"(it has {escaped(','.join(sorted(columns)), 200)})"
        )
    return ids, incidents


def _from_json(text: str, path: str) -> tuple[dict[str, int], list[tuple[float, float]]]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"--labels {path}: not JSON: {escaped(e)}") from None
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, dict) or set(doc) - {"events", "incidents"}:
        raise ConfigError(f'--labels {path}: expected {{"events": ..., "incidents": [...]}}')
    events = doc.get("events", {})
    if isinstance(events, dict):
        events = [{"id": k, "label": v} for k, v in events.items()]
    ids: dict[str, int] = {}
    if not isinstance(events, list):
        raise ConfigError(f"--labels {path}: events must be an object or a list")
    for n, item in enumerate(events):
        where = f"--labels {path} events[{n}]"
        if not isinstance(item, dict):
            raise ConfigError(f'{where}: expected {{"id": ..., "label": 0 or 1}}')
        ids[_id(item.get("id"), where)] = _label(item.get("label"), where)
    incidents = doc.get("incidents", [])
    if not isinstance(incidents, list) or not all(isinstance(i, dict) for i in incidents):
        raise ConfigError(f'--labels {path}: incidents must be a list of {{"start", "end"}}')
    spans = [_incident(i, f"--labels {path} incidents[{n}]") for n, i in enumerate(incidents)]
    return ids, spans


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ConfigError(f"{where}: the id must be a non-empty string or an integer")
    return str(value)


def _label(value: Any, where: str) -> int:
    if value in (0, 1, "0", "1") and not isinstance(value, bool):
        return int(value)
    raise ConfigError(f"{where}: the label must be 0 or 1, got {escaped(value, 40)}")


def _incident(item: dict[str, Any], where: str) -> tuple[float, float]:
    start, end = (_time(item.get(k), f"{where} {k}") for k in ("start", "end"))
    if end < start:
        raise ConfigError(f"{where}: the end is before the start")
    return start, end


def _time(value: Any, where: str) -> float:
    """Epoch ms of an ISO-8601 time with a UTC offset, or of a number of epoch ms."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            return float(int(text))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.timestamp() * 1000.0
    raise ConfigError(f"{where}: expected an ISO-8601 time with a UTC offset or epoch ms")


@dataclass
class LabelTally:
    """One version's alerts against the labels, over the events compared."""

    labels: Labels
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    #: Per incident, the earliest event time (ms) of an alert inside it (inf: none yet).
    first_alert: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        self.first_alert = np.full(len(self.labels.incidents), math.inf)

    def add(self, labels: np.ndarray, flags: np.ndarray, event_ms: np.ndarray) -> None:
        """Count a batch: ``labels`` (n,) from :meth:`Labels.of`, ``flags`` the alerts."""
        pos, neg = labels == 1, labels == 0
        self.tp += int((pos & flags).sum())
        self.fp += int((neg & flags).sum())
        self.fn += int((pos & ~flags).sum())
        self.tn += int((neg & ~flags).sum())
        if len(self.labels.incidents) and flags.any():
            t = event_ms[flags]
            hit = self.labels.inside(t)
            firsts = np.where(hit, t[:, None], math.inf).min(axis=0)
            self.first_alert = np.minimum(self.first_alert, firsts)
