"""
The exit codes of the ``airflow-ecr`` command, shared by every subcommand.

Pure constants, no imports: ``airflow-ecr --version`` and ``docs`` use them without loading Airflow.
Each error class in :mod:`airflow_ecr.exceptions` names the code it ends the command with, and
:func:`error_result` is the one exception -> exit code mapping (the command's and the credential
helper's).

====  ===========================================================================
0     success (doctor: no check failed; warnings allowed)
1     unexpected error
2     bad arguments (usage, malformed image, registry id, host or region) or ``[ecr]`` configuration
3     AWS refused: no or invalid credentials, no ``ecr:GetAuthorizationToken``, or (doctor) the
      registry refused the identity (``ecr:BatchGetImage``)
4     the AWS API (ECR, STS) was unreachable or failing
5     refresh-connection: the connection could not be written (database or REST API down or refusing)
6     doctor: the Docker daemon could not be reached
7     doctor: the registry could not be reached from the Docker daemon
8     doctor: the image (repository, tag or digest) does not exist
9     the Kubernetes API refused or failed a pull secret's create, patch or read
10    the image policy (``[ecr] image_policy``) refused the image: a scan finding, a missing or
      untrusted signature, or a check it could not complete
====  ===========================================================================

``docker-credential-airflow-ecr`` speaks Docker's credential-helper protocol, whose clients read only
zero or non-zero: it ends with 1 for the protocol's own errors (credentials not found: a host it
does not serve; no server URL; an unknown action), as Docker's helpers do, 2 for a refused ``store``
or ``erase``, and an airflow-ecr error's own code when a ``get`` fails (3 credentials, 4 ECR, ...).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AWS_CREDENTIALS = 3
EXIT_ECR_SERVICE = 4
EXIT_WRITE = 5
EXIT_DOCKER = 6
EXIT_REGISTRY = 7
EXIT_IMAGE = 8
EXIT_KUBERNETES = 9
EXIT_POLICY = 10
# docker-credential-airflow-ecr: the protocol's error exit (as in github.com/docker/docker-credential-helpers).
EXIT_HELPER_PROTOCOL = 1


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see airflow_ecr/__init__.py)
if TYPE_CHECKING:
    from typing import Any


def ecr_error_of(err: BaseException) -> Any:
    """
    ``err`` if it is an airflow-ecr error (an :class:`~airflow_ecr.exceptions.EcrError`), else None.

    Typed ``Any``: :mod:`airflow_ecr.exceptions` sits above this module (it imports these codes).
    """
    import sys

    # Never imported: err cannot be one of its errors (and importing it now would load Airflow).
    exceptions = sys.modules.get("airflow_ecr.exceptions")
    if exceptions is not None and isinstance(err, exceptions.EcrError):
        return err
    return None


def error_result(err: Exception) -> tuple[int, str]:
    """
    (exit code, message) for an exception out of a command: the one exception -> exit code mapping.

    An airflow-ecr error names its exit code (``EcrError.exit_code``) and says what to fix; any
    other exception is unexpected, named by its type only: its text could carry anything,
    including a secret.
    """
    own = ecr_error_of(err)
    if own is not None:
        return own.exit_code, str(own)
    return EXIT_UNEXPECTED, f"unexpected {type(err).__name__}; rerun with --verbose for the traceback"
