"""The emulator's state: registries and their tokens, the token policy, the rate limit, fault switches, calls.

See :mod:`airflow_ecr.testing.emulator` for the token policy, :mod:`~airflow_ecr.testing.emulator.bucket`
for the rate limit. Everything here is guarded by one
re-entrant lock, as the HTTP server answers each request in its own thread.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_ecr.testing.emulator.bucket import ECR_BUCKET_CAPACITY, ECR_BUCKET_REFILL, TokenBucket
from airflow_ecr.testing.emulator.htpasswd import write_htpasswd
from airflow_ecr.testing.emulator.model import (
    ACCOUNT_RE,
    DEFAULT_ROTATE_FRACTION,
    DEFAULT_TOKEN_TTL,
    EmulatedAccount,
    registry_password,
)


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
    down_regions: list[str] = field(default_factory=list)
    sts_unserved: bool = False
    pull_through_rules: list[str] = field(default_factory=list)
    deny_actions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "throttle": self.throttle,
            "server_error": self.server_error,
            "deny": self.deny,
            "delay": self.delay,
            "invalid_keys": list(self.invalid_keys),
            "expired_keys": list(self.expired_keys),
            "clock_skew": self.clock_skew,
            "down_regions": list(self.down_regions),
            "sts_unserved": self.sts_unserved,
            "pull_through_rules": list(self.pull_through_rules),
            "deny_actions": list(self.deny_actions),
        }


@dataclass
class _Config:
    token_ttl: float = DEFAULT_TOKEN_TTL
    rotate_fraction: float = DEFAULT_ROTATE_FRACTION
    bucket_capacity: int = ECR_BUCKET_CAPACITY
    bucket_refill: float = ECR_BUCKET_REFILL


def _check_ttl(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"token_ttl must be a positive number of seconds, not {value!r}")
    return float(value)


def _check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"rotate_fraction must be in (0, 1], not {value!r}")
    return float(value)


def _check_refill(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"bucket_refill must be a positive number of calls per second, not {value!r}")
    return float(value)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


class EmulatorState:
    """The registries, their tokens, the token policy, the fault switches and the calls received.

    The base of :class:`~airflow_ecr.testing.emulator.EcrEmulator`, whose API and admin handlers
    read and change it; the public methods are the emulator's in-process test controls.

    :param accounts: the emulated registries.
    :param default_account: the account whose token a call without ``registryIds`` returns;
        defaults to the first account.
    :param token_ttl: token lifetime in seconds.
    :param rotate_fraction: fraction of a token's life after which a call mints a new one.
    :param bucket_capacity: the rate limit's burst: calls per caller account and region answered
        at once before ``ThrottlingException`` (ECR: 200); 0 turns the limit off.
    :param bucket_refill: calls per second added back to each bucket (ECR: 20).
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
    ) -> None:
        self._lock = threading.RLock()
        self._registries: dict[tuple[str, str], _Registry] = {}
        for account in accounts:
            if not ACCOUNT_RE.match(account.account_id):
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
        self._config = _Config(
            _check_ttl(token_ttl),
            _check_fraction(rotate_fraction),
            _check_count("bucket_capacity", bucket_capacity),
            _check_refill(bucket_refill),
        )
        # The rate limit's buckets, by (caller account, region); made full when first used.
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._initial_config = (self._config.token_ttl, self._config.rotate_fraction)
        self._faults = _Faults()
        self._calls: list[dict[str, Any]] = []

    @property
    def accounts(self) -> list[EmulatedAccount]:
        """The emulated registries."""
        return [
            EmulatedAccount(r.account_id, r.region, str(r.htpasswd) if r.htpasswd else None)
            for r in self._registries.values()
        ]

    # -- test controls ---------------------------------------------------------------------
    def calls(self) -> list[dict[str, Any]]:
        """Every API call received since the last reset, oldest first."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def reset(self) -> None:
        """Forget the calls, clear every fault and fill the rate limit's buckets (tokens and config are kept)."""
        with self._lock:
            self._calls.clear()
            self._faults = _Faults()
            self._buckets.clear()

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
        down_regions: Iterable[str] | None = None,
        sts_unserved: bool | None = None,
        pull_through_rules: Iterable[str] | None = None,
        deny_actions: Iterable[str] | None = None,
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
        :param down_regions: regions whose ECR API is out: every call signed for one answers 503
            ``ServiceUnavailableException`` (a regional outage; other regions answer).
        :param sts_unserved: answer STS calls as an ECR-only endpoint does (a private VPC with ECR
            interface endpoints and none for STS, the connection's ``endpoint_url`` used for every
            service): an ECR JSON error where boto3 expects STS's XML, so boto3 cannot parse it.
        :param pull_through_rules: repository prefixes of pull-through cache rules (every emulated
            registry has them), answered by ``DescribePullThroughCacheRules``.
        :param deny_actions: operations that answer ``AccessDeniedException``: ECR ones by name
            (e.g. ``DescribePullThroughCacheRules``, ``DescribeImageScanFindings``), any service's
            as ``service:Action`` (``kms:GetPublicKey``, ``signer:GetRevocationStatus``).
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
            if down_regions is not None:
                if isinstance(down_regions, str):
                    raise ValueError("down_regions takes a list of region names")
                self._faults.down_regions = [str(r) for r in down_regions]
            if sts_unserved is not None:
                self._faults.sts_unserved = bool(sts_unserved)
            for name, values in (("pull_through_rules", pull_through_rules), ("deny_actions", deny_actions)):
                if values is not None:
                    if isinstance(values, str):
                        raise ValueError(f"{name} takes a list of names")
                    setattr(self._faults, name, [str(v) for v in values])

    def config(self) -> dict[str, float]:
        """The current token policy and rate limit."""
        with self._lock:
            return {
                "token_ttl": self._config.token_ttl,
                "rotate_fraction": self._config.rotate_fraction,
                "bucket_capacity": self._config.bucket_capacity,
                "bucket_refill": self._config.bucket_refill,
            }

    def configure(
        self,
        *,
        token_ttl: float | None = None,
        rotate_fraction: float | None = None,
        bucket_capacity: int | None = None,
        bucket_refill: float | None = None,
    ) -> None:
        """Change the token policy for tokens minted from now on, or the rate limit (its buckets start full).

        :param token_ttl: token lifetime in seconds.
        :param rotate_fraction: fraction of a token's life after which a call mints a new one.
        :param bucket_capacity: calls per caller account and region answered at once (0: no limit).
        :param bucket_refill: calls per second added back to each bucket.
        """
        with self._lock:
            if token_ttl is not None:
                self._config.token_ttl = _check_ttl(token_ttl)
            if rotate_fraction is not None:
                self._config.rotate_fraction = _check_fraction(rotate_fraction)
            if bucket_capacity is not None:
                self._config.bucket_capacity = _check_count("bucket_capacity", bucket_capacity)
                self._buckets.clear()
            if bucket_refill is not None:
                self._config.bucket_refill = _check_refill(bucket_refill)
                self._buckets.clear()

    def buckets(self) -> dict[str, dict[str, float]]:
        """The rate limit's buckets in use, by ``<caller account>/<region>``: calls available now, capacity, refill."""
        with self._lock:
            now = time.monotonic()
            return {
                f"{account}/{region}": {"tokens": b.level(now), "capacity": b.capacity, "refill": b.refill}
                for (account, region), b in self._buckets.items()
            }

    def set_bucket_level(self, level: float, region: str | None = None) -> None:
        """Leave ``level`` calls in the caller's buckets now (0: drained, as by another client of the
        account), in ``region`` or in every emulated region; they refill from there.

        :param level: calls available now (at most the capacity).
        :param region: one region; default every region an account is emulated in.
        """
        if isinstance(level, bool) or not isinstance(level, (int, float)) or level < 0:
            raise ValueError(f"level must be a non-negative number of calls, not {level!r}")
        with self._lock:
            if not self._config.bucket_capacity:
                raise ValueError("the rate limit is off (bucket_capacity 0): configure a capacity first")
            now = time.monotonic()
            regions = [region] if region is not None else sorted({r for _, r in self._registries})
            for name in regions:
                self._bucket(name, now).set_level(level, now)

    def _bucket(self, region: str, now: float) -> TokenBucket:
        # ECR counts calls per caller account; every caller of the emulator is its default account
        # (as its STS answers), so one bucket per region, whichever key signed the call.
        key = (self._default_account, region)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self._config.bucket_capacity, self._config.bucket_refill, now)
            self._buckets[key] = bucket
        return bucket

    def _rate_limited(self, region: str) -> bool:
        """Whether a call in ``region`` finds its bucket empty (else it spends one call of it). Lock held."""
        if not self._config.bucket_capacity:
            return False
        now = time.monotonic()
        return not self._bucket(region, now).take(now)

    def revoke(self, account_id: str, region: str | None = None) -> None:
        """Replace the account's password now: its current token is rejected, the next call mints.

        :param account_id: the account id.
        :param region: the region; default every region the account is emulated in.
        """
        with self._lock:
            found = [r for (acct, reg), r in self._registries.items() if acct == account_id and region in (None, reg)]
            if not found:
                self._find(account_id, region)  # raises the KeyError that names what is emulated
            for registry in found:
                registry.token = None
                self._set_password(registry, None)

    def password(self, account_id: str, region: str | None = None) -> tuple[str, float]:
        """The account's current password and expiry (epoch seconds), minting one if none is valid.

        Not recorded as a call and never rotates a valid token: meant for test set-up (pushing).

        :param account_id: the account id.
        :param region: the region; default the first region the account is emulated in (a replica's
            region must be given).
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
        return matches[0]  # the account's first region (a lab's primary, before its replicas)

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
        expires_at = now + self._config.token_ttl
        token = _Token(registry_password(expires_at), now, expires_at)
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
        secret = password if password is not None else secrets.token_urlsafe(48)
        registry.mtime_ns = write_htpasswd(registry.htpasswd, secret, registry.mtime_ns)

    def _lock_out(self) -> None:
        """Give every registry an unknown password: no token handed out so far opens it."""
        with self._lock:
            for registry in self._registries.values():
                self._set_password(registry, None)

    def _describe(self) -> str:
        return ", ".join(f"{acct}/{region}" for acct, region in self._registries)
