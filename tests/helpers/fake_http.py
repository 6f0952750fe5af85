"""
Small fake HTTP services on 127.0.0.1 for unit tests (a Docker Engine API, Airflow's REST API, a
redirector, an AWS credentials agent): the reply and the start/stop every one of them needs.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

Server = TypeVar("Server", bound=ThreadingHTTPServer)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean and answers in one call."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(
        self,
        status: int,
        body: Any = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """
        Send a whole response.

        :param status: the HTTP status.
        :param body: bytes or text as they are; anything else as JSON.
        :param content_type: the Content-Type header.
        :param headers: more headers (e.g. a Location).
        """
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        """The request body (empty without one)."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


def loopback_url(server: ThreadingHTTPServer, scheme: str = "http") -> str:
    """``scheme://127.0.0.1:<port>`` of a started server."""
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def serving(server: Server, poll_interval: float = 0.05) -> Iterator[Server]:
    """
    Serve ``server`` in a daemon thread for the block, then stop it and close its socket.

    :param server: a server bound to a loopback port (e.g. ``ThreadingHTTPServer(("127.0.0.1", 0), ...)``).
    :param poll_interval: how often ``serve_forever`` checks for shutdown.
    """
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
