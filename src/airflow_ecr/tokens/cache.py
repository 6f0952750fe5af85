"""
:class:`TokenCache`: lookups of tokens, memory -> host file -> ECR, with single flight across the
processes of a host and a still-valid cached token served (with a warning) while ECR is failing
(a service or network failure only: after a denial or rejected credentials the cached tokens of
that identity are dropped, see :attr:`~airflow_ecr.tokens.aws_errors.AwsFailure.allows_stale_token`).

When a token is due is the refresh policy's decision (:mod:`airflow_ecr.tokens.policy`); where
tokens are kept is the stores' business (:mod:`airflow_ecr.tokens.store`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from airflow_ecr.process_state import STATE
from airflow_ecr.registry import EcrRegistry
from airflow_ecr.settings import EcrSettings, ecr_settings, identity_recheck
from airflow_ecr.tokens.aws_errors import allows_stale_token, failure_of
from airflow_ecr.tokens.policy import CLOCK_ADVICE, RefreshPolicy, expired_on_arrival
from airflow_ecr.tokens.private_files import default_cache_path
from airflow_ecr.tokens.store import FileStore, MemoryStore, NullStore, TokenStore
from airflow_ecr.tokens.token import EcrToken, mask, utc_time

log = logging.getLogger(__name__)

# Where a handed-out token came from, as the provenance line names it (:func:`log_provenance`).
FROM_MEMORY = "memory"
FROM_HOST_CACHE = "the host cache"
FROM_ECR = "ECR (fetched now)"
# How many hex characters of the identity fingerprint the provenance line shows: enough to tell the
# identities of one deployment apart in its task logs, without printing the whole fingerprint.
IDENTITY_SHORT = 8


def _canonical(value: object) -> str:
    """One text per value, dictionaries in key order (``repr``: a task process's first json.dumps costs more)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return "{" + ",".join(f"{str(k)!r}:{_canonical(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


def fingerprint(parts: Sequence[object]) -> str:
    """A stable hash of non-secret parts (cache keys, lock names, identities, locators)."""
    return hashlib.sha256(_canonical(list(parts)).encode()).hexdigest()


def _locator(source: TokenSource) -> str | None:
    return getattr(source, "locator", None)


def log_provenance(registry: EcrRegistry, token: EcrToken, origin: str, identity: str, requester: str = "") -> None:
    """
    The one INFO line that says where a handed-out token came from, in every mode (operators, the
    task decorator, swarm, the secrets backend, stored connections): the registry, the origin,
    until when it is valid (UTC) and the short form of the identity it belongs to; never the token.

    :param registry: the registry the token is for.
    :param token: the token handed out.
    :param origin: :data:`FROM_MEMORY`, :data:`FROM_HOST_CACHE` or :data:`FROM_ECR` (with a note).
    :param identity: the AWS identity fingerprint the token is cached under.
    :param requester: who asked, when it helps the reader (e.g. ``connection 'docker_ml'``).
    """
    log.info(
        "ECR login for %s%s: token from %s, valid until %s, identity %s.",
        registry.host,
        f" ({requester})" if requester else "",
        origin,
        utc_time(token.expires_at),
        identity[:IDENTITY_SHORT],
    )


def cache_directory(settings: EcrSettings) -> Path | None:
    """
    The host cache directory of ``settings``: ``[ecr] cache_dir``, else the default one
    (:func:`~airflow_ecr.tokens.private_files.default_cache_path`); None when the cache is off.
    """
    if not settings.cache_enabled:
        return None
    return settings.cache_dir or Path(default_cache_path())


class TokenSource(Protocol):
    """
    Where tokens come from: one AWS identity, able to ask ECR for tokens.

    A source may also have a ``locator``: a non-secret string, cheap to compute, naming where its
    identity is configured (the connection id, the environment's credential facts, and the
    deployment, team and secrets backends that resolve the id), so that the cache can find the
    identity it resolved to last time without computing ``identity`` (a connection lookup), and an
    ``identity_recalled(identity)`` method the cache calls when it did so.
    """

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


class TokenCache:
    """
    Memory -> host file -> ECR lookups of tokens, with single flight across processes.

    :param settings: the ``[ecr]`` settings (its directory, lock timeout and refresh policy are
        used); None reads them from Airflow's configuration.
    """

    def __init__(self, settings: EcrSettings | None = None) -> None:
        self.settings = settings or ecr_settings()
        self.policy = RefreshPolicy.of(self.settings)
        self.directory = cache_directory(self.settings)
        self.memory = MemoryStore()
        self.files: TokenStore = FileStore(self.directory) if self.directory else NullStore()
        # Where a token in memory came from when it did not come through this cache (see adopt).
        self._adopted_from: dict[str, str] = {}

    @classmethod
    def shared(cls) -> TokenCache:
        """
        The process's cache for the ``[ecr]`` settings in effect (what hooks and backends use): one
        per directory, lock timeout and refresh policy, kept in :data:`airflow_ecr.process_state.STATE`,
        so that every hook and operator of a process shares its memory.
        """
        settings = ecr_settings()
        key = (cache_directory(settings), settings.lock_timeout, RefreshPolicy.of(settings))
        cache = STATE.token_caches.get(key)
        if cache is None:
            with STATE.lock:
                cache = STATE.token_caches.setdefault(key, cls(settings))
        return cache

    @staticmethod
    def key(identity: str, registry: EcrRegistry) -> str:
        """The cache key: identity, partition, region and registry; never a secret."""
        return fingerprint([identity, registry.partition, registry.region, registry.registry_id, registry.public])[:40]

    def keys(self, source: TokenSource, registries: Sequence[EcrRegistry]) -> dict[str, str]:
        """The key each registry's token for ``source`` is cached under, by registry host."""
        identity = self._recorded_identity(source, time.time())
        return {r.host: self.key(identity, r) for r in registries}

    def adopt(self, key: str, token: EcrToken, origin: str) -> bool:
        """
        Keep ``token`` in memory under ``key`` (see :meth:`keys`): a token another host obtained for the
        same identity and registry, such as one read back from a Kubernetes pull secret, so that a
        process with an empty cache asks ECR only when no such token is fresh. Kept only while not due
        for refresh by this cache's policy and newer than what memory holds; returns whether it was.

        :param origin: where it came from, for the provenance line.
        """
        held = self.memory.read(key)
        if self.policy.needs_refresh(token, time.time()) or (held is not None and held.issued_at >= token.issued_at):
            return False
        mask(token.password)
        self.memory.write(key, token)
        self._adopted_from[key] = origin
        return True

    def serves(self, keys: Iterable[str]) -> bool:
        """
        Whether :meth:`get` would ask ECR for none of ``keys`` (see :meth:`keys`): each has a token in
        memory or the host cache that is not due for refresh.

        :param keys: token cache keys.
        """
        now, origins = time.time(), dict[str, str]()
        return all(
            (token := self._lookup(key, now, origins)) is not None and not self.policy.needs_refresh(token, now)
            for key in keys
        )

    @staticmethod
    def _lock_name(identity: str, registry: EcrRegistry) -> str:
        return "lock-" + fingerprint([identity, registry.partition, registry.region, registry.public])[:40]

    def get(
        self, source: TokenSource, registries: Sequence[EcrRegistry], min_life: float = 0.0, requester: str = ""
    ) -> dict[str, EcrToken]:
        """
        Tokens for ``registries`` (keyed by registry host), fetching only what is missing or due;
        each handed out with its provenance line (:func:`log_provenance`).

        :param source: where to fetch tokens from.
        :param registries: the registries; those of one region share one API call.
        :param min_life: seconds a cached token must still be usable to be reused (for tokens that
            are stored or cached elsewhere); a newly fetched token is returned whatever its life.
        :param requester: who asks, named in the provenance line (e.g. ``connection 'docker_ml'``).
        """
        result: dict[str, EcrToken] = {}
        groups: dict[tuple[str, str, bool], list[EcrRegistry]] = {}
        for registry in registries:
            groups.setdefault((registry.partition, registry.region, registry.public), []).append(registry)
        for group in groups.values():
            identity, served = self._get_group(source, group, min_life)
            by_host = {registry.host: registry for registry in group}
            for host, (token, origin) in served.items():
                log_provenance(by_host[host], token, origin, identity, requester)
                result[host] = token
        return result

    def get_one(
        self, source: TokenSource, registry: EcrRegistry, min_life: float = 0.0, requester: str = ""
    ) -> EcrToken:
        """The token for one registry (see :meth:`get`)."""
        return self.get(source, [registry], min_life, requester)[registry.host]

    def _recorded_identity(self, source: TokenSource, now: float) -> str:
        """The source's identity, from the identity index when it has a fresh record (no connection lookup)."""
        locator = _locator(source)
        if locator is None:
            return source.identity
        identity = self.memory.read_identity(locator, now) or self.files.read_identity(locator, now)
        if identity is None:
            return self._record_identity(source, locator, now)
        recalled = getattr(source, "identity_recalled", None)
        if recalled is not None:
            recalled(identity)  # e.g. a missing connection still warns, though it was not read
        return identity

    def _record_identity(self, source: TokenSource, locator: str, now: float) -> str:
        """Record the source's identity for ``[ecr] identity_recheck`` seconds (0: never)."""
        identity = source.identity
        recheck = identity_recheck()
        if recheck > 0 and self.memory.read_identity(locator, now) != identity:
            self.memory.write_identity(locator, identity, now + recheck)
            self.files.write_identity(locator, identity, now + recheck)
        return identity

    def _lookup(self, key: str, now: float, origins: dict[str, str]) -> EcrToken | None:
        """
        The best cached token for ``key``: fresh if possible, else any still usable.

        :param origins: where each found token came from, by key (:data:`FROM_MEMORY` or
            :data:`FROM_HOST_CACHE`); updated here.
        """
        token = self.memory.read(key)
        origins[key] = self._adopted_from.get(key, FROM_MEMORY)
        if token is not None and not self.policy.needs_refresh(token, now):
            return token
        stored = self.files.read(key)
        if stored is not None and (token is None or stored.issued_at > token.issued_at):
            token = stored
            origins[key] = FROM_HOST_CACHE
            if self.policy.is_usable(token, now):
                mask(token.password)
                self.memory.write(key, token)
                self._adopted_from.pop(key, None)
        return token if token is not None and self.policy.is_usable(token, now) else None

    def _due(
        self, found: dict[str, EcrToken | None], registries: Sequence[EcrRegistry], min_life: float
    ) -> list[EcrRegistry]:
        now = time.time()
        return [r for r in registries if self.policy.needs_refresh(found[r.host], now, min_life)]

    def _get_group(
        self, source: TokenSource, registries: Sequence[EcrRegistry], min_life: float
    ) -> tuple[str, dict[str, tuple[EcrToken, str]]]:
        """The identity, and each registry's token with where it came from (by registry host)."""
        now = time.time()
        identity = self._recorded_identity(source, now)
        keys = {r.host: self.key(identity, r) for r in registries}
        origins: dict[str, str] = {}

        def served() -> tuple[str, dict[str, tuple[EcrToken, str]]]:
            return identity, {h: (t, origins[keys[h]]) for h, t in found.items() if t is not None}

        found = {host: self._lookup(key, now, origins) for host, key in keys.items()}
        due = self._due(found, registries, min_life)
        if not due:
            return served()
        locator = _locator(source)
        if locator is not None and source.identity != identity:
            # A fetch reads the connection: tokens are stored under the identity in effect now.
            identity = self._record_identity(source, locator, now)
            keys = {r.host: self.key(identity, r) for r in registries}
            found = {host: self._lookup(key, now, origins) for host, key in keys.items()}
            due = self._due(found, registries, min_life)
        # A process that may still hand out what it has (due for refresh, not expired) does not
        # wait for another process's refresh: it tries the lock once and serves its tokens if busy.
        serving = all(self.policy.can_serve(found[r.host], now, min_life) for r in due)
        waiting = due

        def stored_meanwhile() -> bool:
            """Whether another process stored what is due while we wait (polled by the lock)."""
            found.update({r.host: self._lookup(keys[r.host], time.time(), origins) for r in waiting})
            return not self._due(found, waiting, min_life)

        timeout = 0.0 if serving else self.settings.lock_timeout
        with self.files.lock(self._lock_name(identity, due[0]), timeout, ready=stored_meanwhile) as state:
            if state == "busy" and serving:
                return served()
            # Another process may have fetched while we waited for the lock.
            stored_meanwhile()
            due = self._due(found, due, min_life)
            if due:
                found.update(self._fetch(source, due, keys, found, origins))
        return served()

    def _fetch(
        self,
        source: TokenSource,
        due: Sequence[EcrRegistry],
        keys: dict[str, str],
        cached: dict[str, EcrToken | None],
        origins: dict[str, str],
    ) -> dict[str, EcrToken]:
        """
        Fetch what is ``due`` (or keep the cached tokens while ECR is failing).

        :param origins: where each token came from, by key; a fetched token's is set to :data:`FROM_ECR`.
        """
        try:
            fetched = source.fetch(due)
        except Exception as err:
            fallback = {r.host: token for r in due if (token := cached[r.host]) is not None}
            if not allows_stale_token(err) or len(fallback) < len(due):
                if (failure := failure_of(err)) is not None and failure.denies_identity:
                    self._drop(fallback, keys)
                raise
            for host in fallback:
                origins[keys[host]] += ", kept because refreshing failed"
            log.warning(
                "Using cached ECR tokens for %s (valid until %s) because refreshing failed: %s",
                ", ".join(fallback),
                ", ".join(utc_time(t.expires_at) for t in fallback.values()),
                err,
            )
            return fallback
        now = time.time()
        result: dict[str, EcrToken] = {}
        for registry in due:
            token = fetched[registry.registry_id]
            result[registry.host] = token
            key = keys[registry.host]
            origins[key] = FROM_ECR
            if (expired := expired_on_arrival(token, now)) is not None:
                # A token born expired (clock skew, or moto's 2015 dates) serves this call only.
                log.warning(
                    "ECR login for %s: %s; using it once without caching it. %s", registry.host, expired, CLOCK_ADVICE
                )
                continue
            self.memory.write(key, token)
            self._adopted_from.pop(key, None)
            self.files.write(key, token)
        return result

    def _drop(self, tokens: dict[str, EcrToken], keys: dict[str, str]) -> None:
        """Forget ``tokens`` (by registry host) in memory and on disk: AWS refused their identity."""
        for host, token in tokens.items():
            self.memory.remove(keys[host], token.password)
            self.files.remove(keys[host], token.password)
        if tokens:
            log.warning("Dropped the cached ECR tokens for %s: AWS refused their identity.", ", ".join(tokens))

    def invalidate(self, source: TokenSource, registry: EcrRegistry, token: EcrToken) -> None:
        """
        Forget ``token`` after the registry rejected it; a newer token (from another process) stays.

        The identity record of the source goes too, so the next lookup reads the connection again.

        :param source: the source the token came from.
        :param registry: the registry that rejected it.
        :param token: the rejected token.
        """
        key = self.key(self._recorded_identity(source, time.time()), registry)
        self.memory.remove(key, token.password)
        self.files.remove(key, token.password)
        locator = _locator(source)
        if locator is not None:
            self.memory.forget_identity(locator)
            self.files.forget_identity(locator)
