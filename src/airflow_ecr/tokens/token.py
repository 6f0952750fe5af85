"""An ECR registry login (:class:`EcrToken`) and the parsing of ECR's ``authorizationData``."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_ecr.exceptions import EcrServiceError
from airflow_ecr.registry import parse_registry_host

# The version of the JSON a token is stored as in the host cache; other versions read as a miss.
CACHE_FORMAT_VERSION = 1
ECR_PUBLIC_PROXY_ENDPOINT = "https://public.ecr.aws"


@dataclass(frozen=True)
class EcrToken:
    """
    A registry login obtained from ECR.

    Whether a token may still be handed out is the refresh policy's question
    (:class:`~airflow_ecr.tokens.policy.RefreshPolicy`), not the token's.

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

    @property
    def lifetime(self) -> float:
        """Seconds from issue to expiry (ECR: 12 hours)."""
        return max(0.0, self.expires_at - self.issued_at)

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


def mask(secret: str) -> None:
    """Register ``secret`` with Airflow's secret masker, so no task log line can show it."""
    from airflow_ecr._compat import mask_secret

    mask_secret(secret)


def decode_authorization_token(token: str) -> tuple[str, str]:
    """Split ECR's ``base64("AWS:<password>")`` into username and password."""
    username, _, password = base64.b64decode(token).decode("utf-8").partition(":")
    if not username or not password:
        raise ValueError("ECR returned a malformed authorization token")
    return username, password


def token_from(data: dict[str, Any], proxy_endpoint: str | None = None) -> EcrToken:
    """
    One ``authorizationData`` entry as a token, its password masked at once.

    :param data: the entry (``authorizationToken``, ``expiresAt``, ``proxyEndpoint``).
    :param proxy_endpoint: the endpoint to record when the entry has none (ECR Public).
    """
    username, password = decode_authorization_token(data["authorizationToken"])
    mask(password)
    expires = data["expiresAt"]
    expires_at = expires.timestamp() if hasattr(expires, "timestamp") else float(expires)
    return EcrToken(
        username=username,
        password=password,
        proxy_endpoint=data.get("proxyEndpoint") or proxy_endpoint or "",
        expires_at=expires_at,
        issued_at=time.time(),
    )


def tokens_by_registry_id(authorization_data: list[dict[str, Any]], ids: Sequence[str]) -> dict[str, EcrToken]:
    """
    Match ECR's ``authorizationData`` entries to the registry ids asked for.

    Entries are matched by the account in their ``proxyEndpoint``, and by position when the
    endpoint is not an ECR host (as with some emulators and VPC endpoints).
    """
    tokens: dict[str, EcrToken] = {}
    for position, data in enumerate(authorization_data):
        token = token_from(data)
        try:
            registry_id = parse_registry_host(token.proxy_endpoint).registry_id
        except ValueError:
            registry_id = ids[position] if position < len(ids) else ""
        tokens[registry_id] = token
    missing = [i for i in ids if i not in tokens]
    if missing:
        raise EcrServiceError(f"ECR returned no authorization token for registry ids {missing}.")
    return tokens
