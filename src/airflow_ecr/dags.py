"""
``ecr_refresh_dag``: a DAG that keeps a docker connection's ECR token fresh on a schedule.

For teams that prefer a scheduled refresh inside Airflow to a task before every docker task::

    from datetime import timedelta
    from airflow_ecr.dags import ecr_refresh_dag

    dag = ecr_refresh_dag(conn_id="docker_ecr", registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com")

The default schedule is the refresh policy's interval
(:attr:`~airflow_ecr.tokens.policy.RefreshPolicy.refresh_interval`): ``[ecr] refresh_ratio`` of
ECR's 12-hour token life, every 6 hours by default. Each run writes a token that outlives the next
run (:attr:`~airflow_ecr.tokens.policy.RefreshPolicy.stored_token_min_life`), and a failed run is
retried while the previous token still works.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_ecr.connections import DEFAULT_API_CONN_ID
from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator
from airflow_ecr.registry import resolve_host
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID
from airflow_ecr.tokens.policy import RefreshPolicy


class _RefreshInterval:
    """The default ``schedule``: the refresh policy's interval, read from ``[ecr]`` when the DAG is built."""

    def __repr__(self) -> str:
        return "RefreshPolicy.refresh_interval"


# A marker, not None: ``schedule=None`` keeps Airflow's meaning (no schedule, manual runs only).
REFRESH_INTERVAL: Any = _RefreshInterval()


def ecr_refresh_dag(
    *,
    conn_id: str,
    registry: str,
    schedule: Any = REFRESH_INTERVAL,
    dag_id: str | None = None,
    aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
    api_conn_id: str | None = DEFAULT_API_CONN_ID,
    start_date: datetime | None = None,
    retries: int = 3,
    retry_delay: timedelta = timedelta(minutes=5),
    **dag_kwargs: Any,
) -> Any:
    """
    A DAG with one :class:`EcrCredentialRegisterOperator` task writing ``conn_id`` on ``schedule``.

    :param conn_id: the docker connection to keep fresh.
    :param registry: the ECR registry host, e.g. ``123456789012.dkr.ecr.eu-west-1.amazonaws.com``;
        written into the connection as given (a FIPS ``dkr.ecr-fips`` or dual-stack host stays one).
    :param schedule: the refresh schedule (a timedelta or cron expression; None: manual runs only).
        Default: the refresh policy's interval, ``[ecr] refresh_ratio`` of ECR's 12-hour token life
        (6 hours by default), which every written token outlives.
    :param dag_id: the DAG id (default ``ecr_refresh_<conn_id>``).
    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param api_conn_id: Airflow 3: the connection holding the REST API's URL and credentials.
    :param start_date: the DAG's start date (default: 2024-01-01 UTC; catchup is off).
    :param retries: task retries (a failed refresh is retried while the old token still works).
    :param retry_delay: delay between retries.
    :param dag_kwargs: more ``DAG`` arguments (``tags``, ``default_args``, ...).
    """
    try:
        ecr = resolve_host(registry)
    except ValueError as err:
        raise EcrConfigurationError(str(err)) from None
    if ecr.public:
        raise EcrConfigurationError("ECR Public needs no stored credentials for pulls: drop this DAG.")
    from airflow_ecr._compat import DAG

    if schedule is REFRESH_INTERVAL:
        schedule = RefreshPolicy.from_airflow_config().refresh_interval
    dag_kwargs.setdefault("catchup", False)
    # Two refreshes at once would be harmless (upserts) but pointless.
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault("tags", ["airflow-ecr"])
    with DAG(
        dag_id=dag_id or f"ecr_refresh_{conn_id}",
        schedule=schedule,
        start_date=start_date or datetime(2024, 1, 1, tzinfo=timezone.utc),
        **dag_kwargs,
    ) as dag:
        EcrCredentialRegisterOperator(
            task_id="refresh_ecr_connection",
            conn_id_name=conn_id,
            # The host as given, not rebuilt from account and region: a FIPS or dual-stack host stays one.
            registry=ecr.host,
            aws_conn_id=aws_conn_id,
            api_conn_id=api_conn_id,
            retries=retries,
            retry_delay=retry_delay,
        )
    return dag
