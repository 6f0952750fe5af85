"""
Obtain, cache and refresh ECR authorization tokens.

This is the only module that calls AWS for tokens. Lookups go memory -> host file cache ->
ECR. The host cache is shared by every task process of a worker: one file per (identity,
registry) in a directory only its owner can read, written atomically, with a lock per
(identity, region) so that processes missing at the same time make one ``GetAuthorizationToken``
call between them. Tokens are refreshed at ``refresh_ratio`` of their life, never served past
``expiresAt``, and a still-valid cached token is used (with a warning) while ECR is failing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

from airflow_ecr.exceptions import EcrConfigurationError, EcrCredentialsError, EcrServiceError
from airflow_ecr.registry import ECR_PUBLIC_REGION, EcrRegistry, parse_registry_host

log = logging.getLogger(__name__)

DEFAULT_REFRESH_RATIO = 0.5
DEFAULT_LOCK_TIMEOUT = 60.0
# A token this close to expiresAt is not handed out: the pull that follows must still succeed.
MAX_EXPIRY_MARGIN = 60.0
CACHE_FORMAT_VERSION = 1

# Environment variables that decide which AWS identity the boto3 default chain picks up; they are
# part of the cache key so that two identities never share a token.
_IDENTITY_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
)
_SECRET_WORDS = ("secret", "token", "password", "key")
# Error codes AWS answers for credentials that are invalid or expired.
INVALID_CREDENTIAL_CODES = (
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
)
# Error codes AWS answers when a caller exceeds its request rate.
_THROTTLING_CODES = ("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded")


@dataclass(frozen=True)
class EcrToken:
    """
    A registry login obtained from ECR.

    :param username: always ``AWS`` for ECR.
    :param password: the temporary registry password (never logged; excluded from ``repr``).
    :param proxy_endpoint: the registry URL ECR says the token is for.
    :param expires_at: epoch seconds after which the registry rejects the token.
    :param issued_at: epoch seconds (local clock) when the token was received.
    """

    username: str
    password: str = field(repr=False)
    proxy_endpoint: str
    expires_at: float
    issued_at: float

    def expiry_margin(self) -> float:
        """Seconds before ``expires_at`` from which the token is no longer handed out."""
        return min(MAX_EXPIRY_MARGIN, max(0.0, self.expires_at - self.issued_at) * 0.1)

    def is_usable(self, now: float) -> bool:
        """Whether the token can still be handed out for a pull starting now."""
        return now < self.expires_at - self.expiry_margin()

    def is_fresh(self, now: float, refresh_ratio: float) -> bool:
        """Whether the token is young enough that no refresh should be attempted."""
        refresh_at = self.issued_at + refresh_ratio * (self.expires_at - self.issued_at)
        return now < refresh_at and self.is_usable(now)

    def docker_auth(self, host: str) -> dict[str, str]:
        """The auth config docker-py sends as ``X-Registry-Auth`` for ``host``."""
        return {"username": self.username, "password": self.password, "serveraddress": host}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CACHE_FORMAT_VERSION,
            "username": self.username,
            "password": self.password,
            "proxy_endpoint": self.proxy_endpoint,
            "expires_at": self.expires_at,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EcrToken:
        if not isinstance(data, dict) or data.get("version") != CACHE_FORMAT_VERSION:
            raise ValueError("unknown cache format version")
        token = cls(
            username=str(data["username"]),
            password=str(data["password"]),
            proxy_endpoint=str(data["proxy_endpoint"]),
            expires_at=float(data["expires_at"]),
            issued_at=float(data["issued_at"]),
        )
        if not token.password or token.issued_at > token.expires_at:
            raise ValueError("inconsistent cache entry")
        return token


class TokenSource(Protocol):
    """Where tokens come from: one AWS identity, able to ask ECR for tokens."""

    @property
    def identity(self) -> str:
        """A non-secret string that differs between AWS identities; part of every cache key."""
        ...

    @property
    def description(self) -> str:
        """How error messages name this source, e.g. ``aws_conn_id='aws_default'``."""
        ...

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        """
        Fetch tokens for registries of one region (or all ECR Public) in one API call.

        :return: tokens keyed by ``registry.registry_id``.
        """
        ...


def decode_authorization_token(token: str) -> tuple[str, str]:
    """Split ECR's ``base64("AWS:<password>")`` into username and password."""
    import base64

    username, _, password = base64.b64decode(token).decode("utf-8").partition(":")
    if not username or not password:
        raise ValueError("ECR returned a malformed authorization token")
    return username, password


def _mask(secret: str) -> None:
    """Register ``secret`` with Airflow's secret masker, so no task log line can show it."""
    from airflow_ecr._compat import mask_secret

    mask_secret(secret)


def _fingerprint(parts: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()


def _environment_identity() -> list[tuple[str, str]]:
    return [(name, os.environ[name]) for name in _IDENTITY_ENV if os.environ.get(name)]


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS) and lowered not in ("aws_access_key_id",)


def with_fips_endpoint(config: Any) -> Any:
    """
    A botocore ``Config`` that also selects the ECR API's FIPS endpoint, for ``dkr.ecr-fips`` registries.

    An explicit ``endpoint_url`` (VPC endpoint, emulator) still wins, as in botocore.

    :param config: the botocore ``Config`` (or its kwargs) in effect, or None.
    """
    from botocore.config import Config

    fips = Config(use_fips_endpoint=True)
    if isinstance(config, dict):
        config = Config(**config)
    return config.merge(fips) if config is not None else fips


class AwsConnectionTokenSource:
    """
    Tokens through the amazon provider's ``EcrHook``, so an Airflow AWS connection brings role
    assumption, profiles, web identity and ``endpoint_url``.

    :param aws_conn_id: the Airflow AWS connection; None for the boto3 default chain.
    :param verify: passed to the hook (TLS verification of the ECR API).
    :param botocore_config: passed to the hook (retries, timeouts, ...).
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        *,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.verify = verify
        self.botocore_config = botocore_config
        self._identity: str | None = None

    @property
    def description(self) -> str:
        _, missing = self._connection
        if missing:
            # The amazon provider falls back to boto3's default chain for an unknown id: say so, as
            # a typo in aws_conn_id otherwise reads as a credentials problem.
            return f"aws_conn_id={self.aws_conn_id!r} (no such Airflow connection: boto3's default chain was used)"
        return f"aws_conn_id={self.aws_conn_id!r}"

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = _fingerprint(["conn", self.aws_conn_id, *self._connection_identity()])
        return self._identity

    @cached_property
    def _connection(self) -> tuple[Any, bool]:
        """(the AWS connection or None, whether no connection has that id), looked up once."""
        if not self.aws_conn_id:
            return None, False
        from airflow_ecr._compat import AirflowNotFoundException, BaseHook

        try:
            return BaseHook.get_connection(self.aws_conn_id), False
        except Exception as err:
            # The hook falls back to the default chain for a missing connection; so do we.
            return None, isinstance(err, AirflowNotFoundException)

    def _connection_identity(self) -> list[object]:
        """Non-secret fields of the connection and the environment that select the identity."""
        parts: list[object] = _environment_identity()  # type: ignore[assignment]
        if not self.aws_conn_id:
            return parts
        conn, _ = self._connection
        if conn is None:
            return [*parts, "no-connection"]
        extra = {k: v for k, v in (conn.extra_dejson or {}).items() if not _is_secret_key(k)}
        return [*parts, conn.conn_type, conn.host, conn.login, conn.schema, extra]

    def _hook(self, client_type: str, region: str, fips: bool = False) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        kwargs: dict[str, Any] = {"aws_conn_id": self.aws_conn_id, "region_name": region}
        if self.verify is not None:
            kwargs["verify"] = self.verify
        if self.botocore_config is not None:
            kwargs["config"] = self.botocore_config
        hook = AwsBaseHook(client_type=client_type, **kwargs)
        if fips:
            # A hook's config replaces the connection's config_kwargs: extend the one in effect.
            hook = AwsBaseHook(client_type=client_type, **{**kwargs, "config": with_fips_endpoint(hook.config)})
        return hook

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        first = registries[0]
        with translate_aws_errors(self.description, registries) as call:
            if first.public:
                conn = self._hook("ecr-public", ECR_PUBLIC_REGION).conn
                call.endpoint_url = conn.meta.endpoint_url
                data = conn.get_authorization_token()["authorizationData"]
                return {"": _token_from(data, "https://public.ecr.aws")}
            conn = self._hook("ecr", first.region, fips=any(r.fips for r in registries)).conn
            call.endpoint_url = conn.meta.endpoint_url
            ids = sorted({r.registry_id for r in registries})
            response = conn.get_authorization_token(registryIds=ids)
            return tokens_by_registry_id(response["authorizationData"], ids)


def _token_from(data: dict[str, Any], proxy_endpoint: str | None = None) -> EcrToken:
    username, password = decode_authorization_token(data["authorizationToken"])
    _mask(password)
    expires = data["expiresAt"]
    expires_at = expires.timestamp() if hasattr(expires, "timestamp") else float(expires)
    return EcrToken(
        username=username,
        password=password,
        proxy_endpoint=data.get("proxyEndpoint") or proxy_endpoint or "",
        expires_at=expires_at,
        issued_at=time.time(),
    )


def tokens_by_registry_id(authorization_data: list[dict[str, Any]], ids: list[str]) -> dict[str, EcrToken]:
    """
    Match ECR's ``authorizationData`` entries to the registry ids asked for.

    Entries are matched by the account in their ``proxyEndpoint``, and by position when the
    endpoint is not an ECR host (as with some emulators and VPC endpoints).
    """
    tokens: dict[str, EcrToken] = {}
    for position, data in enumerate(authorization_data):
        token = _token_from(data)
        try:
            registry_id = parse_registry_host(token.proxy_endpoint).registry_id
        except ValueError:
            registry_id = ids[position] if position < len(ids) else ""
        tokens[registry_id] = token
    missing = [i for i in ids if i not in tokens]
    if missing:
        raise EcrServiceError(f"ECR returned no authorization token for registry ids {missing}.")
    return tokens


@dataclass
class AwsCall:
    """
    What error messages may say about the AWS call under way; the caller fills it in.

    :param endpoint_url: the ECR API endpoint the client talks to.
    """

    endpoint_url: str | None = None


@contextlib.contextmanager
def translate_aws_errors(
    source: str, registries: Sequence[EcrRegistry], configured_in: str = "the AWS connection"
) -> Iterator[AwsCall]:
    """
    Turn boto3 errors into errors that name the registry, the identity, the endpoint and what to do.

    :param source: how the messages name the AWS identity (a ``TokenSource.description``).
    :param registries: the registries the call was for.
    :param configured_in: where the AWS settings live, for the messages' advice.
    :return: (as the ``with`` target) an :class:`AwsCall` to record the endpoint in.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    names = ", ".join(r.host for r in registries)
    action = "ecr-public:GetAuthorizationToken" if registries[0].public else "ecr:GetAuthorizationToken"
    call = AwsCall()
    try:
        yield call
    except NoCredentialsError:
        raise EcrCredentialsError(
            f"No AWS credentials found for {source} (registry {names}): put credentials or a role in "
            f"{configured_in}, or give the worker an instance role or AWS_* environment variables."
        ) from None
    except PartialCredentialsError as err:
        raise EcrCredentialsError(f"Incomplete AWS credentials for {source}: {err}.") from None
    except NoRegionError:
        raise EcrCredentialsError(f"No AWS region for {source}: set region_name.") from None
    except EndpointConnectionError as err:
        raise EcrServiceError(
            f"Cannot reach the ECR API at {err.kwargs.get('endpoint_url', '?')} for {source} "
            f"(registry {names}): check the network, proxy settings and the connection's endpoint_url."
        ) from None
    except ClientError as err:
        error = err.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "")
        if code in ("AccessDeniedException", "AccessDenied"):
            raise EcrCredentialsError(
                f"The AWS identity of {source} is not allowed {action} for registry {names}: grant it "
                f"{action} (and ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on the repositories). "
                f"AWS said: {message}"
            ) from None
        if code in INVALID_CREDENTIAL_CODES:
            partition = registries[0].partition
            hint = (
                f" Registry {names} is in the {partition} partition: only credentials of that partition "
                "are valid there."
                if partition != "aws"
                else ""
            )
            raise EcrCredentialsError(
                f"AWS rejected the credentials of {source} ({code}): they are invalid or have "
                f"expired; renew them or fix {configured_in}.{hint}"
            ) from None
        if code == "InvalidParameterException":
            raise EcrCredentialsError(
                f"ECR refused the request for registry {names} with {source}: {message}"
            ) from None
        endpoint = call.endpoint_url or "?"
        attempts = 1 + int(err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if code in _THROTTLING_CODES:
            raise EcrServiceError(
                f"The ECR API at {endpoint} throttled {action} for registry {names} with {source} ({code}, "
                f"{attempts} attempt(s) with backoff): too many calls at once. Allow more retries in "
                f'{configured_in}, e.g. extra {{"config_kwargs": {{"retries": {{"mode": "standard", '
                f'"max_attempts": 10}}}}}}.'
            ) from None
        raise EcrServiceError(
            f"The ECR API failed for registry {names} with {source} at {endpoint} ({attempts} attempt(s)): "
            f"{code}: {message}"
        ) from None
    except BotoCoreError as err:
        raise EcrServiceError(
            f"The ECR API call at {call.endpoint_url or '?'} for registry {names} with {source} failed: {err}"
        ) from None


@dataclass(frozen=True)
class CacheSettings:
    """
    Where and how tokens are cached on this host.

    :param directory: the host cache directory; None disables the file cache.
    :param refresh_ratio: fraction of a token's life after which it is refreshed.
    :param lock_timeout: seconds to wait for another process's fetch before fetching anyway.
    """

    directory: Path | None
    refresh_ratio: float = DEFAULT_REFRESH_RATIO
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

    @classmethod
    def from_airflow_config(cls) -> CacheSettings:
        """Read ``[ecr] cache_enabled``, ``cache_dir``, ``refresh_ratio``, ``lock_timeout``."""
        from airflow_ecr._compat import conf

        enabled = conf.getboolean("ecr", "cache_enabled", fallback=True)
        directory = conf.get("ecr", "cache_dir", fallback="") or default_cache_dir()
        ratio = conf.getfloat("ecr", "refresh_ratio", fallback=DEFAULT_REFRESH_RATIO)
        if not 0 < ratio <= 1:
            raise EcrConfigurationError(f"[ecr] refresh_ratio must be in (0, 1], got {ratio}: set e.g. 0.5.")
        lock_timeout = conf.getfloat("ecr", "lock_timeout", fallback=DEFAULT_LOCK_TIMEOUT)
        return cls(
            directory=Path(directory).expanduser() if enabled else None,
            refresh_ratio=ratio,
            lock_timeout=lock_timeout,
        )


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/airflow-ecr``, or ``~/.cache/airflow-ecr``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "airflow-ecr")


class FileCache:
    """
    The host cache: one JSON file per key, readable by its owner only.

    Every problem (missing, corrupt, foreign or group-readable file, unwritable directory) is
    logged and treated as a miss: the cache can make things faster, never make them fail.

    :param directory: the cache directory (created 0700 if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._usable: bool | None = None

    def usable(self) -> bool:
        """Whether the directory exists (or could be created), is ours and is private."""
        if self._usable is None:
            self._usable = self._check_directory()
        return self._usable

    def _check_directory(self) -> bool:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
        except OSError as err:
            log.warning("ECR token cache disabled: cannot create %s (%s).", self.directory, err.strerror)
            return False
        if info.st_uid != os.geteuid():
            log.warning("ECR token cache disabled: %s belongs to another user.", self.directory)
            return False
        if info.st_mode & 0o077:
            log.warning(
                "ECR token cache disabled: %s is accessible to other users (mode %o); "
                "make it 0700 to enable the cache.",
                self.directory,
                stat.S_IMODE(info.st_mode),
            )
            return False
        return True

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{key}{suffix}"

    def read(self, key: str) -> EcrToken | None:
        if not self.usable():
            return None
        path = self._path(key, ".json")
        try:
            with open(path, encoding="utf-8") as handle:
                info = os.fstat(handle.fileno())
                if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                    log.warning("Ignoring ECR token cache file %s: not private to this user.", path)
                    return None
                return EcrToken.from_json(json.load(handle))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("Ignoring unreadable ECR token cache file %s (%s).", path, type(err).__name__)
            return None

    def write(self, key: str, token: EcrToken) -> None:
        if not self.usable():
            return
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        except OSError as err:
            log.warning("Cannot write the ECR token cache in %s (%s).", self.directory, err.strerror)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                json.dump(token.to_json(), handle)
            os.replace(temp, self._path(key, ".json"))
        except OSError as err:
            log.warning("Cannot write the ECR token cache in %s (%s).", self.directory, err.strerror)
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def remove(self, key: str, password: str) -> None:
        """Remove the entry if it still holds ``password`` (a newer token stays)."""
        current = self.read(key)
        if current is not None and current.password == password:
            with contextlib.suppress(OSError):
                os.unlink(self._path(key, ".json"))

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[bool]:
        """
        Hold the cross-process lock ``name`` for the block; yield whether it was obtained.

        The kernel drops a ``flock`` when its holder dies, so a killed process never blocks the
        others; a live but stuck holder is waited for at most ``timeout`` seconds.
        """
        if not self.usable():
            yield False
            return
        try:
            fd = os.open(self._path(name, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            log.warning("Cannot open the ECR token cache lock (%s); fetching without it.", err.strerror)
            yield False
            return
        try:
            deadline = time.monotonic() + timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        log.warning("ECR token cache lock failed (%s); fetching without it.", err.strerror)
                        yield False
                        return
                if time.monotonic() >= deadline:
                    log.warning(
                        "Waited %.0f s for another process fetching an ECR token; fetching without it.",
                        timeout,
                    )
                    yield False
                    return
                time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, 0.05)
            yield True
        finally:
            os.close(fd)  # closing drops the lock


class TokenCache:
    """
    Memory -> host file -> ECR lookups of tokens, with single flight across processes.

    :param settings: cache settings; None reads them from Airflow's configuration.
    """

    # Process-wide: every hook and operator of a process shares the memory layer.
    _memory: ClassVar[dict[str, EcrToken]] = {}
    _memory_lock = threading.Lock()

    def __init__(self, settings: CacheSettings | None = None) -> None:
        self.settings = settings or CacheSettings.from_airflow_config()
        self.files = FileCache(self.settings.directory) if self.settings.directory else None

    @staticmethod
    def key(source: TokenSource, registry: EcrRegistry) -> str:
        """The cache key: identity, partition, region and registry; never a secret."""
        return _fingerprint(
            [source.identity, registry.partition, registry.region, registry.registry_id, registry.public]
        )[:40]

    @staticmethod
    def _lock_name(source: TokenSource, registry: EcrRegistry) -> str:
        return "lock-" + _fingerprint([source.identity, registry.partition, registry.region, registry.public])[:40]

    def get(self, source: TokenSource, registries: Sequence[EcrRegistry], min_life: float = 0.0) -> dict[str, EcrToken]:
        """
        Tokens for ``registries`` (keyed by registry host), fetching only what is missing or due.

        :param source: where to fetch tokens from.
        :param registries: the registries; those of one region share one API call.
        :param min_life: seconds a cached token must still be usable to be reused (for tokens that
            are stored or cached elsewhere); a newly fetched token is returned whatever its life.
        """
        result: dict[str, EcrToken] = {}
        groups: dict[tuple[str, str, bool], list[EcrRegistry]] = {}
        for registry in registries:
            groups.setdefault((registry.partition, registry.region, registry.public), []).append(registry)
        for group in groups.values():
            result.update(self._get_group(source, group, min_life))
        return result

    def get_one(self, source: TokenSource, registry: EcrRegistry, min_life: float = 0.0) -> EcrToken:
        """The token for one registry (see :meth:`get`)."""
        return self.get(source, [registry], min_life)[registry.host]

    def _lookup(self, key: str, now: float) -> EcrToken | None:
        """The best cached token for ``key``: fresh if possible, else any still usable."""
        token = self._memory.get(key)
        if token is not None and token.is_fresh(now, self.settings.refresh_ratio):
            return token
        stored = self.files.read(key) if self.files else None
        if stored is not None and (token is None or stored.issued_at > token.issued_at):
            token = stored
            if token.is_usable(now):
                _mask(token.password)
                with self._memory_lock:
                    self._memory[key] = token
        return token if token is not None and token.is_usable(now) else None

    def _get_group(
        self, source: TokenSource, registries: Sequence[EcrRegistry], min_life: float
    ) -> dict[str, EcrToken]:
        ratio = self.settings.refresh_ratio
        keys = {r.host: self.key(source, r) for r in registries}
        found = {host: self._lookup(key, time.time()) for host, key in keys.items()}
        due = [r for r in registries if not _fresh(found[r.host], ratio, min_life)]
        if not due:
            return {h: t for h, t in found.items() if t is not None}
        lock = (
            self.files.lock(self._lock_name(source, due[0]), self.settings.lock_timeout)
            if self.files
            else contextlib.nullcontext(False)
        )
        with lock:
            # Another process may have fetched while we waited for the lock.
            found.update({r.host: self._lookup(keys[r.host], time.time()) for r in due})
            due = [r for r in due if not _fresh(found[r.host], ratio, min_life)]
            if due:
                found.update(self._fetch(source, due, keys, found))
        return {h: t for h, t in found.items() if t is not None}

    def _fetch(
        self,
        source: TokenSource,
        due: Sequence[EcrRegistry],
        keys: dict[str, str],
        cached: dict[str, EcrToken | None],
    ) -> dict[str, EcrToken]:
        try:
            fetched = source.fetch(due)
        except Exception as err:
            fallback = {r.host: cached[r.host] for r in due if cached[r.host] is not None}
            if len(fallback) < len(due):
                raise
            log.warning(
                "Using cached ECR tokens for %s (valid until %s) because refreshing failed: %s",
                ", ".join(fallback),
                ", ".join(time.strftime("%H:%M:%S", time.localtime(t.expires_at)) for t in fallback.values()),  # type: ignore[union-attr]
                err,
            )
            return fallback  # type: ignore[return-value]
        now = time.time()
        result: dict[str, EcrToken] = {}
        for registry in due:
            token = fetched[registry.registry_id]
            result[registry.host] = token
            if not token.is_usable(now):
                # A token born expired (clock skew, or moto's 2015 dates) serves this call only.
                log.warning(
                    "ECR returned a token for %s that expires at %s, already past by this host's clock; "
                    "using it once without caching it. Check the host clock.",
                    registry.host,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(token.expires_at)),
                )
                continue
            key = keys[registry.host]
            with self._memory_lock:
                self._memory[key] = token
            if self.files:
                self.files.write(key, token)
        return result

    def invalidate(self, source: TokenSource, registry: EcrRegistry, token: EcrToken) -> None:
        """
        Forget ``token`` after the registry rejected it; a newer token (from another process) stays.

        :param source: the source the token came from.
        :param registry: the registry that rejected it.
        :param token: the rejected token.
        """
        key = self.key(source, registry)
        with self._memory_lock:
            if (current := self._memory.get(key)) is not None and current.password == token.password:
                del self._memory[key]
        if self.files:
            self.files.remove(key, token.password)

    @classmethod
    def clear_memory(cls) -> None:
        """Forget every token held in this process's memory (tests, and after fork)."""
        with cls._memory_lock:
            cls._memory.clear()


def _fresh(token: EcrToken | None, ratio: float, min_life: float = 0.0) -> bool:
    now = time.time()
    return (
        token is not None and token.is_fresh(now, ratio) and token.expires_at - token.expiry_margin() - now >= min_life
    )


def _public_settings(value: Any) -> Any:
    """``value`` with every secret-looking key removed, at any depth (for cache keys and messages)."""
    if isinstance(value, dict):
        return {str(k): _public_settings(v) for k, v in sorted(value.items()) if not _is_secret_key(str(k))}
    if isinstance(value, (list, tuple)):
        return [_public_settings(v) for v in value]
    return value


class BotoSessionTokenSource:
    """
    Tokens through a boto3 session built from AWS settings given directly, not from an Airflow
    connection: what a secrets backend needs, since it is the thing that resolves connections.

    The settings are those of an AWS connection's extra, and are turned into a session exactly as
    the amazon provider's own secrets backends do (``AwsConnectionWrapper`` + ``SessionFactory``):
    ``profile_name``, ``region_name`` (of the session, e.g. for STS; tokens always come from the
    registry's region), ``role_arn`` with ``assume_role_method`` / ``assume_role_kwargs``,
    ``endpoint_url``, ``service_config``, ``verify``, ``config_kwargs``, and (discouraged)
    ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``. Without any, the boto3
    default chain (environment, profile, web identity, container or instance role) applies.

    :param aws_settings: the settings, as in an AWS connection's extra.
    :param name: how error messages name the user of these settings, e.g. a secrets backend.
    :param configured_in: how error messages name where the settings live.
    """

    def __init__(
        self,
        aws_settings: dict[str, Any] | None = None,
        *,
        name: str = "the boto3 session",
        configured_in: str = "the AWS settings",
    ) -> None:
        self.aws_settings = dict(aws_settings or {})
        self.name = name
        self.configured_in = configured_in
        self._identity: str | None = None
        self._session: Any = None
        self._conn_config: Any = None
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        # Non-secret settings and the environment select the identity; the secret key never enters.
        if self._identity is None:
            self._identity = _fingerprint(["boto", _public_settings(self.aws_settings), *_environment_identity()])
        return self._identity

    @property
    def description(self) -> str:
        shown = [
            f"{name}={self.aws_settings[name]!r}"
            for name in ("profile_name", "role_arn", "endpoint_url")
            if self.aws_settings.get(name)
        ]
        return f"{self.name} ({', '.join(shown) or 'boto3 default credential chain'})"

    def _client(self, service: str, region: str, fips: bool = False) -> Any:
        """A client per (service, region, FIPS), over one session (one role assumption) per source."""
        with self._lock:
            client = self._clients.get((service, region, fips))
            if client is not None:
                return client
            if self._session is None:
                from airflow.providers.amazon.aws.hooks.base_aws import SessionFactory
                from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

                # In memory only, as SecretsManagerBackend does: no connection is looked up.
                self._conn_config = AwsConnectionWrapper.from_connection_metadata(
                    conn_id=f"{type(self).__name__}__settings", extra=self.aws_settings
                )
                self._session = SessionFactory(conn=self._conn_config).create_session()
            config = self._conn_config
            client = self._session.client(
                service_name=service,
                region_name=region,
                endpoint_url=config.get_service_endpoint_url(service),
                config=with_fips_endpoint(config.botocore_config) if fips else config.botocore_config,
                verify=config.verify,
            )
            self._clients[(service, region, fips)] = client
            return client

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        first = registries[0]
        with translate_aws_errors(self.description, registries, configured_in=self.configured_in) as call:
            if first.public:
                client = self._client("ecr-public", ECR_PUBLIC_REGION)
                call.endpoint_url = client.meta.endpoint_url
                data = client.get_authorization_token()["authorizationData"]
                return {"": _token_from(data, "https://public.ecr.aws")}
            ids = sorted({r.registry_id for r in registries})
            client = self._client("ecr", first.region, fips=any(r.fips for r in registries))
            call.endpoint_url = client.meta.endpoint_url
            response = client.get_authorization_token(registryIds=ids)
            return tokens_by_registry_id(response["authorizationData"], ids)
