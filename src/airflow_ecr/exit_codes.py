"""
The exit codes of the ``airflow-ecr`` command, shared by every subcommand.

Pure constants, no imports: ``airflow-ecr --version`` and ``docs`` use them without loading Airflow.
Each error class in :mod:`airflow_ecr.exceptions` names the code it ends the command with.

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
# docker-credential-airflow-ecr: the protocol's error exit (as in github.com/docker/docker-credential-helpers).
EXIT_HELPER_PROTOCOL = 1
