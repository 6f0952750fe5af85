"""
EcrCredentialRegisterOperator: write fresh ECR tokens into Airflow ``docker`` connections.

For DAGs that keep the stored-connection habit: a task before unmodified
``DockerOperator(docker_conn_id=...)`` tasks rewrites the docker connection with a live token.
Compared to the widely copied version (``airflow connections delete`` + ``airflow connections add
--conn-password <token>`` as subprocesses) the write here is an upsert that never deletes, runs in
the task's process, and never puts the token on a command line, in a log or in XCom.

The operator only turns its arguments into (connection id, registry) pairs; the work is
:mod:`airflow_ecr.connections`' (shared with ``airflow-ecr refresh-connection``):

- where the write goes (:mod:`airflow_ecr.connections.writers`): on Airflow 2 the metadata
  database, through the ORM, in one transaction; on Airflow 3, whose task processes have no
  database access, the api-server's REST API, found and authenticated through the Airflow
  connection ``api_conn_id`` (default ``airflow_api``, e.g. ``AIRFLOW_CONN_AIRFLOW_API='{"conn_type":
  "http", "host": "http://127.0.0.1:8080", "login": "admin", "password": "..."}'``);
- the naming rule for several registries (:mod:`airflow_ecr.connections.refresh`): with one
  registry id the connection is ``conn_id_name``; with several, ``conn_id_name`` may contain
  ``{registry_id}`` (and ``{region}``), e.g. ``"ecr_{registry_id}"``, and without that placeholder
  each connection is ``f"{conn_id_name}_{registry_id}"`` (``docker_ecr_123456789012``, ...);
- a registry given as a host (``registry=``) is written exactly as given: a FIPS
  (``dkr.ecr-fips``) or dual-stack (``dkr-ecr``, ``on.aws``) host stays one, and a FIPS host's
  token comes from the FIPS endpoint of the ECR API;
- only connections of type ``docker`` or ``ecr_docker`` (or new ones) are written: another
  type (``aws_default``, ``airflow_api``, ...) fails the task unchanged unless
  ``overwrite_other_types=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import BaseOperator
from airflow_ecr.connections import (
    DEFAULT_API_CONN_ID,
    connection_ids,
    default_writer,
    normalize_registry_ids,
    refresh_docker_connections,
)
from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.registry import EcrRegistry, registry_host, resolve_host
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID
from airflow_ecr.tokens.sources import EcrTokenSource

if TYPE_CHECKING:
    from airflow_ecr._compat import Context


class EcrCredentialRegisterOperator(BaseOperator):
    """
    Writes a fresh ECR token into docker connection(s), for ``DockerOperator(docker_conn_id=...)``.

    Takes the arguments of the widely copied community operator, so existing DAGs only change the
    import. The connection is upserted (never deleted), on Airflow 2 through the ORM and on Airflow
    3 through the REST API (see the module doc for ``api_conn_id``). Returns, as XCom, only
    non-secret facts: connection ids, hosts and expiry times.

    :param conn_id_name: the docker connection to (re)write; with several registry ids, see the
        naming rule in the module doc.
    :param region_name: the registries' region (default: the AWS connection's region).
    :param register_ids: the registry (account) ids, a list of 12-digit strings (community spelling).
    :param registry_ids: the same, correctly spelled; give one of the two.
    :param registry: instead of registry ids: one ECR registry host, written into the connection
        as given (FIPS and dual-stack hosts included).
    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param api_conn_id: Airflow 3: the connection holding the REST API's URL and credentials.
    :param overwrite_other_types: replace an existing connection of another type than ``docker``
        / ``ecr_docker`` (default False: the task fails and the connection is left unchanged).
    """

    template_fields: Sequence[str] = (
        "conn_id_name",
        "region_name",
        "register_ids",
        "registry_ids",
        "registry",
        "aws_conn_id",
    )
    ui_color = "#f5a847"

    def __init__(
        self,
        *,
        conn_id_name: str,
        region_name: str | None = None,
        register_ids: Sequence[str] | None = None,
        registry_ids: Sequence[str] | None = None,
        registry: str | None = None,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        api_conn_id: str | None = DEFAULT_API_CONN_ID,
        overwrite_other_types: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id_name = conn_id_name
        self.region_name = region_name
        self.register_ids = register_ids
        self.registry_ids = registry_ids
        self.registry = registry
        self.aws_conn_id = aws_conn_id
        self.api_conn_id = api_conn_id
        self.overwrite_other_types = overwrite_other_types

    def _region(self) -> str:
        if self.region_name:
            return self.region_name
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from botocore.exceptions import NoRegionError

        try:
            region = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="ecr").conn_region_name
        except NoRegionError:
            region = None
        if not region:
            raise EcrConfigurationError(
                f"No region: set region_name, or region_name in the extra of aws_conn_id={self.aws_conn_id!r}."
            )
        return str(region)

    def targets(self) -> list[tuple[str, EcrRegistry]]:
        """(connection id, registry) pairs, validated; raises EcrConfigurationError."""
        try:
            if self.registry is not None:
                if self.register_ids is not None or self.registry_ids is not None:
                    raise EcrConfigurationError("Give registry or register_ids, not both.")
                # The host as given: rebuilding it from its id and region would drop -fips / dual-stack.
                registries = [resolve_host(self.registry, region_name=self.region_name)]
                ids, region = [registries[0].account_id], registries[0].region
            else:
                ids = normalize_registry_ids(self.register_ids, self.registry_ids)
                region = self._region()
                registries = [resolve_host(registry_host(i, region)) for i in ids]
        except EcrConfigurationError:
            raise
        except ValueError as err:
            raise EcrConfigurationError(str(err)) from None
        return list(zip(connection_ids(self.conn_id_name, ids, region), registries, strict=True))

    def execute(self, context: Context) -> list[dict[str, str]]:
        logins = refresh_docker_connections(
            self.targets(),
            source=EcrTokenSource.from_connection(self.aws_conn_id),
            writer=default_writer(self.api_conn_id),
            overwrite_other_types=self.overwrite_other_types,
        )
        return [login.summary() for login in logins]
