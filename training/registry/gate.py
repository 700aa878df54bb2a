"""The promotion gate: promote a version only on evidence, within a stated budget.

``tripwire registry promote NAME VERSION --evidence REPORT.json
--max-alert-rate-change 25%`` reads a rollout evidence report (the format of
:mod:`tripwire.core.registry.evidence`), finds in it the comparison of VERSION
with the version the alias points at now, and refuses the move, saying why in one
line, when the evidence falls outside the budget or is not about these two
versions (checked by manifest sha256). A promotion moves the alias and records the
report's sha256 and headline numbers with the move (``moves`` of the alias file);
a refused one moves nothing, unless ``--force`` is given: the move then records
that it was forced and what it overrode. ``--force`` never overrides a version
that fails verification or a report that is not valid.

>>> parse_fraction("25%"), parse_fraction("0.8"), parse_fraction("150%")
(0.25, 0.8, 1.5)
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripwire.core.errors import ConfigError, RegistryError
from tripwire.core.registry.evidence import (
    EVIDENCE_LIMIT,
    evidence_problems,
    model_key,
)
from tripwire.core.registry.integrity import parse_json
from tripwire.core.registry.reader import RegistryReader
from tripwire.core.untrusted import escaped


class EvidenceError(RegistryError):
    """An evidence report cannot be read or is not a valid report."""


class PromotionRefused(RegistryError):
    """The gate refused a promotion; ``failures`` says why, one item per breach."""

    def __init__(self, target: str, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(f"refusing to promote {target}: {'; '.join(failures)}")


def parse_fraction(text: str, option: str = "value") -> float:
    """``"25%"`` -> 0.25; a bare number is a fraction and must lie in [0, 1].

    A bare ``25`` is refused rather than read as 2500%: write ``25%`` or ``0.25``.
    """
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a percentage (25%) or a fraction") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{option} {text!r}: must be a finite, non-negative amount")
    if not raw.endswith("%") and value > 1:
        raise ConfigError(f"{option} {text!r} is ambiguous: write {raw}% or {value / 100:g}")
    return value


@dataclass(frozen=True)
class Budget:
    """What a promotion on evidence may change. ``None``: not checked."""

    max_alert_rate_change: float | None = None
    min_recall: float | None = None
    min_precision: float | None = None
    min_events: int = 1000


@dataclass(frozen=True)
class Evidence:
    """A parsed, valid evidence report and the sha256 of its bytes."""

    path: str
    sha256: str
    doc: dict[str, Any] = field(repr=False)


def read_evidence(path: str | os.PathLike[str]) -> Evidence:
    """Read and check a report; ``EvidenceError`` naming the first problems."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(EVIDENCE_LIMIT + 1)
    except OSError as e:
        raise EvidenceError(f"cannot read evidence {where}: {e.strerror or e}") from None
    if len(data) > EVIDENCE_LIMIT:
        raise EvidenceError(f"evidence {where} is larger than {EVIDENCE_LIMIT} bytes")
    try:
        doc = parse_json(data)
    except ValueError as e:
        raise EvidenceError(f"evidence {where} is not JSON: {escaped(e)}") from None
    problems = evidence_problems(doc)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EvidenceError(f"evidence {where} is not valid: {'; '.join(problems[:3])}{more}")
    return Evidence(str(Path(path).resolve()), hashlib.sha256(data).hexdigest(), doc)


@dataclass(frozen=True)
class Verdict:
    """What the gate found: ``failures`` (empty: within budget) and the move's record."""

    failures: list[str]
    record: dict[str, Any]


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def rate_change(baseline: float, candidate: float) -> float:
    """Relative change of the alert rate; ``inf`` from no alerts to some."""
    if baseline == 0:
        return 0.0 if candidate == 0 else math.inf
    return (candidate - baseline) / baseline


@dataclass(frozen=True)
class Gate:
    """An evidence report and the budget a promotion on it must keep."""

    evidence: Evidence
    budget: Budget

    def judge(
        self, reader: RegistryReader, name: str, candidate: str, baseline: str | None
    ) -> Verdict:
        """Check the report against the move ``baseline -> candidate`` of ``name``."""
        doc = self.evidence.doc
        cand_key = model_key(name, candidate)
        base_key = None if baseline is None else model_key(name, baseline)
        record: dict[str, Any] = {
            "sha256": self.evidence.sha256,
            "file": self.evidence.path,
            "source": doc["source"],
            "created_at": doc["created_at"],
            "input": doc["input"],
            "candidate": cand_key,
            "baseline": base_key,
            "budget": asdict(self.budget),
        }
        failures = self._identity(reader, name, cand_key, candidate, base_key, baseline)
        if not failures:
            failures = self._numbers(record, cand_key, base_key)
        record["failures"] = failures
        return Verdict(failures, record)

    def _identity(
        self,
        reader: RegistryReader,
        name: str,
        cand_key: str,
        candidate: str,
        base_key: str | None,
        baseline: str | None,
    ) -> list[str]:
        """The report must be about these exact versions (by manifest digest)."""
        models = self.evidence.doc["models"]
        wanted = [(cand_key, candidate)] + ([] if base_key is None else [(base_key, baseline)])
        for key, version in wanted:
            if key not in models:
                have = ", ".join(sorted(models))
                return [f"the evidence has no results for {key} (it has {escaped(have, 300)})"]
            digest = reader.manifest_sha256(name, str(version))
            if models[key]["manifest_sha256"] != digest:
                return [
                    f"the evidence scored another {key} (manifest sha256 "
                    f"{models[key]['manifest_sha256'][:12]}…, the registry's is {digest[:12]}…)"
                ]
        if base_key is not None and self._comparison(cand_key, base_key) is None:
            return [f"the evidence does not compare {cand_key} with the current {base_key}"]
        return []

    def _comparison(self, cand_key: str, base_key: str) -> dict[str, Any] | None:
        for c in self.evidence.doc["comparisons"]:
            if (c["baseline"], c["candidate"]) == (base_key, cand_key):
                return dict(c)
        return None

    def _numbers(self, record: dict[str, Any], cand_key: str, base_key: str | None) -> list[str]:
        """Fill the headline numbers into ``record``; the budget's breaches."""
        models, budget = self.evidence.doc["models"], self.budget
        cand = models[cand_key]
        failures = []
        record["events"] = cand["events"]
        if cand["events"] < budget.min_events:
            failures.append(
                f"the evidence covers {cand['events']} events, fewer than "
                f"--min-events {budget.min_events}"
            )
        failures += self._rates(record, cand, None if base_key is None else models[base_key])
        if base_key is not None:
            c = self._comparison(cand_key, base_key) or {}
            record["alerts"] = {k: c[k] for k in ("only_baseline", "only_candidate", "both")}
        labels = cand["labels"] or {}
        for metric in ("precision", "recall", "f1"):
            record[metric] = labels.get(metric)
        for metric, minimum in (("recall", budget.min_recall), ("precision", budget.min_precision)):
            if minimum is None:
                continue
            value = labels.get(metric)
            if not labels:
                failures.append(f"the evidence has no labels: --min-{metric} cannot be checked")
            elif value is None:
                failures.append(f"{metric} is undefined in the evidence (no labelled anomalies)")
            elif value < minimum:
                failures.append(f"{metric} {value:.3g} is below --min-{metric} {minimum:g}")
        return failures

    def _rates(
        self, record: dict[str, Any], cand: dict[str, Any], base: dict[str, Any] | None
    ) -> list[str]:
        limit = self.budget.max_alert_rate_change
        rates = {"baseline": None if base is None else base["alert_rate"]}
        rates["candidate"] = cand["alert_rate"]
        record["alert_rate"] = {**rates, "change": None}
        if base is None:
            if limit is None:
                return []
            return ["the alias is unset: no baseline to measure --max-alert-rate-change against"]
        change = rate_change(base["alert_rate"], cand["alert_rate"])
        record["alert_rate"]["change"] = change if math.isfinite(change) else None
        if limit is None or abs(change) <= limit:
            return []
        shown = "from none" if math.isinf(change) else f"by {change:+.1%}"
        return [
            f"the alert rate changes {shown} ({_pct(base['alert_rate'])} -> "
            f"{_pct(cand['alert_rate'])}), over the budget of ±{100 * limit:g}%"
        ]
