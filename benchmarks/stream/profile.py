"""Where the worker's CPU goes: py-spy samples of the running worker, grouped.

``py-spy record --nonblocking`` samples every thread of the worker ~100 times a
second while it reads a backlog, without stopping it; idle threads (waiting on I/O,
a lock or the GIL) are not sampled, so the share of samples is the share of CPU
time. Each sample is put in the first group whose marker appears in its stack,
and the leaf function of each sample is counted for the top list. Optional: needs
the ``py-spy`` executable (dev extra) and permission to read the worker's memory.
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: (group, markers): a sample belongs to the first group with a marker in its stack.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model inference (Scorer.score)", ("Scorer.score (",)),
    ("decoding (codecs, InputRecord)", ("Codec.", "input_record (", "stream/wire/packed.py")),
    ("building alerts and dead letters", ("BatchProcessor._emit", "AlertBuilder.",
                                          "dead_letter (", "_unscorable (",
                                          "BatchProcessor._refuse_vectors",
                                          "BatchProcessor._top_features")),
    ("other batch work (processing/batch.py, worker.py)", ("BatchProcessor.",
                                                          "StreamWorker._process")),
    ("producing outputs (aiokafka producer)", ("aiokafka/producer/", "Delivery.",
                                               "BatchProducer.", "stream/kafka/producer.py")),
    ("fetching and parsing records (aiokafka consumer)", ("aiokafka/consumer/",
                                                          "_fetch_records")),
    ("metrics", ("record_batch (", "prometheus_client/", "LagTracker.")),
    ("fast path (stream/kafka/consumer.py)", ("stream/kafka/consumer.py",)),
    ("Kafka protocol and sockets", ("aiokafka/conn.py", "aiokafka/protocol/",
                                    "asyncio/streams.py", "selector_events.py")),
)  # fmt: skip
OTHER = "event loop, faust, threads, other"
ROOT = str(Path(__file__).resolve().parents[2]) + "/"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass
class Profile:
    """Shares of the worker's sampled CPU time."""

    samples: int
    groups: dict[str, float] = field(default_factory=dict)
    top: list[tuple[str, float]] = field(default_factory=list)

    @property
    def scoring_share(self) -> float:
        return self.groups.get(GROUPS[0][0], 0.0)


def parse(raw: str, top: int = 12) -> Profile:
    """A :class:`Profile` from py-spy's ``--format raw`` output (collapsed stacks)."""
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        groups[next((g for g, marks in GROUPS if any(m in stack for m in marks)), OTHER)] += n
        leaves[_short(stack.rsplit(";", 1)[-1])] += n
    if not total:
        return Profile(0)
    return Profile(
        total,
        {g: n / total for g, n in groups.most_common()},
        [(f, n / total) for f, n in leaves.most_common(top)],
    )


def _short(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    if "site-packages/" in path:
        path = path.split("site-packages/")[-1]
    elif path.startswith(ROOT):
        path = path[len(ROOT) :]
    return f"{m['func']} ({path})"


class Profiler:
    """``py-spy record`` on a running process until :meth:`stop`."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        exe = shutil.which("py-spy")
        self.proc: subprocess.Popen[bytes] | None = None
        if exe is None:
            log.info("py-spy not found: no profile (pip install py-spy)")
            return
        cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
               "--nonblocking", "--output", str(out)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> Profile | None:
        """Stop sampling; the profile, or ``None`` if py-spy was missing or failed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            log.warning("py-spy wrote no profile: %s", err.decode(errors="replace")[-300:])
            return None
        return parse(self.out.read_text())
