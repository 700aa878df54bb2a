"""Serve the metrics over HTTP.

The ``/metrics`` endpoint is prometheus_client's threaded HTTP server on the
worker's own ``CollectorRegistry``: it answers from its own thread, so a busy
event loop or a long model call never delays a scrape.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from tripwire.stream.observability.metrics import Metrics

log = logging.getLogger(__name__)


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
