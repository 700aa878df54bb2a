"""Serve the metrics and health over HTTP.

One threaded HTTP server on the worker's metrics port: ``/metrics`` (the worker's
own ``CollectorRegistry``, through prometheus_client's WSGI app), ``/healthz`` and
``/readyz`` (``stream.health``: semantics there). It answers from its own thread,
so a busy event loop or a long model call never delays a scrape, and it starts
before anything else (model, broker, faust), so it answers from the first second.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from tripwire.core.errors import ConfigError
from tripwire.stream.observability.health import Health
from tripwire.stream.observability.metrics import Metrics

log = logging.getLogger(__name__)


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape and probe would drown the worker's log


class MetricsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on ``host:port`` (port 0: any free one).

    Starts serving at once, in a daemon thread; ``health`` tells the health answers
    and the health gauges of ``metrics``.
    """

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self.health = health
        metrics.watch_health(health.is_ready, lambda: health.broker_up, health.heartbeat_age)
        self._metrics_app = make_wsgi_app(metrics.registry)
        try:
            self._server = make_server(
                host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as e:  # port taken, address not local: say which, no traceback
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {e.strerror}") from None
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tripwire-metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)", host, self.port)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            checks = self.health.live() if path == "/healthz" else self.health.ready()
            ok = all(checks.values())
            body = json.dumps({"status": "ok" if ok else "fail", "checks": checks}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        result: Iterable[bytes] = self._metrics_app(environ, start_response)
        return result

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
