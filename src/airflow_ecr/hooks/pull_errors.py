"""
What a Docker daemon's pull error means, and the error it becomes: one rule for tasks and doctor. Pure.

The daemon passes the registry's answer on as text only, so the classification reads that text,
with the image reference taken out first.
"""

from __future__ import annotations

from airflow_ecr.exceptions import EcrImageNotFoundError, EcrPullError, EcrRegistryUnavailableError

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


def classify_pull_error(message: str, image: str) -> str:
    """
    ``"auth"``, ``"not_found"``, ``"unavailable"`` or ``"other"`` for a daemon's pull error message.

    The image reference is taken out first: a tag ``v401`` or a repository called ``unauthorized``
    must not read as a credentials problem.
    """
    text = message.lower().replace(image.lower(), "<image>")
    if any(marker in text for marker in _AUTH_ERRORS):
        return "auth"
    if any(marker in text for marker in _NOT_FOUND_ERRORS):
        return "not_found"
    if any(marker in text for marker in _UNAVAILABLE_ERRORS):
        return "unavailable"
    return "other"


def pull_error(image: str, host: str, message: str, kind: str, retried: bool = False) -> EcrPullError:
    """A pull failure turned into an error that says what to check."""
    if kind == "auth":
        what = "rejected a freshly fetched token too" if retried else "rejected the credentials"
        return EcrPullError(
            f"Registry {host} {what} for {image}: check that the AWS identity may "
            f"ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on this repository "
            f"(its repository policy too, for cross-account pulls). Registry said: {message}"
        )
    if kind == "not_found":
        return EcrImageNotFoundError(
            f"Image {image} was not found in {host}: check the repository name and tag "
            f"(or digest). Registry said: {message}"
        )
    if kind == "unavailable":
        return EcrRegistryUnavailableError(f"Registry {host} could not serve {image}: {message}")
    return EcrPullError(f"Pulling {image} from {host} failed: {message}")
