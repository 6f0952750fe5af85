"""
A fake registry's manifest API over real TLS, reached the way task processes reach real ones: through
an HTTPS proxy (the lab's own, :mod:`airflow_ecr_lab.proxy`) with a CA in
``REQUESTS_CA_BUNDLE``. Every request is recorded with its ``Host`` and ``Authorization`` headers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from airflow_ecr_lab.proxy import serve as serve_proxy
from airflow_ecr_lab.tls import make_tls
from helpers.fake_http import QuietHandler, serving

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST = b'{"schemaVersion": 2, "mediaType": "' + DOCKER_MANIFEST.encode() + b'", "layers": []}'
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


@dataclass(frozen=True)
class Seen:
    """One request the fake registry served."""

    method: str
    host: str
    path: str
    authorization: str

    @property
    def password(self) -> str:
        """The basic-auth password it carried ('' without one)."""
        if not self.authorization.startswith("Basic "):
            return ""
        return base64.b64decode(self.authorization[6:]).decode().partition(":")[2]


# (method, path) -> (status, headers, body); the default answers every manifest like ECR.
Route = Callable[[str, str], "tuple[int, dict[str, str], bytes] | None"]


def ecr_like(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
    """ECR: ``HEAD`` and ``GET`` of any manifest answer one single-platform manifest, with its digest."""
    if "/manifests/" not in path:
        return None
    return 200, {"Docker-Content-Digest": MANIFEST_DIGEST, "Content-Type": DOCKER_MANIFEST}, MANIFEST


class FakeRegistry(QuietHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[Seen]] = []
    route: ClassVar[Route] = staticmethod(ecr_like)

    def _handle(self) -> None:
        host = (
            self.headers.get("Host", "").rsplit(":", 1)[0]
            if ":" in self.headers.get("Host", "")
            else self.headers.get("Host", "")
        )
        FakeRegistry.seen.append(Seen(self.command, host, self.path, self.headers.get("Authorization", "")))
        answer = type(self).route(self.command, self.path)
        status, headers, body = answer if answer is not None else (404, {}, b'{"errors": []}')
        content_type = headers.pop("Content-Type", "application/json")
        if self.command == "HEAD":
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
        else:
            self.reply(status, body, content_type, headers)

    do_GET = do_HEAD = _handle


@dataclass
class RegistryWorld:
    """Where the fake registry is: the proxy URL and the CA to trust."""

    proxy_url: str
    ca: Path
    seen: list[Seen] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        """What a task process needs in its environment to reach the fake registry."""
        return {"HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url, "REQUESTS_CA_BUNDLE": str(self.ca),
                "NO_PROXY": "", "no_proxy": ""}  # fmt: skip

    def session(self) -> Any:
        import requests

        session = requests.Session()
        session.trust_env = False
        session.proxies = {"https": self.proxy_url}
        session.verify = str(self.ca)
        return session


@contextlib.contextmanager
def fake_registry(directory: Path, hosts: list[str], route: Route = ecr_like) -> Iterator[RegistryWorld]:
    """
    A TLS registry on 127.0.0.1 with a certificate for ``hosts``, and a proxy that sends those hosts
    (port 443) to it.

    :param directory: where the CA and certificate go.
    :param hosts: the registry host names it stands for.
    :param route: what it answers.
    """
    make_tls(directory, {host: "127.0.0.1" for host in hosts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    FakeRegistry.seen = []
    FakeRegistry.route = staticmethod(route)  # type: ignore[assignment]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    table = {f"{host.lower()}:443": ("127.0.0.1", server.server_address[1]) for host in hosts}
    proxy = threading.Thread(target=serve_proxy, args=(listener, table), daemon=True)
    with serving(server):
        proxy.start()
        try:
            yield RegistryWorld(
                f"http://127.0.0.1:{listener.getsockname()[1]}", directory / "ca.crt", FakeRegistry.seen
            )
        finally:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the proxy's accept()
            listener.close()
            proxy.join(5)
