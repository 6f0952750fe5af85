"""EcrDockerOperator and EcrDockerSwarmOperator: Docker operators for images stored in Amazon ECR."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.hooks.docker import DockerHook
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.docker.operators.docker_swarm import DockerSwarmOperator

from airflow_ecr._compat import AirflowException, BaseOperator
from airflow_ecr.exceptions import EcrError, EcrImageNotFoundError, EcrPullError
from airflow_ecr.hooks._docker_compat import KeepsLastServiceTask
from airflow_ecr.hooks.daemon_messages import names_missing_image
from airflow_ecr.hooks.docker import EcrDockerHook, registries_before_connection, replicas
from airflow_ecr.hooks.pull_errors import first_pull_error
from airflow_ecr.images.pins import Pin, pin_for, pinned_digest_gone
from airflow_ecr.images.pull_through import Rewrite, through_cache
from airflow_ecr.images.record import XCOM_KEY, ImageRecord, build_record
from airflow_ecr.registry import ImageReference
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, ecr_settings

if TYPE_CHECKING:
    from airflow_ecr._compat import Context
    from airflow_ecr.trust.outcome import Verdict

ECR_TEMPLATE_FIELDS = ("aws_conn_id", "region_name", "registry_id", "registry_ids", "pinned_images", "fallback_regions")


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
    :param pinned_images: the result of an :class:`~airflow_ecr.operators.images.EcrPinImagesOperator`
        (``pin.output``): run the digest this DAG run pinned the image's tag to.
    :param resolve_digest: resolve the tag to its digest first (one manifest ``HEAD``) and pull and
        run that digest, so that the record is exactly what ran (default: on for swarm services,
        which nodes pull themselves, off otherwise).
    :param fallback_regions: regions the repository is replicated to (ECR replication), tried in
        order when the image's region fails (its ECR API or registry unreachable, 5xx, or still
        throttled): the same repository and tag (or pinned digest) is pulled from the replica.
        Never on a refusal (401/403) or a missing image (404).
    :param image_policy: this task's image policy, tightening the deployment's (``[ecr]
        image_policy``) for this image, or standing alone where none applies: ``{"scan": {...},
        "signature": {...}}`` as one rule of the policy file (docs/image-policy.md). A value that
        would loosen the deployment's rule fails the task. With a policy in force the tag is
        resolved, that digest checked, then pulled and run.

    An image of a registry named in ``[ecr] pull_through_cache`` (``busybox:1.36`` for
    ``docker.io=...``) is pulled by its name in the ECR pull-through cache, with everything above.
    """

    do_xcom_push: bool
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
    _resolve_by_default = False  # the swarm operator's nodes pull themselves: it resolves by default
    _ecr_given = ""  # the image argument (rendered): never rewritten
    _ecr_running: str | None = None  # while the task runs, the image that runs (a cache name, a digest, a replica)

    @property
    def image(self) -> str:
        """
        The image the DAG gave (rendered); while the task runs, the image that runs: its name in
        the pull-through cache, its pinned digest, its replica's. The docker provider reads it.
        """
        return self._ecr_running or self._ecr_given

    @image.setter
    def image(self, value: str) -> None:
        self._ecr_given = value

    def __init__(
        self,
        *,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        region_name: str | None = None,
        registry_id: str | None = None,
        registry_ids: Sequence[str] | None = None,
        pinned_images: Any = None,
        resolve_digest: bool | None = None,
        fallback_regions: Sequence[str] | str | None = None,
        image_policy: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.image_policy = image_policy
        self.region_name = region_name
        self.registry_id = registry_id
        self.registry_ids = registry_ids
        self.pinned_images = pinned_images
        self.resolve_digest = self._resolve_by_default if resolve_digest is None else resolve_digest
        self.fallback_regions = fallback_regions
        self._ecr_image = ""  # the image the hook, pins, replicas and record work with (after the rewrite)
        self._ecr_name: ImageReference | None = None
        self._ecr_pin: Pin | None = None
        self._ecr_verdict: Verdict | None = None
        self._ecr_record: ImageRecord | None = None
        self._ecr_rewrite: Rewrite | None = None
        self._ecr_hook: EcrDockerHook | None = None  # while it runs: the hook of the region it runs from
        if not is_templated(self.image, region_name, registry_id, registry_ids, fallback_regions):
            # Fail at DAG parse time when nothing is left to render.
            self._registries()

    def _registries(self) -> Any:
        # The same check as the hook's: an alias host must be declared in [ecr] registry_aliases or
        # by the ecr_docker docker_conn_id connection (checked when the hook reads it).
        rewrite = through_cache(self.image, ecr_settings().pull_through_rules)
        target = {"image": rewrite.image if rewrite else self.image, "registry": None, "region_name": self.region_name,
                  "registry_id": self.registry_id, "registry_ids": self.registry_ids}  # fmt: skip
        registries = registries_before_connection(target, self.docker_conn_id)
        if registries is not None:
            replicas(registries[0], self.fallback_regions)
        return registries

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
            image=self._ecr_image or self.image,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            registry_id=self.registry_id,
            registry_ids=self.registry_ids,
            fallback_regions=self.fallback_regions,
            docker_conn_id=self.docker_conn_id,
            base_url=self.docker_url,
            version=self.api_version,
            tls=tls_config,
            timeout=self.timeout,
        )

    def execute(self, context: Context) -> Any:
        # The rendered image, rewritten before anything connects: the hook, the pins, the replicas
        # and the record all work with the name in the pull-through cache from here on.
        self._ecr_rewrite = rewrite = through_cache(self._ecr_given, ecr_settings().pull_through_rules)
        self._ecr_record = None
        self._ecr_verdict = None
        if rewrite is not None:
            self.log.info("%s", rewrite.log_line())
        self._ecr_image = self._ecr_running = rewrite.image if rewrite is not None else self._ecr_given
        try:
            return self._execute_in_regions(context)
        except EcrPullError as err:
            if rewrite is None:
                raise
            raise first_pull_error(err, rewrite) from None
        finally:
            self._ecr_running = None
            ti = context.get("ti")  # None when a test calls execute({}) directly
            if self._ecr_record is not None and self.do_xcom_push and ti is not None:
                ti.xcom_push(key=XCOM_KEY, value=self._ecr_record.as_xcom())

    def _execute_in_regions(self, context: Context) -> Any:
        """Run the image from its region, or from its replicas in ``fallback_regions`` when that fails (the hook's)."""
        self._registries()  # the rendered arguments, checked before anything connects
        try:
            _, result = self.hook.in_each_region(
                self._ecr_image, lambda hook, image: self._execute_from(context, hook, image), "pulling it from"
            )
            return result
        finally:
            self._ecr_hook = None

    @property
    def cli(self) -> Any:
        """The docker provider's client: that of the region the image runs from (:attr:`hook`'s, or a replica's)."""
        return (self._ecr_hook or self.hook).api_client

    def _execute_from(self, context: Context, hook: EcrDockerHook, image: str) -> Any:
        """
        The Docker operator's execute in one region: pulling ``image`` (the image there) or its pin
        with ``hook`` (that region's).
        """
        self._ecr_hook = hook
        self._ecr_name = name = ImageReference.parse(image)
        # The deployment's scopes name the image in its main region; a replica is checked as itself.
        rule = hook.image_rule(self._ecr_image, self.image_policy, f"task {self.task_id!r}")
        self._ecr_pin = pin = self._pin(hook, name, must_resolve=rule is not None)
        digest = pin.digest if pin is not None else name.digest
        # Checked on the digest that is pulled next: no window between the check and the pull.
        self._ecr_verdict = hook.check_image_policy(rule, image, digest) if rule is not None and digest else None
        hook.on_run = self._record_image
        self._ecr_running = name.name_by_digest(pin.digest) if pin is not None else image
        try:
            return super().execute(context)
        except EcrImageNotFoundError:
            if pin is None:
                raise
            raise pinned_digest_gone(self._ecr_image, pin, name.host) from None

    def _pin(self, hook: EcrDockerHook, name: ImageReference, must_resolve: bool = False) -> Pin | None:
        """
        The digest to pull and run ``name`` by: this run's pin, the tag resolved now (by ``hook``), or none.

        :param must_resolve: resolve the tag even without ``resolve_digest`` (an image policy checks the digest).
        """
        if self.pinned_images is not None:
            return pin_for(self.pinned_images, ImageReference.parse(self._ecr_image), self._ecr_image)
        if not (self.resolve_digest or must_resolve) or name.digest is not None:
            return None
        image = name.name_on_host(name.host)
        pin = Pin.of(hook.resolve_manifest(image))
        self.log.info("Resolved %s to %s", image, name.name_by_digest(pin.digest))
        return pin

    def _record_image(self, image: str, pulled_here: bool) -> None:
        """Work out which digest is about to run, log it, and keep it for XCom and lineage.

        :param image: the image the container or service is created from.
        :param pulled_here: whether this process's daemon runs the image (not a swarm node).
        """
        if self._ecr_record is not None or image != self.image:  # a retried create; a sidecar image
            return
        hook = self._ecr_hook or self.hook
        client = hook.api_client
        inspect = None
        if pulled_here:
            try:
                inspect = client.inspect_image(self.image)
            except Exception as err:  # the container start will say what is wrong
                self.log.info("Could not inspect %s: %s", self.image, err)
        record = build_record(
            self._ecr_image,
            hook.registries[0].region,
            name=self._ecr_name,
            pulled=(self.image in client.pull_digests) if pulled_here else None,
            pull_digest=client.pull_digests.get(self.image),
            inspect=inspect,
            pin=self._ecr_pin,
            requested=self._ecr_rewrite.requested if self._ecr_rewrite else None,
            policy=self._ecr_verdict.as_record() if self._ecr_verdict is not None else None,
        )
        if record.note:
            self.log.info("%s", record.note)
        self.log.info("%s", record.log_line)
        self._ecr_record = record

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The image that ran, as an OpenLineage run facet (called by the OpenLineage provider only)."""
        from airflow_ecr.lineage import image_lineage

        return image_lineage(self._ecr_record)


def is_templated(*values: Any) -> bool:
    """Whether any of ``values`` is still a Jinja template (rendered only when the task runs)."""
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

    The ECR arguments (``aws_conn_id``, ``region_name``, ``registry_id``, ``registry_ids``,
    ``pinned_images``, ``resolve_digest``, ``fallback_regions``) are documented once, on
    :class:`EcrRegistryAuthMixin`.
    """

    template_fields: Sequence[str] = (*DockerOperator.template_fields, *ECR_TEMPLATE_FIELDS)


class EcrDockerSwarmOperator(EcrRegistryAuthMixin, KeepsLastServiceTask, DockerSwarmOperator):
    """
    Run a Docker Swarm service from an Amazon ECR image; the service carries the registry login so
    that whichever node runs it can pull.

    Takes every ``DockerSwarmOperator`` argument, plus the ECR arguments documented on
    :class:`EcrRegistryAuthMixin` (``resolve_digest`` is on by default here: every node runs the
    digest recorded).
    """

    template_fields: Sequence[str] = (*DockerSwarmOperator.template_fields, *ECR_TEMPLATE_FIELDS)
    _resolve_by_default = True  # as `docker service create`: every node runs the digest recorded

    def execute(self, context: Context) -> Any:
        self.last_service_task = None
        try:
            return super().execute(context)
        except EcrError:
            raise
        except AirflowException as err:
            # DockerSwarmOperator's "Service did not complete" does not say why; a node that could
            # not pull says so in its task's status, which the provider never shows.
            failure = self._node_failure()
            if failure is None:
                raise
            raise failure from err

    def _node_failure(self) -> Exception | None:
        """The error of a service task that never ran because its node could not pull the image, else None."""
        from airflow_ecr.exceptions import EcrPullError

        task = self.last_service_task
        status = (task or {}).get("Status", {})
        if status.get("State") not in ("rejected", "failed") or status.get("ContainerStatus", {}).get("ContainerID"):
            return None  # it ran (and exited non-zero), or it is not over: the provider's error says enough
        said = str(status.get("Err") or status.get("Message") or status.get("State"))
        node = self._node_name(str(task.get("NodeID", ""))) if task else "?"
        if not names_missing_image(said):
            self.log.error("Swarm node %s did not start the service's task: %s", node, said)
            return None
        image = str(task.get("Spec", {}).get("ContainerSpec", {}).get("Image") or self.image) if task else self.image
        host = ImageReference.parse(image).host
        return EcrPullError(
            f"Swarm node {node} could not pull {image}, so the service's task never started (the node said: "
            f"{said}): check that the node reaches {host} on port 443 (DNS, routes, proxy, firewall) and that "
            "the login the service carries had not expired when the task started; the registry's own answer "
            "is in that node's Docker daemon log."
        )

    def _node_name(self, node_id: str) -> str:
        try:
            hostname = self.cli.inspect_node(node_id)["Description"]["Hostname"]
        except Exception:  # the node may be gone: its id is still worth showing
            return node_id or "?"
        return f"{hostname} ({node_id})"
