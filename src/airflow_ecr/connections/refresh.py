"""
Refreshing docker connections: fresh ECR tokens in, one upsert per registry.

Used by :class:`~airflow_ecr.operators.credentials.EcrCredentialRegisterOperator` (and so by
:func:`~airflow_ecr.dags.ecr_refresh_dag`) and by ``airflow-ecr refresh-connection``. How long a
written token must last is the refresh policy's rule
(:attr:`~airflow_ecr.tokens.policy.RefreshPolicy.stored_token_min_life`): until the next rewrite.

Naming rule for several registries: with one registry id the connection is ``conn_id_name``. With
several, ``conn_id_name`` may contain ``{registry_id}`` (and ``{region}``), e.g.
``"ecr_{registry_id}"``; without that placeholder each connection is
``f"{conn_id_name}_{registry_id}"`` (``docker_ecr_123456789012``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_ecr.connections.writers import ConnectionWriter
from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.registry import EcrRegistry, validate_account_id
from airflow_ecr.tokens.cache import TokenCache, TokenSource
from airflow_ecr.tokens.token import EcrToken, utc_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DockerLogin:
    """
    What is written into one docker connection.

    :param conn_id: the Airflow connection id.
    :param registry: the ECR registry (its host becomes the connection's host).
    :param token: the ECR token (its password becomes the connection's password).
    """

    conn_id: str
    registry: EcrRegistry
    token: EcrToken = field(repr=False)

    def summary(self) -> dict[str, str]:
        """Non-secret facts about the write, fit for XCom and logs."""
        return {
            "conn_id": self.conn_id,
            "host": self.registry.host,
            "expires_at": utc_time(self.token.expires_at),
        }


def connection_ids(conn_id_name: str, registry_ids: Sequence[str], region: str) -> list[str]:
    """
    The connection id of each registry id (the module doc's naming rule).

    :param conn_id_name: the connection id, or a template with ``{registry_id}`` / ``{region}``.
    :param registry_ids: the registry ids, in order.
    :param region: the registries' region.
    """
    if not isinstance(conn_id_name, str) or not conn_id_name.strip():
        raise EcrConfigurationError(f"conn_id_name must be a non-empty connection id, got {conn_id_name!r}.")
    if "{" in conn_id_name:
        try:
            names = [conn_id_name.format(registry_id=i, region=region) for i in registry_ids]
        except (KeyError, IndexError, ValueError):
            raise EcrConfigurationError(
                f"conn_id_name {conn_id_name!r} may use only the placeholders {{registry_id}} and {{region}}."
            ) from None
    elif len(registry_ids) == 1:
        names = [conn_id_name]
    else:
        names = [f"{conn_id_name}_{i}" for i in registry_ids]
    if len(set(names)) != len(names):
        raise EcrConfigurationError(
            f"conn_id_name {conn_id_name!r} gives the same connection id to several registries: "
            "use {registry_id} in it."
        )
    return names


def _is_account_id(value: object) -> bool:
    try:
        validate_account_id(value)
    except ValueError:
        return False
    return True


def normalize_registry_ids(register_ids: Any, registry_ids: Any) -> list[str]:
    """
    The registry ids from ``register_ids`` (the community spelling) or ``registry_ids``.

    :raises EcrConfigurationError: if both differ, none is given, or an id is not 12 digits.
    """
    if register_ids is not None and registry_ids is not None and list(register_ids) != list(registry_ids):
        raise EcrConfigurationError("Give register_ids or registry_ids (the same thing), not both.")
    ids = register_ids if register_ids is not None else registry_ids
    if isinstance(ids, str):
        ids = [i.strip() for i in ids.split(",")]  # "111111111111,222222222222", as from a template
    if not ids or not isinstance(ids, (list, tuple)):
        raise EcrConfigurationError(
            f"register_ids must be a non-empty list of 12-digit registry (account) ids, got {ids!r}."
        )
    bad = [i for i in ids if not _is_account_id(i)]
    if bad:
        raise EcrConfigurationError(
            f"register_ids has malformed registry ids {bad!r}: each must be a 12-digit AWS account id "
            "string, e.g. '123456789012' (quoted, leading zeros kept)."
        )
    return list(dict.fromkeys(ids))


def refresh_docker_connections(
    targets: Sequence[tuple[str, EcrRegistry]],
    *,
    source: TokenSource,
    writer: ConnectionWriter,
    cache: TokenCache | None = None,
    overwrite_other_types: bool = False,
) -> list[DockerLogin]:
    """
    Fetch tokens for the registries, then upsert one docker connection per registry.

    Every token is fetched before anything is written: an AWS error leaves every connection as it
    was.

    :param targets: (connection id, registry) pairs.
    :param source: the AWS identity tokens are fetched with.
    :param writer: where connections are written.
    :param cache: the token cache (default: the process's, configured from ``[ecr]``).
    :param overwrite_other_types: replace a connection of another type than docker / ecr_docker
        (by default such a connection is left alone and the write fails).
    """
    cache = cache or TokenCache.shared()
    # A stored token must outlive the next refresh, not just the next pull: no half-used tokens.
    registries = [registry for _, registry in targets]
    tokens = cache.get(source, registries, min_life=cache.policy.stored_token_min_life)
    logins = [DockerLogin(conn_id, registry, tokens[registry.host]) for conn_id, registry in targets]
    for login in logins:
        writer.upsert(
            login.conn_id,
            host=login.registry.host,
            login=login.token.username,
            password=login.token.password,
            overwrite_other_types=overwrite_other_types,
        )
        log.info(
            "Wrote docker connection %r for registry %s to %s (token valid until %s).",
            login.conn_id,
            login.registry.host,
            writer.description,
            login.summary()["expires_at"],
        )
    return logins
