"""The worker-only stream benchmark's markdown tables and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tripwire.bench.stream import StreamResult


def run_line(r: StreamResult) -> list[str]:
    """When, where and with what the run was made, and its command."""
    m = r.meta
    machine = m["machine"]
    load = [f"{x:.1f}" for x in (*m["load_average_start"][:1], *m.get("load_average_end", [])[:1])]
    code = f"code {m['code']}, " if m.get("code") else ""
    return [
        f"Run {m['date']} on {machine['cpu']} ({machine['cpus_usable']} usable CPUs, "
        f"{machine['platform']}; load average {' -> '.join(load)} from start to end), broker: "
        f"{m['broker']}, {code}"
        f"faust-streaming {m['versions'].get('faust-streaming')}, "
        f"aiokafka {m['versions'].get('aiokafka')}, torch {m['versions'].get('torch')}.",
        "",
        f"Command: `{m['command']}`",
    ]


def markdown(r: StreamResult) -> str:
    """The worker's throughput per encoding, alert latency at fixed rates, memory, detectors.

    A ``detectors_only`` run has the run line and the detector table only.
    """
    lines = run_line(r)
    if r.worker:
        lines += ["", "### Throughput (a backlog read as fast as the worker can)", "",
                  "| encoding | records/s | vectors/s | CPU | mean batch |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
    for enc in ("binary", "json", "packed"):
        w = r.worker.get(enc)
        if w:
            lines.append(f"| {enc} | {w['records_per_s']:,.0f} | {w['vectors_per_s']:,.0f} | "
                         f"{w['cpu_percent']:.0f}% | {w['mean_batch']:.0f} |")  # fmt: skip
    if r.latency:
        lines += latency_table(r, broker=False)
    lines += [*memory_line(r), *variant_table(r), *detector_table(r)]
    return "\n".join(lines) + "\n"


def reference_detector(r: StreamResult) -> str | None:
    """The detector the ratios divide by: ``ae`` when it was measured, else the first."""
    ok = [d["detector"] for d in r.detectors if "error" not in d]
    return "ae" if "ae" in ok else (ok[0] if ok else None)


#: Columns of :func:`detector_table`.
DETECTOR_COLUMNS = (
    "detector", "in-process vectors/s (batch {batch})", "in-process CPU", "÷ {ref}",
    "worker events/s", "÷ {ref}",
    "worker CPU", "inference share", "p50", "p99", "achieved / scored events/s",
    "backlog events",
)  # fmt: skip


def detector_table(r: StreamResult) -> list[str]:
    """Per detector: in-process rate, worker throughput and latency, ratios to the reference."""
    if not r.detectors:
        return []
    ref_name = reference_detector(r)
    ref = next((d for d in r.detectors if d["detector"] == ref_name), None)
    settings = r.meta["settings"]
    batch, rate = settings.get("max_batch", 256), settings.get("detector_rate", 5000)
    head = [c.format(batch=batch, ref=ref_name) for c in DETECTOR_COLUMNS]
    lines = [
        "",
        f"### Every detector where it runs (binary events; latency at {rate:,.0f} events/s)",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    lines += [_detector_row(d, ref, len(head)) for d in r.detectors]
    lines += ["", "In-process: `Scorer.score` on batches of the worker's size, one torch "
              "thread, median of 5 repeats; *in-process CPU* is the process's CPU time over "
              "the wall time of those repeats (well below 100%: the host starved the "
              "measurement, the rate is low). Worker: a `tripwire worker` of its own reading a "
              "backlog sized to take about --detector-seconds at the in-process rate; "
              "inference share = the worker's inference CPU over its process CPU. Latency: "
              "event time → alert produced while --detector-rate events/s are offered for "
              "--rate-seconds; *achieved* is the rate the load generator reached, *scored* "
              "the worker's rate until it had scored them all (below the offered rate: it "
              "fell behind and the latency is queueing)."]  # fmt: skip
    return lines


def _detector_row(d: dict[str, Any], ref: dict[str, Any] | None, columns: int) -> str:
    if "error" in d:
        error = " ".join(str(d["error"]).split()).replace("|", "/")[:120]
        return f"| {d['detector']} | error: {error} |" + " |" * (columns - 2)
    w, lat, inproc = d["worker"], d["latency"], d["inprocess"]["vectors_per_s"]
    share = w["inference_cpu_seconds"] / w["cpu_seconds"] if w["cpu_seconds"] else None
    scored, inproc_cpu = lat.get("scored_per_s"), d["inprocess"].get("cpu_percent")
    return (
        f"| {d['detector']} | {inproc:,.0f} | "
        f"{'n/a' if inproc_cpu is None else f'{inproc_cpu:.0f}%'} | "
        f"{_ratio(inproc, ref, 'inprocess')} | "
        f"{w['vectors_per_s']:,.0f} | {_ratio(w['vectors_per_s'], ref, 'worker')} | "
        f"{w['cpu_percent']:.0f}% | {'n/a' if share is None else f'{100 * share:.0f}%'} | "
        f"{_ms(lat['p50'])} | {_ms(lat['p99'])} | {lat['achieved']:,.0f} / "
        f"{'n/a' if scored is None else f'{scored:,.0f}'} | {d['events']:,} |"
    )


def _ratio(value: float, ref: dict[str, Any] | None, key: str) -> str:
    if ref is None:
        return "n/a"
    den = ref[key]["vectors_per_s"]
    return f"{value / den:.2f}×" if den else "n/a"


def variant_table(r: StreamResult) -> list[str]:
    """Per worker variant: median throughput and latency; then the comparisons' ratios."""
    if not r.variants:
        return []
    settings = r.meta["settings"]
    rate, repeats = settings.get("variant_rate", 5000), settings.get("variant_repeats", 3)
    lines = [
        "",
        f"### Worker variants (binary events, {repeats} interleaved rounds, medians; "
        f"latency at {rate:,.0f} events/s)",
        "",
        "| variant | worker flags | events/s | per round | CPU | p50 | p99 | "
        "achieved / scored events/s |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for v in r.variants:
        rounds = ", ".join("error" if "error" in x else f"{x['worker']['vectors_per_s']:,.0f}"
                           for x in v["rounds"])  # fmt: skip
        if "vectors_per_s" not in v:
            error = " ".join(str(v["error"]).split()).replace("|", "/")[:120]
            lines.append(f"| {v['variant']} | `{v['flags']}` | error: {error} | {rounds} |"
                         " | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {v['variant']} | `{v['flags']}` | {v['vectors_per_s']:,.0f} | {rounds} | "
            f"{v['cpu_percent']:.0f}% | {_ms(v['p50'])} | {_ms(v['p99'])} | "
            f"{v['achieved']:,.0f} / {v['scored_per_s']:,.0f} |"
        )
    if r.comparisons:
        lines += ["", "| comparison | median ÷ median | per round | target | holds |",
                  "|---|---:|---|---|:-:|"]  # fmt: skip
        lines += [_comparison_row(c) for c in r.comparisons]
    lines += ["", "Each round: a `tripwire worker` of its own, serving the run's AE with the "
              "variant's flags, reads a fresh backlog of --events binary events (throughput, "
              "its own metrics), then gets --variant-rate events/s for --rate-seconds "
              "(event time → alert). Rounds alternate the order (ABC, CBA, ...). A round whose "
              "worker's metrics contradict its flags (drift not monitored, or monitored with "
              "--no-drift; no shadow scores) counts as an error."]  # fmt: skip
    return lines


def _comparison_row(c: dict[str, Any]) -> str:
    target = f"≥ {c['min_ratio']:.2f}"
    if c.get("max_p99_ms") is not None:
        target += f", {c['on']} p99 ≤ {c['max_p99_ms']:.0f} ms (here {_ms(c['p99'])})"
    ratio = "n/a" if c["ratio"] is None else f"{c['ratio']:.2f}"
    per_round = ", ".join(f"{x:.2f}" for x in c["round_ratios"])
    verdict = {True: "yes", False: "**no**", None: "n/a"}[c["holds"]]
    return f"| {c['name']}: {c['on']} ÷ {c['off']} | {ratio} | {per_round} | {target} | {verdict} |"


def latency_table(r: StreamResult, broker: bool) -> list[str]:
    """Event time -> alert latency per offered rate (with the broker-alone floor)."""
    lines = [
        "",
        "### Latency (event time → alert produced, binary events, "
        f"{100 * r.meta['settings']['anomaly_fraction']:g}% anomalous)",
        "",
        "| offered events/s | achieved | alerts | p50 | p95 | p99 | max | worker CPU "
        + ("| broker alone p50 / p99 |" if broker else "|"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if broker else ""),
    ]
    for x in r.latency:
        floor = x.get("broker", {})
        lines.append(
            f"| {x['offered']:,.0f} | {x['achieved']:,.0f} | {x['alerts']} | "
            + " | ".join(_ms(x[k]) for k in ("p50", "p95", "p99", "max"))
            + f" | {x['cpu_percent']:.0f}% |"
            + (f" {_ms(floor.get('p50'))} / {_ms(floor.get('p99'))} |" if broker else "")
        )
    return lines


def memory_line(r: StreamResult) -> list[str]:
    mem = r.memory
    if not mem:
        return []
    return [
        "",
        f"Worker memory: peak RSS {mem['peak_rss'] / 2**20:.0f} MiB; RSS "
        f"{mem['rss_after_warmup'] / 2**20:.0f} MiB after warm-up (the binary backlog), "
        f"{mem['rss_end'] / 2**20:.0f} MiB after the latency runs "
        f"({100 * mem['growth']:+.1f}%).",
    ]


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


def write(
    r: StreamResult, out_dir: Path, md_text: str | None = None, extra: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``stream.md`` (``md_text``, default :func:`markdown`) and ``stream.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "stream.md", out_dir / "stream.json"
    md.write_text("# Stream benchmark\n\n" + (md_text or markdown(r)), encoding="utf-8")
    js.write_text(json.dumps({**r.to_dict(), **(extra or {})}, indent=1) + "\n", encoding="utf-8")
    return md, js
