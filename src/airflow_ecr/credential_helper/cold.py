"""
The credential helper's cold path: a ``get`` the index could not answer. Airflow's configuration,
the ``[ecr] aws_conn_id`` connection and :class:`~airflow_ecr.tokens.cache.TokenCache`, exactly as
every other mode uses them (single flight across the host's processes, identity keying, refresh
policy, stale fallback while ECR fails, throttling retries); then the index record that lets the
next ``get`` of this host skip all of it (:mod:`~airflow_ecr.credential_helper.index`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from airflow_ecr.credential_helper import index
from airflow_ecr.registry import EcrRegistry, resolve_host
from airflow_ecr.settings import default_aws_conn_id, ecr_settings, identity_recheck
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.store import FileStore
from airflow_ecr.tokens.token import EcrToken

REQUESTER = "docker-credential-airflow-ecr"


class NotServed(LookupError):
    """The host is neither an ECR registry nor a declared alias: Docker goes on without credentials."""


def served_registry(host: str) -> EcrRegistry:
    """
    The registry behind ``host``: an ECR host stands for itself, any other host only if declared in
    ``[ecr] registry_aliases`` (a token goes only where the deployment said).

    :param host: the registry host (:func:`~airflow_ecr.credential_helper.index.server_host`).
    :raises NotServed: for any other host.
    """
    try:
        return resolve_host(host, aliases=ecr_settings().registry_aliases)
    except ValueError as err:
        raise NotServed(str(err)) from None


def cold_get(host: str, locator: str, environ: Mapping[str, str] = os.environ) -> EcrToken:
    """
    The token for ``host`` through the token cache, and the index record for the next warm ``get``.

    :param host: the registry host.
    :param locator: the asking process's :func:`~airflow_ecr.credential_helper.index.locator`.
    :param environ: the environment (``os.environ``), for the index directory.
    :raises NotServed: when the host is not one this helper serves.
    :raises EcrError: what went wrong, in one sentence (credentials, ECR, configuration).
    """
    registry = served_registry(host)
    source = EcrTokenSource.from_connection(default_aws_conn_id())
    cache = TokenCache.shared()
    token = cache.get_one(source, registry, requester=REQUESTER)
    remember(cache, source, registry, token, (locator, environ))
    return token


def remember(
    cache: TokenCache,
    source: EcrTokenSource,
    registry: EcrRegistry,
    token: EcrToken,
    asker: tuple[str, Mapping[str, str]],
) -> None:
    """
    Write the index record of ``registry.host`` for ``token`` when the warm path may use it: the host
    cache is on (the record points into it) and ``[ecr] identity_recheck`` is not 0.

    :param asker: the asking process's locator and environment.
    """
    locator, environ = asker
    recheck = identity_recheck()
    directory = cache.directory
    if recheck <= 0 or directory is None or not isinstance(cache.files, FileStore):
        return
    now = time.time()
    policy = cache.policy
    serve_until = min(policy.refresh_at(token), token.expires_at - policy.expiry_margin(token))
    if serve_until <= now:
        return  # a token kept while refreshing fails, or one never cached: the next get asks again
    key = cache.keys(source, [registry])[registry.host]
    times = (serve_until, now + recheck)
    where, name, data = index.record(registry.host.lower(), key, directory, token, times, locator, environ)
    FileStore(Path(where)).write_record(name, index.INDEX_SUFFIX, data)
