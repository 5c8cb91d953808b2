"""A real OpenLineage HTTP endpoint on 127.0.0.1 for tests: records every POST."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LineageServer:
    """Serves ``POST /api/v1/lineage`` (as Marquez does) and keeps the events in order.

    ``hang=True`` makes it accept requests and never answer (a stalled backend);
    ``status=401`` answers every request with that status and keeps nothing.
    """

    def __init__(self, *, hang: bool = False, status: int = 201) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._release = threading.Event()
        self._arrived = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hang:
                    server._release.wait()
                    return
                if status != 201:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with server._arrived:
                    server.paths.append(self.path)
                    server.events.append(json.loads(body))
                    server._arrived.notify_all()
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        """Block until ``n`` events have arrived (False if they did not in ``timeout``)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.events) >= n, timeout)

    def __enter__(self) -> LineageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _without_client_tags(events: list[dict]) -> list[dict]:
    """The events as sent, less the ``tags`` run facet the client adds to every event."""
    out = json.loads(json.dumps(events))
    for e in out:
        assert e["run"]["facets"].pop("tags")["tags"]
    return out


def _dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
