"""
The UI's **Test** button for an ``ecr_docker`` connection: doctor's checks, answered in one line.

Airflow calls ``EcrDockerHook.test_connection()`` (when ``[core] test_connection`` is
``Enabled``) in the API server or webserver process, with the connection the form holds; the hook
delegates to :func:`check_connection`. It runs doctor's ECR-permission check (a fresh
``GetAuthorizationToken`` with the connection's ``aws_conn_id``), then, when this host has a
Docker daemon, the registry login through it. STS is not asked: tasks never need it.

The answer is ``(ok, one line)``: what failed and how to fix it, or what was proven. The token
never appears in it: the checks keep it in memory and scrub the daemon's messages.
"""

from __future__ import annotations

from typing import Any

from airflow_ecr.doctor.aws import check_ecr_permission
from airflow_ecr.doctor.docker import check_docker_daemon, check_registry
from airflow_ecr.doctor.results import CheckResult, DoctorState


def _line(*parts: str | None) -> str:
    """One line, whatever the parts hold (error texts may wrap)."""
    return " ".join(" ".join(p for p in parts if p).split())


def _failed(result: CheckResult) -> str:
    return _line(f"{result.title} failed: {result.summary.rstrip('.')}.", f"Fix: {result.fix}." if result.fix else "")


def _registry_of(hook: Any) -> tuple[Any, Any]:
    """
    (the registry, the hook that authenticates it) for the hook's ``ecr_docker`` connection.

    A hook built by Airflow for the Test button has only ``docker_conn_id``: the connection's host
    (an ECR host or a declared alias), else its ``registry_id`` and ``region_name``, names the registry.
    """
    from airflow_ecr.exceptions import EcrConfigurationError
    from airflow_ecr.registry import registry_host

    try:
        return hook.registries[0], hook
    except EcrConfigurationError:
        if not hook.docker_conn_id:
            raise
    connection = hook.get_connection(hook.docker_conn_id)
    extra = connection.extra_dejson or {}
    host = connection.host
    if not host and extra.get("registry_id") and extra.get("region_name"):
        host = registry_host(str(extra["registry_id"]), str(extra["region_name"]))
    if not host:
        raise EcrConfigurationError(
            "The connection names no registry: give it the registry's registry_id and region_name "
            "(and a host only for an alias of that registry)."
        )
    # The connection's own rules (its aws_conn_id, alias declaration, extra fields) apply as for a task.
    # The hook's own class (EcrDockerHook): doctor does not import the hook that imports it.
    probe = type(hook)(registry=host, docker_conn_id=connection.conn_id)
    return probe.registries[0], probe


def check_connection(hook: Any) -> tuple[bool, str]:
    """
    Check an ``ecr_docker`` connection as doctor would: a token from ECR, then the registry login.

    :param hook: the :class:`~airflow_ecr.hooks.docker.EcrDockerHook` of the connection.
    :return: (whether the connection works, one line saying what was proven or what to fix).
    """
    from airflow_ecr.exceptions import EcrError

    try:
        registry, probe = _registry_of(hook)
        aws_conn_id = probe.aws_conn_id
    except EcrError as err:
        return False, _line(str(err))
    base_url = hook.base_url if isinstance(hook.base_url, str) else hook.base_url[0]
    # Airflow tests a transient copy under a random conn id: the form's fields are what to name.
    named_in = "the connection's registry_id and region_name (or its host)"
    state = DoctorState(aws_conn_id=aws_conn_id, docker_url=base_url, registry=registry, named_in=named_in)
    permission = check_ecr_permission(state)
    if permission.status == "fail":
        return False, _failed(permission)
    granted = f"ECR granted a token for {registry.host} to aws_conn_id={aws_conn_id!r}"
    daemon = check_docker_daemon(state)
    if daemon.status == "fail":
        # The Test button runs in the API server, which may have no Docker daemon: the token is what
        # this host can prove; the login is the workers' to prove (airflow-ecr doctor there).
        return True, _line(
            f"{granted}; the registry login was not checked: {daemon.summary} "
            "(run airflow-ecr doctor on a worker for the rest)."
        )
    login = check_registry(state)
    if login.status == "fail":
        return False, _failed(login)
    return True, _line(f"{granted}, and the Docker daemon at {base_url} logged in to it.")
