"""
What the checks share: the :class:`DoctorState` they read and fill in, the :class:`CheckResult`
each returns, and the :class:`Check` that names one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_ecr import exit_codes
from airflow_ecr.registry import EcrRegistry, ImageReference, parse_image, resolve_registry
from airflow_ecr.tokens.token import EcrToken

Status = Literal["ok", "warn", "fail", "info", "skip"]
# A check's (stable id, title), e.g. ("aws_identity", "AWS identity").
CheckId = tuple[str, str]


@dataclass(frozen=True)
class CheckResult:
    """
    The outcome of one check.

    :param name: the check's stable id, e.g. ``aws_identity`` (for ``--json``).
    :param title: how the table names the check.
    :param status: ``ok``, ``warn`` (works, but should be fixed), ``fail`` (a hard failure: the
        run stops), ``info`` or ``skip``.
    :param summary: what was found, in one sentence.
    :param fix: what to do about a failure or warning.
    :param exit_code: the command's exit code when this check failed.
    :param details: facts for machines (account, ARN, versions, digest, ...); never a secret.
    """

    name: str
    title: str
    status: Status
    summary: str
    fix: str | None = None
    exit_code: int = exit_codes.EXIT_OK
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DoctorState:
    """
    What the checks are about, and what earlier checks hand on to later ones.

    :param image: the image to check, or None.
    :param aws_conn_id: the Airflow AWS connection (None: boto3's default chain).
    :param docker_url: the Docker daemon URL (None: ``$DOCKER_HOST`` or the local socket).
    """

    image: str | None = None
    aws_conn_id: str | None = "aws_default"
    docker_url: str | None = None
    registry: EcrRegistry | None = None
    reference: ImageReference | None = None
    arn: str | None = None
    token: EcrToken | None = field(default=None, repr=False)
    client: Any = field(default=None, repr=False)
    daemon_platform: str | None = None

    def __post_init__(self) -> None:
        if self.image is not None and self.registry is None:
            # Raises ValueError with one sentence saying what is wrong with the reference.
            self.registry = resolve_registry(self.image)
            self.reference = parse_image(self.image)

    @property
    def who(self) -> str:
        """How messages name the AWS identity: its ARN once known, else the connection."""
        return self.arn or f"the identity of aws_conn_id={self.aws_conn_id!r}"

    def require_registry(self) -> EcrRegistry:
        """The image's registry, for the checks that need an image (:attr:`Check.needs_image`)."""
        if self.registry is None:
            raise ValueError("this check needs an image")
        return self.registry

    def scrub(self, text: str) -> str:
        """``text`` without the registry password (plain or base64), should a daemon echo it."""
        if self.token is None:
            return text
        secret = self.token.password
        encoded = base64.b64encode(f"{self.token.username}:{secret}".encode()).decode()
        return text.replace(encoded, "<token>").replace(secret, "<token>")


@dataclass(frozen=True)
class Check:
    """
    One check: its id, title, function, and whether it needs ``--image``.

    :param name: the stable id.
    :param title: how the table names it.
    :param run: the function; it may store what later checks need in the state.
    :param needs_image: skipped without an image.
    """

    name: str
    title: str
    run: Callable[[DoctorState], CheckResult]
    needs_image: bool = False


def result(check: CheckId, status: Status, summary: str, **kwargs: Any) -> CheckResult:
    """The result of ``check``: a :class:`CheckResult` with its id and title."""
    name, title = check
    return CheckResult(name=name, title=title, status=status, summary=summary, **kwargs)


def exit_code(results: Sequence[CheckResult]) -> int:
    """The exit code of the first failure, 0 when nothing failed (warnings included)."""
    return next((r.exit_code for r in results if r.status == "fail"), exit_codes.EXIT_OK)
