"""The emulator's HTTP server: :class:`EcrEmulator`, serving its AWS and admin APIs on a loopback port."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from airflow_ecr.testing.emulator.admin_api import AdminApi
from airflow_ecr.testing.emulator.bucket import ECR_BUCKET_CAPACITY, ECR_BUCKET_REFILL
from airflow_ecr.testing.emulator.kms import KmsKeys
from airflow_ecr.testing.emulator.model import (
    ADMIN_PREFIX,
    DEFAULT_ROTATE_FRACTION,
    DEFAULT_TOKEN_TTL,
    EmulatedAccount,
)
from airflow_ecr.testing.emulator.protocol import AwsApi
from airflow_ecr.testing.emulator.scans import ScanStore
from airflow_ecr.testing.emulator.signer import RevocationStore

# The package's name, as when the emulator was one module: what log configurations refer to.
log = logging.getLogger("airflow_ecr.testing.emulator")


def _check_loopback(host: str) -> None:
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback:
        raise ValueError(f"the ECR emulator listens on loopback only, not on {host!r}")


class EcrEmulator(AwsApi, AdminApi):
    """An ECR ``GetAuthorizationToken`` endpoint that really rotates registry passwords; it also
    answers ECR's ``DescribeImageScanFindings``, KMS's ``GetPublicKey``/``Sign`` and AWS Signer's
    ``GetRevocationStatus`` from records a test sets (:attr:`scans`, :attr:`kms_keys`,
    :attr:`revocations`, or the admin API).

    :param accounts: the emulated registries.
    :param default_account: the account whose token a call without ``registryIds`` returns;
        defaults to the first account.
    :param token_ttl: token lifetime in seconds.
    :param rotate_fraction: fraction of a token's life after which a call mints a new one.
    :param bucket_capacity: ECR's rate limit: calls per caller account and region answered at once
        before ``ThrottlingException`` (ECR's 200 by default; 0 turns the limit off).
    :param bucket_refill: calls per second added back to each bucket (ECR's 20 by default).
    :param host: the loopback address to listen on.
    :param port: the port; 0 picks a free one.
    :param admin_token: the token every admin API request must carry (``Authorization: Bearer
        <token>``); None: a random one (:attr:`admin_token`), known to this process only.
    """

    def __init__(
        self,
        accounts: Iterable[EmulatedAccount],
        *,
        default_account: str | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        rotate_fraction: float = DEFAULT_ROTATE_FRACTION,
        bucket_capacity: int = ECR_BUCKET_CAPACITY,
        bucket_refill: float = ECR_BUCKET_REFILL,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
    ) -> None:
        _check_loopback(host)
        # Loopback is not a boundary between users: anyone on the host could read passwords and
        # switch faults without it.
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        super().__init__(
            accounts,
            default_account=default_account,
            token_ttl=token_ttl,
            rotate_fraction=rotate_fraction,
            bucket_capacity=bucket_capacity,
            bucket_refill=bucket_refill,
        )
        self.scans = ScanStore()
        self.revocations = RevocationStore()
        self.kms_keys = KmsKeys()
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3, e.g. ``http://127.0.0.1:41234``."""
        if self._server is None:
            raise RuntimeError("the ECR emulator is not started")
        return f"http://{self._host}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        """The port the emulator listens on."""
        if self._server is None:
            raise RuntimeError("the ECR emulator is not started")
        return int(self._server.server_address[1])

    def start(self) -> EcrEmulator:
        """Lock every registry (unknown password) and start serving in a background thread."""
        self._lock_out()
        server = ThreadingHTTPServer((self._host, self._port), _Handler)
        server.daemon_threads = True
        server.emulator = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="ecr-emulator", daemon=True)
        self._thread.start()
        log.info("ECR emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and lock every registry, so no token outlives the emulator."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._lock_out()

    def __enter__(self) -> EcrEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections alive; every answer has a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "airflow-ecr-emulator"
    # Headers and body go out as two writes: with Nagle on, the body waited for the client's
    # delayed ACK, about 40 ms per answer (an artifact: the emulator would answer 10x slower than
    # it works, and a throttled fleet would be paced by it rather than by the rate limit).
    disable_nagle_algorithm = True

    @property
    def emulator(self) -> EcrEmulator:
        return self.server.emulator  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            status, payload = self.emulator.handle_admin("GET", self.path, b"", self.headers.get("Authorization"))
            self._send(status, payload, {"Content-Type": "application/json"})
        else:
            # AWS Signer's REST-JSON API (GET /revocations); anything else answers its 404 there.
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = self.emulator.handle_rest("GET", self.path, headers)
            extra = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
            if status != 200:
                extra["x-amzn-ErrorType"] = str(payload["code"])
            self._send(status, payload, extra)

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith(ADMIN_PREFIX):
            status, payload = self.emulator.handle_admin("POST", self.path, body, self.headers.get("Authorization"))
            self._send(status, payload, {"Content-Type": "application/json"})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "x-amz-target" not in headers and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            # The query protocol (STS): no target header, a form body, an XML answer.
            status, xml = self.emulator.handle_query(headers, body)
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            self.wfile.write(xml)
            return
        status, payload = self.emulator.handle_api(headers, body)
        extra = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": str(uuid.uuid4())}
        if status != 200:
            extra["x-amzn-ErrorType"] = str(payload["__type"])
        self._send(status, payload, extra)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
