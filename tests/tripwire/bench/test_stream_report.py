"""``tripwire bench stream``'s report: the worker's own tables, nothing of the harness."""

from __future__ import annotations

import json
from pathlib import Path

from tripwire.bench import stream_report
from tripwire.bench.stream import StreamResult


def result() -> StreamResult:
    return StreamResult(
        meta={
            "command": "tripwire bench stream", "date": "2026-01-01T00:00:00Z",
            "machine": {"cpu": "cpu", "cpus_usable": 2, "platform": "linux"},
            "broker": "kafka:9092", "versions": {"faust-streaming": "0.15.3"},
            "settings": {"anomaly_fraction": 0.01}, "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [2.0, 1.0, 1.0],
        },
        worker={"binary": {"records_per_s": 60_000.0, "vectors_per_s": 60_000.0,
                           "cpu_percent": 90.0, "mean_batch": 256.0}},
        latency=[{"offered": 5000.0, "achieved": 4990.0, "events": 100, "alerts": 10,
                  "cpu_percent": 20.0, "p50": 10.0, "p95": 20.0, "p99": 40.0, "max": 45.0,
                  "broker": {"p50": None, "p95": None, "p99": None, "max": None}}],
        memory={"rss_after_warmup": 100 * 2**20, "rss_end": 105 * 2**20,
                "peak_rss": 110 * 2**20, "growth": 0.05},
    )  # fmt: skip


def test_markdown_has_the_worker_tables_only(tmp_path: Path) -> None:
    md = stream_report.markdown(result())
    assert "| binary | 60,000 | 60,000 | 90% | 256 |" in md
    assert "| 5,000 | 4,990 | 10 | 10 ms | 20 ms | 40 ms | 45 ms | 20% |\n" in md
    assert "broker: kafka:9092" in md and "(+5.0%)" in md and "code " not in md
    assert "ceiling" not in md.lower() and "naive" not in md and "broker alone" not in md
    md_path, js_path = stream_report.write(result(), tmp_path / "out")
    assert md_path.read_text() == "# Stream benchmark\n\n" + md
    assert json.loads(js_path.read_text())["worker"]["binary"]["vectors_per_s"] == 60_000.0
