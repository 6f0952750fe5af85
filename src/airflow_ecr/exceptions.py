"""
Every error airflow-ecr raises: each says what went wrong and what to do about it in one sentence,
and carries a machine-readable ``kind`` and the ``exit_code`` the ``airflow-ecr`` command ends with.

Errors about an AWS call also carry the :class:`~airflow_ecr.aws_failure.AwsFailure` they were
rendered from, so that callers (doctor) decide on data, never on message text. This module imports
no other module of airflow-ecr that raises: they import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_ecr import _compat, exit_codes
from airflow_ecr._compat import AirflowException

if TYPE_CHECKING:
    from airflow_ecr.aws_failure import AwsFailure


class EcrError(AirflowException):
    """
    Base class of every error airflow-ecr raises.

    :param message: the one sentence shown to the user.
    :param failure: the classified AWS failure the message was rendered from, if any.
    """

    kind: ClassVar[str] = "unexpected"
    exit_code: ClassVar[int] = exit_codes.EXIT_UNEXPECTED

    def __init__(self, message: str = "", *args: Any, failure: AwsFailure | None = None) -> None:
        super().__init__(message, *args)
        self.failure = failure


class EcrConfigurationError(EcrError, ValueError):
    """The task's arguments or the ``[ecr]`` settings do not describe an ECR image or registry (fix them)."""

    kind = "configuration"
    exit_code = exit_codes.EXIT_USAGE


class EcrMissingConnectionError(EcrConfigurationError):
    """``aws_conn_id`` names no Airflow connection, and ``[ecr] require_aws_connection`` refuses the default chain."""

    kind = "missing_aws_connection"


class DockerConfigError(EcrConfigurationError):
    """A Docker ``config.json`` that ``airflow-ecr configure-docker`` will not touch (left as it was),
    or a registry it cannot configure."""

    kind = "docker_config"


class EcrCredentialsError(EcrError):
    """AWS refused to hand out an ECR token: missing or invalid credentials, or missing permission."""

    kind = "aws_credentials"
    exit_code = exit_codes.EXIT_AWS_CREDENTIALS


class EcrServiceError(EcrError):
    """The ECR API could not be reached or kept failing, and no valid cached token was left."""

    kind = "aws_service"
    exit_code = exit_codes.EXIT_ECR_SERVICE


class EcrPullError(EcrError):
    """The registry refused the pull (image or tag missing, or the token rejected after one retry)."""

    kind = "pull"
    exit_code = exit_codes.EXIT_IMAGE


class EcrImageNotFoundError(EcrPullError):
    """The registry has no such repository, tag or digest (deleted, expired by a lifecycle policy, or mistyped)."""

    kind = "image_not_found"


class EcrRegistryUnavailableError(EcrPullError):
    """The registry could not be reached, answered 5xx, or answered in a way no registry should."""

    kind = "registry_unavailable"
    exit_code = exit_codes.EXIT_REGISTRY


class DockerDaemonError(EcrError):
    """The Docker daemon could not be reached."""

    kind = "docker_daemon"
    exit_code = exit_codes.EXIT_DOCKER


class EcrImagePolicyError(EcrError):
    """The image policy refused the image (``[ecr] image_policy``): the task does not start.

    :param verdict: the :class:`~airflow_ecr.trust.outcome.Verdict` that refused it, rule by rule.
    """

    kind = "image_policy"
    exit_code = exit_codes.EXIT_POLICY

    def __init__(self, message: str = "", *args: Any, verdict: Any = None) -> None:
        super().__init__(message, *args)
        self.verdict = verdict


class KubernetesPullSecretError(EcrError):
    """The Kubernetes API refused or failed a pull secret's create, patch or read (see the Role)."""

    kind = "kubernetes"
    exit_code = exit_codes.EXIT_KUBERNETES


class ConnectionWriteError(EcrError):
    """The Airflow connection could not be written (database or REST API unreachable or refusing)."""

    kind = "connection_write"
    exit_code = exit_codes.EXIT_WRITE


class AirflowFernetError(ConnectionWriteError):
    """
    Airflow's own Fernet encryption fails with the installed cryptography, so Airflow cannot store a
    connection password (:func:`airflow_ecr._compat.is_fernet_breakage`); the fix is the install's.
    """

    kind = "airflow_fernet"

    @staticmethod
    def sentence(what: str) -> str:
        """
        The one sentence for this failure, also used where it must be raised as another class.

        :param what: what could not be done, e.g. ``Cannot write connection 'docker_ecr'``.
        """
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = f"cryptography {version('cryptography')}"
        except PackageNotFoundError:
            installed = "the installed cryptography"
        airflow = ".".join(map(str, _compat.airflow_version()))
        return (
            f"{what}: Airflow {airflow}'s own Fernet encryption of connection passwords fails with {installed} "
            "('MultiFernet' object has no attribute 'is_encrypted'), a release newer than this Airflow supports; "
            "install Airflow with its constraints file, or `pip install 'cryptography<51'`."
        )


class _NotAuthoritative(Exception):
    """Stands in for ``AirflowSecretsBackendAccessDenied`` where Airflow has none (2.x, task SDK < 1.2.2)."""


if TYPE_CHECKING:
    _Authoritative = Exception
else:
    _Authoritative = _compat.optional("AirflowSecretsBackendAccessDenied") or _NotAuthoritative
# Whether Airflow re-raises a backend's EcrConnectionLookupError instead of trying the next backend.
LOOKUP_ERRORS_ARE_AUTHORITATIVE = _Authoritative is not _NotAuthoritative


class EcrConnectionLookupError(EcrError, _Authoritative):
    """
    A connection id the secrets backend owns could not be resolved; the message names it and what to fix.

    It is an ``AirflowSecretsBackendAccessDenied`` where Airflow has that class, so that Airflow
    does not fall through to the next backend and hide the reason.
    """

    kind = "connection_lookup"
