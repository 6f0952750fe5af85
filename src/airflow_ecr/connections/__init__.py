"""
Stored docker connections: where they are written (:mod:`~airflow_ecr.connections.writers`: the
ORM or the Airflow 3 REST API) and how they are refreshed (:mod:`~airflow_ecr.connections.refresh`).

Used by :class:`~airflow_ecr.operators.credentials.EcrCredentialRegisterOperator` and by
``airflow-ecr refresh-connection``; neither module imports an operator. A write that fails raises
:class:`~airflow_ecr.exceptions.ConnectionWriteError`.
"""

from __future__ import annotations

from airflow_ecr.connections.refresh import (
    DockerLogin,
    connection_ids,
    normalize_registry_ids,
    refresh_docker_connections,
)
from airflow_ecr.connections.writers import (
    DEFAULT_API_CONN_ID,
    ConnectionWriter,
    OrmConnectionWriter,
    RestApiConnectionWriter,
    default_writer,
)

__all__ = [
    "DEFAULT_API_CONN_ID",
    "ConnectionWriter",
    "DockerLogin",
    "OrmConnectionWriter",
    "RestApiConnectionWriter",
    "connection_ids",
    "default_writer",
    "normalize_registry_ids",
    "refresh_docker_connections",
]
