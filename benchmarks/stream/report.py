"""The harness's stream report: the worker beside its ceilings, the targets, the doc section.

The worker's own tables come from :mod:`tripwire.bench.stream_report`; this adds the
ceilings and the naive peer to the throughput table, the broker-alone floor to the
latency table, the targets of issue 5 and the py-spy profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import replace_section
from benchmarks.stream.profile import GROUPS
from benchmarks.stream.run import HarnessResult
from tripwire.bench import stream_report

SCORING_GROUP = GROUPS[0][0]

DOC_BEGIN = "<!-- BEGIN tripwire bench stream results -->"
DOC_END = "<!-- END tripwire bench stream results -->"


@dataclass(frozen=True)
class Target:
    """One target of issue 5: ``measured`` must be >= (or <=) ``bound``."""

    name: str
    measured: float | None
    bound: float
    at_most: bool = False
    unit: str = "x"

    @property
    def holds(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    @property
    def margin(self) -> float | None:
        """measured / bound (above 1 is good for a floor, below 1 for a ceiling)."""
        if self.measured is None or not self.bound:
            return None
        return self.measured / self.bound

    def row(self) -> str:
        verdict = {True: "yes", False: "**no**", None: "n/a"}[self.holds]
        op = "≤" if self.at_most else "≥"
        return f"| {self.name} | {_fmt(self.measured, self.unit)} | {op} {_fmt(self.bound, self.unit)} | {verdict} |"  # noqa: E501


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.1f}×"


def targets(r: HarnessResult) -> list[Target]:
    """The issue's targets, evaluated on one run."""
    a, w = r.ceiling_a, r.worker
    bare = r.ceiling_b.get("events_per_s")
    naive = r.naive.get("events_per_s")

    def ratio(num: float | None, den: float | None) -> float | None:
        return num / den if num is not None and den else None

    binary = w.get("binary", {}).get("vectors_per_s")
    js = w.get("json", {}).get("vectors_per_s")
    packed = w.get("packed", {}).get("vectors_per_s")
    raw_records = a.get("binary", {}).get("records_per_s")
    scoring = None
    if "binary" in w and w["binary"]["cpu_seconds"]:
        scoring = w["binary"]["inference_cpu_seconds"] / w["binary"]["cpu_seconds"]
    p99_5k = next((x["p99"] for x in r.latency if round(x["offered"]) == 5000), None)
    growth = r.memory.get("growth")
    return [
        Target("binary vs bare stock faust (B)", ratio(binary, bare), 5.0),
        Target("binary vs raw aiokafka records/s (A)", ratio(binary, raw_records), 0.10, unit="%"),
        Target("JSON vs bare stock faust (B)", ratio(js, bare), 2.5),
        Target(
            "JSON vs raw aiokafka binary records/s (A)", ratio(js, raw_records), 0.05, unit="%"
        ),  # fmt: skip
        Target(
            "packed vs raw aiokafka vectors/s, same decoding (A)",
            ratio(packed, a.get("packed", {}).get("vectors_per_s")),
            0.50,
            unit="%",
        ),  # fmt: skip
        Target("binary vs naive PyOD faust agent", ratio(binary, naive), 20.0),
        Target(
            "inference share of the worker's CPU at max rate, binary",
            scoring,
            0.25,
            at_most=True,
            unit="%",
        ),  # fmt: skip
        Target("p99 event time → alert at 5k events/s", p99_5k, 50.0, at_most=True, unit="ms"),
        Target("RSS growth after warm-up", growth, 0.10, at_most=True, unit="%"),
    ]


#: Issue 12's speed targets for the default detector.
MIN_INPROCESS = 100_000.0
MIN_WORKER_VS_AE = 1 / 3
MAX_P99_MS = 50.0


def detector_targets(r: HarnessResult) -> list[str]:
    """Which detectors meet issue 12's speed targets for a default, in this run."""
    measured = [d for d in r.detectors if "error" not in d]
    if not measured:
        return []
    ae = next((d for d in measured if d["detector"] == "ae"), None)
    lines = ["", "### Speed targets of a default detector (issue 12)", "",
             f"| detector | in-process ≥ {MIN_INPROCESS:,.0f}/s | worker ≥ ⅓ of ae's | "
             f"p99 ≤ {MAX_P99_MS:.0f} ms | all |", "|---|:-:|:-:|:-:|:-:|"]  # fmt: skip
    for d in measured:
        checks = [
            d["inprocess"]["vectors_per_s"] >= MIN_INPROCESS,
            None if ae is None
            else d["worker"]["vectors_per_s"] >= MIN_WORKER_VS_AE * ae["worker"]["vectors_per_s"],
            None if d["latency"]["p99"] is None else d["latency"]["p99"] <= MAX_P99_MS,
        ]  # fmt: skip
        overall = None if None in checks else all(checks)
        lines.append(f"| {d['detector']} | " + " | ".join(map(_verdict, [*checks, overall])) + " |")
    return lines


def _verdict(holds: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[holds]


def markdown(r: HarnessResult) -> str:
    """The results section: throughput, latency, memory, targets, how it was run."""
    lines = [
        *stream_report.run_line(r),
        "",
        "### Throughput",
        "",
        *_throughput_table(r),
        *stream_report.latency_table(r, broker=True),
        "",
        "*Broker alone*: a plain aiokafka reader (no group, same fetch long-poll as the worker) "
        "of the same offered stream: producer → broker → consumer with no processing, the "
        "floor the worker's latency sits on.",
        *stream_report.memory_line(r),
        *stream_report.variant_table(r),
        *stream_report.detector_table(r),
        *detector_targets(r),
    ]
    lines += ["", "### Targets (issue 5)", "", "| target | measured | bound | holds |",
              "|---|---:|---:|:-:|", *(t.row() for t in targets(r))]  # fmt: skip
    lines += _profiles(r)
    return "\n".join(lines) + "\n"


def _profiles(r: HarnessResult) -> list[str]:
    """Where the worker's CPU went (py-spy), per profiled run."""
    if not r.profiles:
        return []
    encs = list(r.profiles)
    lines = ["", "### Where the worker's CPU goes (py-spy, on-CPU samples at max rate)", "",
             "| | " + " | ".join(encs) + " |", "|---|" + "---:|" * len(encs)]  # fmt: skip
    names = [g for g, _ in GROUPS] + ["event loop, faust, threads, other"]
    for name in names:
        shares = [r.profiles[e]["groups"].get(name) for e in encs]
        if any(shares):
            lines.append(f"| {name} | " + " | ".join(_share(x) for x in shares) + " |")
    lines.append("| samples | " + " | ".join(str(r.profiles[e]["samples"]) for e in encs) + " |")
    for enc in encs:
        lines += ["", f"Top functions by own time, {enc}: "
                  + "; ".join(f"{f} {100 * x:.1f}%" for f, x in r.profiles[enc]["top"][:8])
                  + "."]  # fmt: skip
    return lines


def _share(x: float | None) -> str:
    return "—" if not x else f"{100 * x:.1f}%"


def _throughput_table(r: HarnessResult) -> list[str]:
    bare = r.ceiling_b.get("events_per_s")
    naive = r.naive.get("events_per_s")
    rows = [
        "| what | encoding | records/s | vectors/s | CPU | ÷ ceiling A | ÷ ceiling B | ÷ naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for enc, a in r.ceiling_a.items():
        rows.append(f"| A: raw aiokafka, decode only | {enc} | {a['records_per_s']:,.0f} | "
                    f"{a['vectors_per_s']:,.0f} | {a['cpu_percent']:.0f}% | | | |")  # fmt: skip
    if bare:
        rows.append(f"| B: bare stock faust agent | binary | {bare:,.0f} | {bare:,.0f} | "
                    f"{r.ceiling_b['cpu_percent']:.0f}% | | | |")  # fmt: skip
    c = r.ceiling_c
    if c:
        rows.append(f"| C: inference alone, batch {c['batch']} | — | | {c['vectors_per_s']:,.0f} "
                    f"| {c['cpu_percent']:.0f}% | | | |")  # fmt: skip
    if naive:
        rows.append(f"| naive: faust + PyOD per event | binary | {naive:,.0f} | {naive:,.0f} | "
                    f"{r.naive['cpu_percent']:.0f}% | | | |")  # fmt: skip
    for enc in ("binary", "json", "packed"):
        w = r.worker.get(enc)
        if not w:
            continue
        a = r.ceiling_a.get(enc, {})
        key = "vectors_per_s" if enc == "packed" else "records_per_s"
        rows.append(
            f"| **Tripwire worker** (mean batch {w['mean_batch']:.0f}) | {enc} | "
            f"{w['records_per_s']:,.0f} | {w['vectors_per_s']:,.0f} | {w['cpu_percent']:.0f}% | "
            f"{_pct(w['vectors_per_s'] if enc == 'packed' else w['records_per_s'], a.get(key))} | "
            f"{_x(w['vectors_per_s'], bare)} | {_x(w['vectors_per_s'], naive)} |"
        )
    return rows


def _pct(num: float, den: float | None) -> str:
    return f"{100 * num / den:.1f}%" if den else "n/a"


def _x(num: float, den: float | None) -> str:
    return f"{num / den:.1f}×" if den else "n/a"


def write(r: HarnessResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``stream.md`` and ``stream.json`` (raw numbers + targets) into ``out_dir``."""
    checked = [
        {"name": t.name, "measured": t.measured, "bound": t.bound, "at_most": t.at_most,
         "holds": t.holds}
        for t in targets(r)
    ]  # fmt: skip
    return stream_report.write(r, out_dir, markdown(r), {"targets": checked})


def update_doc(path: Path, section: str) -> None:
    """Replace the bench-stream section of ``path`` with ``section`` (ConfigError if absent)."""
    replace_section(path, section, DOC_BEGIN, DOC_END, "Performance")
