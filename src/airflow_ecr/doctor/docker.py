"""
The Docker checks: the daemon answers, it logs in to the registry with the token, it finds the
image's manifest, and whether it is in swarm mode.

The registry is checked through the daemon, not from this process, because the daemon is what
pulls (its DNS, proxy, CA certificates and network decide). What the daemon (and the registry
through it) said is read by :mod:`airflow_ecr.hooks.daemon_messages`, as for a task's pull; the
registry and manifest checks share how they render it (:func:`_registry_failure`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from airflow_ecr import exit_codes
from airflow_ecr.doctor.pull_through import find_rule, first_pull_advice
from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result
from airflow_ecr.hooks.daemon_messages import (
    classify_daemon_failure,
    classify_pull_error,
    names_missing_repository,
    names_unknown_host,
)
from airflow_ecr.tokens.aws_errors import foreign_account_hedge, image_name_fix, pull_actions

DAEMON: CheckId = ("docker_daemon", "Docker daemon")
REGISTRY: CheckId = ("registry", "Registry")
IMAGE: CheckId = ("image", "Image manifest")
SWARM: CheckId = ("swarm", "Swarm mode")

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
# Seconds for each Engine API call; the registry calls go through the daemon, which has its own.
DOCKER_TIMEOUT = 60
_NETWORK_ADVICE = (
    "check the daemon host's network, DNS and dockerd's proxy settings (HTTPS_PROXY / NO_PROXY); "
    "in a VPC without internet access, the com.amazonaws.{region}.ecr.dkr VPC endpoint"
)


# -- the daemon ---------------------------------------------------------------------------------
def docker_url(state: DoctorState) -> str:
    """The daemon URL: ``--docker-url``, else ``$DOCKER_HOST``, else the local socket."""
    return state.docker_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def check_docker_daemon(state: DoctorState) -> CheckResult:
    """The Engine API answers ``/version``; keeps the client for the next checks."""
    import docker

    url = docker_url(state)
    details: dict[str, Any] = {"url": url}
    # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply when the URL comes from the environment.
    kwargs = {} if state.docker_url else docker.utils.kwargs_from_env()
    kwargs["base_url"] = url
    try:
        client = docker.APIClient(version="auto", timeout=DOCKER_TIMEOUT, **kwargs)
        version = client.version()
    except Exception as err:
        return result(
            DAEMON,
            "fail",
            daemon_failure(url, str(err)),
            fix="start the Docker daemon (e.g. systemctl start docker), or pass --docker-url / set DOCKER_HOST",
            exit_code=exit_codes.EXIT_DOCKER,
            details=details,
        )
    state.client = client
    state.daemon_platform = f"{version.get('Os', 'linux')}/{version.get('Arch', '?')}"
    details.update(
        version=version.get("Version"), api_version=version.get("ApiVersion"), platform=state.daemon_platform
    )
    return result(
        DAEMON,
        "ok",
        f"Docker {version.get('Version')} (API {version.get('ApiVersion')}, {state.daemon_platform}) at {url}",
        details=details,
    )


def daemon_failure(url: str, error: str) -> str:
    """Why the daemon at ``url`` did not answer, from docker-py's error text."""
    path = url.removeprefix("unix://") if url.startswith("unix://") else None
    kind = classify_daemon_failure(error)
    if kind == "no_socket":
        return f"cannot reach the Docker daemon at {url}: no socket at {path or url}"
    if kind == "permission":
        return (
            f"cannot reach the Docker daemon at {url}: this user may not open {path or 'it'} "
            "(add the user to the docker group)"
        )
    if kind == "refused":
        return f"cannot reach the Docker daemon at {url}: nothing listens there (connection refused)"
    if kind == "timeout":
        return f"the Docker daemon at {url} did not answer within {DOCKER_TIMEOUT} s"
    return f"cannot reach the Docker daemon at {url}: {error}"


def daemon_lost(check: CheckId, state: DoctorState, err: Exception) -> CheckResult:
    """The daemon, which answered the daemon check, failed a later call."""
    return result(
        check,
        "fail",
        daemon_failure(docker_url(state), state.scrub(str(err))),
        fix="check that the Docker daemon keeps running (its logs)",
        exit_code=exit_codes.EXIT_DOCKER,
    )


# -- what the registry said, through the daemon --------------------------------------------------
def _registry_failure(
    check: CheckId,
    state: DoctorState,
    err: Exception,
    image: str,
    details: dict[str, Any],
    *,
    refused: Callable[[str], tuple[str, str]],
    unreachable: Callable[[str], str],
    missing: Callable[[str], tuple[str, str]] | None = None,
) -> CheckResult:
    """
    A failed Engine API call that made the daemon talk to the registry, as a failed result.

    The daemon's message, without the token, goes into ``details["daemon_said"]`` and is classified
    by :func:`~airflow_ecr.hooks.daemon_messages.classify_pull_error`; an error that is not the daemon's
    answer means the daemon went away.

    :param image: the reference in the message, kept out of the classification.
    :param refused: (summary, fix) from the message when the registry refused the credentials.
    :param unreachable: the summary when the registry could not be reached (or anything else).
    :param missing: (summary, fix) when the image does not exist; None: no such case here.
    """
    from docker.errors import APIError

    if not isinstance(err, APIError):
        return daemon_lost(check, state, err)
    message = state.scrub(str(err.explanation or err))
    details["daemon_said"] = message
    kind = classify_pull_error(message, image)
    if kind == "auth":
        summary, fix = refused(message)
        code = exit_codes.EXIT_AWS_CREDENTIALS
    elif kind == "not_found" and missing is not None:
        summary, fix = missing(message)
        code = exit_codes.EXIT_IMAGE
    else:
        summary = unreachable(message)
        fix = _NETWORK_ADVICE.format(region=state.require_registry().region)
        if names_unknown_host(message):
            # A typo in the image's account id or region that ECR still gave a token for is first seen
            # here, as a registry name the daemon cannot resolve: the image name is the first suspect.
            fix = f"{image_name_fix(state.require_registry(), state.named_in)}; if it is right, {fix}"
        code = exit_codes.EXIT_REGISTRY
    return result(check, "fail", summary, fix=fix, exit_code=code, details=details)


def _foreign_account(state: DoctorState) -> str:
    """A hedge for a refusal by another account's registry (a typo in the image's account id?), or ''."""
    return foreign_account_hedge(state.require_registry(), state.who, state.account, state.named_in)


# -- the registry -------------------------------------------------------------------------------
def check_registry(state: DoctorState) -> CheckResult:
    """The daemon logs in to the registry with the token (``POST /auth``: a ``/v2/`` ping)."""
    from airflow_ecr.hooks._docker_compat import daemon_login

    registry, token, client = state.require_registry(), state.token, state.client
    if token is None or client is None:
        return result(REGISTRY, "skip", "not checked: no token or no daemon")
    details: dict[str, Any] = {"registry": registry.host}
    try:
        # Exactly these credentials, nothing read from or stored in ~/.docker (see daemon_login).
        daemon_login(client, token.docker_auth(registry.host))
    except Exception as err:
        return _registry_failure(
            REGISTRY,
            state,
            err,
            registry.host,
            details,
            refused=lambda message: (
                f"registry {registry.host} rejected the token ECR just issued: {message}",
                f"check that {registry.host} is the registry of account {registry.account_id} in "
                f"{registry.region} (a proxy or alias in front of it must pass basic auth through)",
            ),
            unreachable=lambda message: f"cannot reach registry {registry.host} from the Docker daemon: {message}",
        )
    return result(REGISTRY, "ok", f"the daemon logged in to {registry.host}", details=details)


# -- the image manifest -------------------------------------------------------------------------
def check_manifest(state: DoctorState) -> CheckResult:
    """The manifest exists (``GET /distribution/{name}/json``: the descriptor, no layer)."""
    registry, token, client, ref = state.require_registry(), state.token, state.client, state.reference
    if token is None or client is None or ref is None:
        return result(IMAGE, "skip", "not checked: no token or no daemon")
    version = f"@{ref.digest}" if ref.digest else f":{ref.tag}"
    what = f"digest {ref.digest}" if ref.digest else f"tag {ref.tag}" + ("" if ref.tag_given else " (default)")
    name = f"{registry.host}/{ref.repository}{version}"
    owner = "ECR Public" if registry.public else f"{registry.account_id} ({registry.region})"
    details: dict[str, Any] = {"image": name, "repository": ref.repository}

    def missing(message: str) -> tuple[str, str]:
        if names_missing_repository(message):
            fix = (
                "create the repository and push the image, or fix the repository name (or the account id and "
                "region in the image name, if the image lives in another registry)"
            )
            return f"repository {ref.repository} does not exist in registry {owner}", with_cache(fix)
        fix = "push it, or fix the tag" if not ref.digest else "push it, or fix the digest"
        return f"{what} not found in repository {ref.repository} of {owner}", with_cache(fix)

    def with_cache(fix: str) -> str:
        # A repository under a pull-through cache rule fails here when its first pull may not import.
        found = find_rule(state, registry, ref.repository)
        advice = first_pull_advice(found, ref.repository, state.who)
        if found is None or advice is None:
            return fix
        details["pull_through_cache"] = asdict(found)
        return f"{advice}; else {fix}" if found.rule else f"{fix}; {advice}"

    def refused(message: str) -> tuple[str, str]:
        fix = (
            f"{_foreign_account(state)}grant {pull_actions()} on repository "
            f"{ref.repository} to {state.who} (and allow it in the repository policy for a cross-account pull)"
        )
        summary = f"registry {registry.host} refused {state.who} access to repository {ref.repository}: {message}"
        return summary, with_cache(fix)

    try:
        data = client.inspect_distribution(name, auth_config=token.docker_auth(registry.host))
    except Exception as err:
        return _registry_failure(
            IMAGE,
            state,
            err,
            name,
            details,
            refused=refused,
            unreachable=lambda message: f"cannot read the manifest of {name} through the Docker daemon: {message}",
            missing=missing,
        )
    descriptor = data.get("Descriptor", {})
    platforms = [
        f"{p.get('os')}/{p.get('architecture')}" + (f"/{p['variant']}" if p.get("variant") else "")
        for p in data.get("Platforms") or []
    ]
    details.update(digest=descriptor.get("digest"), media_type=descriptor.get("mediaType"), platforms=platforms)
    summary = f"{what} is {descriptor.get('digest')} ({', '.join(platforms) or 'platform unknown'})"
    daemon = state.daemon_platform
    if daemon and platforms and not any(p == daemon or p.startswith(daemon + "/") for p in platforms):
        return result(
            IMAGE,
            "warn",
            summary + f": no {daemon} variant",
            fix=f"build and push the image for {daemon}, or the container fails with 'exec format error'",
            details=details,
        )
    return result(IMAGE, "ok", summary, details=details)


# -- swarm --------------------------------------------------------------------------------------
def check_swarm(state: DoctorState) -> CheckResult:
    """Whether the daemon is in swarm mode (needed by swarm services only)."""
    if state.client is None:
        return result(SWARM, "skip", "not checked: no daemon")
    try:
        swarm = state.client.info().get("Swarm") or {}
    except Exception as err:
        return daemon_lost(SWARM, state, err)
    node_state = swarm.get("LocalNodeState") or "unknown"
    details = {"state": node_state, "manager": bool(swarm.get("ControlAvailable"))}
    if node_state == "active":
        role = "manager" if swarm.get("ControlAvailable") else "worker (services are created on a manager)"
        return result(SWARM, "ok", f"active, this node is a {role}", details=details)
    if node_state == "inactive":
        return result(
            SWARM,
            "info",
            "inactive: fine for DockerOperator tasks; swarm services (EcrDockerSwarmOperator) need 'docker swarm init'",
            details=details,
        )
    return result(
        SWARM,
        "warn",
        f"{node_state}: {swarm.get('Error') or 'the swarm is not usable'}",
        fix="see 'docker info'; swarm services will fail until the node is active",
        details=details,
    )


# In this order because the registry checks need the token (ECR permission) and the daemon, and the
# swarm check the daemon.
CHECKS = (
    Check(*DAEMON, check_docker_daemon),
    Check(*REGISTRY, check_registry, needs_image=True, needs=("ecr_permission", DAEMON[0])),
    Check(*IMAGE, check_manifest, needs_image=True, needs=(REGISTRY[0],)),
    Check(*SWARM, check_swarm, needs=(DAEMON[0],)),
)
