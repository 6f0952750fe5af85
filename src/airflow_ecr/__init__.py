"""airflow-ecr: Amazon ECR images in Airflow's Docker operators, with credentials handled for you."""

from __future__ import annotations

from importlib import import_module

# typing.TYPE_CHECKING without importing typing: the credential helper's warm get imports this
# package once per docker pull, and typing (with re) is a fifth of its imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# Public names, imported on first use so that `import airflow_ecr` stays cheap (provider discovery
# imports it in every Airflow process).
_LAZY = {
    "EcrDockerOperator": "airflow_ecr.operators.docker",
    "EcrDockerSwarmOperator": "airflow_ecr.operators.docker",
    "EcrDockerHook": "airflow_ecr.hooks.docker",
    "ecr_docker_task": "airflow_ecr.decorators.docker",
    "EcrCredentialRegisterOperator": "airflow_ecr.operators.credentials",
    "EcrDockerConnectionBackend": "airflow_ecr.secrets.ecr",
    "ecr_refresh_dag": "airflow_ecr.dags",
    "EcrRegistry": "airflow_ecr.registry",
    "TokenCache": "airflow_ecr.tokens.cache",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'airflow_ecr' has no attribute {name!r}")
