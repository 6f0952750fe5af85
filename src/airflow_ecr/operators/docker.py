"""EcrDockerOperator and EcrDockerSwarmOperator: Docker operators for images stored in Amazon ECR."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.hooks.docker import DockerHook
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.docker.operators.docker_swarm import DockerSwarmOperator

from airflow_ecr._compat import BaseOperator
from airflow_ecr.hooks.docker import EcrDockerHook, early_registries

if TYPE_CHECKING:
    from airflow_ecr._compat import Context

ECR_TEMPLATE_FIELDS = ("aws_conn_id", "region_name", "registry_id", "registry_ids")


class EcrRegistryAuthMixin(BaseOperator):
    """
    What the ECR operators add to a Docker operator: the arguments saying where tokens come from,
    and a hook that authenticates with them.

    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param region_name: the registry's region; must agree with the image's host (it never makes a
        host an alias: declare aliases in ``[ecr] registry_aliases`` or an ``ecr_docker`` connection).
    :param registry_id: the registry's account id; must agree with the image's host.
    :param registry_ids: more registries (account ids, same region) to authenticate, fetched in
        the same ``GetAuthorizationToken`` call.
    """

    image: str
    docker_conn_id: str | None
    docker_url: Any
    api_version: str | None
    timeout: int
    tls_ca_cert: str | None
    tls_client_cert: str | None
    tls_client_key: str | None
    tls_verify: bool
    tls_hostname: str | bool | None
    tls_ssl_version: str | None

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        registry_id: str | None = None,
        registry_ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.registry_id = registry_id
        self.registry_ids = registry_ids
        if not _is_templated(self.image, region_name, registry_id, registry_ids):
            # Fail at DAG parse time when nothing is left to render.
            self._registries()

    def _registries(self) -> Any:
        # The same check as the hook's: an alias host must be declared in [ecr] registry_aliases or
        # by the ecr_docker docker_conn_id connection (checked when the hook reads it).
        target = {"image": self.image, "registry": None, "region_name": self.region_name,
                  "registry_id": self.registry_id, "registry_ids": self.registry_ids}  # fmt: skip
        return early_registries(target, self.docker_conn_id)

    @cached_property
    def hook(self) -> EcrDockerHook:
        """The hook, built from the rendered arguments at first use."""
        tls_config = DockerHook.construct_tls_config(
            ca_cert=self.tls_ca_cert,
            client_cert=self.tls_client_cert,
            client_key=self.tls_client_key,
            verify=self.tls_verify,
            assert_hostname=self.tls_hostname,
            ssl_version=self.tls_ssl_version,
        )
        return EcrDockerHook(
            image=self.image,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            registry_id=self.registry_id,
            registry_ids=self.registry_ids,
            docker_conn_id=self.docker_conn_id,
            base_url=self.docker_url,
            version=self.api_version,
            tls=tls_config,
            timeout=self.timeout,
        )

    def execute(self, context: Context) -> Any:
        self._registries()  # the rendered arguments, checked before anything connects
        return super().execute(context)


def _is_templated(*values: Any) -> bool:
    return any("{{" in str(v) or "{%" in str(v) for v in values if v is not None)


class EcrDockerOperator(EcrRegistryAuthMixin, DockerOperator):
    """
    Run a command in a container from an Amazon ECR image, logging in with a token from ECR.

    Takes every ``DockerOperator`` argument, plus the ones below. Nothing is fetched when the image
    is already local and ``force_pull`` is False; otherwise a cached token is used (one
    ``GetAuthorizationToken`` call per host per refresh period), and a token the registry rejects
    is refetched once.

    .. code-block:: python

        EcrDockerOperator(
            task_id="train",
            image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train:2.4",
            aws_conn_id="aws_default",
            command="python train.py",
        )

    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param region_name: the registry's region; must agree with the image's host (it never makes a
        host an alias: declare aliases in ``[ecr] registry_aliases`` or an ``ecr_docker`` connection).
    :param registry_id: the registry's account id; must agree with the image's host.
    :param registry_ids: more registries (account ids, same region) to authenticate, fetched in
        the same ``GetAuthorizationToken`` call.
    """

    template_fields: Sequence[str] = (*DockerOperator.template_fields, *ECR_TEMPLATE_FIELDS)


class EcrDockerSwarmOperator(EcrRegistryAuthMixin, DockerSwarmOperator):
    """
    Run a Docker Swarm service from an Amazon ECR image; the service carries the registry login so
    that whichever node runs it can pull.

    Takes every ``DockerSwarmOperator`` argument, plus those of :class:`EcrDockerOperator`.

    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param region_name: the registry's region; must agree with the image's host (it never makes a
        host an alias: declare aliases in ``[ecr] registry_aliases`` or an ``ecr_docker`` connection).
    :param registry_id: the registry's account id; must agree with the image's host.
    :param registry_ids: more registries (account ids, same region) to authenticate.
    """

    template_fields: Sequence[str] = (*DockerSwarmOperator.template_fields, *ECR_TEMPLATE_FIELDS)
