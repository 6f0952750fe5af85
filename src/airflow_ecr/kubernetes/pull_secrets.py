"""
What a pod's ECR pull secret is: which of its images need one, the Secret's name, labels and
``.dockerconfigjson``, and when a Secret left behind is an orphan. Pure: no Kubernetes client, no AWS.

One Secret per pod, named after it, owner-referenced to it once it exists (so Kubernetes' garbage
collector deletes the two together) and labelled so that a Secret whose pod was never created (a
worker killed between the two calls) is found and deleted once its token has expired.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_ecr.images.pull_through import PullThroughRule, Rewrite, through_cache
from airflow_ecr.registry import EcrRegistry, resolve_registry
from airflow_ecr.tokens.cache import fingerprint
from airflow_ecr.tokens.token import EcrToken

# The Role a task's Kubernetes identity needs in the pods' namespace, and nothing cluster-wide: what
# KubernetesPodOperator does with pods (create, watch, read logs and events, delete) and what the pull
# secrets need. docs/kubernetes.md shows it (a test compares), the tests bind Airflow to exactly it,
# and doctor checks each verb (SelfSubjectAccessReview).
ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "list", "patch", "delete"]},
]
SECRET_TYPE = "kubernetes.io/dockerconfigjson"  # noqa: S105 - a Secret type, no secret
# The label every pull secret carries (the sweep's selector) and the annotations saying for which pod
# it was made and until when its tokens are good.
LABEL = "airflow-ecr.io/pull-secret"
POD_ANNOTATION = "airflow-ecr.io/pod"
EXPIRES_ANNOTATION = "airflow-ecr.io/expires-at"
# For each registry host: the token's cache key (a fingerprint of the identity and the registry,
# never a secret) and its times, so that a task with an empty host cache (a KubernetesExecutor pod)
# can reuse a fresh token of the same identity from its namespace instead of asking ECR.
TOKENS_ANNOTATION = "airflow-ecr.io/tokens"
_SUFFIX = "-ecr-pull"
# A pod owns its Secret within seconds of the Secret's creation; one unowned for longer was left
# behind by a worker that died in between (or whose pod was refused), and is swept.
ORPHAN_AFTER = 600.0
_NAME_MAX = 253  # a Secret's name is a DNS subdomain
# A fetch lease: the Secret (no data) whose creation makes one task of a namespace the one that asks
# ECR for a set of tokens, while the others wait for its pull secret (single flight across pods with
# empty host caches, such as the KubernetesExecutor's). Held at most this long: a lease older than that
# (its holder died) is taken over, and swept like a pull secret left behind.
LEASE_ANNOTATION = "airflow-ecr.io/fetch-lease"
LEASE_SECONDS = 30.0
_LEASE_PREFIX = "airflow-ecr-lease-"


def _pod_containers(spec: Any) -> list[Any]:
    """A pod spec's containers, init containers and ephemeral containers that name an image."""
    groups = ("init_containers", "containers", "ephemeral_containers")
    return [c for group in groups for c in getattr(spec, group, None) or () if getattr(c, "image", None)]


def pod_images(spec: Any) -> list[str]:
    """
    Every image a pod spec runs: its containers', init containers' and ephemeral containers'.

    :param spec: a ``V1PodSpec`` (or anything with those attributes).
    """
    return list(dict.fromkeys(c.image for c in _pod_containers(spec)))


def pull_through_pod(spec: Any, rules: Sequence[PullThroughRule]) -> list[Rewrite]:
    """
    Point every container whose image an upstream of ``[ecr] pull_through_cache`` serves (Docker Hub
    and the like) at its name in the ECR pull-through cache; other images are left alone.

    :param spec: a ``V1PodSpec`` (changed in place).
    :param rules: the deployment's rules (``ecr_settings().pull_through_rules``).
    :returns: the rewrites made, one per distinct image.
    """
    done: dict[str, Rewrite] = {}
    for container in _pod_containers(spec):
        rewrite = through_cache(container.image, rules)
        if rewrite is not None:
            container.image = rewrite.image
            done.setdefault(rewrite.requested, rewrite)
    return list(done.values())


def ecr_registries(images: Iterable[str], aliases: Mapping[str, EcrRegistry]) -> list[EcrRegistry]:
    """
    The ECR registries (or declared aliases) among ``images``, once each; other images need no secret.

    :param images: image references.
    :param aliases: the deployment's declared alias hosts.
    """
    found: dict[str, EcrRegistry] = {}
    for image in images:
        try:
            registry = resolve_registry(image, aliases=aliases)
        except ValueError:
            continue  # Docker Hub, another registry: not ours to authenticate
        found.setdefault(registry.host, registry)
    return list(found.values())


def secret_name(pod_name: str) -> str:
    """The pull secret's name for the pod named ``pod_name``."""
    return pod_name[: _NAME_MAX - len(_SUFFIX)].rstrip(".-") + _SUFFIX


def docker_config_json(tokens: Mapping[str, EcrToken]) -> str:
    """
    The ``.dockerconfigjson`` a kubelet reads: one ``auths`` entry per registry host.

    :param tokens: the token for each registry host.
    """
    auths = {}
    for host, token in sorted(tokens.items()):
        basic = base64.b64encode(f"{token.username}:{token.password}".encode()).decode()
        auths[host] = {"username": token.username, "password": token.password, "auth": basic}
    return json.dumps({"auths": auths}, separators=(",", ":"))


def auth_for_host(encoded_config: str, host: str) -> dict[str, str] | None:
    """
    The docker auth config (``username``, ``password``, ``serveraddress``) a Secret's base64
    ``.dockerconfigjson`` holds for ``host``, read as a kubelet reads it (the ``auth`` field), or None.

    :param encoded_config: the Secret's ``data[".dockerconfigjson"]``.
    :param host: the registry host.
    """
    try:
        entry = json.loads(base64.b64decode(encoded_config))["auths"][host]
        username, colon, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, KeyError, TypeError):
        return None
    return {"username": username, "password": password, "serveraddress": host} if colon else None


def secret_body(name: str, pod_name: str, tokens: Mapping[str, EcrToken], keys: Mapping[str, str]) -> dict[str, Any]:
    """
    The Secret to create, as the API takes it (the data base64-encoded).

    :param name: the Secret's name (:func:`secret_name`).
    :param pod_name: the pod it is for.
    :param tokens: the token for each registry host the pod pulls from.
    :param keys: each host's token cache key (:meth:`~airflow_ecr.tokens.cache.TokenCache.keys`).
    """
    expires_at = int(min(token.expires_at for token in tokens.values()))
    described = {
        host: {"key": keys[host], "issued_at": t.issued_at, "expires_at": t.expires_at, "endpoint": t.proxy_endpoint}
        for host, t in tokens.items()
    }
    data = base64.b64encode(docker_config_json(tokens).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": name,
            "labels": {LABEL: "true"},
            "annotations": {
                POD_ANNOTATION: pod_name,
                EXPIRES_ANNOTATION: str(expires_at),
                TOKENS_ANNOTATION: json.dumps(described, sort_keys=True, separators=(",", ":")),
            },
        },
        "data": {".dockerconfigjson": data},
    }


def lease_name(keys: Iterable[str]) -> str:
    """The fetch lease's name for a set of token cache keys (fingerprints, never secrets)."""
    return _LEASE_PREFIX + fingerprint(sorted(set(keys)))[:24]


def lease_body(name: str, holder: str, now: float) -> dict[str, Any]:
    """
    The fetch lease to create: labelled as a pull secret (so the sweep removes one left behind once it
    expires) but with no tokens, so that nothing adopts it.

    :param name: :func:`lease_name`.
    :param holder: the pod whose task takes it (for whoever reads the namespace).
    :param now: epoch seconds.
    """
    expires_at = int(now + LEASE_SECONDS)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {LABEL: "true"},
            "annotations": {LEASE_ANNOTATION: holder, EXPIRES_ANNOTATION: str(expires_at)},
        },
    }


def lease_expired(metadata: Any, now: float) -> bool:
    """Whether a fetch lease (its ``V1ObjectMeta``) is past its time: its holder is gone or stuck."""
    try:
        return float((metadata.annotations or {})[EXPIRES_ANNOTATION]) <= now
    except (KeyError, ValueError):
        return True


def tokens_in_secret(data: Mapping[str, str] | None, annotations: Mapping[str, str] | None) -> dict[str, EcrToken]:
    """
    The tokens a pull secret holds, by cache key, as :func:`secret_body` wrote them; a Secret that is
    not one of ours, or was edited into another shape, holds none.

    :param data: the Secret's ``data`` (base64 values).
    :param annotations: the Secret's annotations.
    """
    try:
        described = json.loads((annotations or {})[TOKENS_ANNOTATION])
        encoded = (data or {})[".dockerconfigjson"]
    except (KeyError, ValueError):
        return {}
    found = {}
    for host, facts in described.items() if isinstance(described, dict) else ():
        auth = auth_for_host(encoded, host)
        try:
            token = EcrToken(auth["username"], auth["password"], str(facts["endpoint"]), float(facts["expires_at"]),
                             float(facts["issued_at"])) if auth else None  # fmt: skip
            key = str(facts["key"])
        except (KeyError, TypeError, ValueError):
            continue
        if token is not None:
            found[key] = token
    return found


def owner_patch(pod_name: str, pod_uid: str) -> dict[str, Any]:
    """The patch that makes the pod own its Secret (deleted with it by the garbage collector)."""
    owner = {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}
    return {"metadata": {"ownerReferences": [owner]}}


def is_orphan(metadata: Any, now: float) -> bool:
    """
    Whether a pull secret was left behind: no pod owns it, and it was made more than
    :data:`ORPHAN_AFTER` seconds ago or its tokens have expired.

    :param metadata: the Secret's ``V1ObjectMeta`` (``creation_timestamp`` a datetime).
    :param now: epoch seconds.
    """
    if metadata.owner_references or (metadata.labels or {}).get(LABEL) != "true":
        return False
    created = metadata.creation_timestamp
    if created is not None and created.timestamp() + ORPHAN_AFTER <= now:
        return True
    try:
        return float((metadata.annotations or {})[EXPIRES_ANNOTATION]) <= now
    except (KeyError, ValueError):
        return False
