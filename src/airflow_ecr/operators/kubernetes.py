"""EcrKubernetesPodOperator: KubernetesPodOperator for images stored in Amazon ECR, on any cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import get_current_context, task_is_running
from airflow_ecr.images.record import XCOM_KEY, build_record
from airflow_ecr.images.reference import ImageName, digest_in_image_id
from airflow_ecr.kubernetes._provider import KubernetesPodOperator
from airflow_ecr.kubernetes.attach import PullSecrets
from airflow_ecr.kubernetes.pull_secrets import ecr_registries
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, ecr_settings

if TYPE_CHECKING:
    from airflow_ecr._compat import Context


class EcrKubernetesPodOperator(KubernetesPodOperator):
    """
    ``KubernetesPodOperator`` whose pod pulls its ECR images with a short-lived pull secret.

    Every container and init container whose image is on ECR (or on an alias declared in
    ``[ecr] registry_aliases``) is covered by one ``kubernetes.io/dockerconfigjson`` Secret, made
    from the host token cache just before the pod, owned by the pod once it exists (Kubernetes
    deletes it with the pod) and swept if a worker dies in between. Images elsewhere are left alone,
    and ``image_pull_secrets`` given to the operator are kept. The token is only in that Secret.

    The XCom ``ecr_image`` records the base container's image by the digest its node reported
    pulling (its ``imageID``), as the Docker operators record theirs; like the operator's own
    ``pod_name`` XCom, it is pushed whatever ``do_xcom_push`` (which adds a result sidecar) says.

    Takes every ``KubernetesPodOperator`` argument, plus:

    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, "aws_conn_id")
    # Tells airflow_ecr.kubernetes.pod_mutation_hook that this operator makes its own pull secret.
    adds_ecr_pull_secrets = True

    def __init__(self, *, aws_conn_id: str | None = DEFAULT_AWS_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self._ecr_pull_secret: str | None = None

    def build_pod_request_obj(self, context: Context | None = None, **kwargs: Any) -> Any:
        pod = super().build_pod_request_obj(context, **kwargs)
        # A dry run (``dry_run=True``, or no context on providers before that flag) makes no Secret.
        if context is not None and not kwargs.get("dry_run"):
            self._ecr_pull_secret = PullSecrets(self.client).attach(pod, self.aws_conn_id)
        return pod

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
        image = self.image or ""  # None with a full pod spec or template that names the image
        registries = ecr_registries([image], ecr_settings().registry_aliases) if image else []
        if not registries or remote_pod is None or remote_pod.status is None:
            return
        statuses = remote_pod.status.container_statuses or []
        image_id = next((s.image_id for s in statuses if s.name == self.base_container_name), None)
        digest = digest_in_image_id(image_id, ImageName.parse(image))
        record = build_record(image, registries[0].region, pulled=None, pull_digest=digest, inspect=None, pin=None)
        self.log.info("%s", record.log_line)
        ti = context.get("ti") if context else None
        if ti is not None:
            ti.xcom_push(key=XCOM_KEY, value=record.as_xcom())
