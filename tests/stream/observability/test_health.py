"""/healthz, /readyz and /metrics: a frozen loop, a worker without broker or model.

The server and the heartbeat are the real ones (``stream.exporter.MetricsServer``,
``stream.health.heartbeat``); the worker tests run ``tripwire worker`` processes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tests.fixtures.registry import publish_model
from tests.stream.harness import WorkerProcess, wait_for
from tripwire.embedded import free_port
from tripwire.stream.observability.exporter import MetricsServer
from tripwire.stream.observability.health import Health, heartbeat
from tripwire.stream.observability.metrics import Metrics


def _get(port: int, path: str) -> tuple[int, Any]:
    """(status, body) of ``GET path``; status 0 if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            body = r.read().decode()
            return r.status, json.loads(body) if path != "/metrics" else body
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())
    except OSError:
        return 0, None


def _sample(port: int, name: str) -> float | None:
    status, body = _get(port, "/metrics")
    for line in (body or "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_a_frozen_event_loop_fails_healthz_while_metrics_still_answer() -> None:
    """The loop is frozen by a call that blocks until the test releases it, so the
    freeze lasts as long as the test needs on any machine: no sleep decides what is
    seen, and each wait is for a state, bounded only as a hang guard (issue 11 §6).
    """
    health = Health(liveness_timeout=0.5)
    server = MetricsServer(Metrics(CollectorRegistry()), health, "127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    beat = asyncio.run_coroutine_threadsafe(heartbeat(health, interval=0.05), loop)
    release = threading.Event()
    try:
        ok = (200, {"status": "ok", "checks": {"event_loop": True}})
        wait_for(lambda: _get(server.port, "/healthz") == ok, 30, "a live loop")
        loop.call_soon_threadsafe(release.wait, 60)  # the loop blocks, as a stuck call would
        wait_for(lambda: _get(server.port, "/healthz")[0] == 503, 30, "/healthz failing")
        # /metrics answers from its own thread; the age only grows while the loop is
        # frozen, and /healthz failed because it passed the liveness timeout
        age = _sample(server.port, "tripwire_event_loop_heartbeat_age_seconds")
        assert age is not None and age > 0.5, "the age grows while the loop is frozen"
        assert _get(server.port, "/healthz")[0] == 503  # frozen still: it stays failed
        release.set()
        wait_for(lambda: _get(server.port, "/healthz")[0] == 200, 30, "the loop ticks again")
    finally:
        release.set()
        beat.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        server.stop()


def test_readyz_needs_model_broker_and_group() -> None:
    health = Health()
    server = MetricsServer(Metrics(CollectorRegistry()), health, "127.0.0.1", 0)
    try:
        for attr in ("model_loaded", "broker_up", "in_group"):
            status, body = _get(server.port, "/readyz")
            assert status == 503 and body["status"] == "fail"
            assert _sample(server.port, "tripwire_ready") == 0.0
            setattr(health, attr, True)
        status, body = _get(server.port, "/readyz")
        assert (status, body["status"]) == (200, "ok") and all(body["checks"].values())
        assert _sample(server.port, "tripwire_ready") == 1.0
        assert _sample(server.port, "tripwire_broker_up") == 1.0
        health.in_group = False  # a revocation
        assert _get(server.port, "/readyz")[0] == 503
    finally:
        server.stop()


def test_worker_without_a_broker_serves_metrics_and_healthz_at_once(tmp_path: Path) -> None:
    """Before: /metrics refused connections until the broker existed (32 s measured)."""
    pub = publish_model(tmp_path / "registry")
    started = time.monotonic()
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=f"127.0.0.1:{free_port()}", registry=pub.root,
        model_ref="demo",
    )  # fmt: skip
    try:
        wait_for(lambda: _get(worker.metrics_port, "/healthz")[0] == 200, 30, "/healthz")
        answered = time.monotonic() - started
        print(f"/healthz answered {answered:.2f} s after the process started")
        assert _get(worker.metrics_port, "/metrics")[0] == 200
        # served while the worker still waits for the broker (there is none): it goes
        # on retrying after /healthz answered. An ordering, not a wall-clock bound
        # (issue 11 §6); the retries are the loop's, so the loop kept ticking.
        tries = worker.log().count("cannot connect to the broker")
        wait_for(lambda: worker.log().count("cannot connect to the broker") > tries, 60,
                 "broker retries after /healthz answered")  # fmt: skip
        status, body = _get(worker.metrics_port, "/readyz")
        assert status == 503 and body["checks"]["broker_reachable"] is False
        assert _sample(worker.metrics_port, "tripwire_broker_up") == 0.0
        assert _sample(worker.metrics_port, "tripwire_ready") == 0.0
        assert _get(worker.metrics_port, "/healthz")[0] == 200
    finally:
        worker.stop()


def test_worker_waits_for_a_model_that_is_not_published_yet(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=f"127.0.0.1:{free_port()}", registry=registry,
        model_ref="demo", wait_for_model="true",
    )  # fmt: skip
    try:
        wait_for(lambda: "is not published yet" in worker.log(), 30, "the wait log line")
        status, body = _get(worker.metrics_port, "/readyz")
        assert status == 503 and body["checks"]["model_loaded"] is False
        assert worker.proc.poll() is None, "it waits instead of exiting 2"
        publish_model(registry)
        wait_for(lambda: _get(worker.metrics_port, "/readyz")[1]["checks"]["model_loaded"],
                 30, "the model loaded once published")  # fmt: skip
        assert "model demo version 1 loaded" in worker.log()
    finally:
        worker.stop()
