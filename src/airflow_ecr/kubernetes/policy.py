"""
The image policy for pods: every container and init container whose image is on ECR runs the digest
that was checked, before the pod (or its pull secret) exists.

An image named by tag is resolved (one manifest ``HEAD``), that digest checked, and the container
set to ``<registry>/<repository>@<digest>``: the kubelet then pulls exactly what passed, so there is
no window between the check and the pull. Both ways in use it: ``EcrKubernetesPodOperator`` (with
the task's own ``image_policy``) and the pod mutation hook for an unmodified
``KubernetesPodOperator`` (the deployment's policy only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ecr.hooks.docker import EcrDockerHook
from airflow_ecr.kubernetes.pull_secrets import ecr_registries
from airflow_ecr.registry import ImageReference
from airflow_ecr.settings import ecr_settings

if TYPE_CHECKING:
    from airflow_ecr.trust.outcome import Verdict

log = logging.getLogger(__name__)


def enforce_image_policy(
    pod: Any,
    aws_conn_id: str | None,
    dag_policy: Mapping[str, Any] | None,
    where: str,
    named_as: Mapping[str, str] | None = None,
) -> dict[str, Verdict]:
    """
    Check each ECR container image of ``pod`` under the image policy, and set it to the digest checked.

    :param pod: the ``V1Pod`` to be created (its containers' images changed in place).
    :param aws_conn_id: the AWS connection tokens and AWS calls use.
    :param dag_policy: the task's ``image_policy``, if any (a mutated unmodified pod has none).
    :param where: who asks, for the sentences (``task 'train'``).
    :param named_as: the image a container's rule is looked up by, by container name, when its image
        was already placed elsewhere (a replica's, after a failover): the deployment's scopes name
        the image in its main region.
    :returns: each container's verdict, by container name (containers no rule covers are absent).
    :raises EcrImagePolicyError: an image the policy refuses: the pod is never created.
    """
    verdicts: dict[str, Verdict] = {}
    spec = pod.spec
    aliases = ecr_settings().registry_aliases
    for container in [*(spec.init_containers or []), *(spec.containers or [])]:
        image = container.image
        if not image or not ecr_registries([image], aliases):
            continue
        hook = EcrDockerHook(image=image, aws_conn_id=aws_conn_id)
        rule = hook.image_rule((named_as or {}).get(container.name, image), dag_policy, where)
        if rule is None:
            continue
        name = ImageReference.parse(image)
        digest = name.digest or hook.resolve_manifest(name.name_on_host(name.host)).digest
        verdicts[container.name] = hook.check_image_policy(rule, image, digest)
        pinned = name.name_by_digest(digest)
        if pinned != image:
            log.info("Running %s as %s, the digest the image policy checked.", image, pinned)
            container.image = pinned
    return verdicts
