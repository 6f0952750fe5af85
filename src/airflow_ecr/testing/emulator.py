"""An Amazon ECR API emulator for tests: real HTTP, real boto3, real registries.

The emulator is a small HTTP server on a loopback address that speaks the AWS JSON 1.1 protocol
the way boto3 does, for ``ecr:GetAuthorizationToken`` (and ``ecr-public:GetAuthorizationToken``).
Point boto3 at it with ``endpoint_url`` (or ``AWS_ENDPOINT_URL_ECR``); any access key works, the
SigV4 signature is not verified, but the region is read from the ``Authorization`` header's
credential scope, as ECR routes by region.

Token policy
------------
Every emulated account (an account id in one region) has ONE valid password at a time, because a
registry's htpasswd file holds one entry per user and ECR's user is always ``AWS``. A call to
``GetAuthorizationToken`` mints a new token (a random password; the bcrypt line ``AWS:<hash>`` is
written atomically, temp file + ``os.replace``, to that account's htpasswd, which the registry
re-reads when it changes) when there is none, when the current one has expired, or when it has
passed ``rotate_fraction`` (default 0.5) of its life. Otherwise the call returns the current token
with its original ``expiresAt``. Minting makes the previous password fail at the registry at once,
exactly like a revocation. When a token expires a timer replaces the password with an unknown
random one, so the registry rejects expired tokens. ``token_ttl`` (default 43200 s, as ECR) and
``rotate_fraction`` can be changed at run time.

STS ``GetCallerIdentity`` (query protocol: a form-encoded POST) is answered on the same URL, so an
Airflow AWS connection whose ``endpoint_url`` is the emulator works for both ``ecr`` and ``sts``: the
caller is the default account, its ARN ``arn:aws:iam::<account>:user/<access key id>``.

Fault switches (``throttle``, ``server_error``, ``deny``, ``delay``, ``invalid_keys``, ``expired_keys``,
``clock_skew``), the list of calls received,
revocation and the current password are available in process (:class:`EcrEmulator` methods) and
through a loopback admin API, so tests in other processes can drive it::

    GET  /_emulator/health                 {"ok": true, "accounts": [...]}
    GET  /_emulator/calls                  [{"time", "end", "target", "region", "registry_ids",
                                             "access_key_id", "outcome"}, ...]
    POST /_emulator/reset                  clear calls and faults
    GET|POST /_emulator/faults             {"throttle": n, "server_error": n,
                                            "deny": true|false|["acct", ...], "delay": seconds,
                                            "invalid_keys": ["AKID", ...],
                                            "expired_keys": ["AKID", ...], "clock_skew": seconds}
    GET|POST /_emulator/config             {"token_ttl": s, "rotate_fraction": f}
    POST /_emulator/revoke                 {"account_id": "...", "region": "..."(optional)}
    GET  /_emulator/password/<account>     {"password", "expires_at"} (mints if none is valid)

Command line (used by the lab)::

    python -m airflow_ecr.testing.emulator --config emulator.json --port-file port

with ``{"accounts": [{"account_id": "...", "region": "...", "htpasswd": "/path"}],
"default_account": "...", "token_ttl": 43200, "rotate_fraction": 0.5, "port": 0}``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

from airflow_ecr.registry import region_partition

log = logging.getLogger(__name__)

ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService."
# How STS calls are named in the call list (STS itself speaks the query protocol, with no target).
STS_TARGET_PREFIX = "AWSSecurityTokenServiceV20110615."
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
DEFAULT_TOKEN_TTL = 43200.0
DEFAULT_ROTATE_FRACTION = 0.5
# Cost 5 keeps minting at ~2 ms; the registry accepts any bcrypt cost.
BCRYPT_ROUNDS = 5

_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
_ADMIN_PREFIX = "/_emulator/"


class EmulatorError(Exception):
    """An error answered to the client in the AWS JSON 1.1 shape.

    :param code: the AWS error code (``__type``), e.g. ``ThrottlingException``.
    :param message: the human-readable message.
    :param status: the HTTP status.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class EmulatedAccount:
    """One private ECR registry: an account id in one region.

    :param account_id: the 12-digit AWS account id.
    :param region: the AWS region, e.g. ``eu-west-1``.
    :param htpasswd: the registry's htpasswd file that the emulator rewrites; None to only mint
        tokens without enforcing them anywhere.
    """

    account_id: str
    region: str
    htpasswd: str | None = None

    @property
    def host(self) -> str:
        """The registry host name, as in image names."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def proxy_endpoint(self) -> str:
        """The ``proxyEndpoint`` ECR returns with the token."""
        return f"https://{self.host}"


@dataclass
class _Token:
    password: str
    issued_at: float
    expires_at: float


@dataclass
class _Registry:
    """Mutable state of one emulated registry (an account, or ECR Public)."""

    account_id: str
    region: str
    htpasswd: Path | None
    token: _Token | None = None
    timer: threading.Timer | None = None
    mtime_ns: int = 0


@dataclass
class _Faults:
    throttle: int = 0
    server_error: int = 0
    deny: bool | list[str] = False
    delay: float = 0.0
    invalid_keys: list[str] = field(default_factory=list)
    expired_keys: list[str] = field(default_factory=list)
    clock_skew: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "throttle": self.throttle,
            "server_error": self.server_error,
            "deny": self.deny,
            "delay": self.delay,
            "invalid_keys": list(self.invalid_keys),
            "expired_keys": list(self.expired_keys),
            "clock_skew": self.clock_skew,
        }


@dataclass
class _Config:
    token_ttl: float = DEFAULT_TOKEN_TTL
    rotate_fraction: float = DEFAULT_ROTATE_FRACTION


def _check_loopback(host: str) -> None:
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback:
        raise ValueError(f"the ECR emulator listens on loopback only, not on {host!r}")


def _check_ttl(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"token_ttl must be a positive number of seconds, not {value!r}")
    return float(value)


def _check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"rotate_fraction must be in (0, 1], not {value!r}")
    return float(value)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _bcrypt_line(password: str) -> bytes:
    try:
        import bcrypt
    except ImportError as exc:  # an optional dependency: say how to get it
        raise RuntimeError("the ECR emulator needs bcrypt: pip install 'airflow-ecr[testing]'") from exc
    return b"AWS:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)) + b"\n"


class EcrEmulator:
    """An ECR ``GetAuthorizationToken`` endpoint that really rotates registry passwords.

    :param accounts: the emulated registries.
    :param default_account: the account whose token a call without ``registryIds`` returns;
        defaults to the first account.
    :param token_ttl: token lifetime in seconds.
    :param rotate_fraction: fraction of a token's life after which a call mints a new one.
    :param host: the loopback address to listen on.
    :param port: the port; 0 picks a free one.
    """

    def __init__(
        self,
        accounts: Iterable[EmulatedAccount],
        *,
        default_account: str | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        rotate_fraction: float = DEFAULT_ROTATE_FRACTION,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        _check_loopback(host)
        self._lock = threading.RLock()
        self._registries: dict[tuple[str, str], _Registry] = {}
        for account in accounts:
            if not _ACCOUNT_RE.match(account.account_id):
                raise ValueError(f"account id must be 12 digits, not {account.account_id!r}")
            key = (account.account_id, account.region)
            if key in self._registries:
                raise ValueError(f"account {account.account_id} in {account.region} is listed twice")
            path = Path(account.htpasswd) if account.htpasswd else None
            self._registries[key] = _Registry(account.account_id, account.region, path)
        if not self._registries:
            raise ValueError("the ECR emulator needs at least one account")
        first = next(iter(self._registries))[0]
        self._default_account = default_account or first
        if not any(acct == self._default_account for acct, _ in self._registries):
            raise ValueError(f"default_account {self._default_account} is not one of the accounts")
        # ECR Public has one registry per caller, served from us-east-1; no htpasswd behind it.
        self._public = _Registry(self._default_account, "us-east-1", None)
        self._config = _Config(_check_ttl(token_ttl), _check_fraction(rotate_fraction))
        self._initial_config = (self._config.token_ttl, self._config.rotate_fraction)
        self._faults = _Faults()
        self._calls: list[dict[str, Any]] = []
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
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

    @property
    def accounts(self) -> list[EmulatedAccount]:
        """The emulated registries."""
        return [
            EmulatedAccount(r.account_id, r.region, str(r.htpasswd) if r.htpasswd else None)
            for r in self._registries.values()
        ]

    def start(self) -> EcrEmulator:
        """Lock every registry (unknown password) and start serving in a background thread."""
        with self._lock:
            for registry in self._registries.values():
                self._set_password(registry, None)
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
        with self._lock:
            for registry in self._registries.values():
                self._set_password(registry, None)

    def __enter__(self) -> EcrEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------
    def calls(self) -> list[dict[str, Any]]:
        """Every API call received since the last reset, oldest first."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def reset(self) -> None:
        """Forget the calls and clear every fault (tokens and config are kept)."""
        with self._lock:
            self._calls.clear()
            self._faults = _Faults()

    def faults(self) -> dict[str, Any]:
        """The current fault switches."""
        with self._lock:
            return self._faults.as_dict()

    def set_faults(
        self,
        *,
        throttle: int | None = None,
        server_error: int | None = None,
        deny: bool | Iterable[str] | None = None,
        delay: float | None = None,
        invalid_keys: Iterable[str] | None = None,
        expired_keys: Iterable[str] | None = None,
        clock_skew: float | None = None,
    ) -> None:
        """Change fault switches; None leaves one as it is.

        :param throttle: the next n calls answer 400 ``ThrottlingException``.
        :param server_error: the next n calls answer 500 ``ServerException``.
        :param deny: True denies every call, False none, a list of account ids those accounts
            (``AccessDeniedException``).
        :param delay: seconds to sleep before answering every call.
        :param invalid_keys: access key ids treated as unknown to AWS: STS answers
            ``InvalidClientTokenId``, ECR ``UnrecognizedClientException``.
        :param expired_keys: access key ids whose session has expired: ECR answers
            ``ExpiredTokenException``, STS ``ExpiredToken``.
        :param clock_skew: seconds subtracted from every ``expiresAt`` answered, as a host clock that
            runs that far ahead would see it (the registry still accepts the token).
        """
        with self._lock:
            if throttle is not None:
                self._faults.throttle = _check_count("throttle", throttle)
            if server_error is not None:
                self._faults.server_error = _check_count("server_error", server_error)
            if deny is not None:
                if isinstance(deny, bool):
                    self._faults.deny = deny
                elif isinstance(deny, str):
                    raise ValueError("deny takes true, false or a list of account ids")
                else:
                    self._faults.deny = [str(a) for a in deny]
            if delay is not None:
                if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
                    raise ValueError(f"delay must be a non-negative number of seconds, not {delay!r}")
                self._faults.delay = float(delay)
            if invalid_keys is not None:
                if isinstance(invalid_keys, str):
                    raise ValueError("invalid_keys takes a list of access key ids")
                self._faults.invalid_keys = [str(k) for k in invalid_keys]
            if expired_keys is not None:
                if isinstance(expired_keys, str):
                    raise ValueError("expired_keys takes a list of access key ids")
                self._faults.expired_keys = [str(k) for k in expired_keys]
            if clock_skew is not None:
                if isinstance(clock_skew, bool) or not isinstance(clock_skew, (int, float)):
                    raise ValueError(f"clock_skew must be a number of seconds, not {clock_skew!r}")
                self._faults.clock_skew = float(clock_skew)

    def config(self) -> dict[str, float]:
        """The current token policy."""
        with self._lock:
            return {"token_ttl": self._config.token_ttl, "rotate_fraction": self._config.rotate_fraction}

    def configure(self, *, token_ttl: float | None = None, rotate_fraction: float | None = None) -> None:
        """Change the token policy for tokens minted from now on.

        :param token_ttl: token lifetime in seconds.
        :param rotate_fraction: fraction of a token's life after which a call mints a new one.
        """
        with self._lock:
            if token_ttl is not None:
                self._config.token_ttl = _check_ttl(token_ttl)
            if rotate_fraction is not None:
                self._config.rotate_fraction = _check_fraction(rotate_fraction)

    def revoke(self, account_id: str, region: str | None = None) -> None:
        """Replace the account's password now: its current token is rejected, the next call mints.

        :param account_id: the account id.
        :param region: the region, needed only when the account is emulated in several.
        """
        with self._lock:
            registry = self._find(account_id, region)
            registry.token = None
            self._set_password(registry, None)

    def password(self, account_id: str, region: str | None = None) -> tuple[str, float]:
        """The account's current password and expiry (epoch seconds), minting one if none is valid.

        Not recorded as a call and never rotates a valid token: meant for test set-up (pushing).

        :param account_id: the account id.
        :param region: the region, needed only when the account is emulated in several.
        """
        with self._lock:
            registry = self._find(account_id, region)
            token = registry.token
            if token is None or time.time() >= token.expires_at:
                token = self._mint(registry)
            return token.password, token.expires_at

    # -- token policy ----------------------------------------------------------------------
    def _find(self, account_id: str, region: str | None) -> _Registry:
        matches = [r for (acct, reg), r in self._registries.items() if acct == account_id]
        if region is not None:
            matches = [r for r in matches if r.region == region]
        if not matches:
            where = f" in {region}" if region else ""
            raise KeyError(f"account {account_id}{where} is not emulated")
        if len(matches) > 1:
            raise KeyError(f"account {account_id} is emulated in several regions: give the region")
        return matches[0]

    def _token_for(self, registry: _Registry) -> _Token:
        now = time.time()
        token = registry.token
        if token is not None and now < token.expires_at:
            age = now - token.issued_at
            if age < self._config.rotate_fraction * (token.expires_at - token.issued_at):
                return token
        return self._mint(registry)

    def _mint(self, registry: _Registry) -> _Token:
        now = time.time()
        token = _Token(secrets.token_urlsafe(48), now, now + self._config.token_ttl)
        self._set_password(registry, token.password)
        registry.token = token
        # Make the registry reject the token the moment it expires, as real ECR does.
        timer = threading.Timer(token.expires_at - now, self._expire, args=(registry, token))
        timer.daemon = True
        registry.timer = timer
        timer.start()
        return token

    def _expire(self, registry: _Registry, token: _Token) -> None:
        with self._lock:
            if registry.token is token:
                registry.token = None
                self._set_password(registry, None)

    def _set_password(self, registry: _Registry, password: str | None) -> None:
        """Write ``password`` (None: an unknown random one) to the registry's htpasswd atomically."""
        if registry.timer is not None:
            registry.timer.cancel()
            registry.timer = None
        if registry.htpasswd is None:
            return
        line = _bcrypt_line(password if password is not None else secrets.token_urlsafe(48))
        path = registry.htpasswd
        fd, tmp = tempfile.mkstemp(prefix=".htpasswd.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(line)
            # The registry reloads when the mtime changes: never reuse one, even within a tick.
            mtime_ns = max(time.time_ns(), registry.mtime_ns + 1_000_000)
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, path)
            registry.mtime_ns = mtime_ns
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- the API ---------------------------------------------------------------------------
    def handle_api(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one AWS JSON 1.1 request; returns (status, JSON body).

        :param headers: request headers, names in lower case.
        :param body: the raw request body.
        """
        target = headers.get("x-amz-target", "")
        call: dict[str, Any] = {
            "time": time.time(),
            "target": target,
            "region": None,
            "registry_ids": None,
            "access_key_id": None,
            "outcome": "ok",
        }
        try:
            result = self._dispatch(target, headers, body, call)
            status = 200
        except EmulatorError as err:
            call["outcome"] = err.code
            status, result = err.status, {"__type": err.code, "message": err.message}
        call["end"] = time.time()  # with "time": the interval the call was being answered
        with self._lock:
            self._calls.append(call)
        return status, result

    def _dispatch(self, target: str, headers: dict[str, str], body: bytes, call: dict[str, Any]) -> dict[str, Any]:
        authorization = headers.get("authorization")
        if not authorization:
            raise EmulatorError("MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _CREDENTIAL_RE.search(authorization)
        if not match:
            raise EmulatorError(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential' parameter of the form "
                "AKID/yyyymmdd/region/service/aws4_request",
            )
        call["access_key_id"], call["region"] = match.group(1), match.group(3)
        region: str = match.group(3)
        with self._lock:
            if match.group(1) in self._faults.invalid_keys:
                raise EmulatorError(
                    "UnrecognizedClientException", "The security token included in the request is invalid."
                )
            if match.group(1) in self._faults.expired_keys:
                raise EmulatorError("ExpiredTokenException", "The security token included in the request is expired")
        if region_partition(region) not in {region_partition(r) for _, r in self._registries}:
            # Keys of one partition are unknown in every other (aws, aws-cn, aws-us-gov, ...).
            raise EmulatorError("UnrecognizedClientException", "The security token included in the request is invalid.")
        try:
            request = json.loads(body or b"{}")
        except ValueError as exc:
            raise EmulatorError("SerializationException", f"request body is not JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise EmulatorError("SerializationException", "request body must be a JSON object")

        public = target == ECR_PUBLIC_TARGET_PREFIX + "GetAuthorizationToken"
        private = target == ECR_TARGET_PREFIX + "GetAuthorizationToken"
        if not (public or private):
            raise EmulatorError(
                "UnknownOperationException",
                f"operation {target or '(no X-Amz-Target)'} is not emulated; only GetAuthorizationToken",
            )
        registry_ids = self._registry_ids(request) if private else None
        call["registry_ids"] = registry_ids

        with self._lock:
            delay = self._faults.delay
        if delay:
            time.sleep(delay)
        accounts = registry_ids or [self._default_account]
        with self._lock:
            faults = self._faults  # read again: a reset may have happened during the delay
            if faults.server_error:
                faults.server_error -= 1
                raise EmulatorError("ServerException", "Internal service error (emulated)", status=500)
            if faults.throttle:
                faults.throttle -= 1
                raise EmulatorError("ThrottlingException", "Rate exceeded")
            deny = faults.deny
            denied_ids = accounts if deny is True else [a for a in accounts if deny and a in deny]
            if denied_ids:
                caller = denied_ids[0]
                action = "ecr-public" if public else "ecr"
                raise EmulatorError(
                    "AccessDeniedException",
                    f"User: arn:aws:iam::{caller}:user/x is not authorized to perform: "
                    f"{action}:GetAuthorizationToken on resource: *",
                )
            if public:
                token = self._token_for(self._public)
                public_data = self._auth_data(token)
                public_data["expiresAt"] -= faults.clock_skew
                return {"authorizationData": public_data}
            registries = []
            for account_id in accounts:
                registry = self._registries.get((account_id, region))
                if registry is None:
                    raise EmulatorError(
                        "InvalidParameterException",
                        f"Invalid parameter at 'registryIds': registry {account_id} is not emulated in "
                        f"region {region} (emulated: {self._describe()})",
                    )
                registries.append(registry)
            data = []
            for registry in registries:
                entry = self._auth_data(self._token_for(registry))
                entry["expiresAt"] -= faults.clock_skew
                entry["proxyEndpoint"] = f"https://{registry.account_id}.dkr.ecr.{registry.region}.amazonaws.com"
                data.append(entry)
            return {"authorizationData": data}

    @staticmethod
    def _registry_ids(request: dict[str, Any]) -> list[str] | None:
        ids = request.get("registryIds")
        if ids is None:
            return None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise EmulatorError(
                "InvalidParameterException", "Invalid parameter at 'registryIds': expected a non-empty list"
            )
        for registry_id in ids:
            if not _ACCOUNT_RE.match(registry_id):
                raise EmulatorError(
                    "InvalidParameterException",
                    f"Invalid parameter at 'registryIds' failed to satisfy constraint: "
                    f"'{registry_id}' is not a 12-digit registry id",
                )
        return ids

    @staticmethod
    def _auth_data(token: _Token) -> dict[str, Any]:
        encoded = base64.b64encode(f"AWS:{token.password}".encode()).decode()
        return {"authorizationToken": encoded, "expiresAt": token.expires_at}

    def _describe(self) -> str:
        return ", ".join(f"{acct}/{region}" for acct, region in self._registries)

    # -- STS, query protocol ------------------------------------------------------------------
    def handle_query(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Answer one AWS query-protocol request (STS ``GetCallerIdentity``); returns (status, XML).

        :param headers: request headers, names in lower case.
        :param body: the raw form-encoded request body.
        """
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        call: dict[str, Any] = {
            "time": time.time(),
            "target": STS_TARGET_PREFIX + action,
            "region": None,
            "registry_ids": None,
            "access_key_id": None,
            "outcome": "ok",
        }
        request_id = str(uuid.uuid4())
        try:
            match = _CREDENTIAL_RE.search(headers.get("authorization", ""))
            if not match:
                raise EmulatorError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
            access_key, call["region"] = match.group(1), match.group(3)
            call["access_key_id"] = access_key
            if action != "GetCallerIdentity":
                raise EmulatorError("InvalidAction", f"operation {action or '(no Action)'} is not emulated")
            with self._lock:
                if access_key in self._faults.invalid_keys:
                    raise EmulatorError(
                        "InvalidClientTokenId", "The security token included in the request is invalid.", 403
                    )
                if access_key in self._faults.expired_keys:
                    raise EmulatorError("ExpiredToken", "The security token included in the request is expired", 403)
            account = self._default_account
            result = (
                f"<GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/{xml_escape(access_key)}</Arn>"
                f"<UserId>{xml_escape(access_key)}</UserId><Account>{account}</Account></GetCallerIdentityResult>"
            )
            xml = (
                f'<GetCallerIdentityResponse xmlns="{STS_XMLNS}">{result}'
                f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                "</GetCallerIdentityResponse>"
            )
            status = 200
        except EmulatorError as err:
            call["outcome"] = err.code
            status = err.status
            xml = (
                f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>Sender</Type><Code>{err.code}</Code>'
                f"<Message>{xml_escape(err.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        call["end"] = time.time()
        with self._lock:
            self._calls.append(call)
        return status, xml.encode()

    # -- the admin API ---------------------------------------------------------------------
    def handle_admin(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Answer one admin request under ``/_emulator/``; returns (status, JSON body).

        :param method: ``GET`` or ``POST``.
        :param path: the request path with its query.
        :param body: the raw request body.
        """
        parts = urlsplit(path)
        name = parts.path[len(_ADMIN_PREFIX) :].strip("/")
        try:
            request = json.loads(body) if body.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("the request body must be a JSON object")
            return self._admin(method, name, request, parse_qs(parts.query))
        except KeyError as exc:
            return 404, {"error": str(exc.args[0]) if exc.args else "not found"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}

    def _admin(self, method: str, name: str, request: dict[str, Any], query: dict[str, list[str]]) -> tuple[int, Any]:
        if (method, name) == ("GET", "health"):
            return 200, {"ok": True, "accounts": [a.__dict__ for a in self.accounts]}
        if (method, name) == ("GET", "calls"):
            return 200, self.calls()
        if (method, name) == ("POST", "reset"):
            self.reset()
            return 200, {"ok": True}
        if name == "faults" and method in ("GET", "POST"):
            if method == "POST":
                self._reject_unknown(
                    request,
                    {"throttle", "server_error", "deny", "delay", "invalid_keys", "expired_keys", "clock_skew"},
                )
                self.set_faults(**request)
            return 200, self.faults()
        if name == "config" and method in ("GET", "POST"):
            if method == "POST":
                self._reject_unknown(request, {"token_ttl", "rotate_fraction"})
                self.configure(**request)
            return 200, self.config()
        if (method, name) == ("POST", "revoke"):
            self._reject_unknown(request, {"account_id", "region"})
            if "account_id" not in request:
                raise ValueError("revoke needs {'account_id': ...}")
            self.revoke(str(request["account_id"]), request.get("region"))
            return 200, {"ok": True}
        if method == "GET" and name.startswith("password/"):
            region = query.get("region", [None])[0]
            password, expires_at = self.password(name.split("/", 1)[1], region)
            return 200, {"password": password, "expires_at": expires_at}
        raise KeyError(f"no admin endpoint {method} {_ADMIN_PREFIX}{name}")

    @staticmethod
    def _reject_unknown(request: dict[str, Any], known: set[str]) -> None:
        unknown = sorted(set(request) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; expected some of {sorted(known)}")


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections alive; every answer has a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "airflow-ecr-emulator"

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
        if self.path.startswith(_ADMIN_PREFIX):
            status, payload = self.emulator.handle_admin("GET", self.path, b"")
            self._send(status, payload, {"Content-Type": "application/json"})
        else:
            self._send(404, {"error": f"no such path {self.path}"}, {"Content-Type": "application/json"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith(_ADMIN_PREFIX):
            status, payload = self.emulator.handle_admin("POST", self.path, body)
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


# -- command line ------------------------------------------------------------------------------


class EmulatorClient:
    """
    The emulator's loopback admin API (``/_emulator/...``), from any process: what a test of your
    own DAGs uses to count calls, switch faults on, or shorten token lifetimes.

    :param url: the emulator's URL (``EcrEmulator.url``, or ``emulator_url`` in the lab's lab.json).
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        # Loopback only: never route the lab's traffic through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the emulator's own http://127.0.0.1 URL
            f"{self.url}/_emulator/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        with self._opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def calls(self, access_key: str | None = None) -> list[dict[str, Any]]:
        """The API calls received so far (only those signed with ``access_key``, if given)."""
        return [c for c in self._call("calls") if access_key is None or c.get("access_key_id") == access_key]

    def reset(self) -> None:
        """Forget the calls and switch every fault off."""
        self._call("reset", {})

    def faults(self, **switches: Any) -> dict[str, Any]:
        """Set fault switches (see :meth:`EcrEmulator.set_faults`); return them all."""
        return dict(self._call("faults", switches))

    def config(self, **settings: Any) -> dict[str, Any]:
        """Set ``token_ttl`` / ``rotate_fraction`` if given; return the token policy."""
        return dict(self._call("config", settings) if settings else self._call("config"))

    def revoke(self, account_id: str) -> None:
        """Replace the account's password now: the registry rejects the tokens handed out so far."""
        self._call("revoke", {"account_id": account_id})

    def password(self, account_id: str) -> str:
        """The account's current registry password (minted if none is valid)."""
        return str(self._call(f"password/{account_id}")["password"])


def load_config(path: str | os.PathLike[str]) -> tuple[list[EmulatedAccount], dict[str, Any]]:
    """Read a CLI config file; returns the accounts and the keyword arguments of :class:`EcrEmulator`.

    :param path: the JSON config file.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read emulator config {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("accounts"), list):
        raise ValueError(f"{path}: expected {{'accounts': [{{'account_id', 'region', 'htpasswd'}}], ...}}")
    accounts = []
    for item in raw["accounts"]:
        if not isinstance(item, dict) or "account_id" not in item or "region" not in item:
            raise ValueError(f"{path}: each account needs 'account_id' and 'region', got {item!r}")
        accounts.append(EmulatedAccount(str(item["account_id"]), str(item["region"]), item.get("htpasswd")))
    kwargs: dict[str, Any] = {}
    for key in ("default_account", "token_ttl", "rotate_fraction", "host", "port"):
        if key in raw:
            kwargs[key] = raw[key]
    return accounts, kwargs


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m airflow_ecr.testing.emulator", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file (accounts, default_account, token_ttl)")
    parser.add_argument("--port-file", help="write the listening port to this file once ready")
    parser.add_argument("--port", type=int, help="override the config's port (0: any free port)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    try:
        accounts, kwargs = load_config(args.config)
        if args.port is not None:
            kwargs["port"] = args.port
        emulator = EcrEmulator(accounts, **kwargs)
        emulator.start()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"ecr emulator: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.port_file:
        _write_atomically(Path(args.port_file), f"{emulator.port}\n")
    while not stop.wait(3600):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
