"""An ECR registry login (:class:`EcrToken`) and the parsing of ECR's ``authorizationData``."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import logging
import re
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_ecr.registry import parse_registry_host

# How the masker recognises a form of a password (:func:`mask_patterns`): its first characters, then
# the rest of its run of base64, base64url and URL-encoded characters.
MASK_PREFIX_LENGTH = 16
_TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "+/=_-%")
_TOKEN_RUN = "[A-Za-z0-9+/=_%-]*"  # noqa: S105 (a character class)
# What URL-encoding changes in base64 (``quote`` with safe="" and safe="/"), as str.translate tables:
# quote() is pure Python, a few hundred microseconds per thousand characters.
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")
_QUOTED = {"": str.maketrans({"+": "%2B", "/": "%2F", "=": "%3D"}), "/": str.maketrans({"+": "%2B", "=": "%3D"})}
# The version of the JSON a token is stored as in the host cache; other versions read as a miss.
CACHE_FORMAT_VERSION = 1
ECR_PUBLIC_PROXY_ENDPOINT = "https://public.ecr.aws"


def utc_time(epoch: float) -> str:
    """
    An instant as every log line, message and summary shows a token's expiry: ISO 8601 in UTC, to
    the second (``2026-12-07T17:44:02Z``), whatever the host's time zone.

    :param epoch: epoch seconds.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


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


def secret_forms(password: str, username: str = "AWS", authorization_token: str | None = None) -> list[str]:
    """
    Every form an ECR registry password travels in: the password, ECR's ``authorizationToken``
    (``base64("<username>:<password>")``), and each of them URL-encoded (a query string, a form body).

    :param password: the registry password.
    :param username: the registry user (always ``AWS`` for ECR).
    :param authorization_token: the token exactly as ECR sent it, should its base64 differ from ours.
    """
    forms = [password, base64.b64encode(f"{username}:{password}".encode()).decode()]
    if authorization_token:
        forms.append(authorization_token)
    encoded = [_url_encoded(form, safe) for form in forms for safe in _QUOTED]
    return list(dict.fromkeys([*forms, *encoded]))


def _url_encoded(form: str, safe: str) -> str:
    """``quote(form, safe=safe)``, in C for base64 (every ECR form)."""
    return form.translate(_QUOTED[safe]) if _BASE64.issuperset(form) else quote(form, safe=safe)


def mask_patterns(password: str, username: str = "AWS", authorization_token: str | None = None) -> list[str]:
    """
    The masker's regexes for every form of a password (:func:`secret_forms`): each form's first 16
    characters, then any run of base64, base64url and URL-encoded characters, which covers the
    rest of the form (and any such characters glued to it).

    Short, whatever the password's length, and computed without the forms themselves: a regex costs
    compile time per character, and an ECR password's forms are thousands of characters each.
    ECR's passwords (base64 of a JSON document) all begin alike, so these are the same few regexes
    for every ECR token: a process compiles them once. A password with other characters gets its
    forms' exact patterns.

    :param password: the registry password.
    :param username: the registry user (always ``AWS`` for ECR).
    :param authorization_token: the token exactly as ECR sent it.
    """
    given = [password, *([authorization_token] if authorization_token else [])]
    if len(password) < MASK_PREFIX_LENGTH or not all(_TOKEN_CHARACTERS.issuperset(form) for form in given):
        return list(dict.fromkeys(re.escape(form) for form in secret_forms(password, username, authorization_token)))
    # URL-encoding maps each character on its own and never shortens: a form's prefix is the encoded prefix's.
    heads = [password, base64.b64encode(f"{username}:{password[:MASK_PREFIX_LENGTH]}".encode()).decode(), *given[1:]]
    heads = [head[:MASK_PREFIX_LENGTH] for head in heads]
    heads += [_url_encoded(head, safe)[:MASK_PREFIX_LENGTH] for head in heads for safe in _QUOTED]
    return [re.escape(head) + _TOKEN_RUN for head in dict.fromkeys(heads)]


def mask(password: str, username: str = "AWS", authorization_token: str | None = None) -> None:
    """
    Register every form of a registry password (:func:`secret_forms`) with Airflow's secret
    masker, so no task log line can show any of them.

    :param password: the registry password.
    :param username: the registry user (always ``AWS`` for ECR).
    :param authorization_token: the token exactly as ECR sent it.
    """
    from airflow_ecr._compat import add_mask_patterns

    add_mask_patterns(
        mask_patterns(password, username, authorization_token),
        lambda: secret_forms(password, username, authorization_token),
    )


# botocore logs every response body at DEBUG (``botocore.parsers``), before any caller can mask what
# is in it; for GetAuthorizationToken that body is the token. The filter drops the parser's records
# only while this context variable is set, i.e. in the thread (or task) making the token call, so
# every other botocore call keeps its debugging output.
_IN_TOKEN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("airflow_ecr_in_token_call", default=False)
_BOTOCORE_BODY_LOGGER = "botocore.parsers"


class _TokenResponseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _IN_TOKEN_CALL.get()


_TOKEN_RESPONSE_FILTER = _TokenResponseFilter()


@contextlib.contextmanager
def token_response_unlogged() -> Iterator[None]:
    """
    Around a ``GetAuthorizationToken`` call: botocore's parser logs nothing (headers, body, parse
    errors) in this context, so the token in the response body never reaches a log at any level.
    """
    logger = logging.getLogger(_BOTOCORE_BODY_LOGGER)
    if _TOKEN_RESPONSE_FILTER not in logger.filters:
        # Checked on every call, as a logging configuration applied later may have replaced filters.
        logger.addFilter(_TOKEN_RESPONSE_FILTER)
    reset = _IN_TOKEN_CALL.set(True)
    try:
        yield
    finally:
        _IN_TOKEN_CALL.reset(reset)


def decode_authorization_token(token: str) -> tuple[str, str]:
    """Split ECR's ``base64("AWS:<password>")`` into username and password."""
    username, _, password = base64.b64decode(token).decode("utf-8").partition(":")
    if not username or not password:
        raise ValueError("ECR returned a malformed authorization token")
    return username, password


def token_from(data: dict[str, Any], proxy_endpoint: str | None = None) -> EcrToken:
    """
    One ``authorizationData`` entry as a token, every form of its password masked at once.

    :param data: the entry (``authorizationToken``, ``expiresAt``, ``proxyEndpoint``).
    :param proxy_endpoint: the endpoint to record when the entry has none (ECR Public).
    """
    username, password = decode_authorization_token(data["authorizationToken"])
    mask(password, username, data["authorizationToken"])
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
        from airflow_ecr.exceptions import EcrServiceError  # imports Airflow: only on this rare path

        raise EcrServiceError(f"ECR returned no authorization token for registry ids {missing}.")
    return tokens
