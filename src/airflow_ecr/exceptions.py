"""Exceptions of airflow-ecr: each one says what went wrong and what to do about it."""

from __future__ import annotations

from airflow_ecr._compat import AirflowException


class EcrError(AirflowException):
    """Base class of every error airflow-ecr raises."""


class EcrConfigurationError(EcrError, ValueError):
    """The task's arguments do not describe an ECR image or registry (fix the DAG)."""


class EcrCredentialsError(EcrError):
    """AWS refused to hand out an ECR token: missing or invalid credentials, or missing permission."""


class EcrServiceError(EcrError):
    """The ECR API could not be reached or kept failing, and no valid cached token was left."""


class EcrPullError(EcrError):
    """The registry refused the pull (image or tag missing, or the token rejected after one retry)."""


class DockerDaemonError(EcrError):
    """The Docker daemon could not be reached."""
