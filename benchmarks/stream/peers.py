"""The faust peers of the stream benchmark, each run in a process of its own.

- ``bare`` (ceiling B): a stock faust agent that does nothing with the events.
- ``naive``: a faust agent scoring one event at a time with PyOD's
  ``AutoEncoder.decision_function`` and producing an alert when the score is above
  the model's ``threshold_``: how a PyOD user would wire it up.

Both use faust's default settings except: raw key/value serialisers (the records are
binary), no web server (port clashes), a 4 s session timeout (Tansu delays a join by
half of it: faust's 60 s would idle 30 s) and a fresh group. The child writes a JSON
result once it has seen ``--events`` events, timed from its first event; the
parent (:func:`run_peer`) then stops it.

Run as ``python -m benchmarks.stream.peers {bare,naive} ...`` (internal); the naive
peer's model is trained by :func:`train_pyod_model`.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import child_env
from tripwire.bench.stream_data import Rows
from tripwire.bench.stream_worker import stop

log = logging.getLogger(__name__)

SESSION_TIMEOUT = 4.0


class Counter:
    """Counts events; writes ``{events, seconds, cpu_seconds}`` to ``out`` at ``target``."""

    def __init__(self, target: int, out: Path) -> None:
        self.target = target
        self.out = out
        self.n = 0
        self.started = self.cpu = 0.0

    def tick(self) -> None:
        self.n += 1
        if self.n == 1:
            self.started, self.cpu = time.perf_counter(), time.process_time()
        elif self.n == self.target:
            result = {
                "events": self.n - 1,  # timed from the end of the first one
                "seconds": time.perf_counter() - self.started,
                "cpu_seconds": time.process_time() - self.cpu,
            }
            tmp = self.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result))
            tmp.rename(self.out)


def build_app(args: argparse.Namespace) -> Any:
    import faust

    app = faust.App(
        f"bench-{args.mode}-{uuid.uuid4().hex[:8]}", broker=f"kafka://{args.bootstrap}",
        key_serializer="raw", value_serializer="raw", web_enabled=False,
        broker_session_timeout=SESSION_TIMEOUT, broker_heartbeat_interval=1.0,
    )  # fmt: skip
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    counter = Counter(args.events, Path(args.out))
    if args.mode == "bare":

        @app.agent(topic)
        async def bare(stream: Any) -> None:
            async for _ in stream:
                counter.tick()

    else:
        import numpy as np

        clf = pickle.loads(Path(args.model).read_bytes())
        alerts = app.topic(args.alerts, key_type=bytes, value_type=bytes)

        @app.agent(topic)
        async def naive(stream: Any) -> None:
            async for key, value in stream.items():
                x = np.frombuffer(value, dtype="<f4")[None, :]
                score = float(clf.decision_function(x)[0])
                if score > clf.threshold_:
                    await alerts.send(key=key, value=json.dumps({"score": score}).encode())
                counter.tick()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream.peers")
    parser.add_argument("mode", choices=("bare", "naive"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", help="pickled PyOD detector (naive)")
    parser.add_argument("--alerts", help="alert topic (naive)")
    args = parser.parse_args(argv)
    import faust

    app = build_app(args)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


@dataclass(frozen=True)
class PeerResult:
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds


def run_peer(
    mode: str, bootstrap: str, topic: str, events: int, workdir: Path, timeout: float,
    model: Path | None = None, alerts: str | None = None,
) -> PeerResult:  # fmt: skip
    """Run one peer until it saw ``events`` events of ``topic``; stop it; its result."""
    out = workdir / f"{mode}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.stream.peers", mode, "--bootstrap", bootstrap,
           "--topic", topic, "--events", str(events), "--out", str(out)]  # fmt: skip
    if model is not None and alerts is not None:
        cmd += ["--model", str(model), "--alerts", alerts]
    with open(workdir / f"{mode}.log", "ab") as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=child_env())
        try:
            deadline = time.monotonic() + timeout
            while not out.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"faust peer {mode} exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"faust peer {mode} did not see {events} events")
                time.sleep(0.1)
        finally:
            stop(proc)
    raw = json.loads(out.read_text())
    return PeerResult(raw["events"], raw["seconds"], raw["cpu_seconds"])


def train_pyod_model(rows: Rows, path: Path, seed: int, n_rows: int = 2000) -> Any:
    """PyOD's AutoEncoder fitted on normal rows (a few epochs: speed, not quality)."""
    from pyod.models.auto_encoder import AutoEncoder

    clf = AutoEncoder(epoch_num=3, batch_size=256, verbose=0, random_state=seed)
    clf.fit(rows.train_normal[:n_rows])
    path.write_bytes(pickle.dumps(clf))
    return clf


if __name__ == "__main__":
    raise SystemExit(main())
