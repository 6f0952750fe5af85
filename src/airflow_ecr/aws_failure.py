"""
A failed AWS call as data (:class:`AwsFailure`): what it means (its ``kind``) and what follows
from that (a stale token allowed, the identity's tokens dropped, the exit code).

Errors carry it (:mod:`airflow_ecr.exceptions`); :mod:`airflow_ecr.tokens.aws_errors` builds it
from a botocore exception and words it. This module imports neither, so that the errors stay a leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airflow_ecr import exit_codes

FailureKind = Literal[
    "no_credentials",
    "partial_credentials",
    "no_region",
    "unreachable",
    "timeout",
    "access_denied",
    "invalid_credentials",
    "invalid_parameter",
    "throttled",
    "service_error",
    "client_error",
    "unparseable",
    "unexpected",
]
# Kinds that mean the identity (its credentials, region or permissions) must be fixed; the others
# are the service's or the network's.
CREDENTIAL_KINDS = frozenset(
    {"no_credentials", "partial_credentials", "no_region", "access_denied", "invalid_credentials", "invalid_parameter"}
)
# Kinds that say nothing about whether the identity may still have tokens: the service or the
# network failed (5xx, throttling, unreachable, no answer). Only after these may a cached, still
# valid token be served; after a denial or rejected credentials it must not (a revocation would
# stay hidden until the token expires).
STALE_TOKEN_KINDS = frozenset({"unreachable", "timeout", "throttled"})
# Kinds that mean AWS itself refused this identity: its cached tokens are dropped too.
DENIAL_KINDS = frozenset({"access_denied", "invalid_credentials"})
# Error codes of a failing service, for answers that carry no HTTP status.
SERVER_ERROR_CODES = ("ServerException", "InternalFailure", "InternalError", "ServiceUnavailable")


@dataclass(frozen=True)
class AwsFailure:
    """
    A failed AWS call, classified.

    :param kind: what it means (see :data:`FailureKind`).
    :param code: AWS's error code, or the botocore exception's name.
    :param message: AWS's error message, or botocore's text (never contains a secret).
    :param endpoint: the API endpoint called, when known.
    :param attempts: how many attempts botocore made (with its retries).
    :param status: the HTTP status of AWS's answer, when there was one.
    """

    kind: FailureKind
    code: str
    message: str = ""
    endpoint: str | None = None
    attempts: int = 1
    status: int | None = None

    @property
    def allows_stale_token(self) -> bool:
        """
        Whether a cached, still valid token may be served instead: only when the service or the
        network failed (5xx, throttling, unreachable, no answer), never after AWS refused the
        identity or for a failure that cannot be told apart from that.
        """
        if self.kind in STALE_TOKEN_KINDS:
            return True
        server_failed = (self.status or 0) >= 500 or (self.status is None and self.code in SERVER_ERROR_CODES)
        return self.kind == "service_error" and server_failed

    @property
    def denies_identity(self) -> bool:
        """Whether AWS refused the identity itself (permission or credentials): its cached tokens are dropped."""
        return self.kind in DENIAL_KINDS

    @property
    def exit_code(self) -> int:
        """The ``airflow-ecr`` exit code for this failure."""
        if self.kind == "unexpected":
            return exit_codes.EXIT_UNEXPECTED
        return exit_codes.EXIT_AWS_CREDENTIALS if self.kind in CREDENTIAL_KINDS else exit_codes.EXIT_ECR_SERVICE
