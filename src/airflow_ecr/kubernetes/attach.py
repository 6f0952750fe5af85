"""
A pod's ECR pull secret through the Kubernetes API: made from the host token cache just before the
pod, owned by the pod as soon as it exists, and swept when left behind.

Every Kubernetes call of airflow-ecr is here, on the ``CoreV1Api`` of the cncf.kubernetes provider's
hook (the operator's own client, or the one :func:`airflow_ecr.kubernetes.pod_mutation_hook` makes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from airflow_ecr.exceptions import KubernetesPullSecretError
from airflow_ecr.hooks.docker import configured_aliases
from airflow_ecr.kubernetes.pull_secrets import (
    LABEL,
    LEASE_SECONDS,
    auth_for_host,
    ecr_registries,
    is_orphan,
    lease_body,
    lease_expired,
    lease_name,
    owner_patch,
    pod_images,
    pull_through_pod,
    secret_body,
    secret_name,
    tokens_in_secret,
)
from airflow_ecr.settings import ecr_settings
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource

log = logging.getLogger(__name__)

_CONFLICT = 409


def _refused(action: str, name: str, namespace: str, err: Any) -> KubernetesPullSecretError:
    status = getattr(err, "status", None)
    if status in (401, 403):
        advice = (
            "grant this task's Kubernetes identity create, get, list, patch and delete on secrets in that "
            "namespace (the Role in docs/kubernetes.md)"
        )
    else:
        advice = "check that the Kubernetes API server is reachable and the namespace exists"
    reason = f"HTTP {status} {getattr(err, 'reason', '') or ''}".strip() if status else type(err).__name__
    return KubernetesPullSecretError(
        f"Could not {action} the ECR pull secret {name} in namespace {namespace} ({reason}): {advice}."
    )


def use_pull_through_cache(pod: Any) -> None:
    """
    Point ``pod``'s images that an upstream of ``[ecr] pull_through_cache`` serves at their names in
    the ECR pull-through cache, and log each rewrite once (a second call finds nothing to rewrite).

    :param pod: a ``V1Pod`` not created yet (changed in place).
    """
    for rewrite in pull_through_pod(pod.spec, ecr_settings().pull_through_rules):
        log.info("%s", rewrite.log_line())


class PullSecrets:
    """
    The ECR pull secrets of pods, through one Kubernetes client.

    :param core_v1: a ``kubernetes.client.CoreV1Api``.
    :param cache: the token cache (default: the process's shared one).
    """

    def __init__(self, core_v1: Any, cache: TokenCache | None = None) -> None:
        self.api = core_v1
        self.cache = cache

    def attach(self, pod: Any, aws_conn_id: str | None) -> str | None:
        """
        Give ``pod`` (a ``V1Pod`` not created yet, its name and namespace set) a pull secret for its
        ECR images: the Secret is created now and named in ``pod.spec.image_pull_secrets``. Images an
        upstream of ``[ecr] pull_through_cache`` serves are first pointed at the ECR cache
        (:func:`use_pull_through_cache`); images elsewhere are left alone. Returns the Secret's name,
        or None when no image is on ECR.

        :param pod: the pod request; changed in place.
        :param aws_conn_id: the AWS connection tokens are fetched with (None: boto3's default chain).
        """
        from kubernetes.client import V1LocalObjectReference

        use_pull_through_cache(pod)
        registries = ecr_registries(pod_images(pod.spec), configured_aliases())
        if not registries:
            return None
        namespace, name = pod.metadata.namespace, secret_name(pod.metadata.name)
        references = list(pod.spec.image_pull_secrets or [])
        if any(ref.name == name for ref in references):
            return name  # done already (the operator and the mutation hook both ran)
        cache = self.cache or TokenCache.shared()
        source = EcrTokenSource.from_connection(aws_conn_id)
        keys = cache.keys(source, registries)
        self._adopt(cache, keys, self.sweep(namespace))
        lease = None if cache.serves(keys.values()) else self._lease_or_wait(namespace, keys, cache, pod.metadata.name)
        try:
            tokens = cache.get(source, registries)
            self.create(namespace, secret_body(name, pod.metadata.name, tokens, cache.keys(source, registries)))
        finally:
            if lease is not None:
                self._release(namespace, lease)
        pod.spec.image_pull_secrets = [*references, V1LocalObjectReference(name=name)]
        # The provenance line (tokens/cache.py) has said where each token came from and until when.
        log.info("Pull secret %s in namespace %s for %s.", name, namespace, ", ".join(sorted(tokens)))
        return name

    def _lease_or_wait(self, namespace: str, keys: dict[str, str], cache: TokenCache, pod_name: str) -> str | None:
        """
        Single flight across the namespace's pods for tokens no cache here serves: take the fetch
        lease (then this task asks ECR, and its pull secret shares the tokens), or, while another
        task holds it, wait for that task's pull secret and adopt its tokens. Returns the lease's name
        when this task holds it, None when the tokens were adopted or the holder took too long.

        :param keys: each registry host's token cache key.
        :param pod_name: the pod this task makes (named in the lease).
        """
        name = lease_name(keys.values())
        deadline = time.monotonic() + LEASE_SECONDS
        delay = 0.1
        while time.monotonic() < deadline:
            try:
                self.api.create_namespaced_secret(namespace, lease_body(name, pod_name, time.time()))
                return name
            except Exception as err:
                if getattr(err, "status", None) != _CONFLICT:
                    raise _refused("create", name, namespace, err) from None
            try:
                held = self.api.read_namespaced_secret(name, namespace)
            except Exception as err:
                if getattr(err, "status", None) == 404:
                    continue  # released meanwhile: its tokens are in the namespace now, or take it
                raise _refused("read", name, namespace, err) from None
            if lease_expired(held.metadata, time.time()):
                self._release(namespace, name)  # its holder died or is stuck: take it over
                continue
            while time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                if cache.serves(keys.values()):
                    return None  # the holder ran on this host: its tokens are in the host cache
                listed = self._listed(namespace)
                self._adopt(cache, keys, listed)
                if cache.serves(keys.values()):
                    return None
                if not any(secret.metadata.name == name for secret in listed):
                    break  # released without tokens for us (its fetch failed): try to take it
        log.info("The ECR fetch lease %s in namespace %s was held too long: asking ECR.", name, namespace)
        return None

    def _release(self, namespace: str, name: str) -> None:
        """Delete the fetch lease ``name`` (already gone: nothing to do)."""
        try:
            self.api.delete_namespaced_secret(name, namespace)
        except Exception as err:
            if getattr(err, "status", None) != 404:
                log.warning("Could not release the ECR fetch lease %s in namespace %s: %s", name, namespace, err)

    def own(self, namespace: str, name: str, pod_name: str, pod_uid: str) -> None:
        """
        Make the pod own its Secret, so that the garbage collector deletes the Secret with the pod.

        :param namespace: the namespace of both.
        :param name: the Secret's name.
        :param pod_name: the pod's name.
        :param pod_uid: the pod's uid.
        """
        try:
            self.api.patch_namespaced_secret(name, namespace, owner_patch(pod_name, pod_uid))
        except Exception as err:
            raise _refused("hand over", name, namespace, err) from None

    def own_when_created(self, namespace: str, name: str, pod_name: str, timeout: float = 120.0) -> None:
        """
        Wait (polling) until the pod named ``pod_name`` exists, then :meth:`own` its Secret. For the
        mutation hook, which runs before the pod is created and is not called after.

        :param timeout: seconds to wait for the pod; the Secret is left to :meth:`sweep` after that.
        """
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            try:
                pod = self.api.read_namespaced_pod(pod_name, namespace)
            except Exception as err:
                if getattr(err, "status", None) not in (404, None):
                    log.debug("Reading pod %s for its pull secret: %s", pod_name, err)
            else:
                self.own(namespace, name, pod_name, pod.metadata.uid)
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        log.warning(
            "Pod %s did not appear within %.0f s: its pull secret %s is left for the sweep.", pod_name, timeout, name
        )

    def delete(self, namespace: str, name: str) -> None:
        """Delete the Secret ``name`` (made for a pod that will not be created)."""
        try:
            self.api.delete_namespaced_secret(name, namespace)
        except Exception as err:
            raise _refused("delete", name, namespace, err) from None

    def sweep(self, namespace: str, now: Callable[[], float] = time.time) -> list[Any]:
        """
        Delete the pull secrets of ``namespace`` that no pod owns and that are past their time
        (:func:`~airflow_ecr.kubernetes.pull_secrets.is_orphan`). Returns the others (``V1Secret``).
        """
        kept, deleted = [], 0
        for secret in self._listed(namespace):
            if not is_orphan(secret.metadata, now()):
                kept.append(secret)
                continue
            try:
                self.api.delete_namespaced_secret(secret.metadata.name, namespace)
                deleted += 1
            except Exception as err:
                log.debug("Sweeping pull secret %s: %s", secret.metadata.name, err)
        if deleted:
            log.info("Deleted %d ECR pull secret(s) left behind in namespace %s.", deleted, namespace)
        return kept

    def _listed(self, namespace: str) -> list[Any]:
        """The namespace's pull secrets and fetch leases (``V1Secret``), by their label."""
        try:
            found = self.api.list_namespaced_secret(namespace, label_selector=f"{LABEL}=true")
        except Exception as err:
            raise _refused("list", f"{LABEL}=true", namespace, err) from None
        return list(found.items)

    @staticmethod
    def _adopt(cache: TokenCache, keys: dict[str, str], secrets: list[Any]) -> None:
        """Offer the cache the fresh tokens of the same identity that the namespace's pull secrets hold."""
        wanted = set(keys.values())
        for secret in secrets:
            for key, token in tokens_in_secret(secret.data, secret.metadata.annotations).items():
                if key in wanted:
                    cache.adopt(key, token, f"pull secret {secret.metadata.name} (same identity)")

    def read_auth(self, namespace: str, name: str, host: str) -> dict[str, str] | None:
        """The docker auth config the Secret ``name`` holds for ``host``, as a kubelet would read it."""
        try:
            secret = self.api.read_namespaced_secret(name, namespace)
        except Exception as err:
            raise _refused("read", name, namespace, err) from None
        return auth_for_host((secret.data or {}).get(".dockerconfigjson", ""), host)

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        """Create the Secret ``body`` (:func:`~airflow_ecr.kubernetes.pull_secrets.secret_body`); one of the
        same name (the same pod name again, its old pod gone) gets the new tokens."""
        name = body["metadata"]["name"]
        try:
            self.api.create_namespaced_secret(namespace, body)
        except Exception as err:
            if getattr(err, "status", None) != _CONFLICT:
                raise _refused("create", name, namespace, err) from None
            # The same pod name again (a retry of a task with a fixed pod name, whose old pod is gone):
            # new tokens in the same Secret, owned by no pod until the new one exists.
            patch = {**body, "metadata": {**body["metadata"], "ownerReferences": None}}
            try:
                self.api.patch_namespaced_secret(name, namespace, patch)
            except Exception as again:
                raise _refused("update", name, namespace, again) from None
