"""
What the checks share: the :class:`DoctorState` they read and fill in, the :class:`CheckResult`
each returns, and the :class:`Check` that names one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_ecr import exit_codes
from airflow_ecr.registry import EcrRegistry, ImageReference, parse_registry_host, resolve_registry
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID
from airflow_ecr.tokens.token import EcrToken

if TYPE_CHECKING:
    from airflow_ecr.images.pull_through import Rewrite

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
        checks that need this one are skipped), ``info`` or ``skip``.
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

    :param image: the image to check, or None; an image of an upstream in ``[ecr] pull_through_cache``
        becomes its name in the pull-through cache, as the tasks pull it.
    :param aws_conn_id: the Airflow AWS connection (None: boto3's default chain).
    :param docker_url: the Docker daemon URL (None: ``$DOCKER_HOST`` or the local socket).
    :param named_in: what names the registry, for advice about a typo (the image name, or the
        fields of a connection).
    :param namespace: the Kubernetes namespace pods run in (None: no Kubernetes checks).
    :param kubernetes_conn_id: the cncf.kubernetes connection, as KubernetesPodOperator's.
    """

    image: str | None = None
    aws_conn_id: str | None = DEFAULT_AWS_CONN_ID
    docker_url: str | None = None
    named_in: str = "the image name"
    registry: EcrRegistry | None = None
    reference: ImageReference | None = None
    arn: str | None = None
    token: EcrToken | None = field(default=None, repr=False)
    client: Any = field(default=None, repr=False)
    daemon_platform: str | None = None
    namespace: str | None = None
    kubernetes_conn_id: str = "kubernetes_default"
    # The image policy's verdict, made once by the first policy check (doctor/policy.py).
    policy: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.image is not None and self.registry is None:
            # Raises ValueError with one sentence saying what is wrong with the reference.
            try:
                self.registry = image_registry(self.image)
            except ValueError:
                # Loads Airflow's configuration: only when needed. Doctor checks an image of a
                # pull-through upstream (busybox:1.36) as the tasks pull it, by its cache name.
                rewrite = _through_cache(self.image)
                if rewrite is not None:
                    self.image = rewrite.image
                    self.registry = image_registry(self.image)
                else:
                    aliases = _configured_aliases()
                    if not aliases:
                        raise
                    self.registry = image_registry(self.image, aliases)
            self.reference = ImageReference.parse(self.image)

    @property
    def account(self) -> str | None:
        """The identity's account, once STS told it (the fifth field of its ARN)."""
        parts = (self.arn or "").split(":")
        return parts[4] if len(parts) > 5 and parts[4] else None

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
    :param needs: the checks whose findings this one uses (a token, the daemon): it is skipped
        when one of them failed or was skipped, and runs otherwise (after a warning too).
    """

    name: str
    title: str
    run: Callable[[DoctorState], CheckResult]
    needs_image: bool = False
    needs: tuple[str, ...] = ()


def _configured_aliases() -> Mapping[str, EcrRegistry]:
    """The alias hosts declared in ``[ecr] registry_aliases``, as tasks see them."""
    from airflow_ecr.settings import ecr_settings

    return ecr_settings().registry_aliases


def _through_cache(image: str) -> Rewrite | None:
    """``image`` rewritten by ``[ecr] pull_through_cache``, as tasks rewrite it, or None."""
    from airflow_ecr.images.pull_through import through_cache
    from airflow_ecr.settings import ecr_settings

    return through_cache(image, ecr_settings().pull_through_rules)


def image_registry(image: str, aliases: Mapping[str, EcrRegistry] | None = None) -> EcrRegistry:
    """
    The registry of ``image``, or a ValueError saying what to fix in the image name.

    The registry module's sentence for a host that is not ECR speaks to operators (declare an alias,
    or give registry_id and region_name): doctor has no such options, so it says what is wrong with
    the host itself.

    :param image: the image reference given to doctor.
    :param aliases: the declared alias hosts.
    """
    try:
        return resolve_registry(image, aliases=aliases)
    except ValueError:
        ref = ImageReference.parse(image)  # a malformed reference raises its own sentence here
        if ref.host_given:
            try:
                parse_registry_host(ref.host)
            except ValueError as err:
                raise ValueError(
                    f"Image {image!r}: {err} Fix the registry host in the image name "
                    "(doctor checks images in Amazon ECR and in aliases declared in [ecr] registry_aliases)."
                ) from None
        raise


def result(check: CheckId, status: Status, summary: str, **kwargs: Any) -> CheckResult:
    """The result of ``check``: a :class:`CheckResult` with its id and title."""
    name, title = check
    return CheckResult(name=name, title=title, status=status, summary=summary, **kwargs)


def exit_code(results: Sequence[CheckResult]) -> int:
    """The exit code of the first failure, 0 when nothing failed (warnings included)."""
    return next((r.exit_code for r in results if r.status == "fail"), exit_codes.EXIT_OK)
