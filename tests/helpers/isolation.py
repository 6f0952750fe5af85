"""Keep unit tests away from the machine's AWS identity, Airflow settings and logging level."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest


def isolate_from_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *clear_prefixes: str) -> None:
    """
    No AWS identity from the environment, ``~/.aws`` or an instance role; a private ``[ecr]`` cache.

    :param clear_prefixes: further environment variable prefixes to clear (``AWS_`` and
        ``AIRFLOW__ECR__`` always are).
    """
    for name in list(os.environ):
        if name.startswith(("AWS_", "AIRFLOW__ECR__", *clear_prefixes)):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "cache"))


def aws_test_connection(monkeypatch: pytest.MonkeyPatch, endpoint_url: str, access_key: str, region: str) -> None:
    """An ``aws_test`` Airflow connection (environment variable) to the in-process ECR emulator."""
    connection = {
        "conn_type": "aws",
        "login": access_key,
        "password": "testing",
        "extra": {"region_name": region, "endpoint_url": endpoint_url},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(connection))


def keep_airflow_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """``airflow-ecr`` commands quiet Airflow's logging (for cron): undo that after the test."""
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"))
    airflow_logger = logging.getLogger("airflow")
    monkeypatch.setattr(airflow_logger, "level", airflow_logger.level)


def skip_unless_missing_connections_resolve(conn_id: str) -> None:
    """
    Skip where Airflow cannot even look up a missing connection outside a task: Airflow 3.1.0's own
    lookup raises ImportError there (AwsBaseHook's too), instead of AirflowNotFoundException.

    :param conn_id: a connection id that does not exist.
    """
    from airflow_ecr import _compat

    try:
        _compat.BaseHook.get_connection(conn_id)
    except _compat.AirflowNotFoundException:
        pass
    except ImportError:
        pytest.skip("this Airflow cannot look up a missing connection outside a task")
