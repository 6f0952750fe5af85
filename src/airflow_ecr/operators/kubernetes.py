"""EcrKubernetesPodOperator: KubernetesPodOperator for images stored in Amazon ECR, on any cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import get_current_context, task_is_running
from airflow_ecr.exceptions import EcrImageNotFoundError
from airflow_ecr.hooks.docker import EcrDockerHook, replicas
from airflow_ecr.images.pins import Pin, pin_for, pinned_digest_gone
from airflow_ecr.images.pull_through import through_cache
from airflow_ecr.images.record import XCOM_KEY, build_record
from airflow_ecr.images.reference import digest_in_image_id
from airflow_ecr.kubernetes._provider import KubernetesPodOperator
from airflow_ecr.kubernetes.attach import PullSecrets, use_pull_through_cache
from airflow_ecr.kubernetes.policy import enforce_image_policy
from airflow_ecr.kubernetes.pull_secrets import ecr_registries
from airflow_ecr.operators.docker import is_templated
from airflow_ecr.registry import EcrRegistry, ImageReference
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, ecr_settings

if TYPE_CHECKING:
    from airflow_ecr._compat import Context
    from airflow_ecr.trust.outcome import Verdict

# What the ECR Kubernetes operator and decorator render on top of the provider's fields.
ECR_KUBERNETES_TEMPLATE_FIELDS = ("aws_conn_id", "pinned_images", "fallback_regions")


class EcrKubernetesPodOperator(KubernetesPodOperator):
    """
    ``KubernetesPodOperator`` whose pod pulls its ECR images with a short-lived pull secret.

    Every container and init container whose image is on ECR (or on an alias declared in
    ``[ecr] registry_aliases``) is covered by one ``kubernetes.io/dockerconfigjson`` Secret, made
    from the host token cache just before the pod, owned by the pod once it exists (Kubernetes
    deletes it with the pod) and swept if a worker dies in between. Images elsewhere are left alone,
    and ``image_pull_secrets`` given to the operator are kept. The token is only in that Secret.

    The base container's image (``image``) can be run by digest: the digest this DAG run pinned
    (``pinned_images``) or its tag resolved now (``resolve_digest``, one manifest ``HEAD``) goes into
    the pod spec, so that every node runs exactly that. With ``fallback_regions`` that ``HEAD`` is
    made in any case, and when the image's region fails the pod is given the replica's image.

    The XCom ``ecr_image`` records the base container's image by the digest its node reported
    pulling (its ``imageID``), or pinned, as the Docker operators record theirs; like the
    operator's own ``pod_name`` XCom, it is pushed whatever ``do_xcom_push`` (which adds a result
    sidecar) says.

    Takes every ``KubernetesPodOperator`` argument, plus:

    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param pinned_images: the result of an :class:`~airflow_ecr.operators.images.EcrPinImagesOperator`
        (``pin.output``): run the digest this DAG run pinned the image's tag to.
    :param resolve_digest: resolve the tag to its digest when the pod is made (one manifest
        ``HEAD``) and run that digest.
    :param fallback_regions: regions the repository is replicated to (ECR replication), asked in
        order when the image's region fails (its ECR API or registry unreachable, 5xx, still
        throttled) before the pod is made; never on a refusal (401/403) or a missing image (404).
        A region failing after that is the kubelet's to retry.
    :param image_policy: this task's image policy, tightening the deployment's (``[ecr]
        image_policy``), as on the Docker operators: every ECR container's image is resolved, that
        digest checked and put into the pod spec before the pod exists.
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, *ECR_KUBERNETES_TEMPLATE_FIELDS)
    # Tells airflow_ecr.kubernetes.pod_mutation_hook that this operator makes its own pull secret.
    adds_ecr_pull_secrets = True

    def __init__(
        self,
        *,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        pinned_images: Any = None,
        resolve_digest: bool = False,
        fallback_regions: Sequence[str] | str | None = None,
        image_policy: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.image_policy = image_policy
        self.pinned_images = pinned_images
        self.resolve_digest = resolve_digest
        self.fallback_regions = fallback_regions
        self._ecr_pull_secret: str | None = None
        self._ecr_placed: tuple[EcrRegistry, ImageReference, Pin | None] | None = None
        self._ecr_verdict: Verdict | None = None
        if self.image and fallback_regions and not is_templated(self.image, fallback_regions):
            # Bad regions fail at DAG parse time when nothing is left to render, as in the Docker operators.
            registries = ecr_registries([self.image], ecr_settings().registry_aliases)
            if registries:
                replicas(registries[0], fallback_regions)

    def build_pod_request_obj(self, context: Context | None = None, **kwargs: Any) -> Any:
        pod = super().build_pod_request_obj(context, **kwargs)
        # A dry run (``dry_run=True``, or no context on providers before that flag) makes no Secret.
        if context is not None and not kwargs.get("dry_run"):
            use_pull_through_cache(pod)  # first: pins, replicas and the Secret are the cache name's
            given = self._place_base_image(pod)
            verdicts = enforce_image_policy(
                pod, self.aws_conn_id, self.image_policy, f"task {self.task_id!r}",
                named_as={self.base_container_name: given} if given else None,
            )  # fmt: skip
            self._ecr_verdict = verdicts.get(self.base_container_name)
            self._ecr_pull_secret = PullSecrets(self.client).attach(pod, self.aws_conn_id)
        return pod

    def _place_base_image(self, pod: Any) -> str | None:
        """
        Put the base container's image into the pod spec by the digest it runs (pinned, or resolved
        now) and in the region that answers, when the operator was asked to; else leave it be.

        :param pod: the pod request (changed in place).
        :returns: the image as given, when it was placed (its scope for the image policy), else None.
        """
        self._ecr_placed = None
        container = next((c for c in pod.spec.containers if c.name == self.base_container_name), None)
        asked_for = self.pinned_images is not None or self.resolve_digest or self.fallback_regions
        if container is None or not container.image or not asked_for:
            return None
        image = container.image
        registries = ecr_registries([image], ecr_settings().registry_aliases)
        if not registries:
            return None  # not on ECR: nothing to resolve, pin or fail over
        name = ImageReference.parse(image)
        pin = pin_for(self.pinned_images, name, image) if self.pinned_images is not None else None
        hook = EcrDockerHook(image=image, aws_conn_id=self.aws_conn_id, fallback_regions=self.fallback_regions)
        asked = name.name_by_digest(pin.digest) if pin is not None else name.name_on_host(name.host)
        try:
            registry, manifest = hook.resolve_in_any_region(asked)
        except EcrImageNotFoundError:
            if pin is None:
                raise
            raise pinned_digest_gone(image, pin, name.host) from None
        if pin is None and self.resolve_digest and name.digest is None:
            pin = Pin.of(manifest)
        ran = ImageReference.parse(name.name_on_host(registry.host))
        container.image = ran.name_by_digest(pin.digest) if pin is not None else ran.name_on_host(registry.host)
        if container.image != image:
            self.log.info("Running %s as %s", image, container.image)
        self._ecr_placed = (registry, ran, pin)
        return image

    def get_or_create_pod(self, pod_request_obj: Any, context: Context) -> Any:
        pod = super().get_or_create_pod(pod_request_obj, context)
        name = self._ecr_pull_secret
        if name is not None:
            namespace = pod_request_obj.metadata.namespace
            secrets = PullSecrets(self.client)
            if pod.metadata.name == pod_request_obj.metadata.name:
                secrets.own_when_created(namespace, name, pod.metadata.name)
            else:  # reattached to the pod of an earlier try, which has its own Secret
                secrets.delete(namespace, name)
        return pod

    def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> Any:
        # The provider passes the context to cleanup only from 10.x on; the task's own context is
        # the same object, on every version.
        context = kwargs.get("context") or (args[1] if len(args) > 1 else None)
        if context is None and task_is_running():
            context = get_current_context()
        self._record_image(remote_pod, context)
        return super().cleanup(pod, remote_pod, *args, **kwargs)

    def _record_image(self, remote_pod: Any, context: Any) -> None:
        """Log and push (XCom ``ecr_image``) what the base container ran, as its node reported it."""
        requested = self.image or ""  # None with a full pod spec or template that names the image
        settings = ecr_settings()
        rewrite = through_cache(requested, settings.pull_through_rules) if requested else None
        image = rewrite.image if rewrite is not None else requested
        registries = ecr_registries([image], settings.registry_aliases) if image else []
        if not registries or remote_pod is None or remote_pod.status is None:
            return
        registry, name, pin = self._ecr_placed or (registries[0], ImageReference.parse(image), None)
        statuses = remote_pod.status.container_statuses or []
        image_id = next((s.image_id for s in statuses if s.name == self.base_container_name), None)
        digest = digest_in_image_id(image_id, name)
        record = build_record(
            image, registry.region, pulled=None, pull_digest=digest, inspect=None, pin=pin, name=name,
            requested=requested if rewrite is not None else None,
            policy=self._ecr_verdict.as_record() if self._ecr_verdict is not None else None,
        )  # fmt: skip
        self.log.info("%s", record.log_line)
        ti = context.get("ti") if context else None
        if ti is not None:
            ti.xcom_push(key=XCOM_KEY, value=record.as_xcom())
