"""Rollout evidence: the report ``tripwire replay`` (or shadow scoring) writes and the
promotion gate (``tripwire registry promote --evidence``) reads.

One definition of the format: the JSON Schema ``evidence.schema.json`` beside this
module (schema 1, documented in docs/formats.md, "Rollout evidence"), plus the
cross-field rules a schema cannot state, checked by :func:`evidence_problems`:

- per model: ``alerts <= events``; ``alert_rate == alerts / events`` (0 when there
  are no events); ``score_quantiles`` is null exactly when ``events == 0`` and is
  non-decreasing (``min <= p50 <= p90 <= p99 <= p999 <= max``); ``labels`` is null
  exactly when the report's ``labels`` is; ``tp + fp <= alerts``, and
  ``precision``, ``recall``, ``f1`` agree with ``tp``, ``fp``, ``fn`` (null when
  undefined);
- per comparison: both keys name models of the report, scored on the same events
  (equal ``events``), with ``only_baseline + both`` and ``only_candidate + both``
  equal to each model's ``alerts``.

A producer checks its output with :func:`evidence_problems` (it must return
``[]``); the gate refuses a report for which it does not. ``jsonschema`` is imported
only here, when a report is checked.

>>> evidence_problems({"format": "tripwire-evidence", "schema_version": 2})
['evidence schema_version 2 was written by a newer Tripwire (this one reads up to 1)']
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import cache
from importlib import metadata, resources
from typing import Any

from tripwire.core.untrusted import escaped

FORMAT = "tripwire-evidence"
#: The evidence schema this code reads (and a producer in this version writes).
SCHEMA_VERSION = 1
SCHEMA_FILE = "evidence.schema.json"
#: A larger report is refused unread.
EVIDENCE_LIMIT = 16 << 20
_TOLERANCE = 1e-9


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of :data:`SCHEMA_VERSION` (shipped as package data)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def model_key(name: str, version: str) -> str:
    """The key of a model in ``models``: ``NAME@VERSION``.

    >>> model_key("demo", "3")
    'demo@3'
    """
    return f"{name}@{version}"


def rate(alerts: int, events: int) -> float:
    """``alerts / events``, 0 for no events: the ``alert_rate`` a producer writes."""
    return alerts / events if events else 0.0


def evidence_problems(doc: object) -> list[str]:
    """Every way ``doc`` breaks the evidence format; empty when it is valid."""
    if isinstance(doc, dict):
        sv = doc.get("schema_version")
        if isinstance(sv, int) and not isinstance(sv, bool) and sv > SCHEMA_VERSION:
            return [
                f"evidence schema_version {sv} was written by a newer Tripwire "
                f"(this one reads up to {SCHEMA_VERSION})"
            ]
    problems = _schema_problems(doc)
    if problems:
        return problems
    assert isinstance(doc, dict)  # the schema says so
    for key, model in doc["models"].items():
        problems.extend(f"models.{key}: {p}" for p in _model_problems(model, doc["labels"]))
    for i, comparison in enumerate(doc["comparisons"]):
        problems.extend(f"comparisons[{i}]: {p}" for p in _diff_problems(comparison, doc))
    return problems


def _schema_problems(doc: object) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    found = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        found.append(f"{escaped(where, 100)}: {escaped(error.message, 300)}")
    return found[:20]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)


def _model_problems(m: dict[str, Any], labels: object) -> list[str]:
    problems = []
    events, alerts = m["events"], m["alerts"]
    if alerts > events:
        problems.append(f"alerts {alerts} > events {events}")
    if not _close(m["alert_rate"], rate(alerts, events)):
        problems.append(f"alert_rate {m['alert_rate']} != alerts / events {rate(alerts, events)}")
    q = m["score_quantiles"]
    if (q is None) != (events == 0):
        problems.append("score_quantiles must be null exactly when there are no events")
    elif q is not None:
        order = [q[k] for k in ("min", "p50", "p90", "p99", "p999", "max") if k in q]
        if any(a > b for a, b in zip(order, order[1:], strict=False)):
            problems.append(f"score_quantiles are not in order: {order}")
    if (m["labels"] is None) != (labels is None):
        problems.append("labels must be null exactly when the report has no labels")
    elif m["labels"] is not None:
        problems.extend(_label_problems(m["labels"], alerts))
    return problems


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _label_problems(s: dict[str, Any], alerts: int) -> list[str]:
    tp, fp, fn = s["tp"], s["fp"], s["fn"]
    problems = [] if tp + fp <= alerts else [f"tp + fp = {tp + fp} > alerts {alerts}"]
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None if precision is None or recall is None else _ratio(2 * tp, 2 * tp + fp + fn)
    for key, expected in (("precision", precision), ("recall", recall), ("f1", f1)):
        got = s[key]
        if (got is None) != (expected is None) or (
            got is not None and expected is not None and not _close(got, expected)
        ):
            problems.append(f"{key} {got} does not agree with tp/fp/fn (expected {expected})")
    return problems


def _diff_problems(c: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    models = doc["models"]
    missing = [c[k] for k in ("baseline", "candidate") if c[k] not in models]
    if missing:
        return [f"names {', '.join(missing)}, not in models"]
    base, cand = models[c["baseline"]], models[c["candidate"]]
    problems = []
    if base["events"] != cand["events"]:
        problems.append(
            f"baseline and candidate scored different events ({base['events']} vs "
            f"{cand['events']}): a comparison is over the same events"
        )
    if c["only_baseline"] + c["both"] != base["alerts"]:
        problems.append(f"only_baseline + both != the baseline's alerts ({base['alerts']})")
    if c["only_candidate"] + c["both"] != cand["alerts"]:
        problems.append(f"only_candidate + both != the candidate's alerts ({cand['alerts']})")
    return problems


def evidence_time(t: float) -> str:
    """UTC RFC 3339 with microseconds and a ``Z``: how evidence writes a time."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tripwire_version() -> str:
    """The installed Tripwire's version (evidence's ``tripwire`` field)."""
    try:
        return metadata.version("tripwire")
    except metadata.PackageNotFoundError:
        return "unknown"
