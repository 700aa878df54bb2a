"""``tripwire demo`` end to end: embedded broker, real worker process, real registry."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tripwire.demo import DemoSettings, classification_metrics, run_demo


def test_classification_metrics_counts() -> None:
    import numpy as np

    truth = np.array([1, 1, 0, 0, 0], dtype=bool)
    pred = np.array([1, 0, 1, 0, 0], dtype=bool)
    m = classification_metrics(truth, pred)
    assert m == {"accuracy": 0.6, "precision": 0.5, "recall": 0.5, "f1": 0.5}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("model", ["ensemble", "ae", "vae"])
def test_demo_meets_the_tutorials_bar(model: str, tmp_path: Path) -> None:
    result = run_demo(DemoSettings(model=model, registry=str(tmp_path / "registry"), timeout=180))
    assert result.metrics["accuracy"] >= 0.99
    assert result.metrics["recall"] >= 0.99
    assert result.alerts >= 190  # 200 anomalies in the tutorial's test set
    assert result.events_per_s > 0
    assert result.latency_ms["p99"] >= result.latency_ms["p50"] > 0
    # every process the demo started is gone: checked by the autouse leak fixture


def _session_members(sid: int) -> list[str]:
    """Command lines of the live processes of session ``sid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(cmdline.decode(errors="replace"))
    return members


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """stdout of ``proc`` up to the first line starting with ``marker`` (unbuffered reads)."""
    assert proc.stdout is not None
    fd, data, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            text = data.decode(errors="replace")
            lines = text.splitlines(keepends=True)
            for i, line in enumerate(lines):
                if line.lstrip().startswith(marker) and line.endswith("\n"):
                    return "".join(lines[: i + 1])
            if not sel.select(timeout=1.0):
                assert proc.poll() is None, f"demo exited {proc.returncode}:\n{text}"
                continue
            chunk = os.read(fd, 65536)
            assert chunk, f"demo closed stdout before {marker!r}:\n{text}"
            data += chunk
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{data.decode(errors='replace')}")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_demo_as_a_person_sees_it(tmp_path: Path, stop: signal.Signals) -> None:
    """Steps as plain lines, no library logs or terminal escapes, the result before Ctrl-C.

    Ctrl-C (SIGINT) and SIGTERM both stop the demo's broker and worker with it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripwire", "demo", "--model", "pyod:IForest", "--keep-running",
         "--registry", str(tmp_path / "registry")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True,  # its broker and worker go with it in finally
        # a test run from a background job inherits SIGINT ignored; Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        out = _read_until(proc, "metrics ", timeout=300)
        # --keep-running: the result is printed while the worker still serves /metrics
        url = re.search(r"metrics +(http://\S+/metrics) +\(live until Ctrl-C\)", out)
        assert url, out
        with urllib.request.urlopen(url.group(1), timeout=10) as resp:
            scraped = resp.read().decode()
        warm = int(re.search(r"\(\+(\d+) warm-up events", out).group(1))  # type: ignore[union-attr]
        assert f"tripwire_events_scored_total {float(1000 + warm)}" in scraped
        proc.send_signal(stop)
        rest_bytes, err_bytes = proc.communicate(timeout=90)
        rest, err = rest_bytes.decode(), err_bytes.decode()
        left = _session_members(proc.pid)  # before the killpg below
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # no-op unless something was left running
        proc.communicate()
    assert proc.returncode == 0, err
    assert err.endswith("stopping the worker and the broker\n"), err
    assert left == [], left  # the demo stopped its broker and worker before it exited
    labels = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")]
    assert labels[:6] == ["broker", "training", "published", "worker", "warm-up", "warm-up"]
    assert "  streaming 1,000/1,000 events to features" in out
    assert "  events    1,000 test events, 200 alerts" in out
    for text in (out + rest, err):
        assert "\x1b" not in text and "\x08" not in text  # no spinner escapes
        assert " INFO " not in text and "aiokafka" not in text  # library logs out of view
