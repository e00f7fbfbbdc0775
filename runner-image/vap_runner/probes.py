"""HTTP endpoint for Kubernetes probes and Prometheus: /healthz, /readyz, /metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class Health:
    """Liveness: the main loop beat recently. Readiness: the source is open (asked when probed)."""

    def __init__(self, *, liveness_timeout_seconds: float, is_ready: Callable[[], bool]) -> None:
        self._liveness_timeout_seconds = liveness_timeout_seconds
        self._last_beat = time.monotonic()
        self.is_ready = is_ready

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def is_alive(self) -> bool:
        return time.monotonic() - self._last_beat < self._liveness_timeout_seconds


def serve(*, host: str, port: int, health: Health, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; ``server_address`` has the bound port (``port=0``: any free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                alive = health.is_alive()
                self._reply(200 if alive else 503, b"ok\n" if alive else b"main loop stalled\n")
            elif self.path == "/readyz":
                ready = health.is_ready()
                self._reply(200 if ready else 503, b"ok\n" if ready else b"source not open\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
