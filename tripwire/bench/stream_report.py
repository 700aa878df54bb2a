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
    """The worker's throughput per encoding, alert latency at fixed rates, memory."""
    lines = [*run_line(r), "", "### Throughput (a backlog read as fast as the worker can)", "",
             "| encoding | records/s | vectors/s | CPU | mean batch |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for enc in ("binary", "json", "packed"):
        w = r.worker.get(enc)
        if w:
            lines.append(f"| {enc} | {w['records_per_s']:,.0f} | {w['vectors_per_s']:,.0f} | "
                         f"{w['cpu_percent']:.0f}% | {w['mean_batch']:.0f} |")  # fmt: skip
    lines += [*latency_table(r, broker=False), *memory_line(r)]
    return "\n".join(lines) + "\n"


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
