"""
Doctor's Kubernetes checks (``--kubernetes-conn-id`` and ``--namespace``), as a task's pods need it:

- ``kubernetes_access``: every verb of the documented Role
  (:data:`~airflow_ecr.kubernetes.pull_secrets.ROLE_RULES`) in the namespace, asked of the API server
  with one ``SelfSubjectAccessReview`` each (a question any identity may ask; nothing is created);
- ``kubernetes_secret`` (needs the token and the access): a pull secret's round trip, made from the
  token of ``ecr_permission``, read back, then deleted; with ``--image``, the registry is asked for the
  image's manifest with the credentials read back from the Secret (from this process: a node's network
  may differ, which ``kubectl run`` would tell).
"""

from __future__ import annotations

import secrets
from typing import Any

from airflow_ecr import exit_codes
from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result

ACCESS: CheckId = ("kubernetes_access", "Kubernetes Role")
SECRET: CheckId = ("kubernetes_secret", "Kubernetes pull secret")


def _core_v1(state: DoctorState) -> Any:
    from airflow_ecr.kubernetes._provider import KubernetesHook

    return KubernetesHook(conn_id=state.kubernetes_conn_id).core_v1_client


def check_kubernetes_access(state: DoctorState) -> CheckResult:
    """Each verb the Role grants, asked of the API server (``SelfSubjectAccessReview``)."""
    from kubernetes.client import AuthorizationV1Api

    from airflow_ecr.kubernetes.pull_secrets import ROLE_RULES

    assert state.namespace is not None  # doctor.checks_for runs these with a namespace only
    authorization = AuthorizationV1Api(_core_v1(state).api_client)
    denied = []
    for rule in ROLE_RULES:
        for resource in rule["resources"]:
            kind, _, sub = resource.partition("/")
            for verb in rule["verbs"]:
                attributes = {"namespace": state.namespace, "verb": verb, "resource": kind, "subresource": sub or None}
                review = {"spec": {"resourceAttributes": attributes}}
                answer = authorization.create_self_subject_access_review(review)
                if not answer.status.allowed:
                    denied.append(f"{verb} {resource}")
    details = {"namespace": state.namespace, "denied": denied}
    if denied:
        fix = (
            f"bind this identity to the Role in docs/kubernetes.md in namespace {state.namespace} "
            f"(missing: {', '.join(denied)})"
        )
        summary = f"{len(denied)} verb(s) of the Role refused in namespace {state.namespace}"
        return result(ACCESS, "fail", summary, fix=fix, exit_code=exit_codes.EXIT_KUBERNETES, details=details)
    count = sum(len(r["resources"]) * len(r["verbs"]) for r in ROLE_RULES)
    return result(
        ACCESS, "ok", f"all {count} verbs of the Role granted in namespace {state.namespace}", details=details
    )


def check_kubernetes_secret(state: DoctorState) -> CheckResult:
    """A pull secret made from the token, read back, deleted; the registry asked with what was read."""
    from airflow_ecr.exceptions import EcrError, KubernetesPullSecretError
    from airflow_ecr.kubernetes.attach import PullSecrets
    from airflow_ecr.kubernetes.pull_secrets import secret_body

    assert state.namespace is not None
    registry, token = state.require_registry(), state.token
    assert token is not None  # needs ecr_permission
    api = _core_v1(state)
    name = f"airflow-ecr-doctor-{secrets.token_hex(4)}"
    pull_secrets = PullSecrets(api)
    try:
        pull_secrets.create(state.namespace, secret_body(name, "doctor", {registry.host: token}, {registry.host: ""}))
        try:
            auth = pull_secrets.read_auth(state.namespace, name, registry.host)
        finally:
            pull_secrets.delete(state.namespace, name)
    except KubernetesPullSecretError as err:
        return result(SECRET, "fail", state.scrub(str(err)), exit_code=err.exit_code)
    details = {"namespace": state.namespace, "secret": name}
    if auth != token.docker_auth(registry.host):
        return result(SECRET, "fail", "the Secret read back differs from what was written", details=details)
    if state.reference is None or state.image is None:
        return result(SECRET, "ok", f"made, read back and deleted {name} in {state.namespace}", details=details)
    import requests

    from airflow_ecr.images.manifests import fetch_manifest
    from airflow_ecr.registry import ImageReference

    try:
        with requests.Session() as session:
            manifest = fetch_manifest(session, ImageReference.parse(state.image), auth)
    except EcrError as err:
        return result(SECRET, "fail", state.scrub(str(err)), exit_code=err.exit_code, details=details)
    details["digest"] = manifest.digest
    summary = f"the registry accepts the Secret's credentials ({state.image} is {manifest.digest})"
    return result(SECRET, "ok", summary, details=details)


# The checks of this module, in the order they run.
CHECKS = (
    Check(*ACCESS, check_kubernetes_access),
    Check(*SECRET, check_kubernetes_secret, needs_image=True, needs=("ecr_permission", "kubernetes_access")),
)
