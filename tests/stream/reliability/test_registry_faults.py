"""Scenario 6: registry faults under a running worker, and at its start.

``tests/stream/processing/test_model_watcher.py`` checks each fault against
``ModelWatcher`` alone, and
``test_worker_reload_scaleout.py`` one fault (another feature schema) under a real
worker. Here a real ``tripwire worker`` serves a live stream while the production
alias is pointed, one after the other, at every kind of broken version (versions
symlinked outside the registry included) and finally holds garbage: it keeps
serving version 1, counts each refusal and logs why, loses no event, and still
takes a good version afterwards. At start, ``tripwire worker`` refuses each broken
model with a clear message and exit code 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.registry import (
    FAULTS,
    Published,
    forge_outside,
    point_alias,
    publish_model,
    symlinked_pickle,
)
from tests.stream.harness import REPO, WorkerProcess, wait_for
from tests.stream.reliability.ledger import new_run
from tests.stream.reliability.traffic import RateProducer
from tripwire.embedded import EmbeddedBroker, free_port

PARTITIONS = 2
FAILURES = 'tripwire_model_reloads_total{result="failure"}'
SUCCESSES = 'tripwire_model_reloads_total{result="success"}'


def _manifest_says_6_features(pub: Published) -> None:
    path = pub.registry.version_dir(pub.name, pub.version) / "manifest.json"
    doc = json.loads(path.read_text())
    doc["features"] = {"count": 6, "names": [f"f{i}" for i in range(6)]}
    path.write_text(json.dumps(doc))


def broken_versions(served: Published) -> dict[str, tuple[str, str]]:
    """Publish one broken version per fault: fault -> (version, why it is refused)."""
    faults = {**FAULTS, "manifest feature count != weights": _manifest_says_6_features}
    why = {
        "half-written": "weights.safetensors", "sha256 mismatch": "sha256",
        "newer schema": "newer Tripwire",
        "manifest feature count != weights": "cannot score rows of the manifest's 6 features",
    }  # fmt: skip
    out = {"alias to a missing version": ("99", "version 99")}
    for fault, damage in faults.items():
        bad = publish_model(served.root, seed=1, promote=None)
        damage(bad)
        out[fault] = (bad.version, why[fault])
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_worker_keeps_serving_through_every_registry_fault(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    v1 = publish_model(tmp_path / "registry")
    faults = {f: (_point(v1, v), v, why) for f, (v, why) in broken_versions(v1).items()}
    other_schema = publish_model(v1.root, n_features=6, promote=None)
    faults["another feature schema"] = (
        _point(v1, other_schema.version),
        other_schema.version,
        "feature count 6 != serving",
    )
    faults.update(escapes(v1, tmp_path))
    marker = tmp_path / "pickle-was-executed"
    settings, ledger = new_run(broker, v1, "registry-faults", PARTITIONS, reload_interval=0.3)
    serving = f'tripwire_model_info{{name="demo",version="{v1.version}"}}'
    worker = WorkerProcess(tmp_path / "worker.log", **settings)
    try:
        with RateProducer(broker.bootstrap, settings["input_topic"], 300) as producer:
            wait_for(lambda: worker.metric("tripwire_events_scored_total"), 60, "streaming")
            for n, (fault, (apply, marks, why)) in enumerate(faults.items(), start=1):
                scored = worker.metric("tripwire_events_scored_total")
                apply()
                wait_for(lambda n=n: worker.metric(FAILURES) >= n, 20, f"refusal of {fault}")
                wait_for(lambda s=scored: worker.metric("tripwire_events_scored_total") > s + 100,
                         20, f"scoring on after {fault}")  # fmt: skip
                m = worker.metrics()
                assert m[FAILURES] == n and m[serving] == 1 and m[SUCCESSES] == 0, fault
                refused = f"-> version {marks}: " if marks.isdigit() else marks
                line = wait_for(
                    lambda r=refused: next((x for x in worker.log().splitlines() if r in x), None),
                    5,
                    "the log line",
                )
                assert why in line and "still serving version 1" in line, line
            good = publish_model(v1.root, seed=2)  # promoted: the watcher is not stuck
            wait_for(lambda: worker.metric(SUCCESSES) == 1, 20, "reload of a good version")
            scored = worker.metric("tripwire_events_scored_total")
            wait_for(lambda: worker.metric("tripwire_events_scored_total") > scored + 100,
                     20, "scoring by the good version")  # fmt: skip
        ledger.record(producer.rows(), producer.placed())
        fig, out = ledger.tally("registry faults while running", timeout=60)
        alive = worker.proc.poll() is None
    finally:
        code = worker.stop()
    assert alive and code == 0
    assert not marker.exists()  # the pickle outside the registry was never unpickled
    versions = Counter(d["model"]["version"] for docs in out.scores.values() for d in docs)
    assert set(versions) == {v1.version, good.version}  # no broken version scored anything
    fig.extra.update(faults=len(faults), refusals=len(faults), scored_by_version=dict(versions))
    fig.check()


def _point(pub: Published, version: str) -> Callable[[], None]:
    return lambda: point_alias(pub, version)


def escapes(served: Published, tmp: Path) -> dict[str, tuple[Callable[[], None], str, str]]:
    """Issue 11 §4 under a running worker: on main the symlinked versions hot-loaded
    (the PyOD one unpickling a file from outside the registry) and the garbage
    alias was neither counted nor logged. (Garbage first: the next fault rewrites
    the alias file, and the final promote must be able to read it.)"""
    ae = publish_model(served.root, seed=3, promote=None)
    iforest = publish_model(served.root, kind="pyod:IForest", promote=None)
    forge_outside(ae, tmp / "outside-ae", "90")
    served.registry.version_dir(served.name, "90").symlink_to(tmp / "outside-ae")
    symlinked_pickle(iforest, tmp / "outside-pyod", "91", tmp / "pickle-was-executed")
    alias = served.registry.alias_path(served.name, "production")
    return {
        "garbage alias JSON": (
            lambda: alias.write_text("{not json"), "cannot read the alias", "JSONDecodeError"
        ),
        "version dir symlinked outside the registry":
            (_point(served, "90"), "90", "is a symlink (to "),
        "PyOD version outside the registry": (_point(served, "91"), "91", "is a symlink (to "),
    }  # fmt: skip


def test_worker_refuses_to_start_on_a_broken_model(tmp_path: Path) -> None:
    served = publish_model(tmp_path / "registry")
    faults = broken_versions(served)
    procs = {}
    for n, (fault, (version, _)) in enumerate(faults.items()):
        point_alias(served, version, alias=f"bad{n}")
        env = {
            "TRIPWIRE_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # never reached
            "TRIPWIRE_REGISTRY": str(served.root), "TRIPWIRE_MODEL_REF": f"demo@bad{n}",
            "TRIPWIRE_METRICS_PORT": "0", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
        }  # fmt: skip
        procs[fault] = subprocess.Popen(
            [sys.executable, "-m", "tripwire", "worker"], env=env, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    try:
        results = {f: proc.communicate(timeout=120)[1].decode() for f, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
    for fault, err in results.items():
        message = err.strip().splitlines()[-1]
        version, why = faults[fault]
        print(f"{fault}: exit {procs[fault].returncode}: {message}")
        assert procs[fault].returncode == 2, (fault, err)
        assert message.startswith("tripwire worker: error: cannot load model demo@bad"), message
        assert f"version {version}" in message or f"demo@{version}" in message, message
        assert why in message, message
