"""Scenario 7: SIGKILL the real ``tripwire train`` at random points of its publish.

``tests/training/registry/test_crash.py`` kills a small publisher process (random
times, and at every durable step). This test kills the command users run, ``tripwire
train --promote production``, while it writes the version (detector files, the score
plot, the manifest), renames it into place and promotes it: the kill lands at a
random delay after its temp dir appears. A reader thread checks every visible
version all along; after every kill the versions are contiguous and verify, and at
the end ``tripwire registry verify`` passes, ``gc`` clears the debris and the
production alias loads.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.registry import Watcher
from tests.stream.harness import REPO
from tests.stream.reliability.ledger import Figures
from tripwire.core.registry import load_scorer
from tripwire.training.registry import Registry

pytestmark = pytest.mark.slow

ITERATIONS = 30
NAME = "m"  # the model tests.fixtures.registry.Watcher reads


def tripwire(*args: str) -> list[str]:
    return [sys.executable, "-m", "tripwire", *args]


def train_command(data: Path, root: Path) -> list[str]:
    return tripwire(
        "train", "--data", str(data), "--model", "knn", "--registry", str(root),
        "--name", NAME, "--promote", "production",
    )  # fmt: skip


def write_data(path: Path) -> Path:
    rng = np.random.default_rng(71)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = np.zeros(400, np.int8)
    y[:20] = 1
    X[:20] += 4.0
    np.savez(path, X=X, y=y)
    return path


def run_until_publish(
    cmd: list[str], reg: Registry, log: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``cmd``; return once a new temp dir appears (or it exited) and when."""
    before = set(reg.temp_dirs(NAME))
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    while proc.poll() is None and not set(reg.temp_dirs(NAME)) - before:
        time.sleep(0.001)
    return proc, time.monotonic()


def outcome(reg: Registry, versions_before: int, code: int) -> str:
    versions = reg.versions(NAME) if (reg.root / NAME).exists() else []
    assert versions == [str(i) for i in range(1, len(versions) + 1)]
    if code == 0:
        return "completed"
    if len(versions) == versions_before:
        return "killed before the rename"
    if reg.alias_version(NAME, "production") != versions[-1]:
        return "killed between rename and promote"
    return "killed after the promote"


def test_sigkill_tripwire_train_during_publish(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.npz")
    reg = Registry(tmp_path / "registry")
    cmd = train_command(data, reg.root)
    # One full run measures the publish window (temp dir appears -> process exits).
    log = tmp_path / "train.log"
    proc, started = run_until_publish(cmd, reg, log)
    assert proc.wait(120) == 0, log.read_text()
    window = time.monotonic() - started
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    watcher = Watcher(reg)
    watcher.start()
    try:
        for _ in range(ITERATIONS):
            before = len(reg.versions(NAME))
            proc, _ = run_until_publish(cmd, reg, log)
            time.sleep(rng.uniform(0.0, 1.2 * window))
            proc.kill()
            code = proc.wait()
            outcomes[outcome(reg, before, code)] += 1
            assert [p for p in reg.verify(stale_after=0) if p.severity == "error"] == []
    finally:
        watcher.stop.set()
        watcher.join()
    assert watcher.failures == []
    verify = subprocess.run(
        tripwire("registry", "verify", "--registry", str(reg.root)), cwd=REPO,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    gc = subprocess.run(
        tripwire("registry", "gc", "--registry", str(reg.root), "--older-than", "0"),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gc.returncode == 0 and reg.temp_dirs(NAME) == [] and reg.verify(stale_after=0) == []
    assert load_scorer(reg.root, NAME).version == reg.alias_version(NAME, "production")
    fig = Figures(
        "tripwire train SIGKILLed during publish",
        extra={"iterations": ITERATIONS, "publish_window_seconds": round(window, 2),
               "versions": len(reg.versions(NAME)), "reader_checks": watcher.checked,
               **dict(outcomes)},
    )  # fmt: skip
    fig.check()
    # Not vacuous: kills landed inside the publish, and some publishes got through.
    assert outcomes["killed before the rename"] > 0 and len(reg.versions(NAME)) > 1, outcomes
