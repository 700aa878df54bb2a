"""``tripwire shadow report``: a worker's shadow counters as rollout evidence.

Scrapes the ``/metrics`` of one or more workers running with ``--shadow-model``
(once, or twice ``window`` seconds apart) and writes the comparison of the serving
version (baseline) with the shadow (candidate) in the rollout evidence format
(``tripwire.core.registry.evidence``, ``source: "shadow"``), which
``tripwire registry promote --evidence`` reads.

The figures are exact counts over the events both versions scored
(``tripwire_shadow_events_scored_total``, ``tripwire_shadow_alerts_total``), summed
over the workers. With one scrape they cover each worker's whole life, so it is
refused unless neither version changed since it started; with ``window`` they are
the differences between the two scrapes, refused if either version changed in
between. Score quantiles are estimated from the ``tripwire_shadow_score_ratio``
buckets (linear within a bucket, as PromQL's ``histogram_quantile``) times the
threshold: approximate, unlike the counts. Manifest digests are read from the
registry, so the gate can check that the report is about the versions it moves.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tripwire.core.errors import ConfigError, TripwireError
from tripwire.core.registry import RegistryReader
from tripwire.core.registry.evidence import (
    FORMAT,
    SCHEMA_VERSION,
    evidence_problems,
    evidence_time,
    model_key,
    rate,
    tripwire_version,
)
from tripwire.core.untrusted import escaped

#: ``{(sample name, sorted label items): value}`` of one scrape.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
#: A larger /metrics body is refused unread.
MAX_BODY = 16 << 20


@dataclass(frozen=True)
class ShadowReportSettings:
    """Options of ``tripwire shadow report`` (each also a ``TRIPWIRE_*`` variable)."""

    metrics_url: tuple[str, ...] = field(
        default=(),
        metadata={"help": "the /metrics URL of each worker to add up, comma-separated "
                  "(http://HOST:9464/metrics)", "metavar": "URLS"},
    )  # fmt: skip
    registry: str = field(
        default="./registry", metadata={"help": "model registry directory", "metavar": "DIR"}
    )
    input_topic: str = field(
        default="features", metadata={"help": "the workers' input topic", "metavar": "TOPIC"}
    )
    window: float = field(
        default=0.0,
        metadata={"help": "seconds between two scrapes; the report covers them (0: one "
                  "scrape, everything since the workers started)", "metavar": "SECONDS"},
    )  # fmt: skip
    out: str = field(
        default="",
        metadata={"help": "where to write the report (empty: stdout)", "metavar": "PATH"},
    )

    def validate(self) -> None:
        if not self.metrics_url:
            raise ConfigError("--metrics-url http://HOST:PORT/metrics is required")
        if not self.window >= 0:
            raise ConfigError(f"--window must be >= 0, got {self.window}")


class ShadowReportError(TripwireError):
    """The workers' metrics cannot make a report (why, in one line)."""


def parse(text: str) -> Samples:
    """The samples of a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def fetch(url: str, timeout: float = 10.0) -> Samples:
    """Scrape ``url``; ``ShadowReportError`` if it does not answer with metrics."""
    if not url.startswith(("http://", "https://")):
        raise ShadowReportError(f"--metrics-url {escaped(url)}: not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - checked above
            body = resp.read(MAX_BODY + 1)
    except OSError as e:
        raise ShadowReportError(f"cannot scrape {escaped(url)}: {escaped(e)}") from None
    if len(body) > MAX_BODY:
        raise ShadowReportError(f"{escaped(url)} answered more than {MAX_BODY} bytes")
    try:
        return parse(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ShadowReportError(f"{escaped(url)} is not Prometheus metrics: {escaped(e)}") from None


@dataclass(frozen=True)
class Worker:
    """One worker's figures over the report's span."""

    url: str
    production: tuple[str, str, float]  # name, version, threshold
    shadow: tuple[str, str, float]
    counts: dict[str, float]  # events, production_only, shadow_only, both
    buckets: dict[str, dict[float, float]]  # model -> le -> cumulative count
    partitions: set[int]
    started: float


def _value(s: Samples, name: str, **labels: str) -> float:
    return s.get((name, tuple(sorted(labels.items()))), 0.0)


def _info(s: Samples, name: str, url: str, what: str) -> tuple[str, str]:
    found = [dict(k[1]) for k, v in s.items() if k[0] == name and v == 1]
    if len(found) != 1:
        raise ShadowReportError(f"{escaped(url)} has no {what} version ({name} absent)")
    return found[0]["name"], found[0]["version"]


def worker_figures(url: str, end: Samples, start: Samples | None) -> Worker:
    """The figures of one worker between ``start`` (``None``: its start) and ``end``."""
    before = start or {}

    def delta(name: str, **labels: str) -> float:
        return _value(end, name, **labels) - _value(before, name, **labels)

    production = _info(end, "tripwire_model_info", url, "serving")
    shadow = _info(end, "tripwire_shadow_model_info", url, "shadow")
    if start is not None and (
        _info(start, "tripwire_model_info", url, "serving") != production
        or _info(start, "tripwire_shadow_model_info", url, "shadow") != shadow
    ):
        raise ShadowReportError(f"{escaped(url)}: a version changed during the window")
    reloads = delta("tripwire_model_reloads_total", result="success")
    if reloads or delta("tripwire_shadow_reloads_total"):
        span = "during the window" if start is not None else "since it started (use --window)"
        raise ShadowReportError(f"{escaped(url)}: the serving or shadow version changed {span}")
    counts = {"events": delta("tripwire_shadow_events_scored_total")}
    for a in ("production_only", "shadow_only", "both"):
        counts[a] = delta("tripwire_shadow_alerts_total", agreement=a)
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for (name, labels), _ in end.items():
        if name == "tripwire_shadow_score_ratio_bucket":
            d = dict(labels)
            buckets[d["model"]][float(d["le"])] = delta(name, **d)
    partitions = {int(dict(k[1])["partition"]) for k in end if k[0] == "tripwire_consumer_lag"}
    return Worker(
        url, (*production, _value(end, "tripwire_threshold")),
        (*shadow, _value(end, "tripwire_shadow_threshold")), counts, dict(buckets), partitions,
        _value(end, "process_start_time_seconds"),
    )  # fmt: skip


def bucket_quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a histogram's cumulative buckets (``histogram_quantile``).

    >>> bucket_quantile(0.5, {1.0: 2, 2.0: 4, math.inf: 4})
    1.0
    >>> bucket_quantile(0.75, {1.0: 2, 2.0: 4, math.inf: 4})
    1.5
    """
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, below, lower = q * total, 0.0, 0.0
    for i, upper in enumerate(bounds):
        count = cumulative[upper]
        if count >= rank:
            if math.isinf(upper):
                return bounds[i - 1] if i else None
            if i == 0 and upper <= 0:
                return upper
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
        below, lower = count, upper
    return bounds[-2] if len(bounds) > 1 else None


def _quantiles(buckets: dict[float, float], threshold: float) -> dict[str, float] | None:
    out = {}
    for key, q in QUANTILES.items():
        ratio = bucket_quantile(q, buckets)
        if ratio is None:
            return None
        out[key] = ratio * threshold
    return out


def report(
    workers: list[Worker], registry: str, topic: str, span: tuple[float, float]
) -> dict[str, Any]:
    """The evidence document of ``workers`` (checked: ``ShadowReportError`` if invalid)."""
    pairs = {(w.production, w.shadow) for w in workers}
    if len(pairs) != 1:
        raise ShadowReportError(f"the workers compare different versions: {sorted(pairs)}")
    (production, shadow), = pairs  # fmt: skip
    totals = {k: int(sum(w.counts[k] for w in workers)) for k in workers[0].counts}
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for w in workers:
        for model, bs in w.buckets.items():
            for le, n in bs.items():
                buckets[model][le] += n
    partitions = sorted(set().union(*(w.partitions for w in workers)))
    if not partitions:
        raise ShadowReportError("the workers own no partition yet (no batch scored)")
    baseline, candidate = (model_key(*m[:2]) for m in (production, shadow))
    events = totals["events"]
    models = {
        baseline: _model(registry, production, events, totals["production_only"] + totals["both"],
                         buckets.get("production", {})),
        candidate: _model(registry, shadow, events, totals["shadow_only"] + totals["both"],
                          buckets.get("shadow", {})),
    }  # fmt: skip
    doc = {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "source": "shadow",
        "created_at": evidence_time(time.time()), "tripwire": tripwire_version(),
        "input": {"topic": topic, "partitions": partitions, "from": evidence_time(span[0]),
                  "to": evidence_time(span[1])},
        "labels": None, "models": models,
        "comparisons": [{
            "baseline": baseline, "candidate": candidate,
            "only_baseline": totals["production_only"], "only_candidate": totals["shadow_only"],
            "both": totals["both"],
        }],
    }  # fmt: skip
    problems = evidence_problems(doc)
    if problems:
        raise ShadowReportError(f"the report would not be valid evidence: {problems[:3]}")
    return doc


def _model(
    registry: str,
    model: tuple[str, str, float],
    events: int,
    alerts: int,
    buckets: dict[float, float],
) -> dict[str, Any]:
    """One ``models`` entry of the report."""
    name, version, threshold = model
    quantiles = _quantiles(buckets, threshold) if events else None
    if events and quantiles is None:
        raise ShadowReportError(f"no score quantiles for {name}@{version} (threshold {threshold})")
    return {
        "ref": model_key(name, version),
        "manifest_sha256": _digest(RegistryReader(registry), name, version),
        "threshold": threshold, "events": events, "alerts": alerts,
        "alert_rate": rate(alerts, events), "score_quantiles": quantiles, "labels": None,
    }  # fmt: skip


def collect(
    urls: list[str],
    registry: str,
    topic: str,
    window: float = 0.0,
    *,
    scrape: Callable[[str], Samples] = fetch,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Scrape the workers at ``urls`` (twice, ``window`` s apart, if > 0); the report."""
    first = [scrape(u) for u in urls] if window > 0 else None
    started = time.time()
    if first is not None:
        sleep(window)
    last = [scrape(u) for u in urls]
    ended = time.time()
    workers = [
        worker_figures(u, end, None if first is None else first[i])
        for i, (u, end) in enumerate(zip(urls, last, strict=True))
    ]
    if first is None:
        started = min(w.started for w in workers) or ended
    return report(workers, registry, topic, (started, ended))


def _digest(reader: RegistryReader, name: str, version: str) -> str:
    try:
        return reader.manifest_sha256(name, version)
    except (OSError, TripwireError) as e:
        raise ShadowReportError(f"cannot read {name}@{version} in the registry: {e}") from None
