"""
What a Docker daemon said, and what a registry said through it, read into a kind. Pure.

The one module that matches their text: a task's pull (:mod:`airflow_ecr.hooks.docker`), a swarm
node's task status (:mod:`airflow_ecr.operators.docker`) and doctor's daemon, registry and manifest
checks (:mod:`airflow_ecr.doctor.docker`) ask it; what each kind becomes is theirs to say
(:mod:`airflow_ecr.hooks.pull_errors` for a pull).

The daemon passes the registry's answer on as text only, so the classification reads that text,
with the image reference taken out first.
"""

from __future__ import annotations

from typing import Literal

PullErrorKind = Literal["auth", "not_found", "unavailable", "other"]
DaemonFailureKind = Literal["no_socket", "permission", "refused", "timeout", "other"]

# What the daemon says when a registry refuses the credentials it was given (or got none).
_AUTH_ERRORS = (
    "no basic auth credentials",
    "denied:",  # ECR: "denied: User: ... is not authorized to perform: ecr:BatchGetImage ..."
    "authorization token has expired",
    "unauthorized:",
    "401 unauthorized",
    "authentication required",
)
_NOT_FOUND_ERRORS = ("manifest unknown", "not found", "name unknown", "does not exist")
# What the daemon says when the registry is down or unreachable (a regional outage, not a refusal).
_UNAVAILABLE_ERRORS = (
    "connection refused",
    "connection reset",
    "no route to host",
    "network is unreachable",
    "no such host",
    "i/o timeout",
    "tls handshake timeout",
    "context deadline exceeded",
    "client.timeout exceeded",
    "unexpected http status: 5",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
)
# What the daemon says when it cannot resolve the registry's name (Go's resolver: "dial tcp: lookup <host> ...").
_UNKNOWN_HOST_ERRORS = ("no such host", "dial tcp: lookup ", "name resolution")
# What a registry's "not found" says when the repository itself is missing (not just the tag or digest).
_MISSING_REPOSITORY_ERRORS = ("name unknown", "repository")
# What a swarm node's task status says when the node could not get the image.
_MISSING_IMAGE_ERRORS = ("no such image",)


def classify_pull_error(message: str, image: str) -> PullErrorKind:
    """
    ``"auth"``, ``"not_found"``, ``"unavailable"`` or ``"other"`` for a daemon's pull error message.

    The image reference is taken out first: a tag ``v401`` or a repository called ``unauthorized``
    must not read as a credentials problem.
    """
    text = message.lower().replace(image.lower(), "<image>")
    if _says(text, _AUTH_ERRORS):
        return "auth"
    if _says(text, _NOT_FOUND_ERRORS):
        return "not_found"
    if _says(text, _UNAVAILABLE_ERRORS):
        return "unavailable"
    return "other"


def names_missing_repository(message: str) -> bool:
    """Whether a registry's "not found" (see :func:`classify_pull_error`) is about the repository, not the tag."""
    return _says(message.lower(), _MISSING_REPOSITORY_ERRORS)


def names_unknown_host(message: str) -> bool:
    """Whether the daemon could not resolve the registry's name."""
    return _says(message.lower(), _UNKNOWN_HOST_ERRORS)


def names_missing_image(message: str) -> bool:
    """Whether a swarm node's task failed because the node had no such image (it could not pull it)."""
    return _says(message.lower(), _MISSING_IMAGE_ERRORS)


def pull_stream_error(item: object) -> str | None:
    """The error message in one item of a streamed pull (``{"error": ..., "errorDetail": ...}``), else None."""
    if isinstance(item, dict) and ("error" in item or "errorDetail" in item):
        detail = item.get("errorDetail") or {}
        return str(item.get("error") or detail.get("message") or item)
    return None


def classify_daemon_failure(error: str) -> DaemonFailureKind:
    """
    Why the daemon did not answer, from docker-py's error text: ``"no_socket"``, ``"permission"``
    (this user may not open the socket), ``"refused"``, ``"timeout"`` or ``"other"``.
    """
    if "No such file or directory" in error or "FileNotFoundError" in error:
        return "no_socket"
    if "Permission denied" in error or "PermissionError" in error:
        return "permission"
    if "Connection refused" in error:
        return "refused"
    if "timed out" in error.lower():
        return "timeout"
    return "other"


def _says(text: str, markers: tuple[str, ...]) -> bool:
    return any(marker in text for marker in markers)
