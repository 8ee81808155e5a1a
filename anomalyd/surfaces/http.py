"""/metrics, /healthz, /readyz, and the operators' /api/* and /console, on
a small threaded HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

MAX_BODY = 64 * 1024  # an operator action is a few hundred bytes


def serve(
    host: str,
    port: int,
    registry: CollectorRegistry,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    api: Any = None,
) -> ThreadingHTTPServer:
    """`api`: an OperatorApi (surfaces/api.py), or None for no /api and /console."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")  # no clickjacking of the console's buttons
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, value: Any) -> None:
            self._reply(code, json.dumps(value, indent=1, default=str).encode() + b"\n", "application/json")

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/metrics":
                body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
            elif path == "/healthz":
                ok = alive()
                body, ctype, code = (b"ok\n" if ok else b"worker loop stalled\n"), "text/plain", 200 if ok else 503
            elif path == "/readyz":
                ok = ready()
                body, ctype, code = (b"ready\n" if ok else b"not ready\n"), "text/plain", 200 if ok else 503
            elif api is not None and path.startswith("/api/"):
                return self._json(*api.get(path))
            elif api is not None and path == "/console":
                from .api import CONSOLE

                body, ctype, code = CONSOLE.read_bytes(), "text/html; charset=utf-8", 200
            else:
                more = " /console /api/alerts /api/breakers /api/rules" if api is not None else ""
                body, ctype, code = f"anomalyd: /metrics /healthz /readyz{more}\n".encode(), "text/plain", 404
            self._reply(code, body, ctype)

        def do_POST(self) -> None:  # noqa: N802
            if api is None:
                return self._json(404, {"error": "no API on this server"})
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                return self._json(413, {"error": f"a body of at most {MAX_BODY} bytes"})
            self._json(*api.post(self.path.split("?")[0], self.headers, self.rfile.read(n)))

        def log_message(self, *args) -> None:  # scrapes every few seconds: keep logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="anomalyd-http", daemon=True).start()
    return server
