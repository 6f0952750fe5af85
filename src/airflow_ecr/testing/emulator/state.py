"""The emulator's state: registries and their tokens, the token policy, fault switches, calls.

See :mod:`airflow_ecr.testing.emulator` for the token policy. Everything here is guarded by one
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

from airflow_ecr.testing.emulator.htpasswd import write_htpasswd
from airflow_ecr.testing.emulator.model import (
    ACCOUNT_RE,
    DEFAULT_ROTATE_FRACTION,
    DEFAULT_TOKEN_TTL,
    EmulatedAccount,
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


class EmulatorState:
    """The registries, their tokens, the token policy, the fault switches and the calls received.

    The base of :class:`~airflow_ecr.testing.emulator.EcrEmulator`, whose API and admin handlers
    read and change it; the public methods are the emulator's in-process test controls.

    :param accounts: the emulated registries.
    :param default_account: the account whose token a call without ``registryIds`` returns;
        defaults to the first account.
    :param token_ttl: token lifetime in seconds.
    :param rotate_fraction: fraction of a token's life after which a call mints a new one.
    """

    def __init__(
        self,
        accounts: Iterable[EmulatedAccount],
        *,
        default_account: str | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        rotate_fraction: float = DEFAULT_ROTATE_FRACTION,
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
        self._config = _Config(_check_ttl(token_ttl), _check_fraction(rotate_fraction))
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
        secret = password if password is not None else secrets.token_urlsafe(48)
        registry.mtime_ns = write_htpasswd(registry.htpasswd, secret, registry.mtime_ns)

    def _lock_out(self) -> None:
        """Give every registry an unknown password: no token handed out so far opens it."""
        with self._lock:
            for registry in self._registries.values():
                self._set_password(registry, None)

    def _describe(self) -> str:
        return ", ".join(f"{acct}/{region}" for acct, region in self._registries)
