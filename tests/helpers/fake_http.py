"""
Small fake HTTP services on 127.0.0.1 for unit tests (a Docker Engine API, Airflow's REST API, a
redirector, an AWS credentials agent): the reply and the start/stop every one of them needs, and
the Engine API (:class:`EngineAPI`) several test files log in and pull through.
"""

from __future__ import annotations

import base64
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


class EngineAPI(ThreadingHTTPServer):
    """A fake Docker Engine API: records the registry auth of each request, answers success."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EngineHandler)
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # (method, path, auth)

    @property
    def url(self) -> str:
        return loopback_url(self, "tcp")

    def auths(self, path: str) -> list[dict[str, Any] | None]:
        return [a for method, p, a in self.requests if p.split("?")[0].endswith(path)]


class _EngineHandler(QuietHandler):
    server: EngineAPI

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path, None))
        if self.path.split("?")[0].endswith("/version"):  # docker-py's version="auto" asks first
            return self.reply(200, {"Version": "27.0.0", "ApiVersion": "1.44", "Os": "linux", "Arch": "amd64"})
        return self.reply(200, "OK", "text/plain")  # /_ping

    def do_POST(self) -> None:
        body = self.body()
        if self.path.split("?")[0].endswith("/auth"):
            self.server.requests.append(("POST", self.path, json.loads(body)))
            return self.reply(200, {"Status": "Login Succeeded"})
        header = self.headers.get("X-Registry-Auth")
        auth = json.loads(base64.urlsafe_b64decode(header)) if header else None
        self.server.requests.append(("POST", self.path, auth))
        if "/services/create" in self.path:
            return self.reply(200, {"ID": "svc"})
        return self.reply(200, '{"status":"Downloaded"}\n')  # /images/create
