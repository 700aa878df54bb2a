"""A publisher killed with SIGKILL at random points never leaves a visible partial version.

A real child process publishes (and promotes) in a loop; the test kills it after a
random delay, many times, while a reader thread keeps checking every visible version
and alias. Afterwards ``verify`` finds no error and ``gc`` clears the debris.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.registry import Watcher
from tests.training.registry.publisher import manifest as simple_manifest
from tests.training.registry.publisher import write_artifacts
from tripwire.training.registry import Registry

REPO = Path(__file__).resolve().parents[3]


def _kill_during_publishes(
    reg: Registry, iterations: int, seed: int, verify_every: int = 1
) -> dict[str, int]:
    rng = random.Random(seed)
    watcher = Watcher(reg)
    watcher.start()
    killed_mid_publish = 0
    try:
        for i in range(iterations):
            before = set(reg.temp_dirs("m"))
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.training.registry.publisher",
                 str(reg.root), "m", "0", "--promote"],
                cwd=REPO, stdout=subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.06))
            proc.kill()
            proc.wait()
            proc.stdout.close()
            killed_mid_publish += len(set(reg.temp_dirs("m")) - before)
            versions = reg.versions("m") if reg.root.exists() else []
            assert versions == [str(i) for i in range(1, len(versions) + 1)]
            if i % verify_every == 0 or i == iterations - 1:  # re-hashing all is O(versions)
                assert [p for p in reg.verify(stale_after=0) if p.severity == "error"] == []
    finally:
        watcher.stop.set()
        watcher.join()
    assert watcher.failures == []
    figures = {"iterations": iterations, "killed_mid_publish": killed_mid_publish}
    return {**figures, "versions": len(reg.versions("m")), "checks": watcher.checked}


def _check_after_kills(reg: Registry, figures: dict[str, int]) -> None:
    # Not vacuous: some publishes completed and some kills landed inside one.
    assert figures["versions"] > 0 and figures["killed_mid_publish"] > 0, figures
    warnings = reg.verify(stale_after=0)
    assert warnings and {p.severity for p in warnings} == {"warning"}
    assert all("abandoned publish" in p.message for p in warnings)
    removed = reg.gc(older_than=0)
    assert len(removed) >= len(warnings)
    assert reg.temp_dirs("m") == [] and reg.verify(stale_after=0) == []
    # The registry still takes new versions after the debris is gone.
    new = reg.publish("m", write_artifacts, simple_manifest("x"))
    assert new == str(figures["versions"] + 1)


def test_sigkill_during_publish_never_shows_a_partial_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    figures = _kill_during_publishes(reg, iterations=30, seed=0)
    print(f"\npublish killed 30x: {figures}")
    _check_after_kills(reg, figures)


def test_crash_at_every_durable_step(tmp_path: Path) -> None:
    """Kill a publish + promote at each boundary around each fsync/rename/replace in turn.

    Random kills rarely land in a sub-millisecond window (say, between the rename and
    the parent's fsync); enumerating the steps covers every one deterministically.
    """
    reg = Registry(tmp_path / "registry")
    outcomes: list[tuple[int, str | None]] = []
    for step in range(1, 200):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.training.registry.publisher",
             str(reg.root), "m", "1", "--promote", "--crash-at", str(step)],
            cwd=REPO, capture_output=True, timeout=60,
        )  # fmt: skip
        versions = reg.versions("m") if (reg.root / "m").exists() else []
        assert versions == [str(i) for i in range(1, len(versions) + 1)], step
        assert [p for p in reg.verify(stale_after=0) if p.severity == "error"] == [], step
        outcomes.append(
            (proc.returncode, reg.alias_version("m", "production") if versions else None)
        )
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    print(f"\ncrash points: {len(outcomes) - 1}, versions published: {len(reg.versions('m'))}")
    assert outcomes[-1][0] == 0 and len(outcomes) > 10
    published = len(reg.versions("m"))
    # Some kills came before the rename (nothing visible), some after (version visible
    # but not yet promoted), and the final run published and promoted.
    assert 1 < published < len(outcomes)
    assert outcomes[-1][1] == str(published)
    assert any(alias is None or alias != str(published) for _, alias in outcomes[:-1])


@pytest.mark.slow
def test_sigkill_during_publish_many_times(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    figures = _kill_during_publishes(reg, iterations=300, seed=1, verify_every=10)
    print(f"\npublish killed 300x: {figures}")
    _check_after_kills(reg, figures)


def test_gc_spares_a_live_publish(registry: Registry) -> None:
    """A publish in progress holds a lock on its temp dir; gc must not remove it."""
    started, release = threading.Event(), threading.Event()
    result: list[str] = []

    def slow_write(directory: Path) -> list[str]:
        (directory / "a.bin").write_bytes(b"a")
        started.set()
        release.wait(10)
        return ["a.bin"]

    t = threading.Thread(
        target=lambda: result.append(registry.publish("m", slow_write, simple_manifest("s")))
    )
    t.start()
    try:
        assert started.wait(10)
        assert registry.gc(older_than=0) == []
        assert registry.verify(stale_after=0) == []  # in flight, not abandoned
        assert registry.versions("m") == []  # and not visible
    finally:
        release.set()
        t.join()
    assert result == ["1"] and registry.verify() == []
